"""Shared fixtures. Golden files, original weights and samples are read from ../shared (never copied).

Two virtual CPU devices are created so that the sharding test has something to shard over; this must
happen before JAX initialises its backend.
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from helpers import ORIGINAL_WEIGHTS  # noqa: E402


@pytest.fixture(scope="session")
def converted_weights(tmp_path_factory) -> Path:
    """The original weight files converted once by the converter, as a user would."""
    pytest.importorskip("torch", reason="the converter reads .pth files with torch (installed in CI)")
    from watson_jax.convert import FORMATS, convert_reference_file, import_partition_spline

    dest = tmp_path_factory.mktemp("weights")
    for fmt in FORMATS:
        convert_reference_file(ORIGINAL_WEIGHTS / fmt.reference_name, dest)
    # Barron's log-partition table, so that tests need not compute it (tests/test_adaptive.py does, once).
    import_partition_spline(ORIGINAL_WEIGHTS / "partition_spline.npz", dest)
    return dest
