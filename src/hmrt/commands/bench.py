"""``hmrt bench``: the runtime's benchmark (:mod:`hmrt.runtime.cli_bench`), defaulting to the
demo's model, which :func:`hmrt.commands.demo.default_model` exports on first use."""

from __future__ import annotations

import argparse

from hmrt.runtime.cli_bench import add_arguments

__all__ = ["add_arguments", "run"]


def run(args: argparse.Namespace) -> int:
    """Benchmark ``--model``, or the demo's cached DaNet-edge ONNX when it is absent."""
    from hmrt.commands.demo import default_model
    from hmrt.runtime.cli_bench import run as run_bench

    return run_bench(args, default_model=default_model)
