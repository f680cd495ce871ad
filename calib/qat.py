"""Quantization-aware fine-tuning (QAT) with PyTorch's PT2E quantization (torchao).

Why PT2E: the fake quantization comes from a library (torchao's ``prepare_qat_pt2e`` with
``FusedMovingAvgObsFakeQuantize``; conv + BatchNorm folded the way the deployed graph folds them),
and a :class:`~torchao.quantization.pt2e.quantizer.Quantizer` decides exactly which tensors get
fake quantization, so it can follow :mod:`hmrt.calib.qdq_plan` instead of a library default.
ModelOpt's ``mtq`` is the other engine the issue names; it is not installable in hmrt's
environment (its own ``onnx``/``onnxruntime`` pins; docs/PRECISION.md), so this module uses PT2E.

What is fake-quantized (:class:`PlanQuantizer`), mirroring the Q/DQ plan of the ONNX graph:
the inputs of every convolution and linear layer (int8 symmetric, per tensor) and their weights
(int8 symmetric, per output channel), the inputs of every matrix product, and both inputs of
every residual add, except (1) the model's FP32 islands (its ``Fp32Module`` declaration), (2)
the final regression heads (weighted layers from which an eval output is reachable without
another weighted layer: the same rule as :func:`hmrt.calib.qdq_plan.final_heads`), (3) the
model's ``train_only`` modules (absent from the deployed graph). Bias stays float.

Steps (:func:`fine_tune`): export the model in training mode (``torch.export``), prepare it for
QAT, freeze BatchNorm statistics (``move_exported_model_to_eval``: small CPU batches would
otherwise ruin the trained running statistics), fine-tune with the model's own criterion on the
synthetic stream, then fold the fine-tuned float weights back into an ordinary hmrt checkpoint
and keep the learned activation ranges (the fake-quant observers' moving min/max) with a
fingerprint of each observed tensor on a fixed probe batch (:mod:`hmrt.calib.qat_ranges` maps
them onto the ONNX tensor names, so the existing Q/DQ writer makes the same graph as PTQ).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hmrt.runtime.errors import InputError, MissingDependencyError

EVAL_KEYS = ("vertices", "joints3d", "joints2d", "cam", "rotmats", "betas")
"""Outputs of the deployed graph: the heads are found from these only (training intermediates
such as ``iuv_index`` would otherwise make every IUV head a "final" layer)."""

ACT_QMIN, ACT_QMAX = -128, 127  # symmetric per-tensor int8: scale = amax / 127.5, as ORT's
WEIGHT_QMIN, WEIGHT_QMAX = -127, 127  # symmetric per-channel int8 weights (ORT / TensorRT)

_CONV_OPS = ("aten.conv2d.default", "aten.conv1d.default", "aten.linear.default")
_MATMUL_OPS = ("aten.matmul.default", "aten.mm.default", "aten.bmm.default")
_ADD_OPS = ("aten.add.Tensor",)


def _pt2e():
    """torchao's PT2E modules (torch 2.13 dropped ``torch.ao.quantization.quantize_pt2e``)."""
    try:
        logging.getLogger("torchao").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.quantization import pt2e
            from torchao.quantization.pt2e import quantize_pt2e, quantizer
    except ImportError as exc:
        raise MissingDependencyError(
            "torchao", "quantization-aware training (hmrt calibrate --qat)", "pip install torchao"
        ) from exc
    return pt2e, quantize_pt2e, quantizer


# -- which nodes ---------------------------------------------------------------------------


