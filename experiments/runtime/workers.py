"""Running the workers: each job runs in its own process (``python -m experiments.runtime --worker KIND
--job JSON``) and prints one RESULT line; the parent reads it back with the load of other processes."""

from __future__ import annotations

import json
import subprocess
import sys

from experiments.common.machine import REPO
from experiments.runtime.jax_side import run_jax
from experiments.runtime.measure import OtherLoad
from experiments.runtime.prepare import setup
from experiments.runtime.torch_side import run_torch

RESULT_PREFIX = "RESULT "
WORKERS = {"setup": setup, "jax": run_jax, "torch": run_torch}


def worker_main(kind: str, job_json: str) -> int:
    """In the worker process: run the ``kind`` worker on the job and print its RESULT line."""
    result = WORKERS[kind](json.loads(job_json))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


def run_worker(kind: str, job: dict, env: dict[str, str], timeout: float) -> dict:
    """Run one worker process; its RESULT line as a dict, or {'error': ...}. Adds 'others_cores': how many
    cores other processes kept busy meanwhile (machine CPU time minus the worker's own, per second)."""
    cmd = [sys.executable, "-m", "experiments.runtime", "--worker", kind, "--job", json.dumps(job)]
    load = OtherLoad()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    others = load.cores()
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return dict(json.loads(line[len(RESULT_PREFIX) :]), others_cores=others)
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit {proc.returncode}: {tail[:300]}"}
