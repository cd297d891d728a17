"""The fused Numba RTRL steps of the IndRNN, minGRU and LRU (rtrl_ref.kernels.cells_numba) == the NumPy
reference step (rtrl_ref.cells.drivers.rtrl_step), the compiled contraction == the cells'
grads_from_traces, and RTRL through both (rtrl_sequence(..., backend="numba")) == full BPTT; each
check with negative twins: deliberately wrong kernels, made by mutating one input or output of the
real kernel (the bug such a mutation reproduces is named in each twin's docstring).

The kernels have no row or unit blocking (one pass over rows b, units h, trace rows over I), so the
drawn sizes cross the boundaries that the other kernels have and a sloppy loop would get wrong all
the same: B = 1 and up to 9 (two four-row passes and a leftover row, as verify.strategies), H up to
13, I = 1 and odd, and resets that differ between neighbouring rows.
"""

from __future__ import annotations

import json
import tracemalloc
from typing import NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrl_ref.bench import cells as bench_cells
from rtrl_ref.cells import CELLS, bptt, forward, get_cell, rtrl_sequence, rtrl_step
from rtrl_ref.cells.drivers import RTRLResult, step_function
from rtrl_ref.cells.interface import add_grads
from rtrl_ref.kernels import cells_numba
from verify.compare import (
    assert_all_ok,
    assert_detected,
    compare_fields,
    container_floor,
    judge,
    measure,
    named_leaves,
    tolerance,
)
from verify.strategies import ALL_RESETS, MAX_B, row_reset_mask, weighted

CELL_NAMES = tuple(CELLS)
DTYPES = (np.float32, np.float64)
SCALES = (0.3, 1.0, 2.5)   # perturbation of the init: mild, generic, saturating
KERNEL_PROPERTY = settings(derandomize=True, deadline=None, max_examples=100)


class Case(NamedTuple):
    cell: object           # a Cell of rtrl_ref.cells
    p: tuple               # the cell's params NamedTuple
    x: np.ndarray          # (T, B, I)
    reset: np.ndarray      # (T, B) bool
    s_0: np.ndarray        # (B, H) carried-in state (complex for the LRU)
    traces_in: tuple       # carried-in traces, random
    coef: np.ndarray       # (4, T, B, H) loss coefficients a, c (real part), a, c (imaginary part)


def random_like(rng, a):
    out = rng.standard_normal(a.shape)
    if np.iscomplexobj(a):
        out = out + 1j * rng.standard_normal(a.shape)
    return out.astype(a.dtype)


def make_case(name: str, seed: int, T: int, B: int, I: int, H: int, dtype=np.float64, reset="random",
              scale: float = 0.3) -> Case:
    """The cell's init plus N(0, scale^2) on every entry (large scales saturate the activations)."""
    rng = np.random.default_rng(seed)
    cell = get_cell(name)
    p = cell.init(rng, I, H, np.float64)
    p = type(p)(*(a + scale * rng.standard_normal(a.shape) for a in p))
    if name == "lru":
        p = p._replace(theta=np.minimum(p.theta, np.log(2 * np.pi)))   # arg(lam) in (0, 2 pi], as the init
    if name == "indrnn" and dtype == np.float32:
        # |u| <= 1 (the IndRNN paper's stability bound), so |J_t| <= 1. With |u| > 1 the forward is
        # expansive: NumPy's own float32 run then drifts from float64 by 1e-3 within 11 steps (measured),
        # and any two float32 runs (kernel and NumPy, whose tanh differ in the last bit) drift apart as
        # much. That regime is drawn in float64, whose round-off leaves the headroom.
        p = p._replace(u=np.clip(p.u, -1.0, 1.0))
    p = type(p)(*(a.astype(dtype) for a in p))
    x = rng.standard_normal((T, B, I)).astype(dtype)                  # (T, B, I)
    if isinstance(reset, str):
        reset = row_reset_mask(rng, T, B, reset)                      # (T, B)
    s_0 = random_like(rng, cell.zero_state(p, B)) * 0.5               # (B, H)
    like = cell.zero_traces(p, B)
    traces_in = type(like)(*(random_like(rng, a) for a in like))
    coef = rng.standard_normal((4, T, B, H)).astype(dtype)            # (4, T, B, H)
    return Case(cell, p, x, reset, s_0, traces_in, coef)


