"""``hmrt import-checkpoint``: a released official checkpoint -> an ordinary hmrt checkpoint.

The authors of a zoo model publish its weights in their own layout. Each model that hmrt can
import registers an :class:`OfficialLayout` here: its ``official_keys`` module (renames and drops
only, DESIGN.md "Official checkpoints"), the hmrt variant that has the official layers, and a
manifest of the official state dict's names and shapes (read from the official code by a script
in ``tools/``). :func:`import_official` reads the file without executing anything in it
(``torch.load(..., weights_only=True)``), maps the names, refuses missing, unexpected and
wrongly shaped tensors with one line that lists them, loads the rest strictly and returns the
checkpoint dict that ``hmrt train`` would write, so ``hmrt export --checkpoint`` and
``load_checkpoint`` take it unchanged. Users bring the files: hmrt never ships or downloads them.

Official weights regress SMPL parameters. Without ``--body`` the bundled open body model is used
and a warning says so: poses (joint rotations, camera) transfer, shapes (betas) do not. With
``--body SMPL.hmrt.npz`` (from ``hmrt body import-smpl``) the meshes are the official ones.

DecoMR (non-parametric) predicts a location map on SMPL's "boundary-free" (BF) UV chart: its
release is two state dicts (``CNet``, ``LNet``), and the model is built with
``uv_convention="official"`` so the weights run unchanged (``decomr/official_keys.py``).

HEMlets releases its pose network only (a bare state dict): hmrt's PoSh regressor is absent from
the file by design (``UNTRAINED_PREFIXES`` of ``hemlets/official_keys.py``); it keeps its initial
values (seeded, so an import is reproducible) and the checkpoint records it as untrained
(``imported_from["untrained"]``). The file's ``volume_reg.dis_map`` (the soft-argmax grid) must
equal the grid the model computes with (``CONSTANT_KEYS``).

torch is imported inside the functions, so ``hmrt --help`` stays light.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import pickle
import re
import sys
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from hmrt.runtime.errors import InputError

SHOWN_NAMES = 4  # names quoted in a one-line refusal, before "..."
SMPL_BETAS = 10  # shape coefficients the official regressors predict
BUNDLED_BODY_NOTE = (
    "meshes use hmrt's open body model, not SMPL: poses transfer, shapes (betas) do not; for the "
    "official meshes pass --body (your SMPL file after `hmrt body import-smpl`)"
)


@dataclass(frozen=True)
class OfficialLayout:
    """How one model's released checkpoint maps onto hmrt.

    ``keys``: module with ``official_to_hmrt_key(key) -> str | None`` (None = dropped);
    ``manifest``: ``(package, file)`` of the JSON list of the official ``[key, shape, dtype]``
    (tests build files from it; errors quote official names through it);
    ``variants``: hmrt variants with the official layers (the first is the default);
    ``state_keys``: where the state dict sits in the released dict (a bare state dict is
    accepted too); ``parts``: for a release that saves one state dict per sub-network
    (DecoMR: ``{"CNet": sd, "LNet": sd, "optimizer": ...}``), their top-level keys, flattened
    to ``"<part>.<key>"`` (a bare dict already flat in that form is accepted too);
    ``overrides``: config fields the hmrt model needs to run the official weights unchanged
    (stored in the written checkpoint's config); ``bundled_body_note``: the warning printed when
    the meshes use hmrt's open body model instead of SMPL; ``published``: where the authors publish the
    weights; ``docs``: where hmrt's documentation explains the import (quoted in refusals).

    The ``keys`` module may also declare ``UNTRAINED_PREFIXES`` (``(hmrt key prefix, what it
    is)`` of hmrt-only modules the release cannot contain: kept at their initial values, marked
    untrained) and ``CONSTANT_KEYS`` (official buffers the official code computes, e.g. a
    coordinate grid: the file's values must equal the model's own).
    """

    model: str
    keys: str
    manifest: tuple[str, str] | None
    variants: tuple[str, ...] = ("paper",)
    state_keys: tuple[str, ...] = ("model",)
    parts: tuple[str, ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()
    bundled_body_note: str = BUNDLED_BODY_NOTE
    published: str = ""
    docs: str = "docs/DEPLOY.md"


LAYOUTS: dict[str, OfficialLayout] = {}


def register_layout(layout: OfficialLayout) -> OfficialLayout:
    """Add (or replace) the official layout of ``layout.model``; returns it."""
    LAYOUTS[layout.model] = layout
    return layout


register_layout(
    OfficialLayout(
        model="danet",
        keys="hmrt.train.models.danet.official_keys",
        manifest=("hmrt.train.models.danet", "official_manifest.json"),
        published="the 'pre-trained models' link of github.com/HongwenZhang/DaNet-DensePose2SMPL",
        docs="docs/DEPLOY.md, 'Official DaNet weights'",
    )
)
register_layout(
    OfficialLayout(
        model="decomr",
        keys="hmrt.train.models.decomr.official_keys",
        manifest=("hmrt.train.models.decomr", "official_manifest.json"),
        parts=("CNet", "LNet"),
        # the released CNet predicts V downward and the official texel rule (round(u (S-1)))
        overrides=(("uv_convention", "official"),),
        published="the Google Drive 'data' package linked from github.com/zengwang430521/DecoMR "
        "(data/model/h36m_up3d/checkpoints/h36m_up3d.pt)",
        bundled_body_note="the open body model's UV chart is not the SMPL BF chart the weights "
        "predict, so this checkpoint loads and exports but its meshes are not meaningful; "
        "structure checks only. For the official meshes pass --body: SMPL imported with "
        "`hmrt body import-smpl FILE --uv-chart smpl_boundry_free_template.obj` "
        "(docs/DEPLOY.md, 'Official DecoMR weights')",
        docs="docs/DEPLOY.md, 'Official DecoMR weights'",
    )
)
register_layout(
    OfficialLayout(
        model="hemlets",
        keys="hmrt.train.models.hemlets.official_keys",
        manifest=("hmrt.train.models.hemlets", "official_manifest.json"),
        # the release is a bare state dict; re-saved copies are often wrapped in one of these
        state_keys=("state_dict", "model"),
        # the pose network does not use a body model; only the untrained PoSh does
        bundled_body_note="",
        published="the Baidu Cloud / Google Drive links of github.com/redrock303/HEMlets' readme "
        "(ckpt/hemlets_h36m_lastest.pth)",
        docs="docs/DEPLOY.md, 'Official HEMlets weights'",
    )
)


def get_layout(model: str, variant: str | None = None) -> tuple[OfficialLayout, str]:
    """The registered layout of ``model`` and the variant to build (default: its first)."""
    layout = LAYOUTS.get(model)
    if layout is None:
        known = ", ".join(sorted(LAYOUTS)) or "none"
        raise InputError(f"no official checkpoint layout for model '{model}'; known: {known}")
    variant = variant or layout.variants[0]
    if variant not in layout.variants:
        raise InputError(
            f"official {model} weights fit the {'/'.join(layout.variants)} variant, not "
            f"'{variant}'; leave --variant out"
        )
    return layout, variant


@cache
def load_manifest(model: str) -> dict[str, Any]:
    """The manifest dict of ``model`` (header + ``state_dict``: ``[key, shape, dtype]`` rows)."""
    layout, _ = get_layout(model)
    if layout.manifest is None:
        raise InputError(f"model '{model}' has no official manifest")
    package, name = layout.manifest
    text = resources.files(package).joinpath(name).read_text(encoding="utf-8")
    return json.loads(text)


def _key_mapper(layout: OfficialLayout) -> Callable[[str], str | None]:
    return importlib.import_module(layout.keys).official_to_hmrt_key


def untrained_prefixes(layout: OfficialLayout) -> tuple[tuple[str, str], ...]:
    """``(hmrt key prefix, what it is)`` of the modules the release does not contain."""
    return tuple(getattr(importlib.import_module(layout.keys), "UNTRAINED_PREFIXES", ()))


def _constant_keys(layout: OfficialLayout) -> tuple[str, ...]:
    """hmrt keys whose official values the official code computes (checked, not trusted)."""
    return tuple(getattr(importlib.import_module(layout.keys), "CONSTANT_KEYS", ()))


def _official_names(layout: OfficialLayout) -> dict[str, str]:
    """hmrt key -> official key, from the manifest (empty if the model has none)."""
    if layout.manifest is None:
        return {}
    to_hmrt = _key_mapper(layout)
    rows = load_manifest(layout.model)["state_dict"]
    return {new: key for key, _, _ in rows if (new := to_hmrt(key)) is not None}


def _listing(what: str, names: list[str]) -> str:
    """``"2 missing (a, b)"``; long lists are cut after :data:`SHOWN_NAMES` names."""
    shown = ", ".join(names[:SHOWN_NAMES])
    more = f", ... {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else ""
    return f"{len(names)} {what} ({shown}{more})"


# ---------------------------------------------------------------------------------------------
# Reading the official file


def _short_reason(exc: BaseException) -> str:
    """First line of an exception, without torch's advice to load untrusted pickles."""
    lines = str(exc).strip().splitlines()
    text = lines[0][:120] if lines else ""
    if "weights_only" in text or "trust" in text:
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def check_input(path: Path, layout: OfficialLayout) -> None:
    """Refuse a missing official file or a folder (cheap; before any slow work)."""
    if not path.exists():
        where = f"download it yourself from {layout.published}" if layout.published else ""
        raise InputError(f"{path}: file not found; {where or 'check the path'}")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; pass the released checkpoint file (.pt)")


def read_official_file(path: Path, layout: OfficialLayout) -> Mapping[str, Any]:
    """``torch.load(path, weights_only=True)`` -> the official state dict (names -> tensors).

    Nothing in the file is executed: an object other than tensors and plain containers (code,
    numpy arrays) stops the unpickler, which becomes one line naming the file and the fix.
    """
    import torch

    check_input(path, layout)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notes on legacy (torch < 1.6) files
            obj = torch.load(
                path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
            )
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:  # the unpickler stopped at a class or function before anything ran
            raise InputError(
                f"{path}: refused: the file references {found.group(1)}, not a tensor type, and "
                "hmrt never unpickles code or other classes; use the checkpoint as published, "
                "or save a plain dict of tensors: torch.save({'model': state_dict}, FILE)"
            ) from None
        raise InputError(
            f"{path}: not a PyTorch checkpoint (unreadable pickle data); "
            f"pass the released {layout.model} .pt file (re-download it if truncated)"
        ) from None
    except Exception as exc:  # torch raises RuntimeError/EOFError/KeyError/... on non-checkpoints
        raise InputError(
            f"{path}: not a PyTorch checkpoint ({_short_reason(exc)}); "
            f"pass the released {layout.model} .pt file (re-download it if truncated)"
        ) from None
    return _find_state_dict(obj, path, layout)


def _find_state_dict(obj: Any, path: Path, layout: OfficialLayout) -> Mapping[str, Any]:
    """The state dict inside the loaded object: ``obj[state_key]`` or ``obj`` itself."""
    import torch

    if isinstance(obj, Mapping) and obj.get("format") == "hmrt-checkpoint":
        raise InputError(
            f"{path}: already an hmrt checkpoint; use it directly: hmrt export --checkpoint {path}"
        )
    state = None
    if isinstance(obj, Mapping) and layout.parts and any(p in obj for p in layout.parts):
        state = _flatten_parts(obj, path, layout)
    elif isinstance(obj, Mapping):
        inner = [obj[k] for k in layout.state_keys if isinstance(obj.get(k), Mapping)]
        if inner:
            state = inner[0]
        elif obj and all(torch.is_tensor(v) for v in obj.values()):
            state = obj  # a bare state dict
    if state is None:
        top = ", ".join(map(str, list(obj)[:6])) if isinstance(obj, Mapping) else type(obj).__name__
        want = " or ".join(
            f"a dict with '{k}'"
            for k in (["' and '".join(layout.parts)] if layout.parts else layout.state_keys)
        )
        raise InputError(
            f"{path}: no state dict found (top level: {top or 'empty'}); expected {want}, "
            "or a plain state dict of tensors"
        )
    odd = [str(k) for k, v in state.items() if not (isinstance(k, str) and torch.is_tensor(v))]
    if odd:
        raise InputError(f"{path}: the state dict has {_listing('non-tensor entries', odd)}")
    return state


def _flatten_parts(obj: Mapping[str, Any], path: Path, layout: OfficialLayout) -> dict[str, Any]:
    """``{"CNet": sd, "LNet": sd, ...}`` -> ``{"CNet.<key>": tensor, ...}``; the rest of the
    release (optimizer state, counters) is not part of the model and is ignored."""
    absent = [p for p in layout.parts if not isinstance(obj.get(p), Mapping)]
    if absent:
        raise InputError(
            f"{path}: {_listing('state dicts missing', absent)}; the released {layout.model} "
            f"file holds one per sub-network ({', '.join(layout.parts)})"
        )
    return {f"{part}.{key}": value for part in layout.parts for key, value in obj[part].items()}


# ---------------------------------------------------------------------------------------------
# Mapping and checking


def map_official_state(
    state: Mapping[str, Any], layout: OfficialLayout, path: Path
) -> tuple[dict[str, Any], dict[str, str], int]:
    """Rename official keys to hmrt's: ``(mapped, hmrt -> official name, dropped count)``."""
    to_hmrt = _key_mapper(layout)
    mapped: dict[str, Any] = {}
    origin: dict[str, str] = {}
    clashes: list[str] = []
    for key, value in state.items():
        new = to_hmrt(key)
        if new is None:
            continue
        if new in mapped:
            clashes.append(f"{origin[new]} & {key}")
        mapped[new] = value
        origin[new] = key
    if clashes:
        raise InputError(f"{path}: {_listing('pairs of keys map onto one tensor', clashes)}")
    return mapped, origin, len(state) - len(mapped)


def check_layout(
    expected: Mapping[str, Any],
    mapped: Mapping[str, Any],
    origin: Mapping[str, str],
    layout: OfficialLayout,
    path: Path,
) -> None:
    """Refuse missing, unexpected or wrongly shaped tensors, listing them (official names).

    Keys under the layout's untrained prefixes are hmrt's own (no release has them): they are
    not missing when absent, and are unexpected when a file carries them.
    """
    official = _official_names(layout)
    hmrt_only = tuple(prefix for prefix, _ in untrained_prefixes(layout))
    missing = [
        official.get(k, k) for k in expected if k not in mapped and not k.startswith(hmrt_only)
    ]
    unexpected = [origin[k] for k in mapped if k not in expected or k.startswith(hmrt_only)]
    shapes = [
        f"{origin[k]} {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
        for k, v in mapped.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    problems = [
        _listing(what, names)
        for what, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrongly shaped", shapes),
        )
        if names
    ]
    if problems:
        raise InputError(
            f"{path}: not the official {layout.model} layout: {'; '.join(problems)}; pass the "
            f"released checkpoint unmodified ({layout.docs})"
        )


def check_constants(
    expected: Mapping[str, Any], mapped: Mapping[str, Any], layout: OfficialLayout, path: Path
) -> None:
    """Refuse a file whose computed buffers (``CONSTANT_KEYS``) differ from the model's own.

    hmrt's layers compute with their own copy of such a constant (e.g. the soft-argmax grid), so
    a file carrying other values would load and silently run differently from the official code.
    """
    import torch

    wrong = []
    for key in _constant_keys(layout):
        if key in mapped:
            got, want = mapped[key].double(), expected[key].double()
            if not torch.allclose(got, want, rtol=0.0, atol=1e-6):
                wrong.append(f"{key} (max diff {float((got - want).abs().max()):.3g})")
    if wrong:
        what = "buffers differ from the values the official code computes"
        raise InputError(
            f"{path}: {_listing(what, wrong)}; pass the released checkpoint unmodified "
            f"({layout.docs})"
        )


def _untrained_state(
    state: Mapping[str, Any], layout: OfficialLayout
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The model's own (initial) tensors under the untrained prefixes, and their record."""
    kept: dict[str, Any] = {}
    record = []
    for prefix, what in untrained_prefixes(layout):
        own = {k: v for k, v in state.items() if k.startswith(prefix)}
        kept.update(own)
        if own:
            record.append({"prefix": prefix, "what": what, "tensors": len(own)})
    return kept, record


# ---------------------------------------------------------------------------------------------
# The body model


def resolve_body(body: str | os.PathLike | None, model: str) -> tuple[Any, bool]:
    """``(BodyModel, is_bundled)`` for ``--body`` (None: the bundled open model).

    Official regressors predict 24 SMPL joint rotations and 10 betas, so a body needs 24 joints
    and at least 10 shape components (``hmrt body import-smpl`` keeps 10 by default).
    """
    from hmrt.runtime.body import BodyModel, default_body_path

    model_body = BodyModel(body)  # InputError (one line) for a missing/unreadable/pickled file
    if model_body.n_joints != 24:
        raise InputError(
            f"{model_body.path}: {model_body.n_joints} joints; official {model} weights need the "
            "24 SMPL joints (convert SMPL with: hmrt body import-smpl FILE)"
        )
    if model_body.n_betas < SMPL_BETAS:
        raise InputError(
            f"{model_body.path}: {model_body.n_betas} shape components; official {model} "
            f"weights predict {SMPL_BETAS}: rerun hmrt body import-smpl with --betas {SMPL_BETAS}"
        )
    bundled = default_body_path()
    is_bundled = bundled.is_file() and model_body.hash == BodyModel(bundled).hash
    return model_body, is_bundled


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The library function


def import_official(
    model: str,
    official_path: str | os.PathLike,
    body: str | os.PathLike | None = None,
    variant: str = "paper",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Convert a released ``model`` checkpoint into an hmrt checkpoint dict (not written).

    ``body``: an hmrt body npz (``hmrt body import-smpl`` of the user's SMPL file) or None for
    the bundled open model. Raises :class:`InputError` (one line) for an unreadable or unsafe
    file, for missing, unexpected or wrongly shaped tensors, and for a computed buffer
    (``CONSTANT_KEYS``) whose values differ from the model's own. The result is what
    :func:`hmrt.train.checkpoint.save_checkpoint` writes, with ``train_config.body`` pointing at
    ``body`` (so ``hmrt export --checkpoint`` rebuilds the same body) and ``imported_from``
    (file, sha256, and ``untrained``: the hmrt-only modules the release lacks) for provenance.
    """
    import torch

    from hmrt.train.checkpoint import checkpoint_payload
    from hmrt.train.models import build

    say = log or (lambda _msg: None)
    layout, variant = get_layout(model, variant)
    path = Path(official_path)
    body_model, _ = resolve_body(body, model)
    say(f"reading {path}")
    state = read_official_file(path, layout)
    mapped, origin, dropped = map_official_state(state, layout, path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the initial values of untrained modules: same file, same result
        net = build(model, variant, body=body_model, **dict(layout.overrides))
    own = net.state_dict()
    check_layout(own, mapped, origin, layout, path)
    check_constants(own, mapped, layout, path)
    kept, untrained = _untrained_state(own, layout)
    as_fp32 = {k: v.float() if v.is_floating_point() else v for k, v in mapped.items()}
    net.load_state_dict({**kept, **as_fp32}, strict=True)
    net.eval()
    say(f"mapped {len(mapped)} tensors onto {model}/{variant} ({dropped} official-only dropped)")
    for item in untrained:
        say(
            f"warning: {item['what']} is untrained ({item['tensors']} tensors under "
            f"'{item['prefix']}' keep their initial values: the release has none); its outputs "
            f"are not meaningful until you train it with hmrt ({layout.docs})"
        )
    return checkpoint_payload(
        net,
        train_config={"body": str(Path(body).resolve()) if body is not None else None},
        imported_from={
            "model": model,
            "file": str(path.resolve()),
            "sha256": _sha256(path),
            "official_tensors": len(state),
            "dropped": dropped,
            "untrained": untrained,
        },
    )


# ---------------------------------------------------------------------------------------------
# The command line


def check_output(out: Path, source: Path) -> None:
    """Refuse an ``--out`` that cannot be written, or that is the input, before the slow work."""
    from hmrt.runtime.atomic import check_writable

    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise InputError(f"--out {out} is the official file itself; choose another file name")
    check_writable(out, "file", flag="--out")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``hmrt import-checkpoint``."""
    parser.add_argument(
        "--model", required=True, choices=sorted(LAYOUTS), help="zoo model the weights are for"
    )
    parser.add_argument(
        "--official",
        required=True,
        type=Path,
        metavar="FILE.pt",
        help="the released checkpoint as downloaded (read with torch.load(weights_only=True))",
    )
    parser.add_argument(
        "--body",
        type=Path,
        default=None,
        metavar="BODY.npz",
        help="body model for the meshes: your SMPL file converted with `hmrt body import-smpl` "
        "(default: hmrt's open body model; poses transfer, shapes do not)",
    )
    parser.add_argument(
        "--variant",
        default=None,
        help="hmrt variant with the official layers (default: the model's, e.g. paper)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="hmrt checkpoint to write (default: hmrt_<model>.pt in the current folder)",
    )


def run(args: argparse.Namespace) -> int:
    """Convert, write atomically, and print the next command."""
    from hmrt.runtime.atomic import atomic_path

    layout, variant = get_layout(args.model, args.variant)
    out = args.out or Path(f"hmrt_{args.model}.pt")
    check_output(out, args.official)
    check_input(args.official, layout)
    _, is_bundled = resolve_body(args.body, args.model)
    if is_bundled and layout.bundled_body_note:
        print(f"hmrt import-checkpoint: warning: {layout.bundled_body_note}", file=sys.stderr)

    def log(msg: str) -> None:
        print(f"hmrt import-checkpoint: {msg}", file=sys.stderr)

    ckpt = import_official(layout.model, args.official, args.body, variant, log=log)
    import torch

    with atomic_path(out) as tmp:
        torch.save(ckpt, tmp)
    untrained = ", ".join(item["what"] for item in ckpt["imported_from"]["untrained"])
    print(
        f"wrote {out} ({layout.model}/{variant}, body {ckpt['body_hash'][:12]}"
        f"{f'; untrained: {untrained}' if untrained else ''}); "
        f"next: hmrt export --checkpoint {out}"
    )
    return 0
