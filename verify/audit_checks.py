"""The rows of the audit matrix: verify.checks run on one problem each, as report rows.

Each function returns a list of `Row`s, one per named tensor. The code under audit is a
`verify.checks.Drivers` (the library's by default); the audit's negative twins pass deliberately
wrong ones from verify.broken and require the same check to fail.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from verify import checks
from verify.cell_checks import CellProblem, check_cell_bptt_fd, check_cell_rtrl_step, make_cell_problem
from verify.checks import LIBRARY, Drivers
from verify.compare import Comparison
from verify.problem import Problem, make_problem


class Row(NamedTuple):
    check: str
    sizes: str
    dtype: str
    backend: str
    tensor: str
    max_abs: float | None
    rel: float | None
    tol: float | None
    relation: str       # "<=": agreement within tol; ">=": a difference that must be measurable
    verdict: str        # "pass", "FAIL" or "skipped: <reason>"
    note: str = ""
    family: str = ""    # the matrix family the row belongs to (set by the audit)

    @property
    def ok(self) -> bool:
        return self.verdict != "FAIL"


class Setup(NamedTuple):
    """One problem of the matrix and how it was drawn."""

    prob: Problem
    label: str

    @property
    def dtype(self) -> str:
        return self.prob.x.dtype.name


def setup(seed: int, T: int, B: int, I: int, H: int, dtype: str = "float64",
          regime: str = "normal", resets: str = "random") -> Setup:
    prob = make_problem(seed, T, B, I, H, dtype=np.dtype(dtype), regime=regime, resets=resets)
    label = f"T={T} B={B} I={I} H={H} resets={resets} regime={regime} seed={seed}"
    return Setup(prob, label)


def row(check: str, label: str, dtype: str, backend: str, c: Comparison, note: str = "") -> Row:
    """A Row from a judged Comparison (structural zeros: verify/compare.py)."""
    if c.vacuous:
        extra = ("reference zero by construction, candidate zero within the floor" if c.ok
                 else "every reference zero: vacuous")
        note = f"{note}; {extra}" if note else extra
    return Row(check, label, dtype, backend, c.name, c.max_abs, c.rel, c.tol, c.relation,
               "pass" if c.ok else "FAIL", note)


def rows(check: str, s: Setup, backend: str, comparisons: list[Comparison], note: str = "") -> list[Row]:
    return [row(check, s.label, s.dtype, backend, c, note) for c in comparisons]


def skipped(check: str, label: str, dtype: str, backend: str, reason: str) -> Row:
    return Row(check, label, dtype, backend, "-", None, None, None, "", f"skipped: {reason}")


def failed(check: str, label: str, dtype: str, backend: str, error: Exception) -> Row:
    return Row(check, label, dtype, backend, "-", None, None, None, "", "FAIL",
               f"raised {type(error).__name__}: {error}")


def bptt_vs_fd(s: Setup, impl: Drivers = LIBRARY, max_entries: int | None = None, seed: int = 0) -> list[Row]:
    if s.dtype != "float64":
        return [skipped("bptt vs finite differences", s.label, s.dtype, "numpy", "float64 only")]
    note = "full sweep" if max_entries is None else f"at most {max_entries}+1 sampled entries per tensor"
    return rows("bptt vs finite differences", s, "numpy", checks.check_bptt_fd(s.prob, impl, max_entries, seed), note)


def rtrl_step_vs_bptt(s: Setup, impl: Drivers = LIBRARY, backend: str = "numpy") -> list[Row]:
    return rows("rtrl step form vs bptt", s, backend, checks.check_rtrl_step(s.prob, impl, backend))


def rtrl_segment_vs_bptt(s: Setup, unroll: int, impl: Drivers = LIBRARY, backend: str = "numpy") -> list[Row]:
    T = s.prob.x.shape[0]
    label = f"rtrl segment form ({-(-T // unroll)} unrolls of {unroll}) vs bptt and step form"
    return rows(label, s, backend, checks.check_rtrl_segment(s.prob, range(unroll, T, unroll), impl, backend))


def dense_vs_rtrl(s: Setup, impl: Drivers = LIBRARY) -> list[Row]:
    return rows("dense influence-matrix rtrl vs rtrl", s, "numpy", checks.check_dense(s.prob, impl))


def backend_vs_numpy(s: Setup, backend: str, impl: Drivers = LIBRARY) -> list[Row]:
    """The drivers on `backend` (elstm_forward, bptt, rtrl_segment, rtrl_sequence) and its two
    kernels, at the problem's sizes, against NumPy."""
    B, H, I, T = s.prob.x.shape[1], s.prob.p.W_z.shape[0], s.prob.x.shape[2], s.prob.x.shape[0]
    check = f"{backend} vs numpy"
    return (rows(check + " (drivers)", s, backend, checks.check_drivers_on(s.prob, backend, impl))
            + rows(check + " (step kernel)", s, backend, checks.check_backend_step(backend, B, H, I, s.dtype))
            + rows(check + " (carried pass)", s, backend,
                   checks.check_backend_carried_pass(backend, T, B, H, I, s.dtype)))