@st.composite
def cases(draw, name: str, dtype=None, min_T: int = 1, max_T: int = 8) -> Case:
    """Sizes across B = 1 .. 9, H = 1 .. 13, I = 1 .. 9; every reset pattern, per row included."""
    dtype = dtype or draw(st.sampled_from(DTYPES), label="dtype")
    T = draw(weighted(min_T, max_T, 4), label="T")
    B = draw(weighted(1, MAX_B, 4), label="B")
    H = draw(weighted(1, 13, 6), label="H")
    I = draw(st.one_of(st.just(1), st.integers(1, 9)), label="I")
    pattern = draw(st.sampled_from(ALL_RESETS), label="resets")
    scale = draw(st.sampled_from(SCALES), label="scale")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    reset = row_reset_mask(np.random.default_rng(seed + 1), T, B, pattern)
    return make_case(name, seed, T, B, I, H, dtype, reset, scale)


def describe(case: Case) -> str:
    T, B, I = case.x.shape
    return (f"{case.cell.name} {case.x.dtype.name} T={T} B={B} I={I} H={case.s_0.shape[1]} "
            f"resets={np.argwhere(case.reset).tolist()}")


def as_real(a):
    """A complex array as its real and imaginary parts stacked (the comparisons are real)."""
    return np.stack([a.real, a.imag]) if np.iscomplexobj(a) else a


def realify(tree):
    return type(tree)(*(as_real(a) for a in tree))


def copied(s, traces):
    return s.copy(), type(traces)(*(a.copy() for a in traces))


UNIT_SCALE = 1.0


def compare_to_scale(prefix: str, a, b, tol: float):
    """compare_fields with the noise floor UNIT_SCALE: the size of a local partial for inputs, state
    and carried-in traces of order 1 and activation derivatives <= 1. The kernels' libm tanh and
    exp may differ from NumPy's (SIMD) ones in the last bit; where an activation saturates,
    1 - h_t^2 (or z_t (1 - z_t)) is a difference of nearly equal numbers, so that last bit becomes
    a large relative error of a tiny trace, tiny gradient too (measured: 2e-10 relative on a trace
    of 1e-6 in float64), while its absolute error stays at round-off of the unit scale. A wrong
    kernel (a dropped term, a wrong row) is off by the size of the terms involved, far above it."""
    a_named, b_named = named_leaves(a, prefix), named_leaves(b, prefix)
    floor = max(UNIT_SCALE, container_floor([x for _, x in a_named], [x for _, x in b_named]))
    return judge([measure(name, x, y, tol, floor) for (name, x), (_, y) in zip(a_named, b_named)])


# ---------------------------------------------------------------------------------------------
# the checks (a twin passes a wrong kernel step: (cell, p, x_t, reset_t, s, traces, work) -> same)


def check_kernel_vs_numpy(case: Case, kernel_step=cells_numba.rtrl_step):
    """T steps from the carried-in state and traces: the states s_t of every step and the final traces
    of the kernel == those of the NumPy rtrl_step, tolerance('kernel', dtype)."""
    T, B, _ = case.x.shape
    s, traces = copied(case.s_0, case.traces_in)
    s_k, traces_k = copied(case.s_0, case.traces_in)
    work = cells_numba.make_work(case.cell, case.p, B)
    states, states_k = [], []
    for t in range(T):
        s, traces, _ = rtrl_step(case.cell, case.p, case.x[t], case.reset[t], s, traces)
        s_k, traces_k, work = kernel_step(case.cell, case.p, case.x[t], case.reset[t], s_k, traces_k, work)
        states.append(s)
        states_k.append(s_k.copy())
    tol = tolerance("kernel", case.x.dtype)
    return (compare_to_scale("state", [as_real(np.stack(states_k))], [as_real(np.stack(states))], tol)
            + compare_to_scale("traces", realify(traces_k), realify(traces), tol))


def loss_and_g(case: Case, s):
    """L = sum a s + c s^2 / 2 per real (and imaginary) part; g_s = dL/dRe(s) + i dL/dIm(s)."""
    a, c, a_im, c_im = case.coef
    g = a + c * s.real                                                # (T, B, H)
    if np.iscomplexobj(s):
        g = g + 1j * (a_im + c_im * s.imag)
    return g.astype(s.dtype)


