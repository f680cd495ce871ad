"""Checkpoints: weights + the full model and training configuration (+ optimiser state to resume).

A checkpoint is a ``torch.save`` dict that needs nothing else to rebuild its model:
``model`` (registry name, variant, the model's own config), ``body_hash`` (which body model the
weights were trained with), ``train_config``, ``state_dict``; training checkpoints add
``optimizer``, ``scheduler``, ``scaler``, ``rng`` and ``position`` (step, epoch, batch) for an
exact ``--resume``. :func:`load_checkpoint` returns a ready model; :func:`slim_checkpoint` writes
the deployable form (weights + config only, optionally fp16) used for ``assets/weights/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hmrt.runtime.atomic import atomic_path
from hmrt.runtime.errors import InputError

FORMAT = "hmrt-checkpoint"
VERSION = 1


def model_spec(model: nn.Module) -> dict[str, Any]:
    """``{name, variant, config}`` of a registry model, from its serialisable ``model.config``."""
    cfg = getattr(model, "config", None)
    if hasattr(cfg, "to_dict"):
        cfg = cfg.to_dict()
    elif dataclasses.is_dataclass(cfg):
        cfg = dataclasses.asdict(cfg)
    cfg = dict(cfg or {})
    name = getattr(model, "name", None) or cfg.get("name")
    variant = getattr(model, "variant", None) or cfg.get("variant")
    return {"name": name, "variant": variant, "config": cfg}


def body_hash_of(model: nn.Module) -> str | None:
    """The body-model hash a model was built with (the first submodule carrying ``body_hash``)."""
    for m in model.modules():
        h = getattr(m, "body_hash", None)
        if h is not None:
            return str(h)
    return None


def rng_state() -> dict[str, Any]:
    """Every RNG the training loop draws from (torch CPU/CUDA, numpy global, python)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s output."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_payload(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The dict :func:`save_checkpoint` writes (also built by ``hmrt import-checkpoint``)."""
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_spec(model),
        "body_hash": body_hash_of(model),
        "state_dict": model.state_dict(),
        **extra,
    }
    from hmrt import __version__

    payload.setdefault("hmrt_version", __version__)
    return payload


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> Path:
    """Write weights + model spec + ``extra`` (train_config, optimizer, ...) atomically."""
    payload = checkpoint_payload(model, **extra)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict, checking that it is an hmrt checkpoint."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder, not a checkpoint; pass the .pt file inside it")
    if not p.is_file():
        raise InputError(f"checkpoint not found: {p}; check the path")
    try:
        # weights_only: a checkpoint is plain containers and tensors, so loading one never runs
        # code from the file (the numpy RNG state is stored as a tensor for that reason).
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as exc:
        # torch's own text is several lines and advises weights_only=False, which would run
        # the file's code: never pass that on. One line: what is wrong, and the fix.
        raise InputError(f"{p}: cannot load this checkpoint: {_load_failure(exc)}; {FIX}") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(f"{p}: not an hmrt checkpoint; {FIX}")
    return ckpt


FIX = (
    "pass a checkpoint written by `hmrt train` (an official release: convert it with "
    "`hmrt import-checkpoint`)"
)


