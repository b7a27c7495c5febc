"""2 JAX processes × 2 CPU devices tune to the same weights as 1 process × 4 devices (gloo collectives)."""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from experiments.twoafc import synthetic


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.multiprocess
def test_two_processes_equal_one(tmp_path):
    root = synthetic.make_bapps(tmp_path / "2afc", splits={"train": ("traditional", "cnn")}, per_category=4)
    args = ["--data", str(root), "--metric", "watson-dft", "--batch-size", "3", "--epochs", "0"]
    args += ["--decay-epochs", "1", "--lr", "1e-2", "--checkpoint-every", "100"]
    cmd = [sys.executable, "-m", "experiments.twoafc", "tune", *args]

    def env(devices):
        flags = f"--xla_force_host_platform_device_count={devices}"
        return {**os.environ, "PYTHONPATH": os.getcwd(), "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}

    one = subprocess.Popen(
        [*cmd, "--out", str(tmp_path / "one")], env=env(4), stderr=subprocess.PIPE, text=True
    )
    port = _free_port()
    dist = ["--coordinator", f"localhost:{port}", "--num-processes", "2", "--cpu-collectives", "gloo"]
    two = [
        subprocess.Popen(
            [*cmd, "--out", str(tmp_path / "two"), *dist, "--process-id", str(i)],
            env=env(2), stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]  # fmt: skip
    for p in (one, *two):
        _, err = p.communicate(timeout=500)
        assert p.returncode == 0, err[-3000:]
    a = np.load(tmp_path / "one" / "watson_dft_rgb.npz")
    b = np.load(tmp_path / "two" / "watson_dft_rgb.npz")
    for k in a.files:
        if a[k].dtype.kind == "f":
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)
