"""How much BoBW's UVI uses the DMP and IK maps: synth-val scores with those inputs cut.

Loads a BoBW checkpoint and scores it three ways on the same crops: as trained, with the UVI's
first-conv weights on the 18 DMP + IK map channels set to zero (the UVI then sees only what
DecoMR's LNet sees: the transferred feature, the global feature and the T-pose map), and with
only the IK maps (9 channels) cut. A small difference means the refinement owes little to
BoBW's parametric branch. Usage:

    python tools/bobw_input_ablation.py --checkpoint assets/weights/bobw_edge.pt --samples 512
"""

from __future__ import annotations

import argparse
import copy
import sys


def main(argv: list[str] | None = None) -> int:
    """Print one synth-val table with the three rows."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a BoBW checkpoint (hmrt train output)")
    p.add_argument("--samples", type=int, default=512, help="first N synth-val scenes")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = p.parse_args(argv)

    import torch

    from hmrt.runtime.errors import InputError
    from hmrt.train.checkpoint import load_checkpoint
    from hmrt.train.evaluate import evaluate, gt_body_layer, torch_predictor
    from hmrt.train.sources import eval_dataset

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        model = load_checkpoint(args.checkpoint)
        if getattr(model.config, "name", "") != "bobw":
            raise InputError(f"{args.checkpoint}: not a BoBW checkpoint")
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from hmrt.train.models.bobw.uvi import UV_MAPS

    dmp = model.config.warp_channels + 3  # after [F, x, y, occupancy]: UV_dmp, then UV_ik
    ik, end = dmp + UV_MAPS, dmp + 2 * UV_MAPS
    cuts = {"no DMP + IK maps": slice(dmp, end), "no IK maps": slice(ik, end)}
    predictors = {"as trained": torch_predictor(model)}
    for label, cols in cuts.items():
        cut = copy.deepcopy(model)
        with torch.no_grad():
            cut.uvi.uv_conv1[0].weight[:, cols] = 0.0
        predictors[label] = torch_predictor(cut)
    data = eval_dataset("synth-val", model, args.samples, None)
    result = evaluate(predictors, data, body=gt_body_layer(model), max_samples=args.samples)
    print(result.table(f"{args.checkpoint} on synth-val, UVI inputs cut"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
