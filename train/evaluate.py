"""Evaluation loop shared by the trainer and ``hmrt eval``: MPJPE, PA-MPJPE and PVE in mm.

Models are plugged in as *predict functions* ``images (N,3,H,W) float32 numpy -> {"joints3d",
"vertices", ...} numpy``, so a PyTorch model (:func:`torch_predictor`), an ONNX Runtime session
or a TensorRT engine are evaluated by the same code on the same batches. Several predictors are
scored in one pass over the data (synthetic images are expensive to make on CPU).

The *mean pose and shape* baseline predicts, for every image, the body given by the chordal mean
of the evaluation set's own rotations per joint and its mean betas: the best an image-blind
constant can do, so a model must be well below it to have learned anything.
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


@dataclass
class EvalResult:
    """Dataset means per predictor: ``{name: {"mpjpe", "pa_mpjpe", "pve", "n"}}`` (mm)."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def table(self, title: str | None = None) -> str:
        """The metrics as an aligned text table (one row per predictor)."""
        names = list(self.metrics)
        w = max([len(n) for n in names] + [9])
        lines = [title] if title else []
        lines.append(
            f"{'predictor':<{w}}  {'N':>6}  {'MPJPE':>8}  {'PA-MPJPE':>8}  {'PVE':>8}   (mm)"
        )
        for n in names:
            m = self.metrics[n]
            cells = [_cell(m.get(k)) for k in ("mpjpe", "pa_mpjpe", "pve")]
            lines.append(f"{n:<{w}}  {int(m.get('n', 0)):>6}  " + "  ".join(cells))
        return "\n".join(lines)


def _cell(v: float | None) -> str:
    return f"{'-':>8}" if v is None or not np.isfinite(v) else f"{v:>8.1f}"


def torch_predictor(
    model: nn.Module, device: str | torch.device = "cpu", amp_dtype: torch.dtype | None = None
) -> PredictFn:
    """Wrap a model in eval mode as a numpy predict function (autocast on CUDA if asked)."""
    device = torch.device(device)

    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        was_training = model.training
        model.eval()
        try:
            x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).to(device)
            with (
                torch.no_grad(),
                torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None),
            ):
                out = model(x)
        finally:
            model.train(was_training)
        return {
            k: v.detach().float().cpu().numpy()
            for k, v in out.items()
            if torch.is_tensor(v) and v.dtype.is_floating_point
        }

    return predict


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
        self.sums = {"mpjpe": 0.0, "pa_mpjpe": 0.0, "pve": 0.0}
        self.counts = {"mpjpe": 0, "pa_mpjpe": 0, "pve": 0}

    def add(self, key: str, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        values = values[np.isfinite(values)]
        self.sums[key] += float(values.sum())
        self.counts[key] += int(values.size)

    def result(self) -> dict[str, float]:
        out = {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}
        out["n"] = float(max(self.counts.values()))
        return out


def _score(acc: _Accumulator, pj, gj, pv, gv, has3d, hassmpl) -> None:
    if has3d.any():
        acc.add("mpjpe", M.mpjpe(pj[has3d], gj[has3d]))
        acc.add("pa_mpjpe", M.pa_mpjpe(pj[has3d] - pj[has3d][:, :1], gj[has3d]))
    if pv is not None and gv is not None and hassmpl.any():
        acc.add("pve", M.pve(pv[hassmpl], gv[hassmpl], pj[hassmpl][:, 0], None))


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
    ``vertices``; optional ``has_3d`` / ``has_smpl`` flags exclude unlabelled samples.
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
