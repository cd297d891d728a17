"""The eLSTM as a Cell of the interface (rtrl_ref/cells/elstm.py; docs/derivation.md, section 10): through
the generic drivers of rtrl_ref.cells it gives the dedicated implementation's numbers, and it passes the
golden eLSTM oracle cases.

What is bit for bit and what is round-off (measured, and asserted so):

    forward c, the adjoint lam and g_s0, step-form traces and gradients, traces
    carried across two calls                                                          bit for bit
    BPTT gradients and g_x, the segment form, gradients summed over two calls           round-off
    golden cases, float64: c, grad_c_0 and the step form's traces bit for bit; the six gradients and the
    segment form's traces round-off (the references are the dedicated BPTT's one-GEMM sums); float32:
    round-off against the cases' float64 references, within the cases' own tolerances

The negative twin drops dc_dzpre * w_z from the Jacobian J_t (Eq. 6); every golden case then fails with
the forward pass still right.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrl_ref.bptt import bptt as dedicated_bptt
from rtrl_ref.cell import cell_step
from rtrl_ref.cells import CELLS, ELSTM_CELL, bptt, forward, rtrl_segment, rtrl_sequence, rtrl_step
from rtrl_ref.cells.interface import Cell, add_grads, expand_factors
from rtrl_ref.params import ELSTMParams
from rtrl_ref.rtrl import rtrl_segment as dedicated_rtrl_segment
from rtrl_ref.rtrl import rtrl_sequence as dedicated_rtrl_sequence
from rtrl_ref.traces import Traces, trace_step
from rtrl_ref.traces import zero_traces as dedicated_zero_traces
from rtrl_ref.unroll import elstm_forward
from verify.compare import assert_all_ok, assert_detected, compare_fields, tolerance
from verify.oracle import CheckReport, check_candidate, load_case
from verify.oracle.check import ReferenceTraces, compare_tensor, conform
from verify.oracle.schema import ELSTM_FIELDS
from verify.problem import bptt_grads, make_problem
from verify.strategies import problems

PROPERTY = settings(derandomize=True, deadline=None, max_examples=200)
GOLDEN = tuple(f"{kind}{regime}-{dtype}" for kind in ("", "layer-") for regime in ("basic", "long", "saturated")
               for dtype in ("f64", "f32"))


def random_traces(seed: int, p: ELSTMParams, B: int) -> ELSTMParams:
    """Carried-in traces, every entry ~ N(0, 1), in the params' dtype."""
    rng = np.random.default_rng(seed)
    return ELSTMParams(*(rng.standard_normal(a.shape).astype(a.dtype) for a in ELSTM_CELL.zero_traces(p, B)))


def assert_same(where: str, a, b):
    """Bit for bit, field by field (a and b NamedTuples with the same fields, or arrays)."""
    if isinstance(a, tuple):
        for field, u, v in zip(b._fields, a, b):
            np.testing.assert_array_equal(u, v, err_msg=f"{where}: {field}")
    else:
        np.testing.assert_array_equal(a, b, err_msg=where)


# --------------------------------------------------------------------------------------------
# the interface eLSTM is the dedicated eLSTM


def test_elstm_cell_is_exported_beside_the_agents_cells():
    """ELSTM_CELL is not in CELLS: the agent's --cell choices are "elstm" (the dedicated core) plus CELLS."""
    assert ELSTM_CELL.name == "elstm" and "elstm" not in CELLS
    p = ELSTM_CELL.init(np.random.default_rng(0), 3, 4, np.float64)
    assert type(p) is ELSTMParams and ELSTM_CELL.check_params(p) == (4, 3)
    assert type(ELSTM_CELL.zero_traces(p, 2)) is ELSTMParams
    with pytest.raises(ValueError, match="params.W_f"):
        ELSTM_CELL.check_params(p._replace(W_f=p.W_f[:, :2]))


@given(prob=problems(dtype=np.float64), dtype=st.sampled_from((np.float64, np.float32)))
@PROPERTY
def test_jacobian_and_local_factors_are_the_dedicated_ones(prob, dtype):
    """J_t is cell_step's dc_dctm1 (Eq. 6); expand_factors(local_factors) is trace_step's D_t (Eqs. 7-8, 42)."""
    p, x_t, c_tm1 = prob.p.astype(dtype), prob.x[0].astype(dtype), prob.c_0.astype(dtype)
    c_t, cache = ELSTM_CELL.step(p, x_t, c_tm1)
    c_ref, cache_ref = cell_step(p, x_t, c_tm1)
    assert_same("c_t", c_t, c_ref)
    assert_same("J_t", ELSTM_CELL.jacobian(cache), cache_ref.dc_dctm1)
    H, I = p.W_z.shape
    D = trace_step(dedicated_zero_traces(x_t.shape[0], H, I, dtype), cache)   # J * 0 + D_t = D_t
    assert_same("D_t", expand_factors(p, ELSTM_CELL.local_factors(p, cache), x_t), D)


