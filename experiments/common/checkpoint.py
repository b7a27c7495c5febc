"""Orbax checkpoints of a training state (a pytree) and the data iterator's state, for exact resume.

``DIR/checkpoints/<step>/`` holds ``state`` (orbax ``StandardSave``) and ``data`` (the grain iterator's
``get_state()`` as JSON). :meth:`Checkpoints.restore` puts the state back onto the shardings of a template
(e.g. the freshly initialised, replicated state) and returns the data state to ``set_state``.
"""

from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    def __init__(self, directory: str | Path, *, max_to_keep: int | None = 3):
        self.directory = Path(directory).resolve()
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state, data_state: dict) -> None:
        """Save asynchronously (call :meth:`close` before the process ends)."""
        if step in self.manager.all_steps():
            return
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state)),
        )

    def restore(self, template, step: int | None = None):
        """(state, data_state) of ``step`` (default the latest), the state with the template's shardings."""
        step = self.manager.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()),
        )
        return out["state"], out["data"]

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
