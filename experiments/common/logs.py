"""Progress bar and per-step CSV/JSON logs, written by process 0 only.

A resumed run reopens the log and drops the rows after the step it resumes from, so the log of a run
killed and restarted equals that of an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jax

from . import files


class MetricsLog:
    """Rows ``{'step': int, name: float, ...}`` in ``DIR/log.csv`` and ``DIR/log.json``."""

    def __init__(self, directory: str | Path, *, resume_step: int = 0):
        self.directory = Path(directory)
        self.rows: list[dict] = []
        self.active = jax.process_index() == 0
        path = self.directory / "log.json"
        if self.active and path.is_file() and resume_step > 0:
            self.rows = [r for r in json.loads(path.read_text()) if r["step"] <= resume_step]

    def append(self, row: dict) -> None:
        if self.active:
            self.rows.append({k: (int(v) if k == "step" else float(v)) for k, v in row.items()})

    def flush(self) -> None:
        if not self.active or not self.rows:
            return
        files.write_json(self.directory / "log.json", self.rows)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(self.rows[0]))
        writer.writeheader()
        writer.writerows(self.rows)
        files.write_text(self.directory / "log.csv", out.getvalue())


def progress(total: int, initial: int = 0, desc: str = ""):
    """A tqdm bar on process 0 (disabled elsewhere)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=jax.process_index() != 0, leave=False)
