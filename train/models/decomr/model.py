"""DecoMR (Zeng et al., "3D Human Mesh Regression with Dense Correspondence", CVPR 2020).

Re-implemented from shared/research/seed-decomr.md and the official code's structure
(zengwang430521/DecoMR, ``models/dmr.py``, ``dense_cnn.py``, ``layers.py``): CNet predicts an
IUV image on the body's continuous single-chart UV map and a local feature; the feature is
transferred to UV space with the predicted IUV (scatter-mean); LNet regresses the location map
``X`` (every texel a 3D surface point) and a weak-perspective camera; vertices are read from
``X`` at fixed UV coordinates. The UV machinery (chart, sampling table, reference map) comes
from the hmrt body file (13,348 vertices bundled; SMPL's 6,890 after ``hmrt body import-smpl``).
Decisions the paper and code leave open: docs/models/decomr.md.

DecoMR is non-parametric: there are no ``rotmats``/``betas`` outputs.

Eval outputs (``model.eval()``; the ONNX contract): ``vertices (N,V,3)`` (read from ``X``,
root-relative metres), ``joints3d (N,24,3)`` (the body's ``J_regressor`` on the vertices,
root-relative), ``joints2d (N,24,2)`` (crop pixels, ``px = (s (X + t) + 1) W / 2``),
``cam (N,3)``.

Training outputs (``model.train()``): the eval keys plus (``h x w`` = input / 4, 56x56 at 224;
``S`` = ``warp_res`` 64; ``R`` = ``uv_res`` 128):

================  ==============  ================================================================
key               shape           meaning / supervision
================  ==============  ================================================================
``iuv``           (N,3,h,w)       ``[mask, U, V]``, sigmoid; official ``dp_map``: BCE on the mask,
                                  L1 on U, V at GT foreground (UV convention of the body chart:
                                  ``u`` to the subject's left, ``v`` toward the head)
``uv_features``   (N,C+3,S,S)     transferred features ``[F (C), x, y, occupancy]`` (no loss)
``location_map``  (N,3,R,R)       ``X`` channel-first (official ``uv_map`` is channel-last), in
                                  the frame of the vertex targets; L1 on the chart texels
``vertices_raw``  (N,V,3)         vertices read from ``X`` before the root subtraction
================  ==============  ================================================================
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor, nn

from hmrt.runtime.errors import InputError
from hmrt.train.models.base import HmrModel, MeshHead
from hmrt.train.models.decomr.cnet import CNet
from hmrt.train.models.decomr.config import DecoMRConfig
from hmrt.train.models.decomr.lnet import LNet
from hmrt.train.models.layers.uv_sample import UVToVertices, build_uv_tables
from hmrt.train.models.registry import register_model

DECOMR_OUTPUT_NAMES = ("vertices", "joints3d", "joints2d", "cam")


def load_body(body: Any):
    """The :class:`BodyModel` DecoMR's UV tables and joint regressor come from."""
    from hmrt.runtime.body.model import BodyModel

    if isinstance(body, BodyModel):
        return body
    if isinstance(body, nn.Module):
        raise InputError(
            "decomr needs a body model file (its continuous UV chart and J_regressor), not a "
            "torch body layer: pass None (bundled), a path or a BodyModel"
        )
    return BodyModel(body)


def reference_map(body, uv_size: int) -> np.ndarray:
    """The template's location map ``(3, S, S)`` centred on the root joint (0 off the chart).

    Official: the location map of a zero-centred T-pose mesh (``reference_mesh.obj``); here the
    body file's template, root-centred so it lives in the same root-relative frame as the outputs.
    """
    tables = build_uv_tables(body, uv_size)
    root = (body.J_regressor[:1].astype(np.float64) @ body.v_template).reshape(3, 1, 1)
    return ((tables.ref_map - root) * tables.coverage[None]).astype(np.float32)


@register_model(
    "decomr",
    config_cls=DecoMRConfig,
    variants={"paper": DecoMRConfig.paper, "edge": DecoMRConfig.edge},
    summary="DecoMR: dense correspondence (continuous-UV IUV) -> UV location map -> vertices",
)
class DecoMR(HmrModel):
    """DecoMR; ``DecoMR(config, body=None)``, ``forward(image) -> dict`` (module docstring).

    Official names: ``cnet`` = ``CNet`` (``DPNet``), ``lnet`` = ``LNet`` (``UVNet``),
    ``sampler`` = ``sampler`` (``Index_UV_Generator.resample``; no parameters), ``body``
    (no official counterpart: the joint regressor and projection, in the official trainer).
    """

    output_names = DECOMR_OUTPUT_NAMES

    def __init__(self, config: DecoMRConfig, body: Any = None):
        super().__init__(config)
        body_model = load_body(body)
        self._body_hash = body_model.hash
        # The body file, for what training needs besides the model (the loss's ground-truth
        # location maps and posed meshes): a plain attribute, not part of the state dict.
        self.body_path = body_model.path
        self.cnet = CNet(config)
        self.lnet = LNet(config, reference_map(body_model, config.warp_res))
        self.sampler = UVToVertices(build_uv_tables(body_model, config.uv_res))
        self.body = MeshHead(body_model.J_regressor, config.input_size)

    @property
    def body_hash(self) -> str:
        """Hash of the body model whose chart and regressor the model uses."""
        return self._body_hash

    def forward(self, image: Tensor) -> dict[str, Any]:
        iuv, dp_feature, codes = self.cnet(image)
        loc_map, cam, warped = self.lnet(iuv, dp_feature, codes)
        raw = self.sampler(loc_map)
        vertices, joints3d, joints2d = self.body(raw, cam)
        out: dict[str, Any] = {
            "vertices": vertices,
            "joints3d": joints3d,
            "joints2d": joints2d,
            "cam": cam,
        }
        if self.training:
            out.update(iuv=iuv, uv_features=warped, location_map=loc_map, vertices_raw=raw)
        return out
