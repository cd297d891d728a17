"""Stacked eLSTM layers (rtrl_ref/stacked.py; docs/derivation.md, section 11, Eqs. 34-39): step-form RTRL with
dense cross-layer traces == layer-by-layer BPTT == finite differences, L = 1 == the single-layer code, and
negative twins (cross-layer traces dropped, or not reset) that the same checks must fail.

The loss reads every layer's cell non-linearly, L = sum_l sum_{t,b,h} a^l c^l + q^l (c^l)^2 / 2, so the immediate
gradient is g^l = a^l + q^l c^l; with `top_only` the coefficients of every layer below the top are zero (g^l = 0
exactly: the loss reads the top layer only).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrl_ref import stacked
from rtrl_ref.bptt import bptt
from rtrl_ref.cells.interface import add_grads
from rtrl_ref.params import ELSTMParams
from rtrl_ref.rtrl import rtrl_sequence
from rtrl_ref.stacked import (
    CrossTraces,
    StackedRTRLResult,
    StackedState,
    init_stacked,
    stacked_bptt,
    stacked_forward,
    stacked_grads_from_traces,
    stacked_rtrl_sequence,
    trace_bytes,
    zero_stacked_state,
)
from rtrl_ref.traces import Traces
from rtrl_ref.unroll import elstm_forward
from verify.compare import (
    Comparison,
    assert_all_ok,
    assert_detected,
    compare_fields,
    judge,
    measure,
    tolerance,
)
from verify.fd import fd_check
from verify.strategies import ALL_RESETS, row_reset_mask

PROPERTY = settings(derandomize=True, deadline=None, max_examples=60)
SMALLER = settings(derandomize=True, deadline=None, max_examples=25)
FD_SETTINGS = settings(derandomize=True, deadline=None, max_examples=20)
SCALES = (0.3, 1.0, 2.5)   # perturbation of the init: mild, generic, saturating gates
# RTRL vs BPTT, both in the same dtype. float32: looser than the single layer's 'exact' 2e-4, because the dense
# cross-layer products sum more terms; still 50x above float32's epsilon times the longest sums here.
TOL = {np.dtype(np.float64): tolerance("exact", np.float64), np.dtype(np.float32): 1e-3}


class Case(NamedTuple):
    params: tuple            # L x ELSTMParams
    x: np.ndarray            # (T, B, I)
    reset: np.ndarray        # (T, B) bool
    c_0: tuple               # L x (B, H_l) carried-in cells
    coef: tuple              # L x (2, T, B, H_l): a^l, q^l of the loss
    state_in: StackedState   # c_0 with random carried-in traces (own and cross)


def random_like(rng: np.random.Generator, a: np.ndarray) -> np.ndarray:
    return rng.standard_normal(a.shape).astype(a.dtype)


def make_case(seed: int, T: int, B: int, I: int, widths: tuple, dtype=np.float64, reset="random",
              scale: float = 0.3, top_only: bool = False) -> Case:
    """The stacked init plus N(0, scale^2) on every entry (generic biases and recurrent weights of both signs;
    large scales saturate the gates), random inputs, cells, loss coefficients and carried-in traces."""
    rng = np.random.default_rng(seed)
    params = init_stacked(rng, I, widths, np.float64)
    params = tuple(ELSTMParams(*(a + scale * rng.standard_normal(a.shape) for a in p)).astype(dtype)
                   for p in params)
    x = rng.standard_normal((T, B, I)).astype(dtype)                  # (T, B, I)
    if isinstance(reset, str):
        reset = row_reset_mask(rng, T, B, reset)
    c_0 = tuple((0.5 * rng.standard_normal((B, H_l))).astype(dtype) for H_l in widths)   # L x (B, H_l)
    coef = [rng.standard_normal((2, T, B, H_l)).astype(dtype) for H_l in widths]         # L x (2, T, B, H_l)
    if top_only:
        coef[:-1] = [np.zeros_like(a) for a in coef[:-1]]
    like = zero_stacked_state(params, B)
    own = tuple(Traces(*(random_like(rng, a) for a in S)) for S in like.own)
    cross = tuple(tuple(CrossTraces(*(random_like(rng, a) for a in S)) for S in row) for row in like.cross)
    return Case(params, x, reset, c_0, tuple(coef), StackedState(c_0, own, cross))


def loss_and_g(case: Case, trajs) -> tuple[float, tuple]:
    """L = sum_l sum a^l c^l + q^l (c^l)^2 / 2 and the immediate gradients g^l = a^l + q^l c^l (L x (T, B, H_l))."""
    loss, g_c = 0.0, []
    for (a, q), traj in zip(case.coef, trajs):
        c = traj.c_t                                                  # (T, B, H_l)
        loss += float(np.sum(a * c + 0.5 * q * c * c))
        g_c.append((a + q * c).astype(c.dtype))
    return loss, tuple(g_c)


@st.composite
def cases(draw, dtype=np.float64, layers=(1, 2, 3), min_T: int = 1, max_T: int = 6, top_only=None) -> Case:
    L = draw(st.sampled_from(layers), label="L")
    widths = tuple(draw(st.lists(st.integers(1, 4), min_size=L, max_size=L), label="H"))
    T = draw(st.integers(min_T, max_T), label="T")
    B = draw(st.integers(1, 4), label="B")
    I = draw(st.integers(1, 3), label="I")
    pattern = draw(st.sampled_from(ALL_RESETS), label="resets")
    scale = draw(st.sampled_from(SCALES), label="scale")
    top = draw(st.booleans(), label="top_only") if top_only is None else top_only
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    reset = row_reset_mask(np.random.default_rng(seed + 1), T, B, pattern)
    return make_case(seed, T, B, I, widths, dtype, reset, scale, top)


def describe(case: Case) -> str:
    T, B, I = case.x.shape
    widths = [p.W_z.shape[0] for p in case.params]
    top = not any(np.any(a) for a in case.coef[:-1])
    return f"L={len(widths)} H={widths} T={T} B={B} I={I} top_only={top} resets={np.flatnonzero(case.reset).tolist()}"


# ---------------------------------------------------------------------------------------------
# the checks (each returns judged Comparison rows; a twin passes a wrong RTRL)


def check_rtrl_vs_bptt(case: Case, rtrl=stacked_rtrl_sequence) -> list[Comparison]:
    """Step-form RTRL from the carried-in cells and traces == layer-by-layer BPTT (Eq. 38) + the carried-in part
    sum_l sum_b <g_c0^l, S^{l,k}_in> (Eq. 37 with g = g_c0), per layer; and RTRL's last cells == the forward's."""
    trajs = stacked_forward(case.params, case.x, case.reset, case.c_0)
    _, g_c = loss_and_g(case, trajs)
    back = stacked_bptt(case.params, trajs, case.reset, g_c)
    carried = stacked_grads_from_traces(back.g_c0, case.state_in)
    want = [add_grads(a, b) for a, b in zip(back.grads, carried)]
    got = rtrl(case.params, case.x, case.reset, g_c, case.state_in)
    tol = TOL[case.x.dtype]
    rows = []
    for l, (a, b) in enumerate(zip(got.grads, want)):
        rows += compare_fields(f"grad[{l}]", a, b, tol)
    return rows + judge([measure(f"c[{l}]", got.state.c[l], traj.c_t[-1], tol) for l, traj in enumerate(trajs)])


def check_split(case: Case, split: int) -> list[Comparison]:
    """RTRL over [0, split) then [split, T), cells and all traces carried == one run over [0, T): the gradient
    and the final state (cells, own and cross traces)."""
    trajs = stacked_forward(case.params, case.x, case.reset, case.c_0)
    _, g_c = loss_and_g(case, trajs)
    whole = stacked_rtrl_sequence(case.params, case.x, case.reset, g_c, case.state_in)
    first = stacked_rtrl_sequence(case.params, case.x[:split], case.reset[:split], tuple(g[:split] for g in g_c),
                                  case.state_in)
    second = stacked_rtrl_sequence(case.params, case.x[split:], case.reset[split:], tuple(g[split:] for g in g_c),
                                   first.state)
    tol = TOL[case.x.dtype]
    total = tuple(add_grads(a, b) for a, b in zip(first.grads, second.grads))
    return compare_fields("split grad", total, whole.grads, tol) + compare_fields(
        "split state", second.state, whole.state, tol)


def check_bptt_fd(case: Case, bptt_driver=stacked_bptt, max_entries: int = 6) -> list[Comparison]:
    """BPTT gradients of every layer's parameters, of x and of every carried-in cell vs central differences."""
    def f():
        return loss_and_g(case, stacked_forward(case.params, case.x, case.reset, case.c_0))[0]

    trajs = stacked_forward(case.params, case.x, case.reset, case.c_0)
    _, g_c = loss_and_g(case, trajs)
    back = bptt_driver(case.params, trajs, case.reset, g_c)
    return fd_check("grad", f, dict(p=case.params, x=case.x, c_0=case.c_0),
                    dict(p=back.grads, x=back.g_x, c_0=back.g_c0), max_entries=max_entries)


