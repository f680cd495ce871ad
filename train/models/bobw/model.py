"""BoBW (Wang, Yang, Fowlkes, "The Best of Both Worlds: Combining Model-based and
Nonparametric Approaches for 3D Human Body Estimation", arXiv 2205.00508).

No official code exists (shared/research/seed-bobw.md §5.1): this is hmrt's implementation from
the paper, built on DecoMR's layers where the paper points to them. Three modules run in turn:

1. **DMP** (:class:`DMP`): DecoMR's CNet (IUV on the continuous chart, local feature, pooled
   code) plus dense location / joint / displacement maps in root-relative metres.
2. **IK**: the local feature and the dense maps are splatted into UV space at ``warp_res``
   with the predicted IUV (DecoMR's scatter-mean, :class:`FeatureWarp`); the transferred joint
   map is averaged per LSP part (:class:`PartAverage`, the UV part assignment built from the
   body file) into ``J_initial``; the inpaint-and-refine MLP and GIK-Net (:class:`BoBWIK`) give
   the refined joints and axis-angle pose + betas; the body layer poses the mesh, which is
   rasterised back into UV (:class:`MeshToUV`, a constant gather with barycentric weights) with
   the refined joints distributed by part (:class:`PartDistribute`).
3. **UVI** (:class:`UVI`): DecoMR's UVNet on ``[UV features, DMP UV maps, IK UV maps]`` to the
   complete location, joint and displacement maps at ``uv_res`` (by default as a correction of
   the IK maps rasterised at ``uv_res``: ``uvi_residual``); the mesh is the location map
   read at the vertices' UV (:class:`UVToVertices`), the 14 LSP joints the per-part mean of the
   joint map.

Eval outputs (the ONNX contract): ``vertices (N,V,3)``, ``joints3d (N,24,3)`` (the body's
``J_regressor`` on the UVI mesh, root-relative metres), ``joints2d (N,24,2)`` (crop pixels),
``cam (N,3)``, ``rotmats (N,24,3,3)`` and ``betas (N,10)`` (GIK-Net's body parameters: the IK
stage's parametric fit, which the final non-parametric mesh refines; the mesh is NOT the body
layer of these), then ``pose_joints (N,14,3)``: the UVI joint map's LSP-14 joints (joint set
``lsp14``, :data:`LSP14_NAMES` order), crop pixels ``x, y`` through the camera and root-relative
metres ``z``, in the frame of ``joints3d``.

Training outputs (``model.train()``): the eval keys plus

================  ===============  ==============================================================
key               shape            meaning
================  ===============  ==============================================================
``iuv``           (N,3,h,w)        ``[mask, U, V]`` (DecoMR's CNet; 56x56 at 224)
``dense_maps``    (N,9,h,w)        ``[M_l, M_j, M_d]``, root-relative metres
``uv_features``   (N,C+3,S,S)      transferred feature ``[F, x, y, occupancy]``
``uv_dmp``        (N,9,S,S)        transferred dense maps (0 on empty texels)
``j_initial``     (N,14,3)         per-part mean of the transferred joint map
``j_visible``     (N,14)           1 where the part received any pixel
``j_refine``      (N,14,3)         inpaint-and-refine MLP output
``pose_aa``       (N,72)           GIK-Net axis-angle pose
``ik_vertices``   (N,V,3)          the IK body mesh, root-relative
``uv_ik``         (N,9,S,S)        ``[UV_l^ik, UV_jrefine, UV_l^ik - UV_jrefine]``
``uv_maps``       (N,9,R,R)        UVI output ``[UV_l, UV_j, UV_d]``
``j_final``       (N,14,3)         per-part mean of ``UV_j`` (map frame, before the root shift)
``vertices_raw``  (N,V,3)          vertices read from ``UV_l`` before the root subtraction
================  ===============  ==============================================================

``model.stage = "dmp"`` (training only) stops after the DMP and returns ``iuv`` and
``dense_maps``: the paper's first stage trains the DMP alone. Decisions: docs/models/bobw.md.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from hmrt.train.models.base import OUTPUT_NAMES, HmrModel, MeshHead, make_body_layer
from hmrt.train.models.base import _drop_body_arrays as drop_body_arrays
from hmrt.train.models.base import _project_weak as project_weak
from hmrt.train.models.bobw.config import BoBWConfig
from hmrt.train.models.bobw.dmp import DMP
from hmrt.train.models.bobw.from_decomr import adapt_from_decomr
from hmrt.train.models.bobw.ik import BoBWIK
from hmrt.train.models.bobw.joints import LSP14_FLIP, LSP14_NAMES, lsp14_regressor
from hmrt.train.models.bobw.uvi import UVI
from hmrt.train.models.decomr.lnet import FeatureWarp
from hmrt.train.models.decomr.model import load_body, reference_map
from hmrt.train.models.layers.mesh_to_uv import MeshToUV, mesh_to_uv_table
from hmrt.train.models.layers.precision import Fp32Module
from hmrt.train.models.layers.uv_parts import PartAverage, PartDistribute, uv_part_assignment
from hmrt.train.models.layers.uv_sample import UVToVertices, build_uv_tables
from hmrt.train.models.registry import register_model
from hmrt.train.rotations import axis_angle_to_matrix

STAGES = ("dmp", "ik", "uvi", "all")
"""Training stages (``hmrt train --model bobw --stage``); the paper trains them in turn."""


class IKBody(Fp32Module):
    """``forward(pose_aa (N,72), betas (N,10)) -> (rotmats (N,24,3,3), vertices, joints)``,
    root-relative: axis-angle to rotation matrices (NaN-free at zero) and the body layer. An
    FP32 island; the body arrays stay out of ``state_dict``."""

    def __init__(self, body: Any):
        super().__init__()
        self.layer = make_body_layer(body)
        self.register_state_dict_post_hook(drop_body_arrays)

    def forward(self, pose_aa: Tensor, betas: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        rotmats = axis_angle_to_matrix(pose_aa.reshape(pose_aa.shape[0], -1, 3))
        vertices, joints = self.layer(rotmats, betas, root_relative=True)
        return rotmats, vertices, joints


class PoseJointsHead(Fp32Module):
    """``forward(joints (N,K,3), root (N,1,3), cam (N,3)) -> (N,K,3)``: the joints in the
    frame of ``joints3d`` (``root`` subtracted), as crop pixels ``x, y`` through the weak
    perspective camera and metres ``z`` (the ``pose_joints`` units)."""

    def __init__(self, input_size: tuple[int, int]):
        super().__init__()
        height, width = input_size
        self.register_buffer(
            "half_size", torch.tensor([width / 2.0, height / 2.0]), persistent=False
        )

    def forward(self, joints: Tensor, root: Tensor, cam: Tensor) -> Tensor:
        joints = joints - root
        return torch.cat([project_weak(joints, cam, self.half_size), joints[..., 2:]], dim=-1)


@register_model(
    "bobw",
    config_cls=BoBWConfig,
    variants={"paper": BoBWConfig.paper, "edge": BoBWConfig.edge},
    summary="BoBW: dense maps -> learned IK + body model -> UV inpainting -> location map",
)
class BoBW(HmrModel):
    """BoBW; ``BoBW(config, body=None)``, ``forward(image) -> dict`` (module docstring)."""

    output_names: ClassVar[tuple[str, ...]] = (*OUTPUT_NAMES, "pose_joints")
    pose_joint_set: ClassVar[str] = "lsp14"
    """Name of the ``pose_joints`` joint set (ONNX metadata ``hmrt.pose_joints``)."""
    pose_joint_names: ClassVar[tuple[str, ...]] = LSP14_NAMES
    """Names of the ``pose_joints`` joints, in output order (``hmrt.pose_joint_names``)."""

    def __init__(self, config: BoBWConfig, body: Any = None):
        super().__init__(config)
        c = config
        body_model = load_body(body)
        self._body_hash = body_model.hash
        self.body_path = body_model.path  # for the loss's ground-truth maps (not in state_dict)
        self.stage = "all"
        lsp = lsp14_regressor(body_model)
        self.register_buffer(
            "lsp_regressor", torch.tensor(lsp, dtype=torch.float32), persistent=False
        )
        assign_in = uv_part_assignment(body_model, c.warp_res, lsp, LSP14_FLIP)
        assign_out = uv_part_assignment(body_model, c.uv_res, lsp, LSP14_FLIP)
        self.dmp = DMP(c)
        self.warp = FeatureWarp(c.iuv_size, c.warp_res, c.mask_threshold)
        self.parts_in = PartAverage(assign_in)
        self.ik = BoBWIK(c)
        self.ik_body = IKBody(body_model)
        self.template_uv = MeshToUV(mesh_to_uv_table(body_model, c.warp_res))
        self.distribute = PartDistribute(assign_in)
        self.uvi = UVI(c, reference_map(body_model, c.warp_res))
        if c.uvi_residual:  # the IK maps at the output size, the base the UVI corrects
            self.template_uv_out = MeshToUV(mesh_to_uv_table(body_model, c.uv_res))
            self.distribute_out = PartDistribute(assign_out)
        self.sampler = UVToVertices(build_uv_tables(body_model, c.uv_res))
        self.parts_out = PartAverage(assign_out)
        self.body = MeshHead(body_model.J_regressor, c.input_size)
        self.pose_head = PoseJointsHead(c.input_size)

    fit_label: ClassVar[str] = "IK fit (rotmats, betas)"
    """``hmrt eval``'s row for the IK stage's parametric body (:attr:`fit_body_layer`)."""

    @property
    def fit_body_layer(self) -> Any:
        """The body layer that poses ``rotmats``/``betas`` (GIK-Net's fit, which the UVI's
        non-parametric mesh refines): ``hmrt eval`` scores that body as a row of its own."""
        return self.ik_body.layer

    @property
    def body_hash(self) -> str:
        """Hash of the body model whose chart, regressor and LBS arrays the model uses."""
        return self._body_hash

    def adapt_module_init(
        self, prefix: str, src_prefix: str, picked: dict, own: dict, path: str
    ) -> dict:
        """``init_modules`` hook: DecoMR's CNet / LNet fitted to the DMP / UVI
        (:func:`~hmrt.train.models.bobw.from_decomr.adapt_from_decomr`)."""
        return adapt_from_decomr(self.config, prefix, src_prefix, picked, own, path)

    def set_stage(self, stage: str) -> None:
        """Which training stage the forward serves: ``dmp`` stops after the DMP."""
        if stage not in STAGES:
            raise ValueError(f"bobw stage {stage!r}: use one of {', '.join(STAGES)}")
        self.stage = stage

    def forward(self, image: Tensor) -> dict[str, Any]:
        iuv, dense, feature, codes = self.dmp(image)
        if self.training and self.stage == "dmp":
            return {"iuv": iuv, "dense_maps": dense}
        c = feature.shape[1]
        warped = self.warp(iuv, torch.cat([feature, dense], dim=1)).to(feature.dtype)
        uv_dmp = warped[:, c : c + 9]
        uv_features = torch.cat([warped[:, :c], warped[:, c + 9 :]], dim=1)
        j_initial, visible = self.parts_in(uv_dmp[:, 3:6], warped[:, -1:])
        ik = self.ik(j_initial, visible)
        rotmats, ik_vertices, _ = self.ik_body(ik["pose_aa"], ik["betas"])
        uv_l = self.template_uv(ik_vertices)
        uv_j = self.distribute(ik["j_refine"])
        uv_ik = torch.cat([uv_l, uv_j, uv_l - uv_j], dim=1)
        uv_maps, cam = self.uvi(uv_features, uv_dmp, uv_ik, codes)
        if self.config.uvi_residual:
            base_l = self.template_uv_out(ik_vertices)
            base_j = self.distribute_out(ik["j_refine"])
            uv_maps = uv_maps + torch.cat([base_l, base_j, base_l - base_j], dim=1)
        raw = self.sampler(uv_maps[:, 0:3])
        vertices, joints3d, joints2d = self.body(raw, cam)
        j_final, _ = self.parts_out(uv_maps[:, 3:6], None)
        root = raw[:, :1] - vertices[:, :1]  # the mesh's root joint, in the map frame
        out: dict[str, Any] = {
            "vertices": vertices,
            "joints3d": joints3d,
            "joints2d": joints2d,
            "cam": cam,
            "rotmats": rotmats,
            "betas": ik["betas"],
            "pose_joints": self.pose_head(j_final, root, cam),
        }
        if self.training:
            out.update(
                iuv=iuv,
                dense_maps=dense,
                uv_features=uv_features,
                uv_dmp=uv_dmp,
                j_initial=j_initial,
                j_visible=visible,
                j_refine=ik["j_refine"],
                pose_aa=ik["pose_aa"],
                ik_vertices=ik_vertices,
                uv_ik=uv_ik,
                uv_maps=uv_maps,
                j_final=j_final,
                vertices_raw=raw,
            )
        return out


def lsp_joints(regressor: Tensor, vertices: Tensor) -> Tensor:
    """LSP-14 joints ``(N,14,3)`` of meshes ``(N,V,3)`` with the ``(14,V)`` regressor."""
    return torch.matmul(regressor.to(vertices.dtype), vertices)


__all__ = ["STAGES", "BoBW", "BoBWConfig", "IKBody", "PoseJointsHead", "lsp_joints"]
