"""``--batch 1:1:8`` -> a TensorRT optimization profile (min/opt/max input shapes)."""

from __future__ import annotations

from dataclasses import dataclass

from hmrt.runtime.errors import InputError


@dataclass(frozen=True)
class BatchProfile:
    """Batch sizes of one optimization profile."""

    min: int
    opt: int
    max: int

    def shapes(self, channels: int, height: int, width: int) -> tuple[tuple[int, ...], ...]:
        """``(min, opt, max)`` NCHW shapes for ``IOptimizationProfile.set_shape``."""
        return tuple((b, channels, height, width) for b in (self.min, self.opt, self.max))

    def as_dict(self) -> dict[str, int]:
        """JSON form for the sidecar."""
        return {"min": self.min, "opt": self.opt, "max": self.max}


def parse_batch_profile(text: str) -> BatchProfile:
    """``"1:1:8"`` (min:opt:max), ``"1:8"`` (opt = max) or ``"4"`` (static 4)."""
    try:
        parts = [int(p) for p in str(text).split(":")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 3
    elif len(parts) == 2:
        parts = [parts[0], parts[1], parts[1]]
    if len(parts) != 3 or not 1 <= parts[0] <= parts[1] <= parts[2]:
        raise InputError(
            f"--batch {text}: expected MIN:OPT:MAX with 1 <= MIN <= OPT <= MAX, e.g. 1:1:8"
        )
    return BatchProfile(*parts)


def check_against_graph(profile: BatchProfile, graph_batch: int | None) -> None:
    """A static-batch ONNX (``graph_batch``) only accepts the profile N:N:N."""
    if graph_batch is None:
        return
    if (profile.min, profile.opt, profile.max) != (graph_batch,) * 3:
        raise InputError(
            f"the ONNX has a fixed batch of {graph_batch}; use --batch {graph_batch} or export "
            "with a dynamic batch"
        )
