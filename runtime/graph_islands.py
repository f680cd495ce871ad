"""The FP32-island naming contract of hmrt ONNX graphs (and of TensorRT layers built from them).

The exporter renames every node of a model's declared FP32 island to
``fp32island[<qualname>]<original name>`` (docs/DEVELOPING.md, "ONNX contract"). Reading that
tag is part of the graph contract, so it lives here, where every layer may import it: the
exporter's tagging (:mod:`hmrt.export.islands`), the FP16 graph and the engine builder's pins
(export), and the INT8 plan and report (calib). Pure string work on node names: no ``onnx``
import, any object with ``.graph.node[i].name`` will do.
"""

from __future__ import annotations

import re
from typing import Any

ISLAND_PREFIX = "fp32island["
_ISLAND_RE = re.compile(r"^fp32island\[([^\]]+)\]")


def island_of(node_name: str) -> str | None:
    """The island qualname encoded in a node (or TensorRT layer) name, or None."""
    m = _ISLAND_RE.match(node_name)
    return m.group(1) if m else None


def island_name(qualname: str, node_name: str) -> str:
    """``node_name`` tagged as a member of island ``qualname``."""
    return f"{ISLAND_PREFIX}{qualname}]{node_name}"


def island_nodes(model: Any) -> dict[str, list[str]]:
    """``{island qualname: [node names]}`` of an already tagged graph (an ``onnx.ModelProto``)."""
    out: dict[str, list[str]] = {}
    for node in model.graph.node:
        name = island_of(node.name)
        if name is not None:
            out.setdefault(name, []).append(node.name)
    return out