def tbptt_bias(seed: int, T: int, k: int, dtype: str = "float64", mode: str = "window",
               impl: Drivers = LIBRARY, threshold: float = 1e-2) -> list[Row]:
    """TBPTT(k < T) measurably differs from BPTT (relation '>='), TBPTT(T) equals it."""
    label = f"T={T} B=2 I=3 H=4 resets=none regime=forget_open seed={seed} loss@T-1"
    out = []
    for c in checks.check_tbptt_bias(seed, T, k, dtype, mode, impl, threshold):
        check = f"tbptt({mode}, k={k}) bias vs bptt" if c.relation == ">=" else f"tbptt({mode}, k=T) vs bptt"
        out.append(row(check, label, np.dtype(dtype).name, "numpy", c,
                       "truncation must be visible" if c.relation == ">=" else ""))
    return out


class CellSetup(NamedTuple):
    """One problem of a cell of rtrl_ref.cells and how it was drawn."""

    prob: CellProblem
    label: str

    @property
    def dtype(self) -> str:
        return self.prob.x.dtype.name


def cell_setup(name: str, seed: int, T: int, B: int, I: int, H: int, dtype: str = "float64",
               regime: str = "normal", resets: str = "rows") -> CellSetup:
    prob = make_cell_problem(name, seed, T, B, I, H, dtype, regime, resets)
    return CellSetup(prob, f"T={T} B={B} I={I} H={H} resets={resets} regime={regime} seed={seed}")


def cell_bptt_vs_fd(s: CellSetup, cell=None, max_entries: int | None = None, seed: int = 0) -> list[Row]:
    """The cell's full BPTT vs central finite differences (float64); `cell` a wrong variant (twins)."""
    check = f"{s.prob.cell.name}: bptt vs finite differences"
    if s.dtype != "float64":
        return [skipped(check, s.label, s.dtype, "numpy", "float64 only")]
    note = "full sweep" if max_entries is None else f"at most {max_entries}+1 sampled entries per tensor"
    return rows(check, s, "numpy", check_cell_bptt_fd(s.prob, cell, max_entries=max_entries, seed=seed), note)


def cell_rtrl_vs_bptt(s: CellSetup, backend: str = "numpy", rtrl=None, cuts=()) -> list[Row]:
    """The cell's step-form RTRL on `backend` (or `rtrl`, a wrong variant) over calls cut at `cuts`
    vs full BPTT."""
    check = f"{s.prob.cell.name}: rtrl step form vs bptt" + (f" (cut at {', '.join(map(str, cuts))})"
                                                            if cuts else "")
    return rows(check, s, backend, check_cell_rtrl_step(s.prob, backend, rtrl, cuts))


def oracle_golden(adapter: str | None = None) -> list[Row]:
    """Every golden case (model-, layer- and cell-level) checked against the NumPy reference, or the
    model-level ones against an adapter's candidate."""
    from verify.oracle import GOLDEN, LAYER_GOLDEN, check_candidate, compute_outputs, layer_outputs, load_case
    from verify.oracle.cell_case import cell_inputs, cell_outputs
    from verify.oracle.make import CELL_GOLDEN

    out = []
    if adapter is not None:
        try:
            import importlib

            cand = importlib.import_module(f"verify.adapters.{adapter}").candidate
        except ImportError as e:
            return [skipped(f"oracle: {adapter} adapter vs golden cases", "golden set", "-",
                            adapter, f"not available ({e.name or e})")]
    for spec in GOLDEN + (() if adapter else LAYER_GOLDEN + CELL_GOLDEN):   # the adapters are model-level
        case = load_case(spec.name)
        if adapter:
            got = cand(case)
        elif case.kind.cell:
            got = cell_outputs(*cell_inputs(case), case.trace_steps)
        elif case.kind.name == "layer":
            a = case.arrays
            got = layer_outputs(case.params, a["x"], a["reset"], a["c_0"], a["g_c"], case.trace_steps)
        else:
            got = compute_outputs(case.problem, case.trace_steps)
        rep = check_candidate(case, got, require="all" if adapter is None else ())
        worst = max(rep.tensors, key=lambda t: t.rel / t.tol)
        note = f"{len(rep.tensors)} tensors; worst shown" if rep.ok else rep.summary()
        label = f"{spec.name}: T={spec.T} B={spec.B} I={spec.I} H={spec.H} {spec.regime}"
        out.append(Row(f"oracle: {adapter or 'numpy reference'} vs golden case", label,
                       spec.dtype, adapter or "numpy", worst.name, worst.max_abs, worst.rel,
                       worst.tol, "<=", "pass" if rep.ok else "FAIL", note))
    return out
