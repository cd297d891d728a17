"""Reading and writing case and candidate files, safely.

Writing is deterministic: arrays go into the .npz in a fixed order with a fixed timestamp, so
the same arrays give a byte-identical file. Reading never unpickles (allow_pickle=False) and turns
every way a file can be broken into one `MalformedInput` error with a readable message.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

FIXED_TIME = (1980, 1, 1, 0, 0, 0)
SAVEZ_FIX = ("Fix: numpy.savez(PATH, **{k: v.detach().cpu().numpy() for k, v in out.items()}) "
             "(or np.asarray(v) for JAX arrays)")


class MalformedInput(Exception):
    """A case or candidate file that cannot be checked (exit status 2 of the CLI)."""


def write_npz(path: Path, arrays: dict) -> Path:
    """Write `arrays` as a compressed .npz, byte-identical for identical arrays."""
    path = Path(path)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(a, order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    return path


def read_npz(path: Path, what: str) -> dict:
    """Every array of an .npz, loaded without pickle; MalformedInput on any defect."""
    path = Path(path)
    if not path.is_file():
        raise MalformedInput(f"{what}: file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(6)
    if not head:
        raise MalformedInput(f"{what}: {path} is empty")
    if head.startswith(b"\x93NUMPY"):
        raise MalformedInput(f"{what}: expected an .npz archive of named arrays, "
                             f"got a single .npy array in {path}")
    if head.startswith(b"\x80"):
        raise MalformedInput(f"{what}: {path} holds a pickled object (pickles are refused; "
                             f"store plain numeric arrays with numpy.savez). {SAVEZ_FIX}")
    if not head.startswith(b"PK"):
        raise MalformedInput(f"{what}: {path} is not an .npz archive (no zip signature)")
    if _torch_save_zip(path):
        raise MalformedInput(f"{what}: {path} was written by torch.save (a zip holding data.pkl, a "
                             f"pickle; pickles are refused). {SAVEZ_FIX}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise MalformedInput(f"{what}: {path} holds a pickled object (object arrays and "
                                 f"pickles are refused; store plain numeric arrays)") from None
        raise MalformedInput(f"{what}: cannot read {path} as .npz: {e}") from None
    except Exception as e:  # zip, zlib, header errors: all malformed
        raise MalformedInput(f"{what}: {path} is not a readable .npz archive "
                             f"(truncated or corrupt?): {type(e).__name__}: {e}") from None
    bad = sorted(n for n, a in arrays.items() if not isinstance(a, np.ndarray))
    if bad:
        raise MalformedInput(f"{what}: {path}: members {bad} are not .npy arrays")
    return arrays


def _torch_save_zip(path: Path) -> bool:
    """A zip archive in torch.save's format: a member named data.pkl (ARCHIVE/data.pkl)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in zf.namelist())
    except Exception:  # any damage (BadZipFile, NotImplementedError for an unknown version, ...): np.load reports it
        return False


def write_json(path: Path, meta: dict) -> Path:
    path = Path(path)
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return path


def read_json(path: Path, what: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MalformedInput(f"{what}: metadata file not found: {path}")
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise MalformedInput(f"{what}: {path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise MalformedInput(f"{what}: {path}: expected a JSON object, got {type(meta).__name__}")
    return meta
