"""Evaluation loop shared by the trainer and ``hmrt eval``: MPJPE, PA-MPJPE and PVE in mm.

Models are plugged in as *predict functions* ``images (N,3,H,W) float32 numpy -> {"joints3d",
"vertices", ...} numpy``, so a PyTorch model (:func:`torch_predictor`), an ONNX Runtime session
or a TensorRT engine are evaluated by the same code on the same batches. Several predictors are
scored in one pass over the data (synthetic images are expensive to make on CPU).

The *mean pose and shape* baseline predicts, for every image, the body given by the chordal mean
of the evaluation set's own rotations per joint and its mean betas: the best an image-blind
constant can do, so a model must be well below it to have learned anything.

Models with a pose network of their own (HEMlets: soft-argmax joints ``joints_vol`` before the
body regressor) are also scored on those joints (``pose_mpjpe``, ``pose_pa_mpjpe``): their
:class:`PoseJoints` rides on the predict function (``predict.pose_joints``), set by
:func:`torch_predictor`, which reads the joints with a forward hook (they are no eval output).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from hmrt.runtime import metrics as M

PredictFn = Callable[[np.ndarray], Mapping[str, np.ndarray]]
BASELINE = "mean pose+shape"


POSE_KEYS = ("pose_mpjpe", "pose_pa_mpjpe")
"""Metrics of a pose network's own joints (:class:`PoseJoints`)."""


@dataclass
class EvalResult:
    """Dataset means per predictor: ``{name: {"mpjpe", "pa_mpjpe", "pve", "n"}}`` (mm), plus
    ``pose_mpjpe`` / ``pose_pa_mpjpe`` for predictors with :class:`PoseJoints`."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def table(self, title: str | None = None) -> str:
        """The metrics as an aligned text table (one row per predictor; pose-network columns
        only when a predictor has them)."""
        names = list(self.metrics)
        w = max([len(n) for n in names] + [9])
        keys = ["mpjpe", "pa_mpjpe", "pve"]
        heads = ["MPJPE", "PA-MPJPE", "PVE"]
        if any(k in m for m in self.metrics.values() for k in POSE_KEYS):
            keys += list(POSE_KEYS)
            heads += ["pose", "pose-PA"]
        lines = [title] if title else []
        lines.append(
            f"{'predictor':<{w}}  {'N':>6}  " + "  ".join(f"{h:>8}" for h in heads) + "   (mm)"
        )
        for n in names:
            m = self.metrics[n]
            cells = [_cell(m.get(k)) for k in keys]
            lines.append(f"{n:<{w}}  {int(m.get('n', 0)):>6}  " + "  ".join(cells))
        return "\n".join(lines)


@dataclass(frozen=True)
class PoseJoints:
    """How to score a pose network's joints ``joints_vol (N, J, 3)`` in normalised volume
    coordinates (x, y: ``px / W - 0.5`` over the crop; z: root-relative metres / ``depth_range_m``).

    ``joint_map (J, 24)`` maps the labels' 24 body joints to the network's; the first
    ``eval_joints`` are scored (HEMlets: the 17 H36M-style joints), relative to joint ``root``.
    x, y become metres with the label's weak-perspective scale (``cam[0]``, the camera fitted to
    the labels by the data pipeline): a metric scale the network cannot see, as H36M protocols
    give it the ground-truth root depth; z uses ``depth_range_m``. ``module``: the submodule
    whose output is ``joints_vol`` (read by a forward hook in :func:`torch_predictor`).
    """

    joint_map: np.ndarray
    depth_range_m: float
    eval_joints: int
    module: str
    root: int = 0


def pose_joints_spec(model: nn.Module) -> PoseJoints | None:
    """The :class:`PoseJoints` of ``model`` (HEMlets), or None for models without a pose network."""
    config = getattr(model, "config", None)
    if getattr(config, "name", "") != "hemlets":
        return None
    from hmrt.train.models.hemlets.joints import BODY_TO_HEMLETS, NUM_EVAL_JOINTS

    return PoseJoints(BODY_TO_HEMLETS, float(config.depth_range_m), NUM_EVAL_JOINTS, "volume_reg")


def pose_joints_metric(
    joints_vol: np.ndarray,
    gt_joints: np.ndarray,
    cam: np.ndarray,
    spec: PoseJoints,
    gt_conf: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-sample (MPJPE, PA-MPJPE) in mm of ``joints_vol (N, J, 3)`` vs the mapped labels
    ``gt_joints (N, 24, 3)`` (metres), and the mask of scorable samples (label scale > 0).

    ``gt_conf (N, 24)``: per-joint 3D confidence; a mapped joint counts where all of its body
    joints are labelled.
    """
    jv = np.asarray(joints_vol, np.float64)
    scale = np.asarray(cam, np.float64).reshape(-1, 3)[:, 0]
    ok = scale > 1e-6
    xy = 2.0 * jv[..., :2]  # hmrt's normalised [-1, 1] crop coordinates
    xy = (xy - xy[:, spec.root : spec.root + 1]) / np.where(ok, scale, 1.0)[:, None, None]
    z = (jv[..., 2:] - jv[:, spec.root : spec.root + 1, 2:]) * spec.depth_range_m
    pred = np.concatenate([xy, z], axis=-1)[:, : spec.eval_joints]
    gt = np.matmul(spec.joint_map, np.asarray(gt_joints, np.float64))[:, : spec.eval_joints]
    weights = None
    if gt_conf is not None:
        support = spec.joint_map[: spec.eval_joints] != 0  # (E, 24)
        known = np.asarray(gt_conf)[:, None, :] > 0  # (N, 1, 24)
        weights = np.where(support[None], known, True).all(axis=-1).astype(np.float64)
        ok = ok & (weights[:, spec.root] > 0) & (weights.sum(axis=1) > 0)
    mp = M.mpjpe(pred, gt, root=spec.root, weights=weights)
    pa = M.pa_mpjpe(pred - pred[:, spec.root : spec.root + 1], gt, weights=weights)
    return np.asarray(mp), np.asarray(pa), ok


