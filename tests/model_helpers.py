"""Shared pieces of the model-zoo tests: a tiny real body layer and small DaNet builds."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from body_helpers import write_synthetic_body


@functools.lru_cache(maxsize=1)
def tiny_body_path() -> Path:
    """A ~500-vertex synthetic body npz (tests/body_helpers.py), written once per session."""
    folder = Path(tempfile.mkdtemp(prefix="hmrt_model_tests_"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return write_synthetic_body(folder / "tiny_body.npz")


def tiny_body_layer():
    """The real ``hmrt.train.body.BodyLayer`` on the tiny synthetic body."""
    from hmrt.train.body import BodyLayer

    return BodyLayer(tiny_body_path())


def build_danet(variant: str = "edge", seed: int = 0, **overrides):
    """``build("danet", variant)`` around the tiny body, with a fixed weight seed."""
    from hmrt.train.models import build

    torch.manual_seed(seed)
    return build("danet", variant, body=tiny_body_layer(), **overrides)


def image(batch: int = 1, size: int = 224, seed: int = 0) -> torch.Tensor:
    """A normalised-looking random input ``(batch, 3, size, size)``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=g)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Run a module's tests on one intra-op thread, then restore the setting.

    On the shared 2-core machine, two OpenMP threads spin against other jobs and make small
    convolutions 10-30x slower; one thread keeps these tests fast and deterministic.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def measure_batchnorm(model, images, batch: int = 4):
    """``model`` in eval mode with every BatchNorm's statistics measured on ``images`` (numpy
    or tensor, ``batch`` at a time): random-init running stats make every crop look alike,
    which would let parity tests pass trivially."""
    for bn in model.modules():
        if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over every batch seen
    model.train()
    images = torch.as_tensor(images)
    with torch.no_grad():
        for i in range(0, len(images), batch):
            model(images[i : i + batch])
    return model.eval()


def bundled_fp16_vs_fp32(name: str, folder: Path, crops: int = 16):
    """ORT outputs ``(fp16, fp32)`` of the bundled ``NAME_edge.pt`` exported fresh (FP32 graph and
    its FP16 conversion, FP32 islands kept) on ``crops`` synth-val crops; skips without weights."""
    import onnx

    from hmrt.assets import asset_path
    from hmrt.export.fp16_graph import convert_to_fp16
    from hmrt.export.model_source import load_model
    from hmrt.export.onnx_export import ExportOptions, export_model
    from hmrt.export.parity import ort_outputs, validation_crops

    if not asset_path(f"weights/{name}_edge.pt").is_file():
        pytest.skip(f"bundled {name}-edge weights not present")
    model = load_model(name, "edge").model
    images = validation_crops(crops, tuple(model.config.input_size)).images
    fp32 = export_model(model, folder / "fp32.onnx", name, "edge", ExportOptions()).path
    half = folder / "fp16.onnx"
    onnx.save(convert_to_fp16(onnx.load(str(fp32))), str(half))
    return ort_outputs(half, images, 4), ort_outputs(fp32, images, 4)
