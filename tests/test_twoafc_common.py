"""experiments.common: batch plans with padding and masks, resumable grain iterators, checkpoints, files."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.common import checkpoint, files, pipeline, sharding


def _read(idx):
    return {"x": np.asarray(idx, np.float32)}


def test_plan_covers_each_epoch_once_and_reshuffles():
    plan = pipeline.BatchPlan(size=7, batch=3, seed=1, shuffle=True, drop_remainder=False)
    assert plan.batches_per_epoch == 3
    e0 = np.concatenate([plan.indices(s) for s in range(3)])
    e1 = np.concatenate([plan.indices(s) for s in range(3, 6)])
    assert sorted(e0) == list(range(7)) and sorted(e1) == list(range(7))
    assert not np.array_equal(e0, e1)
    with pytest.raises(ValueError, match="larger than the data set"):
        pipeline.BatchPlan(size=2, batch=3, seed=0, shuffle=True, drop_remainder=True)


def test_local_batches_pad_mask_and_split():
    plan = pipeline.BatchPlan(size=5, batch=5, seed=0, shuffle=False, drop_remainder=False)
    whole = pipeline.local_batch(plan, 0, _read, devices=4, process=0, processes=1)
    assert whole["x"].shape == (8,) and whole["mask"].tolist() == [True] * 5 + [False] * 3
    parts = [pipeline.local_batch(plan, 0, _read, devices=4, process=p, processes=2) for p in (0, 1)]
    np.testing.assert_array_equal(np.concatenate([p["x"] for p in parts]), whole["x"])
    np.testing.assert_array_equal(np.concatenate([p["index"] for p in parts]), np.arange(8))


def test_iterator_state_resumes_exactly():
    plan = pipeline.BatchPlan(size=10, batch=3, seed=4, shuffle=True, drop_remainder=True)
    ds = pipeline.batches(plan, _read, epochs=3, devices=1)
    full = [b["x"] for b in ds]
    assert len(full) == 9
    it = iter(ds)
    for _ in range(4):
        next(it)
    state = it.get_state()
    it2 = iter(pipeline.batches(plan, _read, epochs=3, devices=1))
    it2.set_state(state)
    np.testing.assert_array_equal(np.stack([b["x"] for b in it2]), np.stack(full[4:]))


def test_checkpoint_round_trip(tmp_path):
    mesh = sharding.data_mesh()
    state = sharding.replicate(mesh, {"w": np.arange(3.0, dtype=np.float32), "n": np.int32(2)})
    ckpt = checkpoint.Checkpoints(tmp_path / "checkpoints")
    ckpt.save(5, state, {"next_index": 5})
    ckpt.close()
    template = jax.tree.map(jnp.zeros_like, state)
    again = checkpoint.Checkpoints(tmp_path / "checkpoints")
    assert again.latest_step() == 5
    restored, data = again.restore(template)
    again.close()
    np.testing.assert_array_equal(np.asarray(restored["w"]), [0.0, 1.0, 2.0])
    assert data == {"next_index": 5}


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with files.atomic_open(target) as f:
            f.write("half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    files.write_json(target, {"a": 1})
    assert target.read_text().strip().startswith("{")


def test_atomic_write_has_the_permissions_of_open(tmp_path):
    files.write_text(tmp_path / "a.txt", "x")
    (tmp_path / "b.txt").write_text("x")
    assert (tmp_path / "a.txt").stat().st_mode == (tmp_path / "b.txt").stat().st_mode