def check_one_layer(case: Case) -> list[Comparison]:
    """L = 1: the stacked forward, BPTT and RTRL == elstm_forward, rtrl_ref.bptt.bptt, rtrl_ref.rtrl.rtrl_sequence."""
    p, = case.params
    c, traj = elstm_forward(p, case.x, case.reset, case.c_0[0])
    (a, q), = case.coef
    g_c = a + q * c                                                   # (T, B, H)
    single = bptt(p, traj, case.reset, g_c)
    single_rtrl = rtrl_sequence(traj, case.reset, g_c, case.state_in.own[0])
    trajs = stacked_forward(case.params, case.x, case.reset, case.c_0)
    back = stacked_bptt(case.params, trajs, case.reset, (g_c,))
    got = stacked_rtrl_sequence(case.params, case.x, case.reset, (g_c,), case.state_in)
    tol = TOL[case.x.dtype]
    return (judge([measure("forward c", trajs[0].c_t, c, tol)])
            + compare_fields("bptt", (back.grads[0], back.g_x, back.g_c0[0]), (single.grads, single.g_x, single.g_c0),
                             tol)
            + compare_fields("rtrl grad", got.grads[0], single_rtrl.grads, tol)
            + compare_fields("rtrl traces", got.state.own[0], single_rtrl.traces, tol))


