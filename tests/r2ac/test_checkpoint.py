"""Checkpoints: round trip, every refusal, and atomicity under a crash during the write."""

import json
import zipfile

import numpy as np
import pytest

import rtrl_ref.r2ac.checkpoint as ckpt
from rtrl_ref.r2ac.checkpoint import (
    load_checkpoint,
    read_checkpoint,
    rng_from_state,
    rng_state,
    save_checkpoint,
)
from rtrl_ref.r2ac.heads import init_heads
from rtrl_ref.r2ac.optim import adam_init, rmsprop_init
from rtrl_ref.r2ac.stems import init_mlp
from rtrl_ref.r2ac.tree import tree_leaves, tree_map


def make_trees(seed=0):
    rng = np.random.default_rng(seed)
    params = {"stem": init_mlp(rng, (5,), 8, np.float32, hidden=(6,)), "heads": init_heads(rng, 8, 3)}
    return {"params": params, "rmsprop": rmsprop_init(params), "adam": adam_init(params)}


def make_meta(rng):
    return {"config": {"env": "memory:copy", "lr": 6e-4, "unroll": 50}, "frames": 12345,
            "updates": 7, "rng": rng_state(rng)}


def assert_trees_equal(a, b):
    la, lb = tree_leaves(a), tree_leaves(b)
    assert [n for n, _ in la] == [n for n, _ in lb]
    for (name, x), (_, y) in zip(la, lb):
        assert x.dtype == y.dtype and x.shape == y.shape, name
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.fixture
def saved(tmp_path):
    trees = make_trees()
    rng = np.random.default_rng(42)
    rng.standard_normal(3)                                            # advance the state
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, trees, make_meta(rng))
    return path, trees, rng


def rewrite(path, mutate):
    """Rewrite the archive with mutate(arrays, header) applied (to forge a bad file)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(arrays.pop(ckpt.META_KEY).tobytes())
    mutate(arrays, header)
    arrays[ckpt.META_KEY] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(path, **arrays)


def test_round_trip(saved):
    path, trees, rng = saved
    loaded, meta = load_checkpoint(path, make_trees(seed=1))
    assert_trees_equal(loaded, trees)
    assert isinstance(loaded["params"]["stem"], type(trees["params"]["stem"]))
    assert meta["config"] == {"env": "memory:copy", "lr": 6e-4, "unroll": 50}
    assert (meta["frames"], meta["updates"]) == (12345, 7)
    np.testing.assert_array_equal(rng_from_state(meta["rng"]).standard_normal(4), rng.standard_normal(4))
    assert not [p.name for p in path.parent.iterdir() if p.name != path.name]  # no temporary files


def test_overwrite_replaces(saved):
    path, trees, _ = saved
    doubled = tree_map(lambda a: a * 2, trees)
    save_checkpoint(path, doubled, {"frames": 1})
    loaded, meta = load_checkpoint(path, trees)
    assert_trees_equal(loaded, doubled)
    assert meta == {"frames": 1}


def test_refuses_truncated_file(saved):
    path, trees, _ = saved
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path, trees)


def test_refuses_flipped_bytes(saved):
    path, trees, _ = saved
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("params/stem.layers.0.W.npy")
        offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.file_size - 4
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF                                              # inside an array's data
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path, trees)


def test_refuses_checksum_mismatch(saved):
    path, trees, _ = saved
    key = "params/heads.policy.W"
    rewrite(path, lambda arrays, header: arrays.__setitem__(key, arrays[key] + 1))
    with pytest.raises(ValueError, match=r"checksum mismatch for array params/heads\.policy\.W"):
        load_checkpoint(path, trees)


def test_refuses_pickled_objects(saved):
    path, trees, _ = saved
    arrays = {"x": np.array([{"evil": 1}], dtype=object)}
    np.savez(path, **arrays)                                          # pickles the object array
    with pytest.raises(ValueError, match="pickled object"):
        load_checkpoint(path, trees)


def test_refuses_other_schema_version_and_format(saved):
    path, trees, _ = saved
    rewrite(path, lambda arrays, header: header.__setitem__("schema_version", 99))
    with pytest.raises(ValueError, match="expected schema_version 1, got 99"):
        load_checkpoint(path, trees)
    rewrite(path, lambda arrays, header: header.__setitem__("format", "something.else"))
    with pytest.raises(ValueError, match="expected format"):
        load_checkpoint(path, trees)


def test_refuses_plain_npz_without_metadata(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, a=np.ones(3))
    with pytest.raises(ValueError, match="no __meta__ entry"):
        read_checkpoint(path)


@pytest.mark.parametrize("change, match", [
    (lambda t: t["params"]["heads"]._replace(policy=t["params"]["heads"].policy._replace(
        W=np.zeros((4, 8), np.float32))), r"params/heads\.policy\.W: expected shape \(4, 8\)"),
    (lambda t: t["params"]["heads"]._replace(policy=t["params"]["heads"].policy._replace(
        W=np.zeros((3, 8), np.float64))), "expected shape .* dtype float64, got shape .* dtype float32"),
])
def test_refuses_mismatch_with_like(saved, change, match):
    path, trees, _ = saved
    like = make_trees()
    like["params"]["heads"] = change(like)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(path, like)


def test_refuses_missing_or_extra_trees(saved):
    path, trees, _ = saved
    like = make_trees()
    del like["adam"]
    with pytest.raises(ValueError, match="unexpected"):
        load_checkpoint(path, like)
    like = make_trees()
    like["extra"] = {"x": np.zeros(2)}
    with pytest.raises(ValueError, match=r"missing \['extra/x'\]"):
        load_checkpoint(path, like)


def test_crash_during_write_keeps_previous_checkpoint(saved, monkeypatch):
    path, trees, _ = saved
    before = path.read_bytes()

    def crashing_writer(file, arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise RuntimeError("simulated crash inside the writer")

    monkeypatch.setattr(ckpt, "_write_npz", crashing_writer)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_checkpoint(path, tree_map(lambda a: a * 0, trees), {"frames": 0})
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]    # the temporary file is gone
    loaded, meta = load_checkpoint(path, trees)
    assert_trees_equal(loaded, trees)
    assert meta["frames"] == 12345


def test_save_rejects_bad_meta_and_names(tmp_path):
    trees = make_trees()
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "a.npz", trees, {"x": np.ones(2)})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        save_checkpoint(tmp_path / "a.npz", trees, {"x": float("nan")})
    with pytest.raises(ValueError, match="trees: expected a dict"):
        save_checkpoint(tmp_path / "a.npz", {"a/b": trees["params"]}, {})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_file_mode_follows_the_umask_not_the_private_temp_mode(tmp_path, umask):
    import os

    old = os.umask(umask)
    try:
        ckpt.save_checkpoint(tmp_path / "c.npz", dict(a=dict(w=np.zeros(3, np.float32))), dict(step=1))
        (tmp_path / "plain.txt").write_text("x")                           # what open() gives a new file
    finally:
        os.umask(old)
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == (tmp_path / "plain.txt").stat().st_mode & 0o777
    assert (tmp_path / "c.npz").stat().st_mode & 0o777 == 0o666 & ~umask
