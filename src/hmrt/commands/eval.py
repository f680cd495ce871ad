"""``hmrt eval``: checkpoint accuracy (hmrt.train) or the precision report (hmrt.export + calib).

The flags are :func:`hmrt.train.cli_eval.add_arguments`'s plus the ``--precision-report`` group
of :func:`hmrt.calib.report_cli.add_report_arguments` (argparse only: registering them loads
neither torch nor onnx). ``run`` hands over to :func:`hmrt.export.precision_report.run_report`
when ``--precision-report`` is given, else to :func:`hmrt.train.cli_eval.run`.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``hmrt eval``'s flags: checkpoint evaluation and the precision report."""
    from hmrt.calib.report_cli import add_report_arguments
    from hmrt.train.cli_eval import add_arguments as add_eval_arguments

    add_eval_arguments(parser)
    add_report_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """The precision report when ``--precision-report`` is given, else checkpoint evaluation."""
    if getattr(args, "precision_report", False):
        from hmrt.export.precision_report import run_report

        return run_report(args)
    from hmrt.train.cli_eval import run as run_eval

    return run_eval(args)
