"""Shared by the DecoMR and BoBW parity tests: ORT-vs-torch vertex parity of a splat model,
with the crops whose splat has a near tie (a discrete texel choice) named and bounded."""

from __future__ import annotations

import numpy as np
import torch

NEAR_TIE = 2e-4
"""Texel units: a foreground pixel this close to a texel boundary (or a mask this close to the
threshold) may land in a neighbouring texel in ORT, whose UV differs from torch's by ~1e-6."""


def near_ties(iuv: torch.Tensor, warp_res: int, threshold: float) -> np.ndarray:
    """Per crop: the smallest distance of a foreground pixel's ``u S`` or ``v S`` to a texel
    boundary (texel units), or of a pixel's mask to the threshold."""
    mask = iuv[:, 0]
    frac = iuv[:, 1:] * warp_res - torch.floor(iuv[:, 1:] * warp_res)
    edge = torch.minimum(frac, 1.0 - frac).amin(dim=1)
    edge = torch.where(mask > threshold, edge, torch.ones_like(edge))
    near = torch.minimum(edge.flatten(1).amin(1), (mask - threshold).abs().flatten(1).amin(1))
    return near.numpy()


def check_splat_parity(model, iuv_net, result_path, crops, reference, batch, keys=("cam",)):
    """Every crop's vertices within 1e-4 m of torch's, except crops with a near tie (at most 2
    of 16): ORT's and torch's UV differ by ~1e-6, i.e. up to ~6e-5 texel at 64, so such a pixel
    may splat to the neighbouring texel in one of them (docs/models/bobw.md). ``iuv_net`` is the
    module whose first output is the IUV (DecoMR's ``cnet``, BoBW's ``dmp``). Returns the
    errors of the crops held to 1e-4 m."""
    from hmrt.export.parity import ort_outputs

    got = ort_outputs(result_path, crops.images, batch)
    err = np.abs(reference["vertices"] - got["vertices"]).max(axis=(1, 2))
    with torch.no_grad():
        iuv = iuv_net(torch.as_tensor(crops.images))[0]
    ties = near_ties(iuv, model.config.warp_res, model.config.mask_threshold)
    excused = (err > 1e-4) & (ties < NEAR_TIE)
    assert not ((err > 1e-4) & ~excused).any(), (crops.source, err, ties)
    assert excused.sum() <= 2, (err, ties)
    for key in keys:
        diff = np.abs(reference[key] - got[key]).max(axis=tuple(range(1, reference[key].ndim)))
        assert (diff[~excused] <= 1e-4).all(), (key, diff)
    return err[~excused]


def person_sized_mask(model, iuv_net, images: np.ndarray, fraction: float = 0.15):
    """Shift ``iuv_net``'s mask logit so the mask exceeds the threshold on ``fraction`` of the
    pixels of ``images``, as a trained CNet's does on a person crop (about 11% on synth-val): at
    random init it is on nearly everywhere, and thousands of splatted pixels make near ties
    (a pixel within float noise of a texel boundary) in most crops. Returns ``model``."""
    with torch.no_grad():
        mask = iuv_net(torch.as_tensor(images))[0][:, 0].clamp(1e-6, 1 - 1e-6)
        logits = torch.log(mask / (1 - mask))
        cut = torch.quantile(logits.flatten().double(), 1.0 - fraction).float()
        t = float(model.config.mask_threshold)
        iuv_net.dp_mask_end[1].bias -= cut - float(np.log(t / (1 - t)))
    return model