@given(prob=problems(max_T=12), dtype=st.sampled_from((np.float64, np.float32)), seed=st.integers(0, 2**31 - 1),
       data=st.data())
@PROPERTY
def test_generic_drivers_reproduce_the_dedicated_elstm(prob, dtype, seed, data):
    """drivers.forward / bptt / rtrl_sequence and segment.rtrl_segment with ELSTM_CELL against
    rtrl_ref.unroll / bptt / rtrl, from a carried-in state and carried-in traces, per-row resets."""
    p, x, reset, c_0 = prob.p.astype(dtype), prob.x.astype(dtype), prob.reset, prob.c_0.astype(dtype)
    g_c = bptt_grads(prob).g_c.astype(dtype)                         # (T, B, H) immediate gradients
    T, B, _ = x.shape
    traces_in = random_traces(seed, p, B)
    where = f"{np.dtype(dtype).name} T={T} B={B} I={x.shape[2]} H={p.W_z.shape[0]}"
    tol = tolerance("exact", dtype)

    c, traj = elstm_forward(p, x, reset, c_0)
    gen = forward(ELSTM_CELL, p, x, reset, c_0)
    assert_same(f"forward c, {where}", gen.s, c)

    ded = dedicated_bptt(p, traj, reset, g_c)
    back = bptt(ELSTM_CELL, p, gen, reset, g_c)
    assert_same(f"bptt lam, {where}", back.lam, ded.lam)
    assert_same(f"bptt g_c0, {where}", back.g_s0, ded.g_c0)
    assert_all_ok(compare_fields("bptt grad", back.grads, ded.grads, tol)
                  + compare_fields("bptt", {"g_x": back.g_x}, {"g_x": ded.g_x}, tol), where)

    ded_rtrl = dedicated_rtrl_sequence(traj, reset, g_c, Traces(*traces_in))
    step = rtrl_sequence(ELSTM_CELL, p, x, reset, g_c, c_0, traces_in)
    assert_same(f"rtrl_sequence grad, {where}", step.grads, ded_rtrl.grads)
    assert_same(f"rtrl_sequence traces, {where}", Traces(*step.traces), ded_rtrl.traces)
    assert_same(f"rtrl_sequence state, {where}", step.s, c[-1])

    k = data.draw(st.integers(0, T), label="split")                  # two calls carrying state and traces
    if 0 < k < T:
        first = rtrl_sequence(ELSTM_CELL, p, x[:k], reset[:k], g_c[:k], c_0, traces_in)
        second = rtrl_sequence(ELSTM_CELL, p, x[k:], reset[k:], g_c[k:], first.s, first.traces)
        assert_same(f"carried traces, split {k}, {where}", Traces(*second.traces), ded_rtrl.traces)
        assert_all_ok(compare_fields("carried grad", add_grads(first.grads, second.grads), ded_rtrl.grads, tol),
                      f"split {k}, {where}")

    ded_seg = dedicated_rtrl_segment(p, traj, reset, g_c, Traces(*traces_in))
    seg = rtrl_segment(ELSTM_CELL, p, x, reset, g_c, c_0, traces_in)
    assert_same(f"rtrl_segment state, {where}", seg.s, c[-1])
    assert_all_ok(compare_fields("segment grad", seg.grads, ded_seg.grads, tol)
                  + compare_fields("segment traces", Traces(*seg.traces), ded_seg.traces, tol), where)


# --------------------------------------------------------------------------------------------
# the golden eLSTM cases through the generic drivers


def candidates(cell: Cell, case) -> dict:
    """{source: candidate arrays} for the case's inputs through the generic drivers with `cell`: c and the
    traces at every step by drivers.rtrl_step; final traces and the six gradients by each driver; grad_c_0
    (and, for a layer case, grad_x) by drivers.bptt."""
    a = case.arrays
    p, x, reset, c_0, g_c = case.params, a["x"], a["reset"], a["c_0"], a["g_c"]
    T, B, _ = x.shape
    s, traces, every = c_0, cell.zero_traces(p, B), []
    for t in range(T):
        s, traces, _ = rtrl_step(cell, p, x[t], reset[t], s, traces)
        every.append(traces)
    traj = forward(cell, p, x, reset, c_0)
    back = bptt(cell, p, traj, reset, g_c)
    step = rtrl_sequence(cell, p, x, reset, g_c, c_0)
    seg = rtrl_segment(cell, p, x, reset, g_c, c_0)
    common = {"c": traj.s, "grad_c_0": back.g_s0}
    if case.kind.name == "layer":
        common["grad_x"] = back.g_x                                   # a model case's grad_x has the gate's path too

    def grads(g):
        return {f"grad_{f}": getattr(g, f) for f in ELSTM_FIELDS}

    def final(tr):
        return {f"final_trace_{f}": getattr(tr, f) for f in ELSTM_FIELDS}

    per_step = {f"trace_{f}": np.stack([tr[k] for tr in every]) for k, f in enumerate(ELSTM_FIELDS)}   # (T, B, H[, I])
    return {"rtrl_sequence": {**common, **per_step, **final(step.traces), **grads(step.grads)},
            "rtrl_segment": {**common, **final(seg.traces), **grads(seg.grads)},
            "bptt": {**common, **grads(back.grads)}}