def module_path(node: torch.fx.Node) -> str:
    """Qualified name of the innermost module that produced ``node`` ("" at the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return _clean_path(path)


def _clean_path(path: str) -> str:
    # Non-strict export writes plain qualnames; strict (dynamo) ones look like L['self'].a.b.
    path = path.replace("L['self'].", "").replace("L['self']", "")
    return path.replace("._modules['", ".").replace("']", "")


def _under(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p + ".") for p in prefixes)


def _target(node: torch.fx.Node) -> str:
    return str(node.target)


def _is_param(node: Any) -> bool:
    """A parameter or constant (``get_attr`` / lifted placeholder) rather than an activation."""
    return isinstance(node, torch.fx.Node) and node.op == "get_attr"


def weighted(node: torch.fx.Node) -> bool:
    """Conv/linear with a weight parameter, or a matrix product with a constant operand."""
    t = _target(node)
    if node.op != "call_function":
        return False
    if t in _CONV_OPS:
        return True
    return t in _MATMUL_OPS and any(_is_param(a) for a in node.args[:2])


def final_heads(gm: torch.fx.GraphModule, outputs: set[torch.fx.Node], skip) -> set[str]:
    """Module paths of weighted nodes that reach ``outputs`` without another weighted node.

    The same rule as :func:`hmrt.calib.qdq_plan.final_heads` on the ONNX graph: ``skip(path)``
    marks island nodes, which are walked through (they are float anyway).
    """
    heads: set[str] = set()
    for node in gm.graph.nodes:
        if not weighted(node) or skip(module_path(node)):
            continue
        stack, seen = [node], set()
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            if n in outputs:
                heads.add(module_path(node))
                break
            for user in n.users:
                if user is not node and weighted(user) and not skip(module_path(user)):
                    continue
                stack.append(user)
    return heads


@dataclass
class QatPlan:
    """Where fake quantization goes: the annotated node names and the float module paths."""

    islands: list[str] = field(default_factory=list)
    heads: list[str] = field(default_factory=list)
    train_only: list[str] = field(default_factory=list)
    weighted: list[str] = field(default_factory=list)  # annotated conv/linear/matmul nodes
    adds: list[str] = field(default_factory=list)  # annotated residual adds
    float_weighted: list[str] = field(default_factory=list)  # weighted nodes kept float

    def float_paths(self) -> list[str]:
        """Module prefixes kept in float."""
        return [*self.islands, *self.heads, *self.train_only]


def _eval_outputs(gm: torch.fx.GraphModule, out_spec: Any) -> set[torch.fx.Node]:
    """The output nodes that carry :data:`EVAL_KEYS` (the exported dict's flattened leaves)."""
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    leaves = list(out_node.args[0])
    keys = list(getattr(out_spec, "context", None) or [])
    if out_spec is None or len(keys) != getattr(out_spec, "num_children", -1):
        return {x for x in leaves if isinstance(x, torch.fx.Node)}
    chosen: set[torch.fx.Node] = set()
    index = 0
    for key, child in zip(keys, out_spec.children()):
        count = child.num_leaves
        if key in EVAL_KEYS:
            chosen.update(x for x in leaves[index : index + count] if isinstance(x, torch.fx.Node))
        index += count
    return chosen


def make_quantizer(model: nn.Module, out_spec: Any = None):
    """A torchao ``Quantizer`` annotating exactly the plan's nodes (see the module docstring)."""
    from hmrt.train.models.layers.precision import fp32_islands

    _, _, q = _pt2e()
    from torchao.quantization.pt2e import (
        FusedMovingAvgObsFakeQuantize,
        MovingAverageMinMaxObserver,
        MovingAveragePerChannelMinMaxObserver,
    )

    act = q.QuantizationSpec(
        dtype=torch.int8,
        quant_min=ACT_QMIN,
        quant_max=ACT_QMAX,
        qscheme=torch.per_tensor_symmetric,
        is_dynamic=False,
        observer_or_fake_quant_ctr=FusedMovingAvgObsFakeQuantize.with_args(
            observer=MovingAverageMinMaxObserver
        ),
    )
    weight = q.QuantizationSpec(
        dtype=torch.int8,
        quant_min=WEIGHT_QMIN,
        quant_max=WEIGHT_QMAX,
        qscheme=torch.per_channel_symmetric,
        ch_axis=0,
        is_dynamic=False,
        observer_or_fake_quant_ctr=FusedMovingAvgObsFakeQuantize.with_args(
            observer=MovingAveragePerChannelMinMaxObserver
        ),
    )
    islands = list(fp32_islands(model))
    train_only = list(getattr(model, "train_only", ()))

    class PlanQuantizer(q.Quantizer):
        """Annotates conv/linear/matmul inputs + weights and residual adds outside the plan."""

        plan = QatPlan(islands=islands, train_only=train_only)

        def annotate(self, gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
            plan = self.plan

            def skip_island(path: str) -> bool:
                return _under(path, islands) or _under(path, train_only)

            heads = final_heads(gm, _eval_outputs(gm, out_spec), skip_island)
            plan.heads = sorted(heads)
            floats = plan.float_paths()
            for node in gm.graph.nodes:
                if node.op != "call_function":
                    continue
                path, t = module_path(node), _target(node)
                if weighted(node) or t in _MATMUL_OPS:
                    if _under(path, floats):
                        plan.float_weighted.append(node.name)
                        continue
                    qmap = {}
                    x, w = node.args[0], node.args[1]
                    if t in _CONV_OPS:
                        qmap = {x: act, w: weight}
                    else:  # matmul: constant operand per tensor (no channel axis to trust)
                        qmap = {a: act for a in (x, w) if isinstance(a, torch.fx.Node)}
                    node.meta["quantization_annotation"] = q.QuantizationAnnotation(
                        input_qspec_map=qmap, _annotated=True
                    )
                    plan.weighted.append(node.name)
                elif t in _ADD_OPS and not _under(path, floats):
                    # ORT quantizes every float input of an Add (residual adds, and the
                    # bias adds after a MatMul/Gemm): fake-quantize the activation inputs.
                    inputs = [
                        a
                        for a in node.args[:2]
                        if isinstance(a, torch.fx.Node) and not _is_param(a)
                    ]
                    if not inputs:
                        continue
                    node.meta["quantization_annotation"] = q.QuantizationAnnotation(
                        input_qspec_map=dict.fromkeys(inputs, act), _annotated=True
                    )
                    plan.adds.append(node.name)
            return gm

        def validate(self, model: torch.fx.GraphModule) -> None:
            pass

    return PlanQuantizer()


# -- prepare -------------------------------------------------------------------------------


@dataclass
class PreparedQat:
    """A model ready for QAT: the prepared graph module and what was annotated."""

    module: torch.fx.GraphModule
    plan: QatPlan
    float_model: nn.Module


def prepare_qat(model: nn.Module, example: torch.Tensor, freeze_bn: bool = True) -> PreparedQat:
    """Export ``model`` in training mode and insert the plan's fake quantization.

    ``freeze_bn`` (default): BatchNorm uses its running statistics during QAT (the folded
    conv weights TensorRT sees then stay fixed except for the learned update).
    """
    pt2e, quantize_pt2e, _ = _pt2e()
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            exported = torch.export.export(model, (example,), strict=False)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(
                f"torch.export could not trace {type(model).__name__} for QAT: {first}"
            ) from exc
        gm = exported.module()
        quantizer = make_quantizer(model, exported.call_spec.out_spec)
        prepared = quantize_pt2e.prepare_qat_pt2e(gm, quantizer)
    if freeze_bn:
        pt2e.move_exported_model_to_eval(prepared)
    return PreparedQat(prepared, quantizer.plan, model)


def fake_quant_modules(gm: nn.Module) -> dict[str, nn.Module]:
    """``name -> fake-quant module`` of a prepared graph module."""
    from torchao.quantization.pt2e import FakeQuantizeBase

    return {n: m for n, m in gm.named_modules() if isinstance(m, FakeQuantizeBase)}


def set_fake_quant(gm: nn.Module, enabled: bool, observe: bool | None = None) -> None:
    """Switch fake quantization (and the observers, default: same) on or off."""
    observe = enabled if observe is None else observe
    for m in fake_quant_modules(gm).values():
        (m.enable_fake_quant if enabled else m.disable_fake_quant)()
        (m.enable_observer if observe else m.disable_observer)()


def fold_back(prepared: PreparedQat) -> nn.Module:
    """Copy the fine-tuned float weights into the original model (an ordinary hmrt model)."""
    state = prepared.module.state_dict()
    own = prepared.float_model.state_dict()
    missing = [k for k in own if k not in state and own[k].is_floating_point()]
    trained = [k for k, v in prepared.float_model.named_parameters()]
    lost = [k for k in trained if k in missing]
    if lost:
        raise RuntimeError(f"QAT graph lost parameters {lost[:5]} (of {len(lost)})")
    prepared.float_model.load_state_dict({k: state.get(k, v) for k, v in own.items()})
    return prepared.float_model


def activation_ranges(gm: nn.Module) -> dict[str, tuple[float, float, float]]:
    """``{fake-quant name: (amax, min, max)}`` of the per-tensor (activation) fake quants."""
    out = {}
    for name, m in fake_quant_modules(gm).items():
        if m.qscheme not in (torch.per_tensor_symmetric, torch.per_tensor_affine):
            continue
        obs = getattr(m, "activation_post_process", None)
        lo, hi = float(obs.min_val), float(obs.max_val)
        if not (math.isfinite(lo) and math.isfinite(hi)):
            continue
        out[name] = (max(abs(lo), abs(hi)), lo, hi)
    return out


def consumer_keys(gm: torch.fx.GraphModule) -> dict[str, list[str]]:
    """``{fake-quant name: [key, ...]}``: which input of which op each fake quant feeds.

    A key is ``module path|op|occurrence|argument index``; it is the same in any
    ``torch.export`` graph of the model (training or eval mode), which FX node names are not.
    """
    modules = fake_quant_modules(gm)
    count: dict[tuple[str, str], int] = {}
    keys: dict[str, list[str]] = {}
    for node in gm.graph.nodes:
        if node.op != "call_function" or node.target is getattr:
            continue
        path, t = module_path(node), _target(node)
        if not (t in _CONV_OPS or t in _MATMUL_OPS or t in _ADD_OPS):
            continue
        occurrence = count.get((path, t), 0)
        count[(path, t)] = occurrence + 1
        for i, arg in enumerate(node.args[:2]):
            if isinstance(arg, torch.fx.Node) and arg.target in modules:
                keys.setdefault(str(arg.target), []).append(f"{path}|{t}|{occurrence}|{i}")
    return keys


def probe_by_keys(
    model: nn.Module, images: torch.Tensor, wanted: set[str]
) -> dict[str, np.ndarray]:
    """The float value of every ``wanted`` op input (:func:`consumer_keys`) in eval mode.

    The model is exported in eval mode (the deployed function: no PartDrop, no RoI jitter,
    BatchNorm running statistics) and interpreted node by node.
    """
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = torch.export.export(model, (images,), strict=False).module()
    count: dict[tuple[str, str], int] = {}
    seen: dict[str, np.ndarray] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> Any:
            if n.op == "call_function":
                path, t = module_path(n), _target(n)
                if t in _CONV_OPS or t in _MATMUL_OPS or t in _ADD_OPS:
                    occurrence = count.get((path, t), 0)
                    count[(path, t)] = occurrence + 1
                    for i, arg in enumerate(n.args[:2]):
                        key = f"{path}|{t}|{occurrence}|{i}"
                        if key in wanted and isinstance(arg, torch.fx.Node):
                            seen[key] = self.env[arg].detach().float().cpu().numpy()
            return super().run_node(n)

    with torch.no_grad():
        Recorder(gm).run(images)
    return seen


def probe_activations(
    prepared: PreparedQat, images: torch.Tensor, names: Iterable[str]
) -> dict[str, np.ndarray]:
    """The float tensor each named fake quant sees on ``images``, in the deployed (eval) form."""
    keys = consumer_keys(prepared.module)
    wanted = {k for n in names for k in keys.get(n, [])}
    by_key = probe_by_keys(fold_back(prepared), images, wanted)
    seen = {}
    for name in names:
        found = [by_key[k] for k in keys.get(name, []) if k in by_key]
        if found:
            seen[name] = found[0]
    return seen


# -- fine-tuning ---------------------------------------------------------------------------


@dataclass
class QatOptions:
    """The QAT recipe (recorded in the checkpoint)."""

    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-5
    seed: int = 0
    threads: int = 0  # 0: torch's default
    ckpt_every: int = 50
    log_every: int = 10


def synth_batches(model: nn.Module, batch_size: int, seed: int):
    """An endless iterator of synthetic training batches (the trainer's augmentation)."""
    from torch.utils.data import DataLoader

    from hmrt.train.data.dataset import SyntheticDataset
    from hmrt.train.sources import augment_config

    ds = SyntheticDataset(
        seed=seed, length=10**9, augment=augment_config(model, train=True), aug_seed=seed
    )
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=0, drop_last=True)
    yield from loader


def fine_tune(
    model: nn.Module,
    out_dir: str | Path,
    options: QatOptions,
    batches: Iterable[dict] | None = None,
    progress: bool = True,
    log=print,
) -> tuple[nn.Module, Path]:
    """QAT-fine-tune ``model``; writes ``qat.pt`` (hmrt checkpoint) and ``qat_ranges.npz``.

    ``batches``: training batches (default: the synthetic stream). Checkpoints every
    ``ckpt_every`` steps, so a stopped run still leaves a usable ``qat.pt``.
    """
    from tqdm import tqdm

    from hmrt.train.losses import DanetCriterion

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if options.steps < 1:
        raise InputError(f"--steps must be >= 1, got {options.steps}")
    if options.threads > 0:
        torch.set_num_threads(options.threads)
    torch.manual_seed(options.seed)
    criterion = DanetCriterion.for_model(model)
    batches = iter(
        batches if batches is not None else synth_batches(model, options.batch_size, options.seed)
    )
    first = next(batches)
    size = tuple(first["image"].shape[-2:])
    g = torch.Generator().manual_seed(20261205)
    # The exported graph has a static batch: the probe has the training batch's size.
    probe = torch.randn(first["image"].shape[0], 3, *size, generator=g)
    prepared = prepare_qat(model, first["image"])
    gm = prepared.module
    params = [p for p in gm.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=options.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, options.steps) / options.steps))
    )
    pbar = tqdm(total=options.steps, desc="qat", unit="step", disable=not progress)
    t0, acc, count = time.perf_counter(), 0.0, 0
    batch = first
    for step in range(1, options.steps + 1):
        pred = gm(batch["image"])
        loss, _terms = criterion(pred, batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        acc, count = acc + float(loss.detach()), count + 1
        pbar.update(1)
        if step % options.log_every == 0 or step == options.steps:
            pbar.set_postfix(loss=f"{acc / count:.4g}")
            log(
                f"qat step {step}/{options.steps} loss {acc / count:.4f} "
                f"({time.perf_counter() - t0:.0f} s)"
            )
            acc, count = 0.0, 0
        if step % options.ckpt_every == 0 or step == options.steps:
            save_qat(prepared, out, options, step, probe)
        if step < options.steps:
            batch = next(batches)
    pbar.close()
    return prepared.float_model, out / "qat.pt"


def save_qat(
    prepared: PreparedQat, out: Path, options: QatOptions, step: int, probe: torch.Tensor
) -> Path:
    """Write ``qat.pt`` (the fine-tuned float weights) and ``qat_ranges.npz`` (ranges + probe)."""
    from dataclasses import asdict

    from hmrt.calib.qat_ranges import save_observed
    from hmrt.train.checkpoint import save_checkpoint

    model = fold_back(prepared)
    ranges = activation_ranges(prepared.module)
    seen = probe_activations(prepared, probe, ranges)
    prepared.float_model.train()
    save_observed(out / "qat_ranges.npz", ranges, seen, probe.numpy(), step)
    plan = prepared.plan
    return save_checkpoint(
        out / "qat.pt",
        model,
        qat={
            **asdict(options),
            "step": step,
            "engine": "torchao PT2E prepare_qat_pt2e",
            "heads": plan.heads,
            "islands": plan.islands,
            "n_weighted": len(plan.weighted),
            "n_adds": len(plan.adds),
        },
    )
