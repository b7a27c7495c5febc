"""Code shared by every experiment, written once.

- ``distributed``: ``jax.distributed.initialize`` from ``--coordinator/--num-processes/--process-id`` or env.
- ``sharding``: the data mesh, global batches padded to the device count with masks, process-local → global
  arrays (``jax.make_array_from_process_local_data``).
- ``pipeline``: grain batches shuffled per epoch from a seed, cut per process, with a checkpointable state.
- ``checkpoint``: orbax checkpoints of a pytree state plus the data iterator's state (exact resume).
- ``logs``: tqdm progress and CSV/JSON logs from process 0; ``files``: atomic writes; ``figures``: plots.
"""