def rtrl_through(kernel_step=cells_numba.rtrl_step, accumulate=cells_numba.accumulate_grads):
    """rtrl_sequence's loop with a (possibly wrong) kernel step and contraction, for the twins."""
    def run(cell, p, x, reset, g_s, s_0, traces_in):
        s, traces = copied(s_0, traces_in)
        work, grads = cells_numba.make_work(cell, p, x.shape[1]), None
        for t in range(x.shape[0]):
            s, traces, work = kernel_step(cell, p, x[t], reset[t], s, traces, work)
            grads = accumulate(grads, g_s[t], traces)
        return RTRLResult(grads, s, traces)

    return run


def numba_rtrl(cell, p, x, reset, g_s, s_0, traces_in):
    return rtrl_sequence(cell, p, x, reset, g_s, s_0, traces_in, backend="numba")


def check_rtrl_vs_bptt(case: Case, rtrl=numba_rtrl):
    """RTRL through the kernel from the carried-in state and traces == full BPTT + the carried-in part
    sum_b <g_s0, S_in>, tolerance('exact', dtype)."""
    traj = forward(case.cell, case.p, case.x, case.reset, case.s_0)
    g_s = loss_and_g(case, traj.s)
    back = bptt(case.cell, case.p, traj, case.reset, g_s)
    carried = case.cell.grads_from_traces(back.g_s0, case.traces_in)
    want = type(back.grads)(*(a + b for a, b in zip(back.grads, carried)))
    got = rtrl(case.cell, case.p, case.x, case.reset, g_s, case.s_0, case.traces_in)
    return compare_to_scale("grad", got.grads, want, tolerance("exact", case.x.dtype))


# ---------------------------------------------------------------------------------------------
# properties


@pytest.mark.parametrize("name", CELL_NAMES)
@KERNEL_PROPERTY
@given(data=st.data())
def test_kernel_equals_numpy_step(name, data):
    case = data.draw(cases(name), label="case")
    assert_all_ok(check_kernel_vs_numpy(case), describe(case))


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_equals_numpy_step_when_one_row_of_nine_resets(name, dtype):
    reset = np.zeros((3, 9), bool)
    reset[1, 4] = True                                                # row 4 at step 1, its neighbours not
    case = make_case(name, 0, T=3, B=9, I=1, H=13, dtype=dtype, reset=reset, scale=1.0)
    assert_all_ok(check_kernel_vs_numpy(case), describe(case))


@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_rtrl_through_the_kernel_equals_bptt(name, dtype):
    reset = np.zeros((7, 5), bool)
    reset[0, 0] = reset[3, 2] = reset[6, 4] = True                   # first, middle and last step, one row each
    case = make_case(name, 11, T=7, B=5, I=3, H=6, dtype=dtype, reset=reset, scale=1.0)
    assert_all_ok(check_rtrl_vs_bptt(case), describe(case))


@pytest.mark.parametrize("name", CELL_NAMES)
@settings(derandomize=True, deadline=None, max_examples=25)
@given(data=st.data())
def test_rtrl_through_the_kernel_equals_bptt_on_drawn_problems(name, data):
    case = data.draw(cases(name, dtype=np.float64), label="case")
    assert_all_ok(check_rtrl_vs_bptt(case), describe(case))


# ---------------------------------------------------------------------------------------------
# negative twins: the real kernel with one input or output mutated, i.e. a kernel with that bug


def twin_case(name: str, dtype=np.float64) -> Case:
    """Row 1 of 3 resets at step 2 (its neighbours do not), T = 5, carried-in history."""
    reset = np.zeros((5, 3), bool)
    reset[2, 1] = True
    return make_case(name, 5, T=5, B=3, I=3, H=4, dtype=dtype, reset=reset, scale=1.0)


def neighbour_reset(cell, p, x_t, reset_t, s, traces, work):
    """Reads reset_t[b - 1] for row b (a wrong row index)."""
    return cells_numba.rtrl_step(cell, p, x_t, np.roll(reset_t, 1), s, traces, work)


