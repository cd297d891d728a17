"""The oracle: case files with inputs and reference outputs, and a checker for other code.

    schema    the case schemas: model cases (version 1), layer cases (version 2, the recurrent
              layer alone) and cell cases (version 3, an IndRNN, minGRU or LRU alone): array
              names, shapes, roles, tolerances, checksums
    io        deterministic .npz/.json writing; safe reading (no pickle, MalformedInput; names
              torch.save files)
    case      Case, load_case (validated against the schema and the checksums)
    make      CaseSpec, GOLDEN, LAYER_GOLDEN, CELL_GOLDEN, make_case, write_case, compute_outputs,
              layer_outputs, traces_at (the NumPy reference)
    cell_case the reference of cell cases: cell_inputs, cell_outputs, cell_traces_at
    check     check_candidate, check_callable, check_files: per-tensor errors, the first diverging
              step and element (traces at any steps), strict names
    diagnose  names common mistakes of a failing candidate (scale, sign, transpose, swap, time shift)
    fuzz      live fuzzing of a layer callable with Hypothesis, shrinking, a case file to replay

CLI: python -m verify.oracle {make,check,list,reference,fuzz} (see docs/oracle.md).
"""

from verify.oracle.case import GOLDEN_DIR, Case, load_case
from verify.oracle.cell_case import cell_outputs
from verify.oracle.check import CheckReport, check_callable, check_candidate, check_files
from verify.oracle.io import MalformedInput
from verify.oracle.make import (
    CELL_GOLDEN,
    GOLDEN,
    LAYER_GOLDEN,
    CaseSpec,
    compute_outputs,
    layer_outputs,
    make_case,
    traces_at,
    write_case,
)
from verify.oracle.schema import CELL_SCHEMA_VERSION, LAYER_SCHEMA_VERSION, SCHEMA_VERSION

__all__ = [
    "GOLDEN_DIR", "Case", "load_case",
    "CheckReport", "check_callable", "check_candidate", "check_files",
    "MalformedInput",
    "GOLDEN", "LAYER_GOLDEN", "CELL_GOLDEN", "CaseSpec", "compute_outputs", "layer_outputs",
    "cell_outputs", "make_case", "traces_at", "write_case",
    "SCHEMA_VERSION", "LAYER_SCHEMA_VERSION", "CELL_SCHEMA_VERSION",
]
