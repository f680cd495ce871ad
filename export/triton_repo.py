"""A Triton Inference Server model repository for an hmrt ONNX graph (or TensorRT engine).

Layout: ``<repo>/<name>/config.pbtxt`` and ``<repo>/<name>/1/model.onnx`` (platform
``onnxruntime_onnx``) or ``1/model.plan`` (platform ``tensorrt_plan``). Input/output names,
dtypes and dims come from the ONNX graph (batch dimension dropped: ``max_batch_size`` covers
it), with dynamic batching on. The model folder is written atomically.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnx
from onnx import TensorProto

from hmrt.runtime.errors import InputError

TRITON_TYPES = {
    TensorProto.FLOAT: "TYPE_FP32",
    TensorProto.FLOAT16: "TYPE_FP16",
    TensorProto.INT64: "TYPE_INT64",
    TensorProto.INT32: "TYPE_INT32",
    TensorProto.UINT8: "TYPE_UINT8",
    TensorProto.BOOL: "TYPE_BOOL",
}


def _tensor_entries(values, what: str) -> list[str]:
    entries = []
    for v in values:
        tt = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim][1:]
        if tt.elem_type not in TRITON_TYPES:
            raise InputError(f"{what} '{v.name}' has a dtype Triton config does not map")
        entries.append(
            f'  {{\n    name: "{v.name}"\n    data_type: {TRITON_TYPES[tt.elem_type]}\n'
            f"    dims: [ {', '.join(str(d) for d in dims)} ]\n  }}"
        )
    return entries


def config_text(
    model: onnx.ModelProto,
    name: str,
    platform: str,
    max_batch_size: int,
    max_queue_delay_us: int = 100,
) -> str:
    """``config.pbtxt`` text (protobuf text format of Triton's ``ModelConfig``)."""
    inputs = ",\n".join(_tensor_entries(model.graph.input, "input"))
    outputs = ",\n".join(_tensor_entries(model.graph.output, "output"))
    return (
        f'name: "{name}"\nplatform: "{platform}"\nmax_batch_size: {max_batch_size}\n'
        f"input [\n{inputs}\n]\noutput [\n{outputs}\n]\n"
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}\n}}\n"
    )


def write_triton_repo(
    repo: str | Path,
    onnx_path: str | Path,
    name: str,
    engine: str | Path | None = None,
    max_batch_size: int = 8,
) -> Path:
    """Write (or replace) model ``name`` in repository ``repo``; returns the model folder.

    ``engine``: serve this TensorRT plan instead of the ONNX (dims still read from the ONNX).
    The ONNX must have a dynamic batch dimension when ``max_batch_size > 0``.
    """
    from hmrt.runtime.atomic import atomic_dir

    onnx_path = Path(onnx_path)
    model = onnx.load(str(onnx_path), load_external_data=False)
    dim0 = model.graph.input[0].type.tensor_type.shape.dim[0]
    if max_batch_size > 0 and dim0.HasField("dim_value"):
        raise InputError(
            f"{onnx_path} has a fixed batch of {dim0.dim_value}; export it with a dynamic batch "
            "for Triton's dynamic batching"
        )
    platform = "tensorrt_plan" if engine is not None else "onnxruntime_onnx"
    text = config_text(model, name, platform, max_batch_size)
    dest = Path(repo) / name
    with atomic_dir(dest) as tmp:
        (tmp / "1").mkdir()
        if engine is not None:
            shutil.copyfile(engine, tmp / "1" / "model.plan")
        else:
            shutil.copyfile(onnx_path, tmp / "1" / "model.onnx")
        (tmp / "config.pbtxt").write_text(text, encoding="utf-8")
    return dest
