"""2D soft-argmax as Softmax + MatMul with a constant coordinate table (an FP32 island)."""

from __future__ import annotations

import torch
from torch import Tensor

from hmrt.train.models.layers.precision import Fp32Module


class SoftArgmax2d(Fp32Module):
    """Expected (x, y) of ``softmax(temperature * heatmap)`` in ``[-1, 1)`` coordinates.

    Follows DaNet's official ``softmax_integral_tensor``: pixel index ``i`` (0-based, x = width
    index) maps to ``i / (size / 2) - 1``, so the range is ``[-1, 1 - 2/size]`` (not the
    ``align_corners`` convention); the temperature multiplies the logits (10 in DaNet).
    Written as one Softmax over the flattened map and one MatMul with a constant ``(H*W, 2)``
    table so the exported graph is two nodes and has no data-dependent shapes.
    """

    def __init__(self, num_maps: int, height: int, width: int, temperature: float = 10.0):
        super().__init__()
        self.num_maps = int(num_maps)
        self.height = int(height)
        self.width = int(width)
        self.temperature = float(temperature)
        xs = torch.arange(self.width, dtype=torch.float64) / (0.5 * self.width) - 1.0
        ys = torch.arange(self.height, dtype=torch.float64) / (0.5 * self.height) - 1.0
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        coords = torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=-1).float()
        self.register_buffer("coords", coords, persistent=False)  # (H*W, 2)

    def forward(self, heatmaps: Tensor) -> Tensor:
        """``heatmaps (N, K, H, W)`` logits -> ``(N, K, 2)`` normalised (x, y)."""
        flat = heatmaps.reshape(-1, self.num_maps, self.height * self.width)
        prob = torch.softmax(self.temperature * flat, dim=-1)
        return torch.matmul(prob, self.coords)


_FORMS = ("matmul", "separable")


def _grid(size: int) -> Tensor:
    """Bin centres ``i / (size - 1)`` on ``[0, 1]`` (float64), the official ``dis_map`` values."""
    if size < 2:
        raise ValueError(f"soft-argmax axis needs at least 2 bins, got {size}")
    return torch.arange(size, dtype=torch.float64) / (size - 1)


