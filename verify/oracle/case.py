"""A loaded oracle case: metadata + arrays, validated against its schema and its checksums.

A case is of one kind (`schema.Kind`): a model case (schema version 1), a layer case (schema
version 2, "kind": "layer") or a cell case (schema version 3, "kind": "cell", "cell": NAME).
`Case.kind` tells which; everything else reads the kind's arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from rtrl_ref.params import ELSTMParams, OutGateParams
from verify.oracle import schema
from verify.oracle.io import MalformedInput, read_json, read_npz
from verify.problem import Problem

GOLDEN_DIR = Path(__file__).resolve().parent.parent / "golden"


class Case(NamedTuple):
    meta: dict
    arrays: dict          # name -> np.ndarray, every array of the kind's specs

    @property
    def kind(self) -> schema.Kind:
        kind = schema.kind_of(self.meta)
        if kind is None:
            raise MalformedInput(f"case: schema_version/kind: expected 1, 2 with kind 'layer' or 3 with "
                                 f"kind 'cell', got {self.meta.get('schema_version')!r}/"
                                 f"{self.meta.get('kind')!r}")
        return kind

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.meta["dtype"])

    @property
    def sizes(self) -> dict:
        return dict(self.meta["sizes"])

    @property
    def trace_steps(self) -> np.ndarray:
        return self.arrays["trace_steps"]                             # (N,)

    @property
    def tolerance(self) -> dict:
        return dict(self.meta["tolerance"])

    @property
    def params(self) -> ELSTMParams:
        """The six eLSTM parameters (in the case dtype)."""
        return ELSTMParams(*(self.arrays[f] for f in schema.ELSTM_FIELDS))

    @property
    def problem(self) -> Problem:
        """The case's inputs as a verify.problem.Problem (in the case dtype; model cases only)."""
        if self.kind is not schema.MODEL:
            raise ValueError(f"case {self.name}: expected a model case (schema version 1) for "
                             f".problem, got a {self.kind.name} case; use .params and .inputs()")
        a = self.arrays
        return Problem(ELSTMParams(*(a[f] for f in schema.ELSTM_FIELDS)),
                       OutGateParams(a["W_o"], a["b_o"]), a["V"], a["x"], a["reset"],
                       a["c_0"], a["y"])

    def inputs(self) -> dict:
        return {n: self.arrays[n] for n in self.kind.inputs}

    def reference(self) -> dict:
        return {n: self.arrays[n] for n in self.kind.outputs}


def case_paths(path) -> tuple[Path, Path]:
    """(NAME.json, NAME.npz) for NAME, NAME.json or NAME.npz; a bare golden name also works."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".json", ".npz") else p
    json_path, npz_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".npz")
    if not json_path.exists() and not npz_path.exists() and p.parent == Path("."):
        golden = GOLDEN_DIR / stem.name
        if (golden.with_name(golden.name + ".json")).exists():
            return golden.with_name(golden.name + ".json"), golden.with_name(golden.name + ".npz")
    return json_path, npz_path


def load_case(path) -> Case:
    """Load and validate a case; MalformedInput (with the reason) if anything is off."""
    json_path, npz_path = case_paths(path)
    meta = read_json(json_path, "case")
    validate_meta(meta, json_path)
    arrays = read_npz(npz_path, "case")
    validate_arrays(meta, arrays, npz_path)
    return Case(meta, arrays)


def validate_meta(meta: dict, where) -> None:
    if meta.get("schema") != schema.SCHEMA:
        raise MalformedInput(f"case {where}: expected schema {schema.SCHEMA!r}, "
                             f"got {meta.get('schema')!r}")
    kind = schema.kind_of(meta)
    if kind is None:
        version = meta.get("schema_version")
        kind_note = f" with kind {meta.get('kind')!r}" if version == schema.LAYER_SCHEMA_VERSION else ""
        if version == schema.CELL_SCHEMA_VERSION:
            kind_note = f" with kind {meta.get('kind')!r} and cell {meta.get('cell')!r}"
        raise MalformedInput(f"case {where}: expected schema_version {schema.SCHEMA_VERSION}, "
                             f"got {version!r}{kind_note} (this checker reads version "
                             f"{schema.SCHEMA_VERSION}, model cases, version "
                             f"{schema.LAYER_SCHEMA_VERSION} with kind 'layer', and version "
                             f"{schema.CELL_SCHEMA_VERSION} with kind 'cell' and a cell of "
                             f"{tuple(schema.CELL_KINDS)})")
    if meta.get("dtype") not in schema.DEFAULT_TOLERANCE:
        raise MalformedInput(f"case {where}: dtype: expected one of "
                             f"{sorted(schema.DEFAULT_TOLERANCE)}, got {meta.get('dtype')!r}")
    sizes = meta.get("sizes")
    if not isinstance(sizes, dict):
        raise MalformedInput(f"case {where}: sizes: expected an object, got {sizes!r}")
    for k in kind.size_keys:
        v = sizes.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise MalformedInput(f"case {where}: sizes.{k}: expected an integer >= 1, got {v!r}")
    tol = meta.get("tolerance")
    if not isinstance(tol, dict) or any(not isinstance(tol.get(g), (int, float)) or tol[g] <= 0
                                        for g in kind.groups):
        raise MalformedInput(f"case {where}: tolerance: expected a positive number for each of "
                             f"{kind.groups}, got {tol!r}")
    if not isinstance(meta.get("arrays"), dict):
        raise MalformedInput(f"case {where}: arrays: expected an object of checksums")


def validate_arrays(meta: dict, arrays: dict, where) -> None:
    sizes, dtype = meta["sizes"], np.dtype(meta["dtype"])
    kind = schema.kind_of(meta)
    missing = [n for n in kind.by_name if n not in arrays]
    if missing:
        raise MalformedInput(f"case {where}: missing arrays {missing}")
    extra = sorted(set(arrays) - set(kind.by_name))
    if extra:
        raise MalformedInput(f"case {where}: unexpected arrays {extra}")
    for spec in kind.specs:
        a = arrays[spec.name]
        want = schema.expected_shape(spec, sizes)
        if a.shape != want:
            raise MalformedInput(f"case {where}: {spec.name}: expected shape "
                                 f"{schema.shape_label(spec, sizes)}, got {a.shape}")
        ok = {schema.FLOAT: a.dtype == dtype, schema.BOOL: a.dtype == np.bool_,
              schema.INT: a.dtype.kind == "i"}[spec.kind]
        if not ok:
            want_dtype = {schema.FLOAT: str(dtype), schema.BOOL: "bool", schema.INT: "an integer"}
            raise MalformedInput(f"case {where}: {spec.name}: expected dtype "
                                 f"{want_dtype[spec.kind]}, got {a.dtype}")
        entry = meta["arrays"].get(spec.name)
        if not isinstance(entry, dict) or entry.get("sha256") != schema.checksum(a):
            raise MalformedInput(f"case {where}: {spec.name}: checksum does not match the "
                                 f"metadata (the case files are corrupt or were edited)")
    steps = arrays["trace_steps"]
    T = sizes["T"]
    if np.any(steps < 0) or np.any(steps >= T) or np.any(np.diff(steps) <= 0):
        raise MalformedInput(f"case {where}: trace_steps: expected increasing steps in "
                             f"[0, T={T}), got {steps.tolist()}")
