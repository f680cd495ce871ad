"""Run logs: CSV files (always) and TensorBoard events (optional), written by rank 0 only.

CSV columns are fixed when a file is created; resuming truncates rows logged after the
checkpoint's step, so a resumed run's log reads like an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path


class CsvLog:
    """Append rows with a fixed header to a CSV file."""

    def __init__(self, path: Path, columns: Sequence[str], resume_step: int | None = None):
        self.path = Path(path)
        if self.path.exists() and resume_step is not None:
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
                header = rows[0].keys() if rows else None
            self.columns = list(header) if header else list(columns)
            for c in columns:  # a resumed run may log new columns: keep the old ones first
                if c not in self.columns:
                    self.columns.append(c)
            kept = [r for r in rows if r.get("step") and int(float(r["step"])) <= resume_step]
            self._rewrite(kept)
        else:
            self.columns = list(columns)
            self._rewrite([])

    def _rewrite(self, rows: list[dict]) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(buf.getvalue())

    def write(self, row: dict) -> None:
        """Append one row; unknown keys are dropped, missing ones left empty."""
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore").writerow(
                {k: _fmt(v) for k, v in row.items()}
            )


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


class RunLogger:
    """Train and eval logs of one run: ``train_log.csv``, ``eval_log.csv``, ``tb/`` events."""

    def __init__(
        self,
        out_dir: Path,
        train_columns: Sequence[str],
        eval_columns: Sequence[str],
        enabled: bool = True,
        tensorboard: bool = True,
        resume_step: int | None = None,
    ):
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        self.train = CsvLog(Path(out_dir) / "train_log.csv", train_columns, resume_step)
        self.eval = CsvLog(Path(out_dir) / "eval_log.csv", eval_columns, resume_step)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is in the train extra but stay usable without it
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(str(Path(out_dir) / "tb"), purge_step=resume_step)

    def log_train(self, row: dict) -> None:
        """One training row (``step`` required)."""
        if not self.enabled:
            return
        self.train.write(row)
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"train/{k}", v, row["step"])

    def log_eval(self, row: dict) -> None:
        """One evaluation row (``step`` required)."""
        if not self.enabled:
            return
        self.eval.write(row)
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("step", "epoch") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"val/{k}", v, row["step"])
            self.tb.flush()

    def close(self) -> None:
        """Flush and close TensorBoard."""
        if self.tb is not None:
            self.tb.close()
