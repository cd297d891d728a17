"""The checks of the audit matrix, one function per row family (DESIGN.md section 4).

Each function returns a list of `Row`s, one per named tensor. The implementation under audit is
an `Implementation` (the shipped functions by default); the audit's negative twins pass
deliberately wrong ones from verify.broken and require the same check to fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rtrl_ref.bptt import bptt, tbptt
from rtrl_ref.cell import CellCache
from rtrl_ref.rtrl import RTRLResult, rtrl_segment, rtrl_sequence
from verify.compare import Comparison, compare, tolerance
from verify.fd import check_against_fd
from verify.problem import Problem, bptt_grads, loss, make_problem

PARAM_FIELDS = ("W_z", "W_f", "w_z", "w_f", "b_z", "b_f")


class Implementation(NamedTuple):
    """The gradient code under audit (same signatures as the shipped functions)."""

    problem_grads: Callable = bptt_grads      # Problem -> verify.problem.Backward
    rtrl_sequence: Callable = rtrl_sequence   # (traj, reset, g_c, traces, backend) -> RTRLResult
    rtrl_segment: Callable = rtrl_segment     # (p, traj, reset, g_c, traces, backend) -> SegmentResult
    tbptt: Callable = tbptt                   # (p, traj, reset, g_c, k, mode) -> BPTTResult


REFERENCE = Implementation()


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


def structural_zeros(prob: Problem, what: str) -> tuple[str, ...]:
    """Fields that are exactly zero by construction, so a zero reference is not vacuous there:
    with c_tm1 = 0 at every step (every step resets) the w_z and w_f gradients vanish, and with
    a reset at the last step of every row so do the final w_z and w_f traces."""
    every = bool(prob.reset.all()) if what == "grad" else bool(prob.reset[-1].all())
    return ("w_z", "w_f") if every else ()


def row(check: str, s: Setup, backend: str, c: Comparison, note: str = "") -> Row:
    """A Row from a Comparison; a zero reference fails as vacuous unless the field is a
    structural zero (verify.audit_checks.structural_zeros), which must then match exactly."""
    field = c.name.split(" ")[-1]
    kind = "grad" if c.name.startswith("grad") else "trace"
    if c.vacuous and field in structural_zeros(s.prob, kind):
        c = c._replace(ok=c.max_abs == 0.0, vacuous=False)
        note = (note + "; " if note else "") + "exactly zero by construction (c_tm1 = 0)"
    verdict = "pass" if c.ok else "FAIL"
    if c.vacuous:
        note = (note + "; " if note else "") + "reference is zero: vacuous"
    return Row(check, s.label, s.dtype, backend, c.name, c.max_abs, c.rel, c.tol, "<=", verdict, note)


def skipped(check: str, label: str, dtype: str, backend: str, reason: str) -> Row:
    return Row(check, label, dtype, backend, "-", None, None, None, "", f"skipped: {reason}")


def failed(check: str, label: str, dtype: str, backend: str, error: Exception) -> Row:
    return Row(check, label, dtype, backend, "-", None, None, None, "", "FAIL",
               f"raised {type(error).__name__}: {error}")


def on_backend(backend: str, *trees):
    """Move arrays (and NamedTuples of arrays) to the backend's device (CuPy for 'cupy')."""
    if backend != "cupy":
        return trees if len(trees) > 1 else trees[0]
    import cupy

    def move(t):
        if isinstance(t, tuple) and hasattr(t, "_fields"):
            return type(t)(*(move(a) for a in t))
        return None if t is None else cupy.asarray(t)

    moved = tuple(move(t) for t in trees)
    return moved if len(moved) > 1 else moved[0]


def slice_traj(traj: CellCache, start: int, stop: int) -> CellCache:
    return CellCache(*(a[start:stop] for a in traj))


# ---------------------------------------------------------------------------------------------
# 1. BPTT vs central finite differences (float64)