# ---------------------------------------------------------------------------------------------
# properties


@PROPERTY
@given(case=cases())
def test_rtrl_step_form_equals_bptt(case):
    assert_all_ok(check_rtrl_vs_bptt(case), describe(case))


@SMALLER
@given(case=cases(dtype=np.float32))
def test_rtrl_step_form_equals_bptt_float32(case):
    assert_all_ok(check_rtrl_vs_bptt(case), describe(case))


@SMALLER
@given(data=st.data())
def test_rtrl_carried_over_a_split_equals_one_run(data):
    case = data.draw(cases(min_T=2), label="case")
    split = data.draw(st.integers(1, case.x.shape[0] - 1), label="split")
    assert_all_ok(check_split(case, split), f"split {split} ({describe(case)})")


@FD_SETTINGS
@given(case=cases())
def test_bptt_matches_finite_differences(case):
    assert_all_ok(check_bptt_fd(case), describe(case))


@SMALLER
@given(case=cases(layers=(1,)))
def test_one_layer_equals_the_single_layer_code(case):
    assert_all_ok(check_one_layer(case), describe(case))


# ---------------------------------------------------------------------------------------------
# negative twins: the same checks must fail on RTRL without the cross-layer blocks, or without their reset


def twin_case(L: int, seed: int = 3, top_only: bool = True) -> Case:
    """A problem on which the twins are wrong: T = 5, a reset in the middle of one row only, the loss on the top
    layer only (so every lower layer's gradient comes through the cross-layer traces)."""
    reset = np.zeros((5, 3), bool)
    reset[2, 1] = True
    return make_case(seed, T=5, B=3, I=2, widths=(3, 4, 2)[:L], reset=reset, top_only=top_only)


