"""``hmrt model``: list the model zoo and show a model's size, cost and FP32 islands.

``hmrt model list`` prints every registered model and its variants; ``hmrt model info NAME
--variant V`` builds the model (random weights) and prints its parameters (total and used at
inference), GFLOPs at its input size (conv/matmul only, FLOP = 2 MAC), input size and
normalisation, and the submodules kept in FP32 on export. torch is imported inside :func:`run`.
"""

from __future__ import annotations

import argparse
import ast
import json
from typing import Any

from hmrt.runtime.errors import InputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``list`` and ``info`` on the ``hmrt model`` parser."""
    sub = parser.add_subparsers(dest="model_command", metavar="{list,info}")
    sub.add_parser("list", help="registered models and their variants")
    info = sub.add_parser("info", help="parameters, GFLOPs, input size and FP32 islands")
    info.add_argument("name", help="model name, e.g. danet")
    info.add_argument("--variant", default="paper", help="variant preset (default: paper)")
    info.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (Python literal value), e.g. --set roi_size=28",
    )
    info.add_argument("--body", default=None, help="body model npz (default: the bundled one)")
    info.add_argument("--json", action="store_true", help="print one JSON object instead")


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> ``{k: literal(v)}``; values that are not literals stay strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise InputError(f"--set {item!r}: expected KEY=VALUE, e.g. --set roi_size=28")
        try:
            out[key.strip()] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            out[key.strip()] = text
    return out


def model_info(name: str, variant: str = "paper", body: Any = None, **overrides: Any) -> dict:
    """Build ``name``/``variant`` and return its size, cost and precision declarations."""
    import torch

    from hmrt.train.models import build
    from hmrt.train.models.flops import count_flops

    torch.manual_seed(0)
    model = build(name, variant, body=body, **overrides).eval()
    flops = count_flops(model)
    counts = model.parameter_counts()
    return {
        "name": name,
        "variant": variant,
        "input_size": list(model.input_size),
        "mean": list(model.mean),
        "std": list(model.std),
        "params_total": counts["total"],
        "params_inference": counts["inference"],
        "gflops": flops.total / 1e9,
        "gflops_per_module": {k: v / 1e9 for k, v in flops.per_module.items()},
        "fp32_modules": model.fp32_modules(),
        "train_only_modules": model.train_only_modules(),
        "body_hash": getattr(model, "body_hash", None),
        "config": model.config.to_dict(),
    }


def _print_info(info: dict) -> None:
    h, w = info["input_size"]
    rows = [
        ("model", f"{info['name']} ({info['variant']})"),
        ("input", f"{h}x{w} RGB, mean {info['mean']}, std {info['std']}"),
        (
            "parameters",
            f"{info['params_total']:,} total, {info['params_inference']:,} used at inference",
        ),
        ("GFLOPs", f"{info['gflops']:.2f} per image (conv/matmul only, FLOP = 2 MAC)"),
    ]
    rows += [(f"  {k}", f"{v:.2f}") for k, v in info["gflops_per_module"].items()]
    rows.append(("FP32 islands", ""))
    rows += [(f"  {k}", v) for k, v in info["fp32_modules"].items()]
    rows.append(("train-only", ", ".join(info["train_only_modules"]) or "-"))
    rows.append(("body hash", info["body_hash"] or "-"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}".rstrip())


def run(args: argparse.Namespace) -> int:
    """Entry point of ``hmrt model``."""
    from hmrt.train.models import get_entry, list_models

    if args.model_command == "list":
        for name in list_models():
            entry = get_entry(name)
            print(f"{name:<10} variants: {', '.join(entry.variants):<14} {entry.summary}")
        return 0
    if args.model_command == "info":
        info = model_info(args.name, args.variant, args.body, **parse_overrides(args.overrides))
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            _print_info(info)
        return 0
    raise InputError("hmrt model: choose a command: list, or info NAME [--variant V]")