def _cell(v: float | None) -> str:
    return f"{'-':>8}" if v is None or not np.isfinite(v) else f"{v:>8.1f}"


def torch_predictor(
    model: nn.Module, device: str | torch.device = "cpu", amp_dtype: torch.dtype | None = None
) -> PredictFn:
    """Wrap a model in eval mode as a numpy predict function (autocast on CUDA if asked).

    For a model with a pose network (:func:`pose_joints_spec`) the function also returns its
    ``joints_vol`` (read by a forward hook) and carries the spec as ``predict.pose_joints``.
    """
    device = torch.device(device)
    spec = pose_joints_spec(model)

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        was_training = model.training
        model.eval()
        seen: dict[str, torch.Tensor] = {}
        hook = None
        if spec is not None:
            module = model.get_submodule(spec.module)
            hook = module.register_forward_hook(lambda m, i, o: seen.__setitem__("joints_vol", o))
        try:
            x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)
            with (
                torch.no_grad(),
                torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None),
            ):
                out = dict(model(x))
        finally:
            model.train(was_training)
            if hook is not None:
                hook.remove()
        out.update(seen)
        return {
            k: v.detach().float().cpu().numpy()
            for k, v in out.items()
            if torch.is_tensor(v) and v.dtype.is_floating_point
        }

    predict.pose_joints = spec  # type: ignore[attr-defined]
    return predict


def fit_predictor(
    model: nn.Module, predict: PredictFn, device: str | torch.device = "cpu"
) -> tuple[str, PredictFn, PredictFn] | None:
    """A second row for models whose ``rotmats``/``betas`` are an intermediate parametric fit
    rather than the mesh's own parameters (BoBW: GIK-Net's, which the UV inpainting refines).

    Returns ``(label, fit, shared)`` or ``None``: ``fit`` scores the body layer
    ``model.fit_body_layer`` on those parameters, and ``shared`` replaces ``predict`` for the
    model's own row, so both rows come from one forward per batch (the last result is reused)."""
    layer = getattr(model, "fit_body_layer", None)
    if layer is None:
        return None
    label = str(getattr(model, "fit_label", "parametric fit"))
    device = torch.device(device)
    last: dict[str, object] = {}

    def shared(images: np.ndarray) -> Mapping[str, np.ndarray]:
        if last.get("images") is not images:
            last["images"], last["out"] = images, predict(images)
        return last["out"]  # type: ignore[return-value]

    def fit(images: np.ndarray) -> dict[str, np.ndarray]:
        out = shared(images)
        rot = torch.from_numpy(np.asarray(out["rotmats"], dtype=np.float32)).to(device)
        betas = torch.from_numpy(np.asarray(out["betas"], dtype=np.float32)).to(device)
        with torch.no_grad():
            vertices, joints = layer(rot, betas, root_relative=True)
        return {"joints3d": joints.cpu().numpy(), "vertices": vertices.cpu().numpy()}

    shared.pose_joints = getattr(predict, "pose_joints", None)  # type: ignore[attr-defined]
    return label, fit, shared


