"""FP32 islands: submodules whose forward always runs in float32, even under autocast.

Soft-argmax, rotation conversion, LBS and RoI index math lose accuracy (or overflow) in FP16/BF16
(shared/research/tensorrt.md §4). A model marks them by subclassing :class:`Fp32Module`; the
export code finds them by type or by the qualified names from :func:`fp32_islands` instead of
guessing node names (TorchScript-exported ONNX nodes carry the module path, e.g.
``/img2iuv/soft_argmax/Softmax``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

_HALF_TYPES = (torch.float16, torch.bfloat16)


def _to_fp32(value: Any) -> Any:
    """Upcast FP16/BF16 tensors; float32 and float64 (reference runs) pass unchanged."""
    if torch.is_tensor(value) and value.dtype in _HALF_TYPES:
        return value.float()
    return value


def _device_type(args: tuple, kwargs: dict) -> str:
    for value in (*args, *kwargs.values()):
        if torch.is_tensor(value):
            return value.device.type
    return "cpu"


def fp32_forward(forward: Callable) -> Callable:
    """Wrap ``forward`` so FP16/BF16 tensor arguments become float32 and autocast is off inside."""

    @functools.wraps(forward)
    def wrapper(self, *args, **kwargs):
        args = tuple(_to_fp32(a) for a in args)
        kwargs = {k: _to_fp32(v) for k, v in kwargs.items()}
        if not torch.is_autocast_enabled(_device_type(args, kwargs)):
            return forward(self, *args, **kwargs)
        with torch.autocast(device_type=_device_type(args, kwargs), enabled=False):
            return forward(self, *args, **kwargs)

    wrapper.__fp32_forward__ = True
    return wrapper


class Fp32Module(nn.Module):
    """Base class of precision-sensitive submodules; their ``forward`` runs in float32.

    Subclasses write an ordinary ``forward``; it is wrapped at class creation, so an island is
    FP32 by construction (half inputs cast to float32, autocast disabled inside).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        forward = cls.__dict__.get("forward")
        if forward is not None and not getattr(forward, "__fp32_forward__", False):
            cls.forward = fp32_forward(forward)


def fp32_islands(model: nn.Module) -> dict[str, str]:
    """Qualified names of the outermost :class:`Fp32Module` submodules -> their class names."""
    found: dict[str, str] = {}
    for name, module in model.named_modules():
        if not isinstance(module, Fp32Module) or not name:
            continue
        if any(name.startswith(outer + ".") for outer in found):
            continue
        found[name] = type(module).__name__
    return found