def without_input_term(monkeypatch):
    """Drop the dense dc_du^l_t @ S^{l-1,k}_t term of Eq. 36: the cross traces only decay what was carried in."""
    right = stacked.input_term
    monkeypatch.setattr(stacked, "input_term",
                        lambda dc_du, S: CrossTraces(*(np.zeros_like(a) for a in right(dc_du, S))))


def without_cross_reset(monkeypatch):
    """Reset (Eq. 10) the cells and the own traces, but not the cross traces."""
    right = stacked.reset_stacked_state
    monkeypatch.setattr(stacked, "reset_stacked_state",
                        lambda state, reset_t: right(state, reset_t)._replace(cross=state.cross))


def rtrl_layers_independent(params, x, reset, g_c, state=None) -> StackedRTRLResult:
    """Each layer's own single-layer RTRL on its input sequence (no cross-layer traces at all, Eq. 37 without
    its cross term): what RTRL of stacked element-wise layers would be if the layers were trained separately."""
    trajs = stacked_forward(params, x, reset, state.c)
    grads = tuple(rtrl_sequence(traj, reset, g, own).grads for traj, g, own in zip(trajs, g_c, state.own))
    return StackedRTRLResult(grads, state._replace(c=tuple(traj.c_t[-1] for traj in trajs)))


@pytest.mark.parametrize("L", (2, 3))
@pytest.mark.parametrize("twin", ("no input term", "no cross reset"))
def test_rtrl_check_fails_on_wrong_cross_traces(monkeypatch, twin, L):
    case = twin_case(L)
    assert_all_ok(check_rtrl_vs_bptt(case), "the right RTRL passes on the twin's problem")
    {"no input term": without_input_term, "no cross reset": without_cross_reset}[twin](monkeypatch)
    assert_detected(check_rtrl_vs_bptt(case), f"{twin}, L = {L}")


@pytest.mark.parametrize("L", (2, 3))
def test_rtrl_check_fails_with_independent_layers(L):
    case = twin_case(L, top_only=False)
    assert_detected(check_rtrl_vs_bptt(case, rtrl=rtrl_layers_independent), f"L = {L}")


@settings(derandomize=True, deadline=None, max_examples=15)
@given(case=cases(layers=(2, 3)))
def test_rtrl_check_fails_without_input_term_on_drawn_problems(case):
    """The twin over drawn sizes, resets, scales and losses: with L >= 2 the input term always matters (even at
    T = 1, c^2_0 reads theta^1 through c^1_0)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        without_input_term(monkeypatch)
        rows = check_rtrl_vs_bptt(case)
    assert_detected(rows, describe(case))


def test_fd_check_fails_when_bptt_drops_the_input_gradient():
    """BPTT twin: each layer's BPTT on its own immediate gradient only (G^{l-1} = g^{l-1}, no g_u^l)."""
    def separate(params, trajs, reset, g_c):
        right = stacked_bptt(params, trajs, reset, g_c)
        grads = tuple(bptt(p, traj, reset, g).grads for p, traj, g in zip(params, trajs, g_c))
        return right._replace(grads=grads)

    case = twin_case(2, top_only=False)
    assert_all_ok(check_bptt_fd(case), "the right BPTT passes on the twin's problem")
    assert_detected(check_bptt_fd(case, bptt_driver=separate))


# ---------------------------------------------------------------------------------------------
# plumbing, the measurement helper and errors


def test_rtrl_leaves_the_carried_in_state():
    case = twin_case(3)
    kept = [a.copy() for a in _leaves(case.state_in)]
    trajs = stacked_forward(case.params, case.x, case.reset, case.c_0)
    stacked_rtrl_sequence(case.params, case.x, case.reset, loss_and_g(case, trajs)[1], case.state_in)
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(case.state_in), kept))


