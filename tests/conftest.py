"""Shared pytest fixtures and the skip logic for optional stacks (TensorRT, GPU)."""

from __future__ import annotations

import importlib.util
import os

import pytest

# Tests must not depend on the developer's thread settings; keep numerics reproducible.
os.environ.setdefault("OMP_NUM_THREADS", "2")


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


HAS_TENSORRT = _has("tensorrt")


def pytest_collection_modifyitems(config, items):
    skip_trt = pytest.mark.skip(reason="needs the full TensorRT package (GPU machine)")
    for item in items:
        if "trt" in item.keywords and not HAS_TENSORRT:
            item.add_marker(skip_trt)
