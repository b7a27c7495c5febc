"""The resource benchmark (``python -m experiments.runtime``) runs end to end and writes parseable
results.

A smoke run only: one cheap loss, batch 4, a few steps, both sides in their own processes. No timing is
asserted (benchmarks are scripts that print tables); the test checks that each side produced a positive
time and memory figure and that the markdown, CSV and PNG files exist and parse.
"""

import csv
import os
import subprocess
import sys

import pytest
from helpers import REPO
from PIL import Image


def test_quick_run_writes_markdown_csv_and_chart(tmp_path):
    pytest.importorskip("torch", reason="the benchmark compares against watson_jax.torch")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "experiments.runtime",
            "--quick",
            "--losses",
            "L2",
            "--rounds",
            "2",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]

    [table] = tmp_path.glob("runtime_*.csv")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["loss"], r["colorspace"], r["precision"]) for r in rows] == [("L2", "RGB", "default")]
    row = rows[0]
    for column in (
        "jax_ms_per_step",
        "torch_ms_per_step",
        "torch_over_jax",
        "jax_peak_mib",
        "torch_peak_mib",
    ):
        assert float(row[column]) > 0, column
    assert int(row["batch"]) == 4 and int(row["steps"]) >= 1
    for side in ("jax", "torch"):  # two rounds, taking turns; the reported time is one of them
        rounds = [float(t) for t in row[f"{side}_rounds_ms"].split()]
        assert len(rounds) == 2 and float(row[f"{side}_ms_per_step"]) == pytest.approx(min(rounds), rel=1e-3)
    # Same images, same start, same steps: the two sides' loss values agree (L2 has no randomness).
    assert float(row["jax_loss_first"]) == pytest.approx(float(row["torch_loss_first"]), rel=1e-5)
    assert float(row["jax_loss_last"]) < float(row["jax_loss_first"])

    markdown = table.with_suffix(".md").read_text()
    assert "| L2 | RGB |" in markdown and "- hardware:" in markdown and "- software:" in markdown
    latest = next(tmp_path.glob("latest_*.md")).read_text()
    assert latest == markdown
    with Image.open(table.with_suffix(".png")) as chart:
        assert chart.format == "PNG" and chart.width > 100


def test_median_round_is_the_middle_round_with_every_round_listed():
    if str(REPO) not in sys.path:  # experiments/ is a package of the repository, not installed
        sys.path.insert(0, str(REPO))
    from experiments.runtime.benchmark import median_round

    rounds = [
        {"ms_per_step": 3.0, "peak_mib": 1},
        {"error": "crashed"},
        {"ms_per_step": 1.0, "peak_mib": 2},
        {"ms_per_step": 2.0, "peak_mib": 3},
    ]
    got = median_round(rounds)
    assert got["ms_per_step"] == 2.0 and got["peak_mib"] == 3 and got["rounds_ms"] == [3.0, None, 1.0, 2.0]
    assert median_round([{"error": "crashed"}]) == {"error": "crashed"}