def gt_body_layer(model: nn.Module) -> nn.Module | None:
    """The body layer that turns labelled ``rotmats``/``betas`` into meshes for ``model``'s scores.

    Parametric models carry it (``model.body.layer``, or ``model.body`` itself for toys);
    non-parametric ones (DecoMR: ``model.body`` is a joint-regressor head without LBS) name
    their body file (``model.body_path``), from which one is built on the model's device.
    """
    head = getattr(model, "body", None)
    layer = getattr(head, "layer", None)
    if layer is not None:
        return layer
    path = getattr(model, "body_path", None)
    if path is not None:
        from hmrt.train.body import BodyLayer

        device = next(iter(model.parameters()), torch.empty(0)).device
        return BodyLayer(path).to(device)
    return head


def chordal_mean_rotations(rotmats: np.ndarray) -> np.ndarray:
    """Per-joint rotation closest (Frobenius) to the arithmetic mean of ``(N, J, 3, 3)``."""
    mean = np.asarray(rotmats, dtype=np.float64).mean(axis=0)
    u, _, vt = np.linalg.svd(mean)
    d = np.sign(np.linalg.det(u @ vt))
    fix = np.ones((*mean.shape[:-2], 3))
    fix[..., 2] = np.where(d == 0, 1.0, d)
    return u @ (fix[..., :, None] * vt)


def _body_forward(body: nn.Module, rotmats: torch.Tensor, betas: torch.Tensor):
    """Root-relative ``(vertices, joints)`` on the CPU, computed on the body's own device."""
    dev = next(iter(body.buffers()), torch.empty(0)).device
    out = body(rotmats.float().to(dev), betas.float().to(dev))
    v, j = (out["vertices"], out["joints"]) if isinstance(out, dict) else out[:2]
    root = j[:, :1]
    return (v - root).cpu(), (j - root).cpu()


def _gt_vertices(batch: Mapping, body: nn.Module | None) -> np.ndarray | None:
    if "vertices" in batch:
        return batch["vertices"].float().numpy()
    if body is None or "rotmats" not in batch or "betas" not in batch:
        return None
    with torch.no_grad():
        v, _ = _body_forward(body, batch["rotmats"], batch["betas"])
    return v.numpy()


def _mask(batch: Mapping, key: str, n: int) -> np.ndarray:
    m = batch.get(key)
    return np.ones(n, dtype=bool) if m is None else m.numpy().reshape(n) > 0


