"""Atomic checkpoints of named arrays plus JSON metadata, without pickle.

One file, an uncompressed NumPy `.npz` archive:

    <tree>/<leaf name>   one array per leaf of each saved pytree (names from tree.py)
    __meta__             the metadata: UTF-8 JSON stored as a uint8 array

    metadata = {"format": "rtrl_ref.r2ac.checkpoint", "schema_version": 1,
                "arrays": {key: {"shape": [...], "dtype": "float32", "sha256": "..."}},
                "meta": <the caller's JSON-serialisable dict: config, counters, RNG state, ...>}

Keeping the metadata inside the archive makes the write a single `os.replace`: the archive is
written to a temporary file in the same directory, flushed and fsync'ed, then renamed over the
target (and the directory fsync'ed), so a crash at any point leaves either the old checkpoint or
the new one, never a mix. The file gets the mode of any other new file (0666 less the umask),
not the private 0600 of a temporary file. Reading uses `np.load(allow_pickle=False)` and refuses, with a
ValueError, anything that is not exactly what `like` expects: unreadable or truncated files,
pickled objects, another format or schema version, checksum mismatches, and arrays whose names,
shapes or dtypes differ.

RNG state: `rng_state(rng)` gives the JSON-serialisable `bit_generator.state` dict for `meta`,
`rng_from_state(state)` rebuilds the Generator.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from rtrl_ref.r2ac.tree import tree_leaves, tree_unflatten

FORMAT = "rtrl_ref.r2ac.checkpoint"
SCHEMA_VERSION = 1
META_KEY = "__meta__"
CHECKPOINT_FILE = "checkpoint.npz"           # the checkpoint of a run folder


def checksum(a: np.ndarray) -> str:
    """sha256 of the C-ordered bytes of an array."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def rng_from_state(state: dict) -> np.random.Generator:
    if not isinstance(state, dict) or "bit_generator" not in state:
        raise ValueError(f"state: expected a bit_generator.state dict, got {type(state).__name__}")
    bit_generator = getattr(np.random, state["bit_generator"], None)
    if bit_generator is None:
        raise ValueError(f"state: unknown bit generator {state['bit_generator']!r}")
    bg = bit_generator()
    bg.state = state
    return np.random.Generator(bg)


def _named_arrays(trees: dict) -> dict[str, np.ndarray]:
    if not isinstance(trees, dict) or not all(isinstance(k, str) and k and "/" not in k for k in trees):
        raise ValueError(f"trees: expected a dict with non-empty str keys without '/', got "
                         f"{list(trees) if isinstance(trees, dict) else type(trees).__name__}")
    arrays = {}
    for tree_name, tree in trees.items():
        for leaf_name, a in tree_leaves(tree):
            a = a.get() if hasattr(a, "get") else np.asarray(a)     # CuPy -> NumPy
            if a.dtype.hasobject:
                raise ValueError(f"trees[{tree_name!r}].{leaf_name}: expected a numeric array, got dtype object")
            arrays[f"{tree_name}/{leaf_name}"] = a
    return arrays


def _write_npz(file, arrays: dict[str, np.ndarray]) -> None:
    """Write the archive to an open binary file (a seam for the crash test)."""
    np.savez(file, **arrays)


def save_checkpoint(path, trees: dict, meta: dict) -> None:
    """Write trees (name -> pytree of arrays) and meta (JSON-serialisable dict) atomically to path."""
    path = Path(path)
    arrays = _named_arrays(trees)
    try:
        meta_json = json.dumps({
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "arrays": {key: {"shape": list(a.shape), "dtype": a.dtype.str, "sha256": checksum(a)}
                       for key, a in arrays.items()},
            "meta": meta,
        }, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"meta: expected a JSON-serialisable dict without NaN/Inf, got an error: {err}") from err
    arrays[META_KEY] = np.frombuffer(meta_json.encode("utf-8"), np.uint8)  # (bytes,)
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, default_file_mode())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    _fsync_directory(directory)


def default_file_mode() -> int:
    """The mode `open()` gives a new file: 0o666 less the process umask."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return                                   # platforms without directory handles
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_all(path: Path) -> dict[str, np.ndarray]:
    """Every member of the archive, loaded without pickle; corrupt files become ValueError."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise
    except ValueError as err:
        if "allow_pickle" in str(err) or "pickle" in str(err).lower():
            raise ValueError(f"checkpoint {path}: refused, it holds a pickled object array "
                             f"(only plain numeric arrays are accepted)") from err
        raise ValueError(f"checkpoint {path}: corrupt or not a checkpoint ({err})") from err
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as err:
        raise ValueError(f"checkpoint {path}: corrupt or truncated ({type(err).__name__}: {err})") from err
    except Exception as err:        # zlib.error, struct.error, UnpicklingError from damaged bytes
        raise ValueError(f"checkpoint {path}: corrupt ({type(err).__name__}: {err})") from err


def read_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """Arrays by key and the full metadata, after format, version and checksum checks."""
    path = Path(path)
    arrays = _read_all(path)
    if META_KEY not in arrays:
        raise ValueError(f"checkpoint {path}: no {META_KEY} entry; not a {FORMAT} file")
    raw = arrays.pop(META_KEY)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint {path}: corrupt metadata ({err})") from err
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(f"checkpoint {path}: expected format {FORMAT!r}, got {got!r}")
    if header.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"checkpoint {path}: expected schema_version {SCHEMA_VERSION}, got "
                         f"{header.get('schema_version')!r}")
    listed = header.get("arrays", {})
    if sorted(listed) != sorted(arrays):
        raise ValueError(f"checkpoint {path}: the metadata lists arrays {sorted(listed)}, the archive "
                         f"holds {sorted(arrays)}")
    for key, a in arrays.items():
        entry = listed[key]
        if list(a.shape) != entry["shape"] or a.dtype.str != entry["dtype"]:
            raise ValueError(f"checkpoint {path}: array {key} has shape {a.shape} dtype {a.dtype}, "
                             f"the metadata says {tuple(entry['shape'])} {entry['dtype']}")
        if checksum(a) != entry["sha256"]:
            raise ValueError(f"checkpoint {path}: checksum mismatch for array {key} (corrupt file)")
    return arrays, header


def load_run_checkpoint(run_dir: Path, params, opt_state):
    """(trees, meta) of RUN/checkpoint.npz shaped like (params, opt_state); ValueError if unusable."""
    file = Path(run_dir) / CHECKPOINT_FILE
    if not file.exists():
        raise ValueError(f"{run_dir}: no checkpoint ({file} is missing)")
    return load_checkpoint(file, dict(params=params, opt_state=opt_state))


def load_checkpoint(path, like: dict) -> tuple[dict, dict]:
    """Read a checkpoint into trees shaped like `like` (name -> pytree); returns (trees, meta).

    The archive must hold exactly the leaves of `like`, with the same shapes and dtypes.
    """
    path = Path(path)
    arrays, header = read_checkpoint(path)
    expected = _named_arrays(like)
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise ValueError(f"checkpoint {path}: array names do not match `like`: missing {missing}, "
                         f"unexpected {extra}")
    for key, want in expected.items():
        got = arrays[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise ValueError(f"checkpoint {path}: array {key}: expected shape {want.shape} dtype "
                             f"{want.dtype}, got shape {got.shape} dtype {got.dtype}")
    trees = {name: tree_unflatten(tree, [arrays[f"{name}/{leaf}"] for leaf, _ in tree_leaves(tree)])
             for name, tree in like.items()}
    return trees, header["meta"]
