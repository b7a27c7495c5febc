"""Data parallelism over one ``jax.sharding.Mesh``: global batches padded to the device count, masked.

A global batch of B examples is padded to Bp = ⌈B / D⌉·D rows (D devices in all); the padding rows repeat
a real example and carry ``mask = False``, so means over the batch use only real examples. Process p holds
rows [p·Bp/P, (p+1)·Bp/P) and hands them to :func:`global_array`, which assembles the global
``jax.Array`` sharded along the mesh's ``data`` axis.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh() -> Mesh:
    """A one-axis mesh ``('data',)`` over every device of every process."""
    return Mesh(np.asarray(jax.devices()), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the data axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def padded_size(batch: int, devices: int) -> int:
    """⌈batch / devices⌉·devices."""
    return math.ceil(batch / devices) * devices


def local_rows(batch: int, devices: int, process: int, processes: int) -> tuple[int, int]:
    """The [start, stop) rows of a padded global batch that ``process`` holds."""
    total = padded_size(batch, devices)
    if total % processes:
        raise ValueError(f"{devices} devices are not shared evenly by {processes} processes")
    per = total // processes
    return process * per, (process + 1) * per


def global_array(mesh: Mesh, local: np.ndarray) -> jax.Array:
    """This process's rows → the global array sharded over the data axis
    (``jax.make_array_from_process_local_data``)."""
    return jax.make_array_from_process_local_data(batch_sharding(mesh), np.asarray(local))


def global_batch(mesh: Mesh, local: dict) -> dict:
    """:func:`global_array` on every entry of a dict of per-process arrays."""
    return {k: global_array(mesh, v) for k, v in local.items()}


def replicate(mesh: Mesh, tree):
    """A pytree of host values placed identically on every device (parameters, optimiser state)."""
    sharding = replicated(mesh)
    return jax.tree.map(lambda a: jax.make_array_from_callback(np.shape(a), sharding, lambda _: a), tree)


def to_host(tree):
    """A pytree of (replicated or fully addressable) arrays → numpy on every process."""
    from jax.experimental import multihost_utils

    return jax.tree.map(
        lambda a: np.asarray(a) if a.is_fully_addressable else multihost_utils.process_allgather(a), tree
    )