def _leaves(state: StackedState) -> list[np.ndarray]:
    return [*state.c, *(a for S in state.own for a in S), *(a for row in state.cross for S in row for a in S)]


@pytest.mark.parametrize("widths", [(3,), (2, 3), (4, 1, 2), (2, 2, 2, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_trace_bytes_counts_every_trace(widths, dtype):
    params = init_stacked(np.random.default_rng(0), 3, widths, dtype)
    state = zero_stacked_state(params, B=2)
    actual = sum(a.nbytes for a in _leaves(state)) - sum(c.nbytes for c in state.c)
    assert trace_bytes(2, len(widths), widths, 3, dtype) == actual
    if len(set(widths)) == 1:
        assert trace_bytes(2, len(widths), widths[0], 3, dtype) == actual


def test_trace_bytes_of_one_layer_is_the_single_layer_traces():
    B, H, I = 5, 7, 3
    assert trace_bytes(B, 1, H, I, np.float32) == 4 * B * (2 * H * I + 4 * H)


def test_bad_input_is_one_line_value_error():
    case = twin_case(2)
    g_c = loss_and_g(case, stacked_forward(case.params, case.x, case.reset, case.c_0))[1]
    wrong_chain = (case.params[0], init_stacked(np.random.default_rng(1), 5, (4,), np.float64)[0])
    with pytest.raises(ValueError, match=r"^params\[1\]\.W_z: expected I = 3 \(the H of params\[0\]\), got I = 5$"):
        stacked_forward(wrong_chain, case.x, case.reset)
    with pytest.raises(ValueError, match=r"^params: expected a non-empty tuple of ELSTMParams"):
        stacked_forward((), case.x, case.reset)
    with pytest.raises(ValueError, match=r"^x: expected shape \(T=None, B=None, I=2\), got \(5, 3, 4\)$"):
        stacked_forward(case.params, np.zeros((5, 3, 4)), case.reset)
    with pytest.raises(ValueError, match=r"^g_c: expected a tuple of 2 arrays \(one per layer\), got length 1$"):
        stacked_rtrl_sequence(case.params, case.x, case.reset, g_c[:1])
    with pytest.raises(ValueError, match=r"^g_c\[1\]: expected shape \(T=5, B=3, H=4\), got \(5, 3, 3\)$"):
        stacked_rtrl_sequence(case.params, case.x, case.reset, (g_c[0], g_c[0]))
    bad = case.state_in._replace(cross=((), (case.state_in.cross[1][0]._replace(W_z=np.zeros((3, 4, 3, 3))),)))
    with pytest.raises(ValueError, match=r"^state\.cross\[1\]\[0\]\.W_z: expected shape \(3, 4, 3, 2\), got"):
        stacked_rtrl_sequence(case.params, case.x, case.reset, g_c, bad)
    with pytest.raises(ValueError, match=r"^H: expected one width or L = 2 widths, got \(3,\)$"):
        trace_bytes(1, 2, (3,), 2)


def test_top_only_gradients_may_be_given_as_none():
    case = twin_case(3)
    trajs = stacked_forward(case.params, case.x, case.reset, case.c_0)
    _, g_c = loss_and_g(case, trajs)
    assert not np.any(g_c[0]) and not np.any(g_c[1])
    with_zeros = stacked_rtrl_sequence(case.params, case.x, case.reset, g_c, case.state_in)
    with_none = stacked_rtrl_sequence(case.params, case.x, case.reset, (None, None, g_c[2]), case.state_in)
    back = stacked_bptt(case.params, trajs, case.reset, (None, None, g_c[2]))
    for a, b in zip(with_zeros.grads, with_none.grads):
        assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert_all_ok(check_rtrl_vs_bptt(case))
    assert all(np.any(g.W_z) for g in back.grads)
