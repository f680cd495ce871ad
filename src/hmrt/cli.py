"""The ``hmrt`` command line: one dispatcher, one module per subcommand.

Each subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int`` and must not
import torch (or anything heavy) at module level, so ``hmrt --help`` and the runtime commands
stay fast and torch-free. Errors derived from :class:`hmrt.runtime.errors.HmrtError` become one
line on stderr and exit code 2; ``--debug`` shows the traceback instead. Commands that span
several layers (``demo``, ``bench``, ``eval``) live in :mod:`hmrt.commands`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
import traceback
from collections.abc import Iterator

# name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("hmrt.commands.demo", "run the bundled model on the demo clip and report accuracy"),
    "run": ("hmrt.runtime.cli_run", "reconstruct people in a video, images or a camera"),
    "bench": ("hmrt.commands.bench", "per-stage latency and FPS of a model on this machine"),
    "body": ("hmrt.runtime.body.cli", "inspect the body model or import an official SMPL file"),
    "synth": ("hmrt.train.data.cli", "write synthetic training shards or a demo video"),
    "model": ("hmrt.train.models.cli", "model zoo: parameter counts and GFLOPs"),
    "zoo": ("hmrt.commands.zoo", "the model zoo table: cost, parity, latency, accuracy"),
    "train": ("hmrt.train.cli_train", "train a model"),
    "train-prior": (
        "hmrt.train.prior.cli",
        "train HKMR's pose-prior VAE on the synthetic engine's poses",
    ),
    "eval": ("hmrt.commands.eval", "evaluate a checkpoint or ONNX graphs (accuracy tables)"),
    "diagnose": ("hmrt.train.cli_diagnose", "where a DaNet checkpoint's error comes from"),
    "calibrate": (
        "hmrt.commands.calibrate",
        "INT8 calibration (or --qat fine-tuning): write a Q/DQ ONNX graph",
    ),
    "export": ("hmrt.export.cli_export", "export a model to ONNX (or a Triton repository)"),
    "build-engine": ("hmrt.export.build_engine", "build a TensorRT engine from a model or ONNX"),
    "import-checkpoint": (
        "hmrt.export.import_checkpoint",
        "convert a released official checkpoint into an hmrt checkpoint",
    ),
}


def _build_parser(argv: list[str]) -> tuple[argparse.ArgumentParser, object | None]:
    from hmrt import __version__

    parser = argparse.ArgumentParser(
        prog="hmrt",
        description="hmrt: 3D human mesh recovery, from training to real-time inference.",
    )
    parser.add_argument("--version", action="version", version=f"hmrt {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported: keeps startup light.
    chosen = next((a for a in argv if a in COMMANDS), None)
    module = None
    for name, (modname, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
        if name == chosen:
            module = importlib.import_module(modname)
            module.add_arguments(p)
    return parser, module


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: raised in the main thread like Ctrl-C's KeyboardInterrupt,
    so every cleanup path that Ctrl-C takes (temporary ``.part`` files removed, a new empty
    ``--save`` folder removed, threads stopped) runs for them too."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


TERMINATING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def _terminate_like_ctrl_c() -> Iterator[None]:
    """While the command runs, turn SIGTERM/SIGHUP into :class:`Terminated` (once: a second
    signal during the cleanup is ignored so the cleanup can finish); restore the previous
    handlers after. A signal already ignored (``nohup`` ignores SIGHUP) stays ignored. Only
    the main thread can install handlers: elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        raise Terminated(signum)

    previous = {
        s: signal.signal(s, handler)
        for s in TERMINATING_SIGNALS
        if signal.getsignal(s) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run one subcommand; returns the process exit code (SIGINT 130,
    SIGTERM 143, SIGHUP 129: 128 + the signal, after the same cleanup as Ctrl-C)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        with _terminate_like_ctrl_c():
            parser, module = _build_parser(argv)
            args = parser.parse_args(argv)
            if module is None:
                parser.print_help()
                return 0 if args.command is None else 2
            return int(module.run(args) or 0)
    except Terminated as exc:
        print(f"hmrt: terminated by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("hmrt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from hmrt.runtime.errors import HmrtError

        if debug:
            traceback.print_exc()
        if isinstance(exc, HmrtError):
            print(f"hmrt: error: {exc}", file=sys.stderr)
            return exc.exit_code
        if not debug:
            print(
                f"hmrt: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                file=sys.stderr,
            )
        return 1