def neighbour_input(cell, p, x_t, reset_t, s, traces, work):
    """Reads x_t[b - 1] for row b (a wrong row index)."""
    return cells_numba.rtrl_step(cell, p, np.roll(x_t, 1, axis=0), reset_t, s, traces, work)


def no_decay(cell, p, x_t, reset_t, s, traces, work):
    """Drops the J_t S_tm1 term of every trace (S_t = D_t)."""
    return cells_numba.rtrl_step(cell, p, x_t, reset_t, s, type(traces)(*(0 * a for a in traces)), work)


def last_entry_off(cell, p, x_t, reset_t, s, traces, work):
    """The last entry of the last trace (last row, unit and input) off by 100 times the tolerance."""
    s, traces, work = cells_numba.rtrl_step(cell, p, x_t, reset_t, s, traces, work)
    last = traces[-1]
    last.reshape(-1)[-1] += 100 * tolerance("kernel", x_t.dtype) * max(np.max(np.abs(last)), UNIT_SCALE)
    return s, traces, work


def dropped_local_term(cell, p, x_t, reset_t, s, traces, work):
    """Drops one local partial from D_t: IndRNN dh_dpre h_tm1 (S^u), minGRU z_t x_t (S^{W_h}), LRU
    dgamma_dnu u_t (S^nu, i.e. gamma held constant). Removing the term after every step gives exactly
    the recursion without it."""
    h_tm1 = s * ~reset_t[:, None]                                     # (B, H)
    s, traces, work = cells_numba.rtrl_step(cell, p, x_t, reset_t, s, traces, work)
    if cell.name == "indrnn":
        traces.u[...] -= (1 - s * s) * h_tm1
    elif cell.name == "mingru":
        traces.W_h[...] -= work.z_t[:, :, None] * x_t[:, None, :]
    else:
        traces.nu[...] -= work.dgamma_dnu * (work.u_re + 1j * work.u_im)
    return s, traces, work


KERNEL_TWINS = {"neighbour reset": neighbour_reset, "neighbour input": neighbour_input, "no decay": no_decay,
                "last entry off": last_entry_off, "dropped local term": dropped_local_term}