def bptt_vs_fd(s: Setup, impl: Implementation = REFERENCE, max_entries: int | None = None,
               seed: int = 0) -> list[Row]:
    prob = s.prob
    if s.dtype != "float64":
        return [skipped("bptt vs finite differences", s.label, s.dtype, "numpy", "float64 only")]
    grads = impl.problem_grads(prob).grads
    f = lambda: loss(prob)
    tol = tolerance("fd", "float64")
    rng = np.random.default_rng(seed)
    named = [(f"grad {n}", getattr(prob.p, n), getattr(grads.p, n)) for n in PARAM_FIELDS]
    named += [("grad W_o", prob.q.W_o, grads.q.W_o), ("grad b_o", prob.q.b_o, grads.q.b_o),
              ("grad V", prob.V, grads.V), ("grad x", prob.x, grads.x),
              ("grad c_0", prob.c_0, grads.c_0)]
    rows = []
    for name, arr, analytic in named:
        c = check_against_fd(name, f, arr, analytic, tol, max_entries=max_entries, rng=rng)
        note = "full sweep" if max_entries is None or arr.size <= max_entries else f"{max_entries}+1 sampled entries"
        if name == "grad c_0" and c.vacuous and bool(prob.reset[0].all()):
            c = c._replace(ok=c.max_abs == 0.0, vacuous=False)
            note += "; zero as expected (every row resets at step 0)"
        rows.append(row("bptt vs finite differences", s, "numpy", c, note))
    return rows


# ---------------------------------------------------------------------------------------------
# 2. RTRL (step and segment forms) vs BPTT


def rtrl_step_vs_bptt(s: Setup, impl: Implementation = REFERENCE, backend: str = "numpy") -> list[Row]:
    back = impl.problem_grads(s.prob)
    tol = tolerance("exact", s.dtype)
    traj, reset, g_c = on_backend(backend, back.traj, s.prob.reset, back.g_c)
    res = impl.rtrl_sequence(traj, reset, g_c, None, backend)
    return [row("rtrl step form vs bptt", s, backend,
                compare(f"grad {n}", getattr(res.grads, n), getattr(back.grads.p, n), tol))
            for n in PARAM_FIELDS]


def rtrl_segment_vs_bptt(s: Setup, unroll: int, impl: Implementation = REFERENCE,
                         backend: str = "numpy") -> list[Row]:
    """Segments of `unroll` steps with carried traces: their summed gradient is full BPTT, and
    the carried-out traces equal the step form's."""
    back = impl.problem_grads(s.prob)
    tol = tolerance("exact", s.dtype)
    T = s.prob.x.shape[0]
    p, traj, reset, g_c = on_backend(backend, s.prob.p, back.traj, s.prob.reset, back.g_c)
    traces, total = None, None
    for start in range(0, T, unroll):
        stop = min(start + unroll, T)
        seg = impl.rtrl_segment(p, slice_traj(traj, start, stop), reset[start:stop],
                                g_c[start:stop], traces, backend)
        traces = seg.traces
        total = seg.grads if total is None else type(total)(*(a + b for a, b in zip(total, seg.grads)))
    step: RTRLResult = rtrl_sequence(back.traj, s.prob.reset, back.g_c)
    label = f"rtrl segment form ({-(-T // unroll)} unrolls of {unroll}) vs bptt"
    rows = [row(label, s, backend, compare(f"grad {n}", getattr(total, n), getattr(back.grads.p, n), tol))
            for n in PARAM_FIELDS]
    rows += [row("rtrl segment vs step form", s, backend,
                 compare(f"final trace {n}", getattr(traces, n), getattr(step.traces, n), tol))
             for n in PARAM_FIELDS]
    return rows


def dense_vs_rtrl(s: Setup, impl: Implementation = REFERENCE) -> list[Row]:
    """The naive dense influence-matrix RTRL (verify.dense) against the step form."""
    from verify.dense import dense_rtrl

    back = bptt_grads(s.prob)
    res = impl.rtrl_sequence(back.traj, s.prob.reset, back.g_c, None, "numpy")
    dense = dense_rtrl(s.prob.p, s.prob.x, s.prob.reset, back.g_c, s.prob.c_0)
    tol = tolerance("exact", "float64")
    rows = [row("dense influence-matrix rtrl vs rtrl", s, "numpy",
                compare(f"grad {n}", getattr(res.grads, n), getattr(dense.grads, n), tol))
            for n in PARAM_FIELDS]
    off = dense.max_offdiag
    rows.append(Row("dense: influence of other units' parameters", s.label, s.dtype, "numpy",
                    "max |dc[h]/dtheta[k!=h]|", off, off, 0.0, "<=", "pass" if off == 0.0 else "FAIL",
                    "the blocks the element-wise trace drops are exactly zero"))
    return rows


# ---------------------------------------------------------------------------------------------
# 3. Every backend vs the NumPy reference