def _load_failure(exc: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words of hmrt's own."""
    text = str(exc)
    if "Weights only load failed" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found or "Unsupported global" in text:
            name = f" ({found.group(1)})" if found else ""
            return (
                f"it holds Python objects{name} besides tensors and plain containers, and "
                "hmrt never unpickles those because loading them can run code from the file"
            )
        return "it is not a PyTorch checkpoint (not a torch.save file, or a corrupt one)"
    if isinstance(exc, EOFError):
        return "the file is empty or cut short"
    if "zip archive" in text or "central directory" in text:
        return "the file is truncated or corrupt (an incomplete download or copy?)"
    if isinstance(exc, OSError):
        return f"the file cannot be read ({exc.strerror or type(exc).__name__})"
    return f"it is not a PyTorch checkpoint ({type(exc).__name__})"


def build_from_checkpoint(ckpt: dict[str, Any], body: Any = None) -> nn.Module:
    """Rebuild the registry model described by a checkpoint dict (weights not loaded).

    ``body`` as for :func:`hmrt.train.models.build`; None: the body file the run was trained
    with if it still exists, else the bundled model.
    """
    if body is None:
        trained_with = (ckpt.get("train_config") or {}).get("body") or ""
        if trained_with and Path(trained_with).is_file():
            body = trained_with
    from hmrt.train.models.registry import build_from_config

    return build_from_config(dict(ckpt["model"]["config"]), body=body)


def load_checkpoint(
    path: str | Path,
    device: str | torch.device = "cpu",
    body: Any = None,
    eval_mode: bool = True,
) -> nn.Module:
    """Rebuild a model from a checkpoint and load its weights (fp16 files come back as fp32).

    Raises :class:`InputError` if the checkpoint was trained with a different body model than
    the one the rebuilt model uses (its ``body_hash``), since the weights would then be wrong.
    """
    ckpt = read_checkpoint(path)
    model = build_from_checkpoint(ckpt, body)
    _load_state(
        model, ckpt, path, "the loaded body model is", "pass the matching body file or retrain"
    )
    model.to(device)
    return model.eval() if eval_mode else model


def load_weights_into(model: nn.Module, path: str | Path) -> None:
    """Copy a checkpoint's weights into ``model`` (``--init``: start a new training stage).

    The architecture must match exactly (same config): a mismatch raises :class:`InputError`
    naming the checkpoint, instead of silently loading half the weights.
    """
    ckpt = read_checkpoint(path)
    have = model_spec(model)["config"]
    want = dict((ckpt.get("model") or {}).get("config") or {})
    diff = sorted(k for k in set(have) | set(want) if _plain(have.get(k)) != _plain(want.get(k)))
    if diff:
        raise InputError(
            f"{path}: built for a different model config (differs in {', '.join(diff)}); "
            "pass the same --model/--variant/overrides as the checkpoint's run"
        )
    _load_state(model, ckpt, path, "this run uses", "pass the matching --body")


def split_module_source(spec: str) -> tuple[str, str]:
    """``CKPT`` or ``CKPT:SRC_PREFIX`` -> ``(path, src_prefix)`` (``""``: the same prefix).

    A spec that names an existing file is a path even if it holds a colon."""
    if Path(spec).is_file() or ":" not in spec:
        return spec, ""
    path, _, src = spec.rpartition(":")
    return path, src


def load_module_weights_into(model: nn.Module, prefix: str, path: str | Path) -> int:
    """Copy only the weights under ``prefix.`` from a checkpoint (``--init-module``).

    ``path`` is ``CKPT`` (a checkpoint of the same model config: e.g. BoBW's IK nets from an
    IK-stage run over a DMP-stage run's weights) or ``CKPT:SRC_PREFIX`` (the tensors under
    ``SRC_PREFIX.`` of any model's checkpoint, renamed to ``prefix.``: e.g. HKMR's encoder from
    DaNet-edge's trained MobileNetV2, ``backbone=danet_edge.pt:img2iuv.iuv_est.body``; every
    name and shape must match). Returns the number of tensors copied; a prefix the model or the
    checkpoint lacks, or a shape that differs, raises :class:`InputError`."""
    path, src_prefix = split_module_source(str(path))
    ckpt = read_checkpoint(path)
    if not src_prefix:
        have = model_spec(model)["config"]
        want = dict((ckpt.get("model") or {}).get("config") or {})
        diff = sorted(
            k for k in set(have) | set(want) if _plain(have.get(k)) != _plain(want.get(k))
        )
        if diff:
            raise InputError(
                f"{path}: built for a different model config (differs in {', '.join(diff)}); "
                "--init-module needs a checkpoint of the same model, or PREFIX=CKPT:SRC_PREFIX"
            )
    want_hash, have_hash = ckpt.get("body_hash"), body_hash_of(model)
    if want_hash and have_hash and want_hash != have_hash:
        raise InputError(f"{path}: trained with body model {want_hash[:12]}, not this run's")
    head = prefix.rstrip(".") + "."
    src_head = (src_prefix or prefix).rstrip(".") + "."
    own = model.state_dict()
    picked = {
        head + k[len(src_head) :]: v
        for k, v in ckpt["state_dict"].items()
        if k.startswith(src_head)
    }
    if not picked or not any(k.startswith(head) for k in own):
        raise InputError(
            f"{path}: no weights under '{src_prefix or prefix}' (in the checkpoint) or "
            f"'{prefix}' (in the model)"
        )
    adapt = getattr(model, "adapt_module_init", None)
    if src_prefix and adapt is not None:  # e.g. BoBW's UVI from DecoMR's LNet (channel surgery)
        picked = adapt(prefix.rstrip("."), src_prefix.rstrip("."), picked, own, path)
    missing = sorted(k for k in own if k.startswith(head) and k not in picked)
    if missing:
        src = src_head + missing[0][len(head) :]
        raise InputError(f"{path}: lacks {len(missing)} tensors under '{src_head[:-1]}' ({src})")
    if src_prefix:
        extra = sorted(k for k in picked if k not in own)
        if extra:
            raise InputError(
                f"{path}: {len(extra)} tensors under '{src_prefix}' have no place under "
                f"'{prefix}' ({src_head + extra[0][len(head) :]}): a different architecture"
            )
    bad = [k for k, v in picked.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        k = bad[0]
        raise InputError(
            f"{path}: {src_head + k[len(head) :]} is {tuple(picked[k].shape)}, the model's {k} "
            f"is {tuple(own[k].shape)} (a different width?)"
        )
    own.update(
        {
            k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
            for k, v in picked.items()
        }
    )
    model.load_state_dict(own)
    return len(picked)


def _load_state(model: nn.Module, ckpt: dict[str, Any], path: str | Path, who: str, fix: str):
    """Load ``ckpt``'s weights as fp32 and refuse a body model other than the one trained with."""
    state = {
        k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v
        for k, v in ckpt["state_dict"].items()
    }
    model.load_state_dict(state)
    want, have = ckpt.get("body_hash"), body_hash_of(model)
    if want and have and want != have:
        raise InputError(
            f"{path}: trained with body model {want[:12]}, but {who} {have[:12]}; {fix}"
        )


def _plain(value: Any) -> Any:
    """Tuples and lists compare equal (YAML/pickle round trips turn one into the other)."""
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def slim_checkpoint(src: str | Path, dst: str | Path, half: bool = True) -> Path:
    """Write ``src``'s weights + configs only (no optimiser/RNG), fp16 floats if ``half``."""
    ckpt = read_checkpoint(src)
    state = {
        k: v.half() if half and torch.is_tensor(v) and v.is_floating_point() else v
        for k, v in ckpt["state_dict"].items()
    }
    keep = ("format", "version", "model", "body_hash", "train_config", "hmrt_version", "metrics")
    out = {k: ckpt[k] for k in keep if k in ckpt}
    out["state_dict"] = state
    out["weights_dtype"] = "float16" if half else "float32"
    with atomic_path(dst) as tmp:
        torch.save(out, tmp)
    return Path(dst)


def main(argv: list[str] | None = None) -> int:
    """``python -m hmrt.train.checkpoint SRC DST [--fp32]``: write a slim (deployable) copy."""
    ap = argparse.ArgumentParser(description=slim_checkpoint.__doc__)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--fp32", action="store_true", help="keep fp32 weights (default: fp16)")
    args = ap.parse_args(argv)
    out = slim_checkpoint(args.src, args.dst, half=not args.fp32)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