class _Accumulator:
    """Running sums of per-sample errors (NaN-free) for one predictor."""

    def __init__(self) -> None:
        self.sums = {k: 0.0 for k in ("mpjpe", "pa_mpjpe", "pve", *POSE_KEYS)}
        self.counts = {k: 0 for k in self.sums}

    def add(self, key: str, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        values = values[np.isfinite(values)]
        self.sums[key] += float(values.sum())
        self.counts[key] += int(values.size)

    def result(self) -> dict[str, float]:
        out = {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}
        out["n"] = float(max(self.counts[k] for k in ("mpjpe", "pa_mpjpe", "pve")))
        return out


def _score(acc: _Accumulator, pj, gj, pv, gv, has3d, hassmpl) -> None:
    if has3d.any():
        acc.add("mpjpe", M.mpjpe(pj[has3d], gj[has3d]))
        acc.add("pa_mpjpe", M.pa_mpjpe(pj[has3d] - pj[has3d][:, :1], gj[has3d]))
    if pv is not None and gv is not None and hassmpl.any():
        acc.add("pve", M.pve(pv[hassmpl], gv[hassmpl], pj[hassmpl][:, 0], None))


def _score_pose(acc: _Accumulator, out, batch: Mapping, gj, has3d, spec: PoseJoints) -> None:
    jv, cam = out.get("joints_vol"), batch.get("cam")
    if jv is None or cam is None or not has3d.any():
        return
    conf = batch.get("joints3d_vis")
    conf = None if conf is None else conf.float().numpy()
    mp, pa, ok = pose_joints_metric(jv, gj, cam.float().numpy(), spec, conf)
    ok = ok & has3d
    acc.add("pose_mpjpe", mp[ok])
    acc.add("pose_pa_mpjpe", pa[ok])


def evaluate(
    predictors: Mapping[str, PredictFn],
    dataset: torch.utils.data.Dataset,
    body: nn.Module | None = None,
    batch_size: int = 32,
    workers: int = 0,
    max_samples: int = 0,
    baseline: bool = True,
    progress: bool = True,
) -> EvalResult:
    """Score every predictor on ``dataset`` (first ``max_samples`` items if > 0).

    Dataset items are dicts with ``image`` (3,H,W), ``joints3d`` (24,3) and, for PVE and the
    baseline, ``rotmats`` (24,3,3) + ``betas`` (10,) (``body`` turns them into vertices) or
    ``vertices``; optional ``has_3d`` / ``has_smpl`` flags exclude unlabelled samples. A
    predictor carrying ``.pose_joints`` (:class:`PoseJoints`) and returning ``joints_vol`` is
    also scored on those joints (needs the items' ``cam``).
    """
    from torch.utils.data import DataLoader, Subset
    from tqdm import tqdm

    if max_samples and max_samples < len(dataset):
        dataset = Subset(dataset, range(max_samples))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    accs = {name: _Accumulator() for name in predictors}
    gt_rot, gt_betas, gt_j, has3d_all = [], [], [], []
    for batch in tqdm(loader, desc="eval", leave=False, disable=not progress, unit="batch"):
        images = batch["image"].float().numpy()
        n = images.shape[0]
        gj = batch["joints3d"].float().numpy()
        gj = gj - gj[:, :1]
        gv = _gt_vertices(batch, body)
        has3d, hassmpl = _mask(batch, "has_3d", n), _mask(batch, "has_smpl", n)
        for name, fn in predictors.items():
            out = fn(images)
            pj = np.asarray(out["joints3d"], dtype=np.float64)
            pv = out.get("vertices")
            _score(accs[name], pj, gj, pv, gv, has3d, hassmpl)
            spec = getattr(fn, "pose_joints", None)
            if spec is not None:
                _score_pose(accs[name], out, batch, gj, has3d, spec)
        if baseline and "rotmats" in batch and "betas" in batch:
            gt_rot.append(batch["rotmats"].numpy()[hassmpl])
            gt_betas.append(batch["betas"].numpy()[hassmpl])
        gt_j.append(gj)
        has3d_all.append(has3d)
    result = EvalResult({name: acc.result() for name, acc in accs.items()})
    if baseline and body is not None and gt_rot and sum(len(r) for r in gt_rot):
        result.metrics[BASELINE] = _baseline(
            body,
            np.concatenate(gt_rot),
            np.concatenate(gt_betas),
            np.concatenate(gt_j),
            np.concatenate(has3d_all),
            batch_size,
        )
    return result


def _baseline(
    body: nn.Module,
    rot: np.ndarray,
    betas: np.ndarray,
    gt_j: np.ndarray,
    has3d: np.ndarray,
    chunk: int,
) -> dict[str, float]:
    """Metrics of always predicting the mean pose and shape of the labelled samples."""
    mean_rot = torch.from_numpy(chordal_mean_rotations(rot)).float()[None]
    mean_betas = torch.from_numpy(betas.mean(axis=0)).float()[None]
    with torch.no_grad():
        mv, mj = _body_forward(body, mean_rot, mean_betas)
    mv, mj = mv.numpy().astype(np.float64), mj.numpy().astype(np.float64)
    acc = _Accumulator()
    gj = gt_j[has3d]
    acc.add("mpjpe", M.mpjpe(np.broadcast_to(mj, gj.shape), gj))
    acc.add("pa_mpjpe", M.pa_mpjpe(np.broadcast_to(mj, gj.shape), gj))
    for i in range(0, len(rot), chunk):
        with torch.no_grad():
            gv, _ = _body_forward(
                body, torch.from_numpy(rot[i : i + chunk]), torch.from_numpy(betas[i : i + chunk])
            )
        gv = gv.numpy()
        acc.add("pve", M.pve(np.broadcast_to(mv, gv.shape), gv))
    return acc.result()
