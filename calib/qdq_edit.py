"""Graph edits on ORT's Q/DQ output: what ``quantize_static`` cannot be told to do.

* :func:`bypass_excluded_readers`: ORT quantizes a tensor once for all its readers, so an FP32
  island or a final head reading the output of a quantized convolution would read the
  int8-rounded tensor. Those readers are pointed back at the float tensor.
* :func:`share_quantize_nodes`: one QuantizeLinear per tensor with a private DequantizeLinear per
  reader (TensorRT's expected form, and the one ORT's CPU fusions need).
"""

from __future__ import annotations

import onnx

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def bypass_excluded_readers(model: onnx.ModelProto, excluded: set[str]) -> int:
    """Excluded nodes that read a ``Q -> DQ`` pair read the float tensor before ``Q`` instead.

    Q/DQ nodes left without readers are removed. Returns how many inputs were rewired.
    """
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    rewired = 0
    for node in g.node:
        if node.name not in excluded:
            continue
        for idx, name in enumerate(node.input):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            quant = producer.get(dq.input[0])
            if quant is None or quant.op_type != "QuantizeLinear":
                continue  # a quantized constant weight: not an activation
            node.input[idx] = quant.input[0]
            rewired += 1
    drop_unread(model)
    return rewired


def share_quantize_nodes(model: onnx.ModelProto) -> int:
    """One QuantizeLinear per tensor and scale, each reader keeping its own DequantizeLinear.

    ORT's ``DedicatedQDQPair`` gives every reader its own Q *and* DQ; a tensor read by two
    quantized nodes (a residual branch, the convs sharing a block input) then has two Qs, and
    ORT CPU only fuses ``DQ -> Conv -> Q`` into ``QLinearConv`` when the conv's output has a
    single Q. Merging the Qs keeps one Q per tensor (what TensorRT also expects) and the private
    DQs (which ORT needs on the input side). Returns how many Q nodes were removed.
    """
    from onnx import numpy_helper

    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}

    def key(node: onnx.NodeProto) -> tuple:
        params = []
        for name in node.input[1:]:
            value = consts.get(name)
            params.append(name if value is None else (value.dtype.str, value.tobytes()))
        attrs = tuple(sorted((a.name, onnx.helper.get_attribute_value(a)) for a in node.attribute))
        return (node.input[0], tuple(params), attrs)

    first: dict[tuple, onnx.NodeProto] = {}
    rename: dict[str, str] = {}
    for node in g.node:
        if node.op_type != "QuantizeLinear":
            continue
        k = key(node)
        if k in first:
            rename[node.output[0]] = first[k].output[0]
        else:
            first[k] = node
    if not rename:
        return 0
    for node in g.node:
        node.input[:] = [rename.get(i, i) for i in node.input]
    drop_unread(model)
    return len(rename)


def drop_unread(model: onnx.ModelProto) -> None:
    """Remove Q/DQ nodes whose outputs nobody reads (repeat until stable)."""
    g = model.graph
    while True:
        read = {i for n in g.node for i in n.input} | {o.name for o in g.output}
        dead = [n for n in g.node if n.op_type in QDQ_OPS and not any(o in read for o in n.output)]
        if not dead:
            return
        for n in dead:
            g.node.remove(n)


def quantized_node_names(model: onnx.ModelProto) -> list[str]:
    """Non-Q/DQ nodes with at least one input produced by a DequantizeLinear."""
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type not in QDQ_OPS and any(i in dq_out for i in n.input)
    ]


def clean_initializers(model: onnx.ModelProto) -> None:
    """Drop initializers no node reads (old zero points, replaced weights)."""
    read = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in read]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
