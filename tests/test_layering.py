"""Imports point one way: runtime <- train <- calib <- export (DESIGN.md), read from the source.

Every ``import`` / ``from ... import`` statement of every ``.py`` file under the four layer
folders counts, including those inside functions (the lazy ones are how the violations crept in).
Commands that orchestrate several layers live in ``src/hmrt/commands/`` (exempt, as is the
dispatcher ``src/hmrt/cli.py``). A failure names each offending file:line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

FORBIDDEN: dict[str, tuple[str, ...]] = {
    "runtime": ("hmrt.train", "hmrt.calib", "hmrt.export", "hmrt.commands", "torch"),
    "train": ("hmrt.calib", "hmrt.export", "hmrt.commands"),
    "calib": ("hmrt.export", "hmrt.commands"),
    "export": ("hmrt.commands",),
}
PACKAGE_OF = {"runtime": "hmrt.runtime", "train": "hmrt.train", "calib": "hmrt.calib",
              "export": "hmrt.export"}  # fmt: skip


def _module_name(path: Path, root: Path, layer: str) -> str:
    rel = path.relative_to(root / layer).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGE_OF[layer], *parts])


def imported_modules(path: Path, root: Path, layer: str) -> list[tuple[int, list[str]]]:
    """``(line, [absolute module names])`` of every import statement in ``path``.

    Relative imports are resolved against the file's package, and ``from pkg import name`` also
    lists ``pkg.name`` (the name may be a submodule: ``from hmrt import export``).
    """
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _module_name(path, root, layer)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, [base, *(f"{base}.{a.name}" for a in node.names)]))
    return found


def _matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(layer: str, root: Path = REPO) -> list[str]:
    """``file:line imports module`` for every forbidden import under ``root/layer``."""
    out = []
    for path in sorted((root / layer).rglob("*.py")):
        for line, modules in imported_modules(path, root, layer):
            bad = next(((m, p) for m in modules for p in FORBIDDEN[layer] if _matches(m, p)), None)
            if bad is not None:
                where = path.relative_to(root).as_posix()
                out.append(f"{where}:{line} imports {bad[0]} ({layer} must not import {bad[1]})")
    return sorted(set(out))


@pytest.mark.parametrize("layer", list(FORBIDDEN))
def test_layer_imports_point_one_way(layer):
    assert (REPO / layer).is_dir()
    found = violations(layer)
    assert not found, "imports against runtime <- train <- calib <- export:\n" + "\n".join(found)


def test_the_checker_sees_lazy_relative_and_from_imports(tmp_path):
    """The checker itself: a function-level import, a relative import and a ``from`` import of a
    forbidden submodule are all reported with their file and line."""
    fake = tmp_path / "calib"
    (fake / "sub").mkdir(parents=True)
    (fake / "ok.py").write_text("import numpy\nfrom hmrt.calib import qdq\n")
    (fake / "sub" / "lazy.py").write_text(
        "def f():\n    import numpy\n    from hmrt.export.onnx_export import export_model\n"
    )
    (fake / "sub" / "rel.py").write_text("from ...export import islands\n")
    (fake / "sub" / "name.py").write_text("from hmrt import export\n")
    found = violations("calib", tmp_path)
    assert any(v.startswith("calib/sub/lazy.py:3 imports hmrt.export.onnx_export") for v in found)
    assert any(v.startswith("calib/sub/rel.py:1 imports hmrt.export") for v in found)
    assert any(v.startswith("calib/sub/name.py:1 imports hmrt.export") for v in found)
    assert not any("ok.py" in v for v in found)


def test_commands_package_is_where_layers_meet():
    """The orchestrating commands exist and the dispatcher points at them."""
    from hmrt.cli import COMMANDS

    assert COMMANDS["eval"][0] == "hmrt.commands.eval"
    assert COMMANDS["demo"][0] == "hmrt.commands.demo"
    assert COMMANDS["bench"][0] == "hmrt.commands.bench"
    assert not (REPO / "runtime" / "cli_demo.py").exists()
