"""The TensorRT ONNX-parser support table (``trt_onnx_support.json``) as typed lookups.

The table is data with sources (onnx-tensorrt ``docs/operators.md`` per release branch, NVIDIA
release notes and issues); :mod:`hmrt.export.audit` checks graphs against it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hmrt.runtime.errors import InputError

TABLE_PATH = Path(__file__).with_name("trt_onnx_support.json")


def parse_version(text: str) -> tuple[int, ...]:
    """``"10"`` -> ``(10,)``, ``"8.6.1"`` -> ``(8, 6, 1)``; InputError when not numeric."""
    parts = str(text).strip().split(".")
    if not parts or not all(p.isdigit() for p in parts):
        raise InputError(f"TensorRT version {text!r}: expected numbers like 8.6, 10 or 11.4")
    return tuple(int(p) for p in parts)


def version_matches(spec: str, version: tuple[int, ...]) -> bool:
    """Does ``version`` fall in ``spec`` ('all', '<X', '>=X')?"""
    if spec == "all":
        return True
    m = re.fullmatch(r"(<|>=)\s*([\d.]+)", spec)
    if not m:
        raise ValueError(f"bad version spec {spec!r} in {TABLE_PATH.name}")
    bound = parse_version(m.group(2))
    return version < bound if m.group(1) == "<" else version >= bound


@dataclass(frozen=True)
class TrtVersion:
    """One TensorRT version row: opset range, default export opset and what it targets."""

    name: str
    number: tuple[int, ...]
    min_opset: int
    max_opset: int
    default_opset: int
    targets: str
    source: str
    ops: dict[str, str | None]

    def supports(self, op: str) -> bool:
        """Whether this version's parser table lists ``op`` as supported."""
        since = self.ops.get(op)
        return since is not None and parse_version(since) <= self.number


@dataclass(frozen=True)
class SupportTable:
    """The whole JSON table."""

    versions: dict[str, dict[str, Any]]
    ops: dict[str, str | None]
    restrictions: list[dict[str, Any]]

    def names(self) -> list[str]:
        """Version rows in order (8.2 ... 11)."""
        return list(self.versions)

    def version(self, text: str) -> TrtVersion:
        """The row for ``text``: exact, else the newest row not newer than it (10.3 -> 10)."""
        number = parse_version(text)
        rows = [(parse_version(k), k) for k in self.versions]
        eligible = [k for v, k in rows if v <= number]
        if not eligible:
            raise InputError(
                f"TensorRT {text} is older than this table covers ({', '.join(self.versions)})"
            )
        key = eligible[-1]
        row = self.versions[key]
        return TrtVersion(
            key if parse_version(key) == number else str(text),
            number,
            row["min_opset"],
            row["max_opset"],
            row["default_opset"],
            row["targets"],
            row["source"],
            self.ops,
        )

    def restrictions_for(self, op: str, version: tuple[int, ...]) -> list[dict[str, Any]]:
        """Restriction entries that apply to ``op`` on ``version`` (wildcards ``X*``, ``*``)."""
        out = []
        for r in self.restrictions:
            pat = r["op"]
            hit = pat == op or pat == "*" or (pat.endswith("*") and op.startswith(pat[:-1]))
            if hit and version_matches(r["versions"], version):
                out.append(r)
        return out


@functools.lru_cache(maxsize=1)
def load_support_table(path: str | None = None) -> SupportTable:
    """Parse ``trt_onnx_support.json`` (cached)."""
    data = json.loads(Path(path or TABLE_PATH).read_text(encoding="utf-8"))
    return SupportTable(data["versions"], data["ops"], data["restrictions"])
