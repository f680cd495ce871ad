"""Image-to-UV scatter-mean as ScatterElements(reduction="add"): the TensorRT 10+ form.

Why: the official ``warp_feature`` uses boolean indexing and ``index_add_``. Exported, that is
NonZero (data-dependent shapes) plus ScatterElements *without* a reduction, whose duplicates
overwrite instead of adding (silently wrong, shared/research/seed-decomr.md §4.1; shown by
``tests/test_uv_layers.py``). This form keeps every pixel (weight 0 when masked out), puts the
count in one extra channel and scatters features and count in ONE ScatterElements with
``reduction="add"`` (ONNX opset 16+, so opset 17 has it) along the flattened texel axis, then
divides by ``clamp(count, 1)``.

TensorRT: ScatterElements with a reduction parses from TensorRT 10.0, through the
``ScatterElements`` plugin (onnx-tensorrt 10.x importer, shared/research/tensorrt.md §3 [S9];
NVIDIA/TensorRT ``plugin/scatterElementsPlugin``, release/10.0: int64 indices); 8.x parsers
have no reduction (use ``uv_scatter_matmul``). The export audit enforces this
(``trt_onnx_support.json``). A reported TensorRT limit wants no more indices than data along the
scatter axis (NVIDIA/TensorRT#3650): pixels are scattered in chunks of at most ``S*S``, chained
through the data input, so e.g. 112x112 features into a 64x64 map stay inside it.

FP32 island (inherited): the flat texel index ``row*S + column`` is computed in float32 (exact
below 2**24; FP16 is exact only to 2048) and cast to int64 for the scatter.
"""

from __future__ import annotations

from torch import Tensor

from hmrt.train.models.layers.uv_scatter import UVScatterMean


class ScatterAddUVScatterMean(UVScatterMean):
    """Drop-in for ``UVScatterMean``: same inputs, same output, one fixed-shape scatter-add."""

    def forward(self, features: Tensor, uv: Tensor, mask: Tensor) -> Tensor:
        src = self.weighted_sources(features, mask)  # (N, C+1, HW)
        index = self.texel_index(uv).unsqueeze(1).expand(-1, src.shape[1], -1)
        texels = self.uv_size * self.uv_size
        sums = src.new_zeros(src.shape[0], src.shape[1], texels)
        for start in range(0, src.shape[2], texels):  # static: HW and S are fixed at export
            stop = start + texels
            sums = sums.scatter_add(2, index[..., start:stop], src[..., start:stop])
        return self.finish(sums)