def check(case, cand: dict) -> CheckReport:
    """The oracle's verdict. A layer case: check_candidate (every output required). A model case:
    check_candidate's per-tensor comparison of the recurrent outputs only (h, the loss and the readout's
    gradients belong to the output gate and the head, outside the cell)."""
    if case.kind.name == "layer":
        return check_candidate(case, cand, require="all" if "trace_W_z" in cand else ())
    refs = ReferenceTraces(case)
    tensors = []
    for name in case.kind.outputs:
        if name in cand:
            arr, steps = conform(case, name, cand[name])
            ref = refs.at(name, steps) if name.startswith("trace_") else None
            tensors.append(compare_tensor(case, name, arr, ref, steps))
    missing = [n for n in case.kind.outputs if n not in cand]
    return CheckReport(case.name, str(case.dtype), case.sizes, tensors, missing, [], case.kind.name)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_elstm_cases_pass_through_the_generic_drivers(name):
    case = load_case(name)
    for source, cand in candidates(ELSTM_CELL, case).items():
        rep = check(case, cand)
        provided = {t.name for t in rep.tensors}
        assert {"c", *(f"grad_{f}" for f in ELSTM_FIELDS)} <= provided, f"{name} {source}: {sorted(provided)}"
        assert rep.ok, f"{source}:\n{rep.to_text()}"
        if case.dtype == np.float64:            # the step form runs the reference's own step functions
            exact = ["c", "grad_c_0"] + ([k for k in cand if "trace_" in k] if source == "rtrl_sequence" else [])
            for res in (t for t in rep.tensors if t.name in exact):
                assert res.max_abs == 0.0, f"{name} {source}: {res.name} not bit for bit (max abs {res.max_abs:.1e})"


# --------------------------------------------------------------------------------------------
# negative twin: a Jacobian without dc_dzpre * w_z


def elstm_without_w_z_term() -> Cell:
    """ELSTM_CELL whose J_t drops dc_dzpre * w_z (Eq. 6): every consumer of J_t (trace_update, step_backward,
    the segment form's jacobian) reads the cache's dc_dctm1, so the mistake reaches every driver."""
    def step(p, x_t, c_tm1):
        c_t, cache = ELSTM_CELL.step(p, x_t, c_tm1)
        return c_t, cache._replace(dc_dctm1=cache.f_t + cache.dc_dfpre * p.w_f)   # (B, H) wrong J_t

    return ELSTM_CELL._replace(step=step)


@pytest.mark.parametrize("name", GOLDEN)
def test_a_jacobian_without_the_w_z_term_fails_every_golden_case(name):
    case = load_case(name)
    for source, cand in candidates(elstm_without_w_z_term(), case).items():
        rep = check(case, cand)
        by_name = {t.name: t for t in rep.tensors}
        assert by_name["c"].ok, f"{name} {source}: the forward pass is right"
        assert not rep.ok, f"{name} {source}: the wrong Jacobian passed:\n{rep.to_text()}"
        assert not all(by_name[f"grad_{f}"].ok for f in ELSTM_FIELDS), f"{name} {source}: gradients passed"
        if source == "rtrl_sequence":
            assert not all(t.ok for t in rep.tensors if t.name.startswith("trace_")), f"{name}: traces passed"


@pytest.mark.parametrize("dtype", (np.float64, np.float32))
def test_a_jacobian_without_the_w_z_term_differs_from_the_dedicated_elstm(dtype):
    """The twin of the driver comparison: the wrong Jacobian changes the traces, the adjoint and every gradient."""
    prob = make_problem(3, 9, 3, 2, 4, dtype=dtype, resets="middle")
    p, x, reset, c_0 = prob.p, prob.x, prob.reset, prob.c_0
    g_c = bptt_grads(prob).g_c                                        # (T, B, H)
    _, traj = elstm_forward(p, x, reset, c_0)
    wrong, tol = elstm_without_w_z_term(), tolerance("exact", dtype)
    step = rtrl_sequence(wrong, p, x, reset, g_c, c_0)
    ded = dedicated_rtrl_sequence(traj, reset, g_c)
    assert_detected(compare_fields("rtrl_sequence traces", Traces(*step.traces), ded.traces, tol))
    assert_detected(compare_fields("rtrl_sequence grad", step.grads, ded.grads, tol))
    back = bptt(wrong, p, forward(wrong, p, x, reset, c_0), reset, g_c)
    assert_detected(compare_fields("bptt", {"lam": back.lam}, {"lam": dedicated_bptt(p, traj, reset, g_c).lam}, tol))
    seg = rtrl_segment(wrong, p, x, reset, g_c, c_0)
    ded_seg = dedicated_rtrl_segment(p, traj, reset, g_c)
    assert_detected(compare_fields("rtrl_segment grad", seg.grads, ded_seg.grads, tol))