@pytest.mark.parametrize("twin", KERNEL_TWINS)
@pytest.mark.parametrize("name", CELL_NAMES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_check_fails_on_a_wrong_kernel(twin, name, dtype):
    case = twin_case(name, dtype)
    assert_all_ok(check_kernel_vs_numpy(case), "the right kernel passes on the twin's problem")
    assert_detected(check_kernel_vs_numpy(case, KERNEL_TWINS[twin]), f"{twin} {name}")


@pytest.mark.parametrize("twin", ("neighbour reset", "no decay", "dropped local term"))
@pytest.mark.parametrize("name", CELL_NAMES)
def test_rtrl_check_fails_on_a_wrong_kernel(twin, name):
    case = twin_case(name)
    assert_all_ok(check_rtrl_vs_bptt(case, rtrl_through()), "the right kernels pass")
    assert_detected(check_rtrl_vs_bptt(case, rtrl_through(KERNEL_TWINS[twin])), f"{twin} {name}")


ACCUMULATE_TWIN_CASES = [(twin, name) for twin in ("neighbour g", "last field skipped") for name in CELL_NAMES]
ACCUMULATE_TWIN_CASES.append(("real part of g only", "lru"))     # a real state has no imaginary part


@pytest.mark.parametrize("twin, name", ACCUMULATE_TWIN_CASES)
def test_rtrl_check_fails_on_a_wrong_contraction(twin, name):
    case = twin_case(name)
    assert_detected(check_rtrl_vs_bptt(case, rtrl_through(accumulate=ACCUMULATE_TWINS[twin])), f"{twin} {name}")


# ---------------------------------------------------------------------------------------------
# the compiled contraction: grads + sum_b <g_s_t[b], S[b]> == the cell's grads_from_traces


def check_accumulate(case: Case, accumulate=cells_numba.accumulate_grads):
    """Two steps' contractions of the carried-in traces, from zero: accumulate == the sum of the
    cell's grads_from_traces (NumPy), tolerance('kernel', dtype)."""
    g_s = case.coef[:2, 0]                                            # (2, B, H)
    if np.iscomplexobj(case.s_0):
        g_s = g_s + 1j * case.coef[2:, 0]
    g_s = g_s.astype(case.s_0.dtype)
    want = add_grads(case.cell.grads_from_traces(g_s[0], case.traces_in),
                     case.cell.grads_from_traces(g_s[1], case.traces_in))
    got = accumulate(accumulate(None, g_s[0], case.traces_in), g_s[1], case.traces_in)
    return compare_to_scale("grad", got, want, tolerance("kernel", case.x.dtype))


def neighbour_g(grads, g_s_t, traces):
    """Reads g_s_t[b - 1] for row b (a wrong row index)."""
    return cells_numba.accumulate_grads(grads, np.roll(g_s_t, 1, axis=0), traces)


def last_field_skipped(grads, g_s_t, traces):
    """Leaves the last field's gradient as it was (a loop that stops one field early)."""
    before = None if grads is None else grads[-1].copy()
    grads = cells_numba.accumulate_grads(grads, g_s_t, traces)
    grads[-1][...] = 0 if before is None else before
    return grads


def real_part_only(grads, g_s_t, traces):
    """Drops g.im s.im from Re(conj(g) s) (the LRU's complex inner product, Eq. 29)."""
    return cells_numba.accumulate_grads(grads, g_s_t.real.astype(g_s_t.dtype), traces)


ACCUMULATE_TWINS = {"neighbour g": neighbour_g, "last field skipped": last_field_skipped,
                    "real part of g only": real_part_only}


@pytest.mark.parametrize("name", CELL_NAMES)
@settings(derandomize=True, deadline=None, max_examples=50)
@given(data=st.data())
def test_accumulate_equals_grads_from_traces(name, data):
    case = data.draw(cases(name, max_T=1), label="case")
    assert_all_ok(check_accumulate(case), describe(case))


@pytest.mark.parametrize("twin, name", ACCUMULATE_TWIN_CASES)
def test_accumulate_check_fails_on_a_wrong_contraction(twin, name):
    case = twin_case(name)
    assert_all_ok(check_accumulate(case), "the right contraction passes")
    assert_detected(check_accumulate(case, ACCUMULATE_TWINS[twin]), f"{twin} {name}")


# ---------------------------------------------------------------------------------------------
# the wrapper: in place, no allocation per step, the caller's arrays kept, errors


@pytest.mark.parametrize("name", CELL_NAMES)
def test_step_and_contraction_work_in_place_and_allocate_no_array(name):
    case = make_case(name, 1, T=12, B=16, I=5, H=128)
    online = step_function(case.cell, case.p, 16, "numba")
    g_s = case.coef[0].astype(case.s_0.dtype)                         # (T, B, H)
    s, traces = copied(case.s_0, case.traces_in)
    s_out, traces_out, work = online.step(case.p, case.x[0], case.reset[0], s, traces)   # compiled here
    grads = online.accumulate(None, g_s[0], traces_out)
    assert s_out is s and all(a is b for a, b in zip(traces_out, traces))
    tracemalloc.start()
    for t in range(1, 12):
        s_out, traces_out, work_t = online.step(case.p, case.x[t], case.reset[t], s_out, traces_out)
        grads_t = online.accumulate(grads, g_s[t], traces_out)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert all(a is b for a, b in zip(work_t, work)) and all(a is b for a, b in zip(grads_t, grads))
    assert peak < s.nbytes // 2, f"{peak} bytes allocated over 11 steps; one (B, H) state is {s.nbytes}"


@pytest.mark.parametrize("name", CELL_NAMES)
def test_rtrl_sequence_with_numba_keeps_the_callers_state_and_traces(name):
    case = twin_case(name)
    s_0, traces_in = copied(case.s_0, case.traces_in)
    traj = forward(case.cell, case.p, case.x, case.reset, case.s_0)
    rtrl_sequence(case.cell, case.p, case.x, case.reset, loss_and_g(case, traj.s), case.s_0, case.traces_in,
                  backend="numba")
    assert np.array_equal(case.s_0, s_0)
    assert all(np.array_equal(a, b) for a, b in zip(case.traces_in, traces_in))


def test_unknown_backend_and_cell_without_a_kernel_are_refused():
    case = twin_case("indrnn")
    with pytest.raises(ValueError, match="backend: expected one of"):
        step_function(case.cell, case.p, 3, "cupy")
    with pytest.raises(ValueError, match="no Numba kernel for 'elstm'"):
        cells_numba.make_work(case.cell._replace(name="elstm"), case.p, 3)


@pytest.mark.parametrize("wrong, message", [
    (lambda c: dict(x_t=c.x[0][:, :2]), "x_t: expected shape"),
    (lambda c: dict(x_t=c.x[0].astype(np.float32)), "x_t: expected dtype float64"),
    (lambda c: dict(reset_t=c.reset[0].astype(np.int8)), "reset_t: expected dtype bool"),
    (lambda c: dict(reset_t=c.reset[0][:2]), "reset_t: expected shape"),
    (lambda c: dict(s=c.s_0.astype(np.complex128)), "s_tm1: expected dtype float64"),
    (lambda c: dict(traces=c.traces_in._replace(W=c.traces_in.W[:, :, :2])), "traces.W: expected shape"),
    (lambda c: dict(traces=tuple(c.traces_in)), "traces: expected a IndRNNParams"),
])
def test_wrapper_rejects_bad_arguments(wrong, message):
    case = twin_case("indrnn")
    args = dict(x_t=case.x[0], reset_t=case.reset[0], s=case.s_0.copy(), traces=case.traces_in)
    args.update(wrong(case))
    with pytest.raises(ValueError, match=message):
        cells_numba.rtrl_step(case.cell, case.p, args["x_t"], args["reset_t"], args["s"], args["traces"],
                              cells_numba.make_work(case.cell, case.p, 3))


def test_wrapper_accepts_non_contiguous_inputs():
    case = twin_case("mingru")
    x_t = np.asfortranarray(case.x[0])
    s_k, traces_k, _ = cells_numba.rtrl_step(case.cell, case.p, x_t, case.reset[0], *copied(case.s_0, case.traces_in))
    s, traces, _ = rtrl_step(case.cell, case.p, case.x[0], case.reset[0], case.s_0, case.traces_in)
    tol = tolerance("kernel", np.float64)
    assert_all_ok(compare_fields("state", [s_k], [s], tol) + compare_fields("traces", traces_k, traces, tol))


# ---------------------------------------------------------------------------------------------
# the benchmark (smoke: tiny sizes, one round)


def test_bench_cells_smoke(tmp_path, capsys):
    out = tmp_path / "cells.json"
    assert bench_cells.main(["--cells", "indrnn", "lru", "--B", "1", "3", "--H", "4", "--steps", "2", "--rounds", "1",
                             "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["cell"], r["B"], r["H"], r["I"]) for r in rows] == [("indrnn", 1, 4, 5), ("indrnn", 3, 4, 5),
                                                                   ("lru", 1, 4, 5), ("lru", 3, 4, 5)]
    assert all(r["numpy_us"] > 0 and r["numba_us"] > 0 and r["ratio"] > 0 for r in rows)
    assert "numpy / numba" in capsys.readouterr().out


def test_bench_cells_segment_rows_check_first(tmp_path, monkeypatch):
    """--segment T adds one unroll per (cell, B, H): the three gradients are compared before timing,
    and a wrong one stops the benchmark."""
    out = tmp_path / "cells.json"
    assert bench_cells.main(["--cells", "mingru", "--B", "2", "--H", "3", "--steps", "2", "--rounds", "1",
                             "--segment", "4", "--out", str(out)]) == 0
    rows = [r for r in json.loads(out.read_text())["rows"] if "T" in r]
    assert [(r["cell"], r["B"], r["H"], r["T"]) for r in rows] == [("mingru", 2, 3, 4)]
    assert all(r[k] > 0 for r in rows for k in ("bptt_us", "segment_us", "step_numba_us", "segment_over_bptt"))
    # negative twin: a segment form whose gradient is off by a factor 2
    real = bench_cells.rtrl_segment

    def doubled(*args, **kw):
        res = real(*args, **kw)
        return res._replace(grads=type(res.grads)(*(2 * a for a in res.grads)))

    monkeypatch.setattr(bench_cells, "rtrl_segment", doubled)
    with pytest.raises(AssertionError, match="mingru unroll"):
        bench_cells.time_segment("mingru", 2, 3, 4, 4, 1)
