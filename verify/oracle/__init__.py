"""The oracle: case files with inputs and reference outputs, and a checker for other code.

    schema   the case schema (version 1): array names, shapes, roles, tolerances, checksums
    io       deterministic .npz/.json writing; safe reading (no pickle, MalformedInput)
    case     Case, load_case (validated against the schema and the checksums)
    make     CaseSpec, GOLDEN, make_case, write_case, compute_outputs (the NumPy reference)
    check    check_candidate, check_callable, check_files: per-tensor errors and the first
             diverging step and element

CLI: python -m verify.oracle {make,check,list,reference} (see docs/oracle.md).
"""

from verify.oracle.case import GOLDEN_DIR, Case, load_case
from verify.oracle.check import CheckReport, check_callable, check_candidate, check_files
from verify.oracle.io import MalformedInput
from verify.oracle.make import GOLDEN, CaseSpec, compute_outputs, make_case, write_case
from verify.oracle.schema import SCHEMA_VERSION

__all__ = [
    "GOLDEN_DIR", "Case", "load_case",
    "CheckReport", "check_callable", "check_candidate", "check_files",
    "MalformedInput",
    "GOLDEN", "CaseSpec", "compute_outputs", "make_case", "write_case",
    "SCHEMA_VERSION",
]