class SoftArgmax3d(Fp32Module):
    """HEMlets volumetric soft-argmax: expected (x, y, z) of a joint softmax over each D*H*W volume.

    Equal to the official ``CoordinateRegress`` (softmax over all voxels of a joint, marginals,
    expectation with grid ``i/(size-1)``, minus 0.5; gradients too) but never builds the
    normalised volume: ``m = amax(L)``, ``E = exp(L - m)``, un-normalised moments by reductions,
    one division by the partition sum after them. An FP32 island: a 262,144-term sum overflows
    FP16. Constant reshapes (batch ``-1``): no Shape/Gather chains, no 5-D tensor. Any D, H, W.

    Two forms, same function. ``"separable"`` (default): ``E`` as ``(N, J, D*H, W)``, one
    ReduceSum over W (row sums; small reductions of those give the y and z marginals and the
    partition sum) and one over D*H (the x marginal). ``"matmul"``: one MatMul of
    ``E (N, J, D*H*W)`` with a folded constant ``G = [gx, gy, gz, 1]`` (4 MiB at 64^3).
    Separable is the default: in ONNX Runtime CPU (1 thread, (1, 18*64, 64, 64), medians) it
    took 4.4-4.7 ms against 5.5-6.0 ms for MatMul (whose 4-column product re-reads all of E),
    it is more accurate in torch (3e-7 against up to 3e-4 from torch's K=262,144 GEMV), and it
    carries no 4 MiB constant.
    """

    def __init__(
        self,
        num_joints: int = 18,
        depth: int = 64,
        height: int = 64,
        width: int = 64,
        form: str = "separable",
    ):
        super().__init__()
        if form not in _FORMS:
            raise ValueError(f"form must be one of {_FORMS}, got {form!r}")
        self.num_joints = int(num_joints)
        self.depth = int(depth)
        self.height = int(height)
        self.width = int(width)
        self.form = form
        gz, gy, gx = _grid(self.depth), _grid(self.height), _grid(self.width)
        # Official key volume_reg.dis_map (1, J, D): kept so strict official checkpoints load.
        self.register_buffer("dis_map", gz.float().expand(1, self.num_joints, -1).clone())
        self.register_buffer("grid_x", gx.float(), persistent=False)
        self.register_buffer("grid_y", gy.float(), persistent=False)
        self.register_buffer("grid_z", gz.float(), persistent=False)
        self.register_buffer("coord_matrix", self._coord_matrix(gx, gy, gz), persistent=False)

    def _coord_matrix(self, gx: Tensor, gy: Tensor, gz: Tensor) -> Tensor:
        """``G (D*H*W, 4)`` with rows ``[x, y, z, 1]`` in (d, h, w) order (matmul form only)."""
        if self.form != "matmul":
            return torch.empty(0)
        zz, yy, xx = torch.meshgrid(gz, gy, gx, indexing="ij")
        ones = torch.ones_like(xx)
        return torch.stack([xx, yy, zz, ones], dim=-1).reshape(-1, 4).float()

    def forward(self, logits: Tensor) -> Tensor:
        """logits (N, J*D, H, W) (channel = joint*D + depth) -> (N, J, 3) normalised (x, y, z) in
        [-0.5, 0.5]: x from W, y from H, z from the depth sub-index; grid i/(size-1), minus 0.5,
        exactly the official CoordinateRegress."""
        joints, depth, height, width = self.num_joints, self.depth, self.height, self.width
        if self.form == "matmul":
            flat = logits.reshape(-1, joints, depth * height * width)
            # The max only shifts the exponent; detaching it keeps autograd off a no-op path.
            shifted = torch.exp(flat - flat.amax(dim=-1, keepdim=True).detach())
            g = self.coord_matrix.to(shifted.dtype)  # no-op in float32 (float64 reference runs)
            moments = torch.matmul(shifted, g)  # (N, J, 4): sum E*x, E*y, E*z, E
            return moments[..., :3] / moments[..., 3:] - 0.5
        vol = logits.reshape(-1, joints, depth * height, width)
        shifted = torch.exp(vol - vol.amax(dim=(2, 3), keepdim=True).detach())
        marg_x = shifted.sum(dim=2)  # (N, J, W)
        rows = shifted.sum(dim=3).reshape(-1, joints, depth, height)  # (N, J, D, H)
        marg_y = rows.sum(dim=2)  # (N, J, H)
        marg_z = rows.sum(dim=3)  # (N, J, D)
        total = marg_z.sum(dim=-1, keepdim=True)  # partition sum, (N, J, 1)
        # keepdim + cat, not sum + stack: onnxslim fuses ReduceSum + Unsqueeze into a new node
        # that loses the FP32-island tag, which would put these sums (up to D*H*W) in FP16.
        moments = torch.cat(
            [
                (marg_x * self.grid_x).sum(dim=-1, keepdim=True),
                (marg_y * self.grid_y).sum(dim=-1, keepdim=True),
                (marg_z * self.grid_z).sum(dim=-1, keepdim=True),
            ],
            dim=-1,
        )
        return moments / total - 0.5


def soft_argmax3d_reference(
    logits: Tensor, num_joints: int = 18, depth: int = 64, height: int = 64, width: int = 64
) -> Tensor:
    """The official ``CoordinateRegress`` written out literally (for tests): softmax over each
    joint's flattened volume, the three marginals, expectation with ``i/(size-1)``, minus 0.5.

    Runs in the dtype of ``logits`` (pass float16 to reproduce the FP16 hazard)."""
    batch = logits.shape[0]
    volume = logits.reshape(batch, num_joints, -1)
    volume = torch.softmax(volume, dim=2).reshape(batch, num_joints, depth, height, width)
    acc_x = volume.sum(dim=2).sum(dim=2)  # sum over d, then h -> (N, J, W)
    acc_y = volume.sum(dim=2).sum(dim=3)  # sum over d, then w -> (N, J, H)
    acc_z = volume.sum(dim=3).sum(dim=3)  # sum over h, then w -> (N, J, D)
    grids = [_grid(n).to(logits.dtype).repeat(batch, num_joints, 1) for n in (width, height, depth)]
    coords = [(g * a).sum(dim=2) for g, a in zip(grids, (acc_x, acc_y, acc_z), strict=True)]
    return torch.stack(coords, dim=-1) - 0.5