def backend_vs_numpy(s: Setup, backend: str, impl: Implementation = REFERENCE,
                     perturb: float = 0.0) -> list[Row]:
    """Step and segment forms on `backend` against NumPy; `perturb` scales the backend's
    gradients by (1 + perturb) (the negative twin)."""
    back = bptt_grads(s.prob)
    tol = tolerance("kernel", s.dtype)
    ref_step = rtrl_sequence(back.traj, s.prob.reset, back.g_c)
    ref_seg = rtrl_segment(s.prob.p, back.traj, s.prob.reset, back.g_c, ref_step.traces)
    p, traj, reset, g_c = on_backend(backend, s.prob.p, back.traj, s.prob.reset, back.g_c)
    got_step = impl.rtrl_sequence(traj, reset, g_c, None, backend)
    got_seg = impl.rtrl_segment(p, traj, reset, g_c, on_backend(backend, ref_step.traces), backend)
    rows = []
    for form, got, ref in (("step", got_step, ref_step), ("segment", got_seg, ref_seg)):
        grads = type(got.grads)(*(a * (1 + perturb) for a in got.grads))
        for n in PARAM_FIELDS:
            rows.append(row(f"{backend} {form} form vs numpy", s, backend,
                            compare(f"grad {n}", getattr(grads, n), getattr(ref.grads, n), tol)))
        for n in PARAM_FIELDS:
            rows.append(row(f"{backend} {form} form vs numpy", s, backend,
                            compare(f"trace {n}", getattr(got.traces, n), getattr(ref.traces, n), tol)))
    return rows


# ---------------------------------------------------------------------------------------------
# 4. Truncation bias of TBPTT(k)


def tbptt_bias(seed: int, T: int, k: int, dtype: str = "float64", mode: str = "window",
               impl: Implementation = REFERENCE, threshold: float = 1e-2) -> list[Row]:
    """Forget gates near 1 (memory span >> k) and a loss at the last step only: TBPTT(k < T)
    must differ from BPTT by at least `threshold`, TBPTT(T) must equal BPTT to round-off."""
    s = setup(seed, T, 2, 3, 4, dtype, regime="forget_open", resets="none")
    prob = s.prob
    back = bptt_grads(prob)
    rng = np.random.default_rng(seed)
    g_c = np.zeros_like(back.g_c)                                     # (T, B, H)
    g_c[-1] = rng.standard_normal(g_c[-1].shape)
    full = bptt(prob.p, back.traj, prob.reset, g_c).grads
    short = impl.tbptt(prob.p, back.traj, prob.reset, g_c, k, mode).grads
    whole = impl.tbptt(prob.p, back.traj, prob.reset, g_c, T, mode).grads
    label = s.label + " loss@T-1"
    rows = []
    for n in PARAM_FIELDS:
        c = compare(f"grad {n}", getattr(short, n), getattr(full, n), threshold)
        measurable = c.rel >= threshold and not c.vacuous
        rows.append(Row(f"tbptt({mode}, k={k}) bias vs bptt", label, s.dtype, "numpy", c.name,
                        c.max_abs, c.rel, threshold, ">=", "pass" if measurable else "FAIL",
                        "truncation must be visible"))
    tol = tolerance("exact", s.dtype)
    rows += [row(f"tbptt({mode}, k=T) vs bptt", Setup(prob, label), "numpy",
                 compare(f"grad {n}", getattr(whole, n), getattr(full, n), tol))
             for n in PARAM_FIELDS]
    return rows


# ---------------------------------------------------------------------------------------------
# 5. The golden oracle cases against the current code


def oracle_golden(adapter: str | None = None) -> list[Row]:
    """Every golden case checked against the NumPy reference (or an adapter's candidate)."""
    from verify.oracle import GOLDEN, check_candidate, compute_outputs, load_case

    rows = []
    if adapter is not None:
        try:
            import importlib

            cand = importlib.import_module(f"verify.adapters.{adapter}").candidate
        except ImportError as e:
            return [skipped(f"oracle: {adapter} adapter vs golden cases", "golden set", "-",
                            adapter, f"not available ({e.name or e})")]
    for spec in GOLDEN:
        case = load_case(spec.name)
        out = cand(case) if adapter else compute_outputs(case.problem, case.trace_steps)
        rep = check_candidate(case, out, require="all" if adapter is None else ())
        worst = max(rep.tensors, key=lambda t: t.rel / t.tol)
        note = f"{len(rep.tensors)} tensors; worst shown"
        if not rep.ok:
            note = rep.summary()
        label = f"{spec.name}: T={spec.T} B={spec.B} I={spec.I} H={spec.H} {spec.regime}"
        rows.append(Row(f"oracle: {adapter or 'numpy reference'} vs golden case", label,
                        spec.dtype, adapter or "numpy", worst.name, worst.max_abs, worst.rel,
                        worst.tol, "<=", "pass" if rep.ok else "FAIL", note))
    return rows
