"""Grain input pipelines: epochs shuffled from a seed, global batches cut per process, resumable.

The pipeline is one ``grain.MapDataset`` over every batch of the run: element s is the local part of
global batch s (epoch s // batches_per_epoch). Epoch e's order is a permutation drawn from
``numpy.random.default_rng([seed, e])``; batch s takes the next B examples of it (the last batch of an
epoch may be short unless ``drop_remainder``), pads to the device count (see :mod:`.sharding`), and this
process keeps its rows. Every element carries ``mask`` (real rows) and ``index`` (the row's position in
the global batch, for per-example keys ``jax.random.fold_in(step_key, index)`` that do not depend on the
split). The iterator's state (``get_state()``, a small dict) goes into the checkpoints, so a resumed run
sees exactly the batches it would have seen.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import grain
import numpy as np

from . import sharding


@dataclasses.dataclass(frozen=True)
class BatchPlan:
    """Which examples make global batch ``step``."""

    size: int  # examples in the data set
    batch: int  # global batch size B
    seed: int
    shuffle: bool
    drop_remainder: bool

    def __post_init__(self):
        if self.size < 1:
            raise ValueError("the data set is empty")
        if self.batch < 1:
            raise ValueError(f"the batch size must be at least 1, not {self.batch}")
        if self.drop_remainder and self.batch > self.size:
            raise ValueError(f"batch size {self.batch} is larger than the data set ({self.size} examples)")

    @property
    def batches_per_epoch(self) -> int:
        return self.size // self.batch if self.drop_remainder else math.ceil(self.size / self.batch)

    def order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def indices(self, step: int) -> np.ndarray:
        """The data-set indices of global batch ``step`` (unpadded)."""
        epoch, b = divmod(step, self.batches_per_epoch)
        return self.order(epoch)[b * self.batch : (b + 1) * self.batch]


def local_batch(
    plan: BatchPlan, step: int, read: Callable[[np.ndarray], dict], devices: int, process: int, processes: int
) -> dict:
    """This process's rows of padded global batch ``step``: ``read(indices)`` plus ``mask`` and ``index``."""
    idx = plan.indices(step)
    total = sharding.padded_size(len(idx), devices)
    start, stop = sharding.local_rows(len(idx), devices, process, processes)
    rows = np.arange(start, stop)
    real = rows < len(idx)
    chosen = idx[np.where(real, rows, 0)]  # padding repeats the batch's first example, masked out
    out = dict(read(chosen))
    out["mask"] = real
    out["index"] = rows.astype(np.int32)
    out["global_size"] = np.full(len(rows), total, np.int32)
    return out


def batches(
    plan: BatchPlan,
    read: Callable[[np.ndarray], dict],
    *,
    epochs: int,
    devices: int,
    process: int = 0,
    processes: int = 1,
    threads: int = 2,
    prefetch: int = 4,
) -> grain.IterDataset:
    """The run's batches as a grain ``IterDataset``; ``iter()`` of it has ``get_state``/``set_state``."""
    steps = epochs * plan.batches_per_epoch
    ds = grain.MapDataset.range(steps).map(
        lambda s: local_batch(plan, int(s), read, devices, process, processes)
    )
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=prefetch))
