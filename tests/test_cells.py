"""IndRNN, minGRU and LRU through the cell interface: RTRL == BPTT == finite differences, each check
with negative twins (docs/derivation.md, section 10, Eqs. 19-33).

The loss reads every state non-linearly, L = sum_{t,b,h} a s + c s^2 / 2 (per real and imaginary part
for the LRU's complex state), so the immediate gradient g_s = a + c s depends on the forward pass.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrl_ref.cells import CELLS, bptt, forward, get_cell, indrnn, lru, mingru, rtrl_sequence
from rtrl_ref.cells.drivers import reset_traces
from rtrl_ref.cells.interface import Cell, decay_add, mask_rows
from verify.compare import Comparison, assert_all_ok, assert_detected, compare_fields, judge, measure, tolerance
from verify.fd import fd_check
from verify.strategies import ALL_RESETS, row_reset_mask

CELL_NAMES = tuple(CELLS)
MODULES = {"indrnn": indrnn, "mingru": mingru, "lru": lru}
PROPERTY = settings(derandomize=True, deadline=None, max_examples=100)
SMALLER = settings(derandomize=True, deadline=None, max_examples=50)
FD_SETTINGS = settings(derandomize=True, deadline=None, max_examples=30)


class Case(NamedTuple):
    cell: Cell
    p: tuple               # the cell's params NamedTuple
    x: np.ndarray          # (T, B, I)
    reset: np.ndarray      # (T, B) bool
    s0_re: np.ndarray      # (B, H) real part of the carried-in state
    s0_im: np.ndarray      # (B, H) imaginary part (used by complex cells only)
    coef: np.ndarray       # (4, T, B, H) loss coefficients a, c (real part), a, c (imaginary part)
    traces_in: tuple       # carried-in traces, random

    @property
    def s_0(self):
        if np.iscomplexobj(self.cell.zero_state(self.p, 1)):
            return self.s0_re + 1j * self.s0_im
        return self.s0_re


SCALES = (0.3, 1.0, 2.5)   # perturbation of the init: mild, generic, saturating (tanh, sigmoid, |lam| near 0 or 1)


def make_case(name: str, seed: int, T: int, B: int, I: int, H: int, dtype=np.float64, reset="random",
              scale: float = 0.3) -> Case:
    """A random problem: the cell's init plus N(0, scale^2) on every entry, so that every parameter is
    generic (biases non-zero, recurrent weights of both signs) and large scales saturate the gates."""
    rng = np.random.default_rng(seed)
    cell = get_cell(name)
    p = cell.init(rng, I, H, np.float64)
    p = type(p)(*(a + scale * rng.standard_normal(a.shape) for a in p))
    if name == "lru":
        # phases beyond 2 pi only wrap around, and the finite differences' truncation error grows
        # with exp(theta)^3: keep arg(lam) = exp(theta) in (0, 2 pi] as the LRU's init does
        p = p._replace(theta=np.minimum(p.theta, np.log(2 * np.pi)))
    p = type(p)(*(a.astype(dtype) for a in p))
    x = rng.standard_normal((T, B, I)).astype(dtype)
    if isinstance(reset, str):
        reset = row_reset_mask(rng, T, B, reset)
    s0_re, s0_im = (0.5 * rng.standard_normal((2, B, H))).astype(dtype)
    coef = rng.standard_normal((4, T, B, H)).astype(dtype)
    like = cell.zero_traces(p, B)
    traces_in = type(like)(*(random_like(rng, a) for a in like))
    return Case(cell, p, x, reset, s0_re, s0_im, coef, traces_in)


def random_like(rng, a):
    out = rng.standard_normal(a.shape)
    if np.iscomplexobj(a):
        out = out + 1j * rng.standard_normal(a.shape)
    return out.astype(a.dtype)


def loss_and_g(case: Case, s):
    """L = sum a s + c s^2 / 2 per real part (and imaginary part); g_s = dL/dRe(s) + i dL/dIm(s) (Eq. 29)."""
    a, c, a_im, c_im = case.coef
    L = np.sum(a * s.real + 0.5 * c * s.real**2)
    g = a + c * s.real                                                # (T, B, H)
    if np.iscomplexobj(s):
        L += np.sum(a_im * s.imag + 0.5 * c_im * s.imag**2)
        g = g + 1j * (a_im + c_im * s.imag)
    return float(L), g.astype(s.dtype)


def as_real(a):
    """A complex array as its real and imaginary parts stacked (the comparisons are real)."""
    return np.stack([a.real, a.imag]) if np.iscomplexobj(a) else a


def realify(tree):
    return type(tree)(*(as_real(a) for a in tree))


@st.composite
def cases(draw, names=CELL_NAMES, dtype=np.float64, min_T: int = 1, max_T: int = 8) -> Case:
    name = draw(st.sampled_from(names), label="cell")
    T = draw(st.integers(min_T, max_T), label="T")
    B = draw(st.integers(1, 5), label="B")
    H = draw(st.integers(1, 6), label="H")
    I = draw(st.integers(1, 4), label="I")
    pattern = draw(st.sampled_from(ALL_RESETS), label="resets")
    scale = draw(st.sampled_from(SCALES), label="scale")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    reset = row_reset_mask(np.random.default_rng(seed + 1), T, B, pattern)
    return make_case(name, seed, T, B, I, H, dtype, reset, scale)


def describe(case: Case) -> str:
    T, B, I = case.x.shape
    return f"{case.cell.name} T={T} B={B} I={I} H={case.s0_re.shape[1]} resets={np.flatnonzero(case.reset).tolist()}"


# ---------------------------------------------------------------------------------------------
# the checks (each returns judged Comparison rows; a twin passes a wrong cell or driver)


def check_rtrl_vs_bptt(case: Case, cell: Cell | None = None, rtrl=rtrl_sequence) -> list[Comparison]:
    """Step-form RTRL from the carried-in state and traces == BPTT (Eq. 19) + the carried-in part
    sum_b <g_s0, S_in> (Eq. 14's form), tolerance('exact', dtype)."""
    traj = forward(case.cell, case.p, case.x, case.reset, case.s_0)
    _, g_s = loss_and_g(case, traj.s)
    back = bptt(case.cell, case.p, traj, case.reset, g_s)
    carried = case.cell.grads_from_traces(back.g_s0, case.traces_in)
    want = type(back.grads)(*(a + b for a, b in zip(back.grads, carried)))
    got = rtrl(cell or case.cell, case.p, case.x, case.reset, g_s, case.s_0, case.traces_in)
    return compare_fields("grad", got.grads, want, tolerance("exact", case.x.dtype))


def check_split(case: Case, split: int, carry_traces: bool = True) -> list[Comparison]:
    """RTRL over [0, split) then [split, T), state and traces carried == one run over [0, T): the
    gradient, the final state and the final traces; and the gradient == BPTT over [0, T)."""
    cell, p, x, reset = case.cell, case.p, case.x, case.reset
    traj = forward(cell, p, x, reset, case.s_0)
    _, g_s = loss_and_g(case, traj.s)
    whole = rtrl_sequence(cell, p, x, reset, g_s, case.s_0)
    first = rtrl_sequence(cell, p, x[:split], reset[:split], g_s[:split], case.s_0)
    second = rtrl_sequence(cell, p, x[split:], reset[split:], g_s[split:], first.s,
                           first.traces if carry_traces else None)
    total = type(first.grads)(*(a + b for a, b in zip(first.grads, second.grads)))
    tol = tolerance("exact", x.dtype)
    back = bptt(cell, p, traj, reset, g_s)
    return (compare_fields("split grad", total, whole.grads, tol)
            + compare_fields("split traces", realify(second.traces), realify(whole.traces), tol)
            + compare_fields("split grad vs bptt", total, back.grads, tol))


def check_bptt_fd(case: Case, cell: Cell | None = None, bptt_driver=bptt, max_entries: int = 12) -> list[Comparison]:
    """BPTT gradients of every parameter, x and s_0 (real and imaginary parts) vs central differences."""
    if case.x.dtype != np.float64:
        raise ValueError(f"case: expected float64 for finite differences, got {case.x.dtype}")
    complex_state = np.iscomplexobj(case.cell.zero_state(case.p, 1))

    def f():
        traj = forward(case.cell, case.p, case.x, case.reset, case.s_0)
        return loss_and_g(case, traj.s)[0]

    traj = forward(case.cell, case.p, case.x, case.reset, case.s_0)
    _, g_s = loss_and_g(case, traj.s)
    back = bptt_driver(cell or case.cell, case.p, traj, case.reset, g_s)
    params = dict(p=case.p, x=case.x, s0_re=case.s0_re)
    grads = dict(p=back.grads, x=back.g_x, s0_re=back.g_s0.real)
    if complex_state:
        params["s0_im"], grads["s0_im"] = case.s0_im, back.g_s0.imag
    return fd_check("grad", f, params, grads, max_entries=max_entries)


def check_jacobian_fd(case: Case, cell: Cell | None = None, eps: float = 1e-6) -> list[Comparison]:
    """One step's ds_t/ds_tm1 by central differences (real direction) is diagonal and equals `jacobian`."""
    cell = cell or case.cell
    s_tm1 = case.s_0                                                  # (B, H)
    _, cache = cell.step(case.p, case.x[0], s_tm1)
    J = cell.jacobian(cache)                                          # (B, H)
    H = s_tm1.shape[1]
    numeric = np.empty(s_tm1.shape + (H,), s_tm1.dtype)               # (B, H, H) [b, h, k] = ds_t[h]/ds_tm1[k]
    for k in range(H):
        e = np.zeros_like(s_tm1)
        e[:, k] = eps
        numeric[:, :, k] = (case.cell.step(case.p, case.x[0], s_tm1 + e)[0]
                            - case.cell.step(case.p, case.x[0], s_tm1 - e)[0]) / (2 * eps)
    analytic = np.zeros_like(numeric)
    idx = np.arange(H)
    analytic[:, idx, idx] = J
    return judge([measure("jacobian", as_real(analytic), as_real(numeric), tolerance("fd", np.float64),
                          floor=1e-3)])


# ---------------------------------------------------------------------------------------------
# properties


@pytest.mark.parametrize("name", CELL_NAMES)
@PROPERTY
@given(data=st.data())
def test_rtrl_step_form_equals_bptt(name, data):
    case = data.draw(cases(names=(name,)), label="case")
    assert_all_ok(check_rtrl_vs_bptt(case), describe(case))


@pytest.mark.parametrize("name", CELL_NAMES)
@SMALLER
@given(data=st.data())
def test_rtrl_step_form_equals_bptt_float32(name, data):
    case = data.draw(cases(names=(name,), dtype=np.float32), label="case")
    assert_all_ok(check_rtrl_vs_bptt(case), describe(case))


@pytest.mark.parametrize("name", CELL_NAMES)
@SMALLER
@given(data=st.data())
def test_rtrl_carried_over_a_split_equals_one_run(name, data):
    case = data.draw(cases(names=(name,), min_T=2), label="case")
    split = data.draw(st.integers(1, case.x.shape[0] - 1), label="split")
    assert_all_ok(check_split(case, split), f"split {split} ({describe(case)})")


@pytest.mark.parametrize("name", CELL_NAMES)
@FD_SETTINGS
@given(data=st.data())
def test_bptt_matches_finite_differences(name, data):
    case = data.draw(cases(names=(name,)), label="case")
    assert_all_ok(check_bptt_fd(case), describe(case))


@pytest.mark.parametrize("name", CELL_NAMES)
@FD_SETTINGS
@given(data=st.data())
def test_jacobian_is_diagonal_and_matches_finite_differences(name, data):
    case = data.draw(cases(names=(name,), max_T=1), label="case")
    assert_all_ok(check_jacobian_fd(case), describe(case))


# ---------------------------------------------------------------------------------------------
# negative twins: deliberately wrong cells and drivers that the same checks must fail


def twin_case(name: str, seed: int = 3) -> Case:
    """A problem on which every twin below is wrong: T = 7, resets in the middle of some rows only."""
    reset = np.zeros((7, 3), bool)
    reset[3, 1] = True
    return make_case(name, seed, T=7, B=3, I=3, H=4, reset=reset)


def with_jacobian(name: str, wrong_J) -> Cell:
    """The cell whose trace update decays with wrong_J(p, cache) instead of the Jacobian."""
    mod = MODULES[name]
    def trace_update(p, cache, S):
        return decay_add(wrong_J(p, cache), S, mod.local_terms(p, cache))

    return mod.CELL._replace(trace_update=trace_update)


def without_jacobian(name: str) -> Cell:
    """Traces that ignore the Jacobian: S_t = D_t (truncation to one step)."""
    mod = MODULES[name]
    return mod.CELL._replace(trace_update=lambda p, cache, S: mod.local_terms(p, cache))


def lru_gamma_constant_traces() -> Cell:
    """LRU traces that treat gamma as a constant: the nu local term lacks dgamma_dnu * u_t."""
    def trace_update(p, cache, S):
        local = lru.local_terms(p, cache)
        return decay_add(lru.jacobian(cache), S, local._replace(nu=cache.dlam_dnu * cache.h_tm1))

    return lru.CELL._replace(trace_update=trace_update)


RTRL_TWINS = {
    "indrnn: no Jacobian": lambda: without_jacobian("indrnn"),
    "indrnn: J = u (no tanh')": lambda: with_jacobian("indrnn", lambda p, c: np.broadcast_to(p.u, c.h_t.shape)),
    "mingru: no Jacobian": lambda: without_jacobian("mingru"),
    "mingru: J = z": lambda: with_jacobian("mingru", lambda p, c: c.z_t),
    "lru: no Jacobian": lambda: without_jacobian("lru"),
    "lru: J = conj(lam)": lambda: with_jacobian("lru", lambda p, c: np.broadcast_to(np.conj(c.lam), c.h_t.shape)),
    "lru: J = |lam|": lambda: with_jacobian("lru", lambda p, c: np.broadcast_to(np.abs(c.lam), c.h_t.shape)),
    "lru: gamma held constant": lru_gamma_constant_traces,
}


@pytest.mark.parametrize("twin", RTRL_TWINS)
def test_rtrl_check_fails_on_wrong_traces(twin):
    case = twin_case(twin.split(":")[0])
    assert_all_ok(check_rtrl_vs_bptt(case), "the right cell passes on the twin's problem")
    assert_detected(check_rtrl_vs_bptt(case, RTRL_TWINS[twin]()), twin)


@pytest.mark.parametrize("name", CELL_NAMES)
@settings(derandomize=True, deadline=None, max_examples=20)
@given(data=st.data())
def test_rtrl_check_fails_without_jacobian_on_drawn_problems(name, data):
    """The twin over drawn sizes and scales: with T >= 3 and no resets the history always matters."""
    case = data.draw(cases(names=(name,), min_T=3), label="case")
    case = case._replace(reset=np.zeros_like(case.reset))
    assert_detected(check_rtrl_vs_bptt(case, without_jacobian(name)), describe(case))


def rtrl_without_trace_reset(cell, p, x, reset, g_s, s_0=None, traces=None):
    """Resets the state but not the traces (Eq. 10 half done)."""
    traces = cell.zero_traces(p, x.shape[1]) if traces is None else traces
    s, grads = (cell.zero_state(p, x.shape[1]) if s_0 is None else s_0), None
    for t in range(x.shape[0]):
        s, cache = cell.step(p, x[t], mask_rows(s, reset[t]))
        traces = cell.trace_update(p, cache, traces)
        step = cell.grads_from_traces(g_s[t], traces)
        grads = step if grads is None else type(step)(*(a + b for a, b in zip(grads, step)))
    return rtrl_sequence(cell, p, x, reset, g_s, s_0)._replace(grads=grads)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_rtrl_check_fails_when_traces_are_not_reset(name):
    assert_detected(check_rtrl_vs_bptt(twin_case(name), rtrl=rtrl_without_trace_reset), name)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_split_check_fails_when_traces_are_not_carried(name):
    case = twin_case(name)
    assert_all_ok(check_split(case, 2), name)
    assert_detected(check_split(case, 2, carry_traces=False), name)


def with_backward(name: str, wrong):
    """The cell whose step_backward's results pass through wrong(g, cache, p, (g_tm1, g_x, grads))."""
    mod = MODULES[name]
    return mod.CELL._replace(step_backward=lambda g, cache, p: wrong(g, cache, p, mod.step_backward(g, cache, p)))


def lru_backward_gamma_constant(g, cache, p, out):
    g_tm1, g_x, grads = out
    missing = (np.conj(g) * cache.dgamma_dnu * cache.u_t).real.sum(0)       # (H,)
    return g_tm1, g_x, grads._replace(nu=grads.nu - missing)


BPTT_TWINS = {
    "indrnn: g_tm1 = u g (no tanh')": ("indrnn", lambda g, c, p, o: (p.u * g, *o[1:])),
    "mingru: g_tm1 = z g": ("mingru", lambda g, c, p, o: (c.z_t * g, *o[1:])),
    "mingru: dh_dzpre sign flipped": ("mingru", lambda g, c, p, o: (
        o[0], o[1] - 2 * (g * c.dh_dzpre) @ p.W_z,
        o[2]._replace(W_z=-o[2].W_z, b_z=-o[2].b_z))),
    "lru: g_tm1 = lam g (no conjugate)": ("lru", lambda g, c, p, o: (c.lam * g, *o[1:])),
    "lru: gamma held constant": ("lru", lru_backward_gamma_constant),
}


@pytest.mark.parametrize("twin", BPTT_TWINS)
def test_fd_check_fails_on_wrong_backward(twin):
    name, wrong = BPTT_TWINS[twin]
    case = twin_case(name)
    assert_all_ok(check_bptt_fd(case), "the right cell passes on the twin's problem")
    assert_detected(check_bptt_fd(case, with_backward(name, wrong)), twin)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_fd_check_fails_when_gradient_crosses_a_reset(name):
    def across(cell, p, traj, reset, g_s):
        return bptt(cell, p, traj, np.zeros_like(reset), g_s)

    assert_detected(check_bptt_fd(twin_case(name), bptt_driver=across), name)


JACOBIAN_TWINS = {
    "indrnn: J = u": ("indrnn", lambda c: np.broadcast_to(c.dh_dhtm1 / c.dh_dpre, c.h_t.shape)),
    "mingru: J = z": ("mingru", lambda c: c.z_t),
    "lru: J = conj(lam)": ("lru", lambda c: np.broadcast_to(np.conj(c.lam), c.h_t.shape)),
}


@pytest.mark.parametrize("twin", JACOBIAN_TWINS)
def test_jacobian_check_fails_on_a_wrong_jacobian(twin):
    name, wrong = JACOBIAN_TWINS[twin]
    case = twin_case(name)
    assert_all_ok(check_jacobian_fd(case), name)
    assert_detected(check_jacobian_fd(case, MODULES[name].CELL._replace(jacobian=wrong)), twin)


# ---------------------------------------------------------------------------------------------
# the interface's plumbing and its errors


@pytest.mark.parametrize("name", CELL_NAMES)
def test_reset_traces_zeroes_only_the_reset_rows(name):
    case = twin_case(name)
    reset_t = np.array([False, True, False])
    out = reset_traces(case.traces_in, reset_t)
    for a, b in zip(out, case.traces_in):
        assert np.all(a[1] == 0) and np.array_equal(a[[0, 2]], b[[0, 2]])


@pytest.mark.parametrize("name", CELL_NAMES)
def test_rtrl_sequence_leaves_the_carried_in_state_and_traces(name):
    case = twin_case(name)
    s_0, kept = case.s_0.copy(), type(case.traces_in)(*(a.copy() for a in case.traces_in))
    traj = forward(case.cell, case.p, case.x, case.reset, case.s_0)
    rtrl_sequence(case.cell, case.p, case.x, case.reset, loss_and_g(case, traj.s)[1], case.s_0, case.traces_in)
    assert np.array_equal(case.s_0, s_0) and all(np.array_equal(a, b) for a, b in zip(case.traces_in, kept))


@pytest.mark.parametrize("name", CELL_NAMES)
def test_bad_input_raises_one_line_value_errors(name):
    case = twin_case(name)
    cell, p, x, reset = case.cell, case.p, case.x, case.reset
    traj = forward(cell, p, x, reset, case.s_0)
    _, g_s = loss_and_g(case, traj.s)
    bad = [
        ("x: expected shape", lambda: forward(cell, p, x[..., :2], reset)),
        ("x: expected dtype", lambda: forward(cell, p, x.astype(np.float32), reset)),
        ("reset: expected dtype bool", lambda: forward(cell, p, x, reset.astype(int))),
        ("reset: expected shape", lambda: forward(cell, p, x, reset[:-1])),
        ("s_0: expected shape", lambda: forward(cell, p, x, reset, case.s_0[:, :-1])),
        ("g_s: expected shape", lambda: bptt(cell, p, traj, reset, g_s[:-1])),
        ("g_s: expected shape", lambda: rtrl_sequence(cell, p, x, reset, g_s[:, :1])),
        ("traces: expected", lambda: rtrl_sequence(cell, p, x, reset, g_s, None, tuple(case.traces_in))),
        ("traces.", lambda: rtrl_sequence(cell, p, x, reset, g_s, None,
                                          type(case.traces_in)(*(a[:1] for a in case.traces_in)))),
        ("params.", lambda: forward(cell, type(p)(p[0], *(a[:1] for a in p[1:])), x, reset)),
        ("init: expected I >= 1", lambda: cell.init(np.random.default_rng(0), 0, 3)),
        ("dtype: expected float32 or float64", lambda: cell.init(np.random.default_rng(0), 2, 3, np.int32)),
    ]
    for match, call in bad:
        with pytest.raises(ValueError, match=match) as err:
            call()
        assert "\n" not in str(err.value), str(err.value)


def test_complex_state_needs_a_complex_s_0_and_cell_names_are_checked():
    case = twin_case("lru")
    with pytest.raises(ValueError, match="s_0: expected dtype complex128"):
        forward(case.cell, case.p, case.x, case.reset, case.s0_re)
    with pytest.raises(ValueError, match="cell: expected one of"):
        get_cell("gru")
    with pytest.raises(ValueError, match="r_min, r_max"):
        lru.init(np.random.default_rng(0), 2, 3, r_min=0.0)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_init_gives_the_requested_dtype_and_a_stable_recurrence(name):
    cell = get_cell(name)
    p = cell.init(np.random.default_rng(0), 3, 5, np.float32)
    assert cell.check_params(p) == (5, 3) and all(a.dtype == np.float32 for a in p)
    x = np.random.default_rng(1).standard_normal((50, 2, 3)).astype(np.float32)
    traj = forward(cell, p, x, np.zeros((50, 2), bool))
    assert traj.s.dtype == cell.zero_state(p, 1).dtype and np.all(np.isfinite(traj.s))
