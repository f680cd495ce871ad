"""DaNet's IUV heads, the argmax "clean" between the stages, and PartDrop.

Channel conventions (official code): global maps have 25 channels (background + 24 DensePose
parts) for each of U, V and Index; the cleaned global input of stage 2 is
``[U*onehot (25) | V*onehot (25) | onehot (25)]``. Partial maps have 7 channels per joint
(background + the joint's 6 parts, :data:`tables.DP2SMPL_MAPPING`), ordered joint-major then
``[U (7) | V (7) | I (7)]``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hmrt.train.models.backbones.resnet import Bottleneck, make_res_layer
from hmrt.train.models.danet import tables

NUM_IUV = tables.NUM_PARTS + 1  # 25
PARTIAL_CHANNELS = 1 + len(tables.DP2SMPL_MAPPING[0])  # 7


class IUVPredictHeads(nn.Module):
    """The heads on the feature map ``F`` (official ``IUV_predict_layer``, same names).

    ``predict_u/v/uv_index``: 3x3 convs to 25 channels (raw U, V, part logits);
    ``predict_ann_index``: 3x3 conv to 15 coarse classes (training-only auxiliary);
    ``predict_hm``: ``hm_blocks`` bottlenecks (width/4) + 3x3 conv to 24 joint heatmaps;
    ``predict_partial_iuv``: on the pooled RoIs ``(N, 24*C, R, R)``, a grouped conv (groups=24)
    to ``24 * 3 * 7`` channels: the official 3x3, or (``dwsep``) a depthwise 3x3 + grouped 1x1.
    Weights start N(0, 0.001) with zero bias, as in the official initialisation.
    """

    def __init__(self, channels: int, hm_blocks: int = 3, partial_head: str = "conv3x3"):
        super().__init__()
        k = tables.NUM_JOINTS
        self.predict_u = nn.Conv2d(channels, NUM_IUV, 3, 1, 1)
        self.predict_v = nn.Conv2d(channels, NUM_IUV, 3, 1, 1)
        self.predict_uv_index = nn.Conv2d(channels, NUM_IUV, 3, 1, 1)
        self.predict_ann_index = nn.Conv2d(channels, len(tables.ANN_GROUPS), 3, 1, 1)
        self.predict_hm = nn.Sequential(
            make_res_layer(Bottleneck, channels, channels // 4, hm_blocks),
            nn.Conv2d(channels, k, 3, 1, 1),
        )
        out = k * 3 * PARTIAL_CHANNELS
        if partial_head == "conv3x3":
            self.predict_partial_iuv: nn.Module = nn.Conv2d(k * channels, out, 3, 1, 1, groups=k)
        else:
            self.predict_partial_iuv = nn.Sequential(
                nn.Conv2d(k * channels, k * channels, 3, 1, 1, groups=k * channels),
                nn.Conv2d(k * channels, out, 1, groups=k),
            )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


def onehot_argmax(logits: Tensor, classes: Tensor, dim: int) -> Tensor:
    """0/1 tensor marking the arg-max along ``dim`` (first index on ties, like ONNX ArgMax).

    ``classes`` is ``arange(C)`` shaped to broadcast along ``dim`` (a constant buffer, so the
    graph is ArgMax + Equal + Cast with no Range). Exact, static shapes, no gradient.
    """
    return (logits.argmax(dim=dim, keepdim=True) == classes).to(logits.dtype)


class IUVClean(nn.Module):
    """The official ``iuvmap_clean``: argmax one-hot Index maps, U and V masked by them.

    Global: ``[U*onehot | V*onehot | onehot]`` ``(N, 75, H, W)``. Partial: per joint over its 7
    channels, ``(N, 24, 3, 7, R, R)`` -> same shape ``[U*onehot, V*onehot, onehot]``.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer(
            "global_classes", torch.arange(NUM_IUV).reshape(1, NUM_IUV, 1, 1), persistent=False
        )
        self.register_buffer(
            "partial_classes",
            torch.arange(PARTIAL_CHANNELS).reshape(1, 1, PARTIAL_CHANNELS, 1, 1),
            persistent=False,
        )

    def global_onehot(self, index_logits: Tensor) -> Tensor:
        """``(N, 25, H, W)`` one-hot of the arg-max part (no gradient)."""
        return onehot_argmax(index_logits.detach(), self.global_classes, dim=1)

    def clean_global(self, u: Tensor, v: Tensor, onehot: Tensor) -> Tensor:
        """Stage-2 global input ``(N, 75, H, W)``."""
        return torch.cat([u * onehot, v * onehot, onehot], dim=1)

    def clean_partial(self, partial: Tensor) -> Tensor:
        """Partial logits ``(N, 24, 3, 7, R, R)`` -> cleaned, same shape."""
        onehot = onehot_argmax(partial[:, :, 2].detach(), self.partial_classes, dim=2)
        return torch.stack([partial[:, :, 0] * onehot, partial[:, :, 1] * onehot, onehot], dim=2)


class PartDrop(nn.Module):
    """PartDrop (paper §3.4, Eq. 5): drop whole body parts from the IUV maps in training.

    Each of the 24 parts is dropped independently with probability ``rate`` per sample, and the
    same set is removed from the global maps and from every partial map (channels whose part id
    is dropped). :meth:`keep_masks` returns the 0/1 keep factors; the model multiplies either the
    cleaned maps (``maps`` mode, the paper) or the raw logits (``logits`` mode, official code).
    """

    def __init__(self, rate: float = 0.3):
        super().__init__()
        self.rate = float(rate)
        table = torch.from_numpy(tables.partial_part_table())
        self.register_buffer("part_table", table, persistent=False)  # (24, 7), 0 = background

    def keep_masks(self, batch: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """``(keep_global (N, 25), keep_partial (N, 24, 7))``; background is never dropped."""
        dropped = torch.rand(batch, tables.NUM_PARTS, device=device) < self.rate
        keep = torch.cat([torch.ones(batch, 1, device=device), (~dropped).float()], dim=1)
        keep_partial = keep[:, self.part_table.reshape(-1)].reshape(batch, *self.part_table.shape)
        return keep, keep_partial
