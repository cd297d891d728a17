"""The fused online step (rtrl_ref.kernels.online_numba) == the reference step path, and == BPTT.

(a) Step by step, the fused step's cell, logits, loss, traces, gradients, Adam moments and the
    parameters after the clip and Adam equal those of the reference path of the copy task
    (`rtrl_ref.r2ac.copy_online.online_step`: cell_step, out_gate, linear, ce_grad, immediate_g_c,
    the NumPy trace_step_accumulate, clip_by_global_norm, adam_update) to round-off.
(b) Over a short sequence without parameter updates, the accumulated gradient of every parameter
    equals full BPTT of the summed loss (`rtrl_ref.bptt.bptt` on `elstm_forward`'s trajectory, the
    heads' gradients from the stacked reference functions).

Drawn: B 1..9 (across the trace kernel's four-row passes and a leftover row), H 1..9, I 1..4,
K 2..4, T 1..6, per-row reset patterns, float32 and float64. Each check has negative twins: the
same kernel composed in this file from the shipped pieces with one defect (a term of the Jacobian
J_t dropped, or the traces not reset with the cell) must fail it.
"""

from __future__ import annotations

import json
import math
import tracemalloc

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtrl_ref.bptt import bptt
from rtrl_ref.kernels import get_backend
from rtrl_ref.kernels import online_numba as on
from rtrl_ref.kernels.numba_config import JIT
from rtrl_ref.out_gate import immediate_g_c, out_gate
from rtrl_ref.params import init_elstm, init_out_gate
from rtrl_ref.r2ac.copy_online import CopyParams, ce_grad, online_step
from rtrl_ref.r2ac.layers import LinearParams, linear, linear_backward
from rtrl_ref.r2ac.optim import AdamState, adam_init
from rtrl_ref.traces import zero_traces
from rtrl_ref.unroll import elstm_forward
from verify.compare import Comparison, assert_all_ok, assert_detected, compare, compare_fields, tolerance
from verify.problem import RESET_PATTERNS
from verify.strategies import ROW_PATTERNS, row_reset_mask

DTYPES = (np.float32, np.float64)
LR, CLIP = 3e-3, 1.0
PROPERTY = settings(derandomize=True, deadline=None, max_examples=30)

# ---------------------------------------------------------------------------------------------
# negative twins: the shipped kernel's pieces with one defect

EXACT, DROP_JACOBIAN_TERM, NO_TRACE_RESET = 0, 1, 2


@numba.njit(**JIT)
def _kernel_variant(theta, grad, m, v, S_Wz, S_Wf, s_vec, c, x_t, reset_t, y_t, keep, work, pre, xc, g_xc,
                    logits, log_p, g_logits, predictions, hyper, hyper_d, step, hb, accumulate, update, variant):
    """`online_step_kernel` composed of the same pieces; variant DROP_JACOBIAN_TERM leaves
    dc_dfpre * w_f out of J_t (Eq. 6), NO_TRACE_RESET resets the cell but not the traces (Eq. 10)."""
    B, H = c.shape
    I = x_t.shape[1]
    K = logits.shape[1]
    if not accumulate:
        on.zero_step_grads(grad, H, I, K)
    loss = on.forward(theta, c, x_t, reset_t, y_t, keep, work, pre, xc, logits, log_p, predictions)
    if variant == DROP_JACOBIAN_TERM:
        o_wf = 2 * H * I + H
        for b in range(B):
            for h in range(H):
                work[on.J, b, h] -= work[on.DC_DFPRE, b, h] * theta[o_wf + h]
    on.heads_backward(theta, grad, work, xc, g_xc, log_p, g_logits, y_t, accumulate)
    if variant == NO_TRACE_RESET:
        keep[:] = 1.0
    on.traces_accumulate(grad, S_Wz, S_Wf, s_vec, x_t, keep, work, hb)
    norm = np.nan
    if update:
        norm = on.clip_adam(theta, grad, m, v, hyper, hyper_d, step)
    return loss, norm, -1


def stepper_fn(stepper: on.OnlineStep, variant: int | None):
    """stepper.step, or the same step through `_kernel_variant`."""
    if variant is None:
        return stepper.step

    def step(x_t, reset_t, y_t):
        args = stepper.kernel_args(x_t, reset_t, y_t)
        return stepper.finish(args, *_kernel_variant(*args, variant))

    return step


# ---------------------------------------------------------------------------------------------
# cases


class Case:
    """A random copy-task-shaped problem: parameters, inputs, targets, resets, initial cell."""

    def __init__(self, seed: int, B: int, H: int, I: int, K: int, T: int, reset, dtype, std: float = 0.5):
        rng = np.random.default_rng(seed)
        self.B, self.H, self.I, self.K, self.T, self.dtype = B, H, I, K, T, np.dtype(dtype)
        self.p = init_elstm(rng, I, H, np.float64, std=std).astype(dtype)
        self.q = init_out_gate(rng, I, H, np.float64).astype(dtype)
        self.readout = LinearParams(rng.uniform(-1, 1, (K, H)).astype(dtype), rng.uniform(-0.5, 0.5, K).astype(dtype))
        self.x = rng.standard_normal((T, B, I)).astype(dtype)                # (T, B, I)
        self.y = rng.integers(0, K, (T, B))                                  # (T, B)
        self.reset = reset                                                   # (T, B)
        self.c_0 = (0.5 * rng.standard_normal((B, H))).astype(dtype)         # (B, H)

    def stepper(self, **kw) -> on.OnlineStep:
        s = on.OnlineStep(self.p, self.q, self.readout.W, self.readout.b, self.B, lr=LR, max_norm=CLIP, **kw)
        s.c[...] = self.c_0
        return s

    def describe(self) -> str:
        return (f"{self.dtype.name} B={self.B} H={self.H} I={self.I} K={self.K} T={self.T} "
                f"resets={np.argwhere(self.reset).tolist()}")


@st.composite
def cases(draw, min_T: int = 1):
    B = draw(st.integers(1, 9), label="B")
    H = draw(st.integers(1, 9), label="H")
    I = draw(st.integers(1, 4), label="I")
    K = draw(st.integers(2, 4), label="K")
    T = draw(st.integers(min_T, 6), label="T")
    dtype = draw(st.sampled_from(DTYPES), label="dtype")
    pattern = draw(st.sampled_from(RESET_PATTERNS + ROW_PATTERNS), label="resets")
    seed = draw(st.integers(0, 2**31 - 1), label="seed")
    reset = row_reset_mask(np.random.default_rng(seed + 1), T, B, pattern)
    return Case(seed, B, H, I, K, T, reset, dtype)


def fused_tree(stepper: on.OnlineStep, flat: np.ndarray) -> CopyParams:
    elstm, gate, W_y, b_y = on.split_flat(flat, stepper.H, stepper.I, stepper.K)
    return CopyParams(elstm, gate, LinearParams(W_y, b_y))


# ---------------------------------------------------------------------------------------------
# (a) the fused step == the reference step path, step by step


def step_tolerance(dtype) -> float:
    """float64: the kernel tolerance. float32: that of exact reformulations; the fused step sums in
    other orders than the reference (loops and float64 sums against BLAS and NumPy's pairwise sums)
    and over T steps through Adam, whose moments of a cancelling gradient (b_y: a sum over rows of
    softmax - onehot) carry more than the trace kernel's round-off (seen: 2.04e-5 on m.readout.b)."""
    return tolerance("kernel", dtype) if np.dtype(dtype) == np.float64 else tolerance("exact", dtype)


def check_against_reference(case: Case, variant: int | None = None) -> list[Comparison]:
    """Run both paths over the case's T steps (each from its own state); compare after every step."""
    tol = step_tolerance(case.dtype)
    stepper = case.stepper()
    step = stepper_fn(stepper, variant)
    numpy_backend = get_backend("numpy")
    params = CopyParams(case.p, case.q, case.readout)
    opt = adam_init(params)
    c, traces = case.c_0, zero_traces(case.B, case.H, case.I, case.dtype)
    rows: list[Comparison] = []
    for t in range(case.T):
        ref = online_step(params, opt, c, traces, case.x[t], case.y[t], LR, CLIP, numpy_backend, reset_t=case.reset[t])
        loss = step(case.x[t], case.reset[t], case.y[t])
        rows += compare_fields(f"t={t} c", {"c_t": stepper.c}, {"c_t": ref.c}, tol)
        rows += compare_fields(f"t={t} head", {"logits": stepper.logits, "loss": np.array(loss)},
                               {"logits": ref.logits, "loss": np.array(ref.loss)}, tol)
        rows += compare_fields(f"t={t} traces", stepper.traces, ref.traces, tol)
        rows += compare_fields(f"t={t} grads", fused_tree(stepper, stepper.grad), ref.grads, tol)
        rows.append(compare(f"t={t} norm", np.array(stepper.norm), np.array(ref.norm), tol))
        m, v = fused_tree(stepper, stepper.m), fused_tree(stepper, stepper.v)
        rows += compare_fields(f"t={t} adam", {"m": m, "v": v}, {"m": ref.opt.m, "v": ref.opt.v}, tol)
        rows += compare_fields(f"t={t} params", fused_tree(stepper, stepper.theta), ref.params, tol)
        top2 = np.sort(ref.logits, axis=-1)[:, -2:]                            # (B, 2)
        clear = top2[:, 1] - top2[:, 0] > 1e3 * tol                            # (B,) no near tie
        rows.append(Comparison(f"t={t} predictions", 0.0, 0.0, 0.0,
                               bool(np.array_equal(stepper.predictions[clear], ref.predictions[clear])), False))
        params, opt, c, traces = ref.params, ref.opt, ref.c, ref.traces
    rows.append(Comparison("adam step count", 0.0, 0.0, 0.0, stepper.adam_step == int(opt.step) == case.T, False))
    return rows


@PROPERTY
@given(case=cases())
def test_fused_step_matches_the_reference_path(case):
    assert_all_ok(check_against_reference(case), case.describe())


# ---------------------------------------------------------------------------------------------
# (b) the accumulated gradient without updates == full BPTT of the summed loss


def bptt_reference(case: Case):
    """(loss, CopyParams of gradients) of sum_t L_t by full BPTT, c_0 held fixed."""
    _, traj = elstm_forward(case.p, case.x, case.reset, case.c_0)
    h, gate_cache = out_gate(case.q, case.x, traj.c_t)                         # (T, B, H)
    logits, lin_cache = linear(case.readout, h)                                # (T, B, K)
    loss, g_logits, _ = ce_grad(logits.reshape(-1, case.K), case.y.reshape(-1))
    g_h, g_readout = linear_backward(g_logits.reshape(logits.shape), lin_cache, case.readout)
    g_c, _, g_gate = immediate_g_c(g_h, gate_cache, case.q)                    # (T, B, H)
    return loss, CopyParams(bptt(case.p, traj, case.reset, g_c).grads, g_gate, g_readout)


def check_against_bptt(case: Case, variant: int | None = None) -> list[Comparison]:
    stepper = case.stepper(update=False, accumulate=True)
    step = stepper_fn(stepper, variant)
    theta_0 = stepper.theta.copy()
    loss = sum(step(case.x[t], case.reset[t], case.y[t]) for t in range(case.T))
    ref_loss, ref_grads = bptt_reference(case)
    tol = tolerance("exact", case.dtype)
    rows = compare_fields("grads", fused_tree(stepper, stepper.grad), ref_grads, tol)
    rows.append(compare("loss", np.array(loss), np.array(ref_loss), tol))
    rows.append(Comparison("parameters unchanged", 0.0, 0.0, 0.0, bool(np.array_equal(stepper.theta, theta_0)), False))
    return rows


@PROPERTY
@given(case=cases())
def test_fused_accumulated_gradient_equals_bptt(case):
    assert_all_ok(check_against_bptt(case), case.describe())


# ---------------------------------------------------------------------------------------------
# negative twins of (a) and (b)


def twin_case(dtype) -> Case:
    """B = 6 (a full four-row pass and two leftover rows), T = 4, rows 1 and 4 reset at step 2."""
    reset = np.zeros((4, 6), bool)                                             # (T, B)
    reset[2, [1, 4]] = True
    return Case(7, 6, 5, 3, 3, 4, reset, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("check", [check_against_reference, check_against_bptt], ids=["reference", "bptt"])
def test_negative_twins_fail_the_checks(check, dtype):
    case = twin_case(dtype)
    assert_all_ok(check(case, EXACT), "the composed kernel without a defect")
    for variant in (DROP_JACOBIAN_TERM, NO_TRACE_RESET):
        rows = check(case, variant)
        assert_detected(rows, f"variant {variant} {case.describe()}")
        failed = {r.name.split(" ")[1].split(".")[0] for r in rows if not r.ok and r.name.startswith("t=")}
        if check is check_against_reference:
            assert "traces" in failed and "grads" in failed, failed


# ---------------------------------------------------------------------------------------------
# the wrapper: buffers, input checks, no per-step allocation


def test_step_allocates_no_arrays():
    """Python-level memory while stepping stays below the size of one (B, H) array (16 KiB here):
    only the small transient objects of a call (argument tuple, returned floats), not growing."""
    case = Case(3, 16, 128, 3, 3, 1, np.zeros((1, 16), bool), np.float64)
    stepper = case.stepper()
    x_t, y_t = case.x[0], case.y[0]
    for _ in range(3):
        stepper.step(x_t, None, y_t)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            stepper.step(x_t, None, y_t)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base < 8192 and current - base < 1024, f"peak {peak - base} B, kept {current - base} B"


def test_input_errors_name_the_argument():
    case = Case(0, 2, 3, 3, 3, 1, np.zeros((1, 2), bool), np.float64)
    stepper = case.stepper()
    with pytest.raises(ValueError, match=r"^x_t: expected shape \(B=2, I=3\), got \(2, 4\)$"):
        stepper.step(np.zeros((2, 4)), None, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"^reset_t: expected dtype bool, got int64$"):
        stepper.step(case.x[0], np.zeros(2, np.int64), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"^y_t: expected class indices in \[0, 3\), got 3 in row 1$"):
        stepper.step(case.x[0], None, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"^y_t: expected an integer dtype, got float64$"):
        stepper.step(case.x[0], None, np.zeros(2))
    with pytest.raises(ValueError, match=r"^B: expected an integer >= 1, got 0$"):
        on.OnlineStep(case.p, case.q, case.readout.W, case.readout.b, 0, lr=LR, max_norm=CLIP)
    with pytest.raises(ValueError, match=r"^lr: expected a value in \[0.0, inf\), got -1.0$"):
        on.OnlineStep(case.p, case.q, case.readout.W, case.readout.b, 2, lr=-1.0, max_norm=CLIP)
    with pytest.raises(ValueError, match=r"^b_y: expected shape \(K=3\), got \(2,\)$"):
        on.OnlineStep(case.p, case.q, case.readout.W, case.readout.b[:2], 2, lr=LR, max_norm=CLIP)
    # a float32 x_t for float64 parameters is cast into the stepper's buffer
    assert math.isfinite(stepper.step(case.x[0].astype(np.float32), None, np.array([0, 2], np.int32)))


def test_adam_rates_of_zero_are_accepted_and_one_is_refused():
    """beta1 and beta2 are checked on [0, 1): 0 (no averaging) is a valid Adam setting, 1 is not."""
    case = Case(1, 3, 4, 2, 3, 2, np.zeros((2, 3), bool), np.float64)
    args = (case.p, case.q, case.readout.W, case.readout.b, case.B)
    kw = dict(lr=LR, max_norm=CLIP)
    for name in ("beta1", "beta2"):
        assert math.isfinite(on.OnlineStep(*args, **kw, **{name: 0.0}).step(case.x[0], None, case.y[0]))
        with pytest.raises(ValueError, match=rf"{name}: expected a value in \[0.0, 1.0\), got 1.0"):
            on.OnlineStep(*args, **kw, **{name: 1.0})


def test_adam_defaults_of_the_fused_step_are_the_published_ones():
    """Without beta1, beta2, eps the fused step's Adam is Kingma & Ba's (0.9, 0.999, 1e-8), as
    `rtrl_ref.r2ac.optim.adam_update`'s: three steps, exactly equal parameters."""
    case = Case(1, 3, 4, 2, 3, 2, np.zeros((2, 3), bool), np.float64)
    args = (case.p, case.q, case.readout.W, case.readout.b, case.B)
    thetas = []
    for explicit in ({}, dict(beta1=0.9, beta2=0.999, eps=1e-8)):
        stepper = on.OnlineStep(*args, lr=LR, max_norm=CLIP, **explicit)
        for t in range(case.T):
            stepper.step(case.x[t], None, case.y[t])
        thetas.append(stepper.theta.copy())
    np.testing.assert_array_equal(thetas[0], thetas[1])


def test_the_kernels_views_and_split_flat_cut_the_same_layout():
    """`_views` and `_cell_views` (the kernels' cuts of the flat parameter and gradient buffers, run
    as Python here) and `split_flat` (the Python views) give pieces of the documented shapes that
    tile the buffer in order, with no gap and no overlap, and agree piece by piece."""
    H, I, K = 3, 2, 4
    flat = np.arange(on.flat_size(H, I, K), dtype=np.float64)               # (P,)
    views = on._views.py_func(flat, H, I, K)
    assert [v.shape for v in views] == [(2 * H, I), (H,), (H,), (H,), (H,), (H, I + H), (H,), (K, H), (K,)]
    np.testing.assert_array_equal(np.concatenate([v.ravel() for v in views]), flat)
    elstm, gate, W_y, b_y = on.split_flat(flat, H, I, K)
    pieces = (np.concatenate([elstm.W_z, elstm.W_f]), elstm.w_z, elstm.w_f, elstm.b_z, elstm.b_f, *gate, W_y, b_y)
    for view, piece in zip(views, pieces, strict=True):
        np.testing.assert_array_equal(view, piece)
    cell = on._cell_views.py_func(flat, H, I)                                  # the gradient's cut too
    for view, piece in zip(cell, elstm, strict=True):
        np.testing.assert_array_equal(view, piece)


def test_learning_rate_zero_is_accepted_and_freezes_the_parameters():
    """lr is checked on the closed interval [0, inf): 0 is a valid rate (no movement), at
    construction and through the settable `lr` (a schedule), and a negative one is refused."""
    case = Case(1, 3, 4, 2, 3, 2, np.zeros((2, 3), bool), np.float64)
    at_zero = on.OnlineStep(case.p, case.q, case.readout.W, case.readout.b, case.B, lr=0.0, max_norm=CLIP)
    for stepper in (at_zero, case.stepper()):
        stepper.lr = 0.0
        before = stepper.theta.copy()
        for t in range(case.T):
            stepper.step(case.x[t], None, case.y[t])
        assert stepper.adam_step == case.T and stepper.lr == 0.0
        np.testing.assert_array_equal(stepper.theta, before)
        with pytest.raises(ValueError, match=r"^lr: expected a value in \[0.0, inf\), got -1e-09$"):
            stepper.lr = -1e-9
    stepper.lr = 2e-3
    stepper.step(case.x[0], None, case.y[0])
    assert not np.array_equal(stepper.theta, before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_widely_separated_logits_stay_finite_and_match_the_reference(dtype):
    """The log-softmax is shifted by the largest logit, whichever class has it: logits 1000 apart
    (exp(1000) overflows float64) give the reference's finite loss and gradient."""
    case = Case(2, 4, 3, 2, 3, 1, np.zeros((1, 4), bool), dtype)
    for big in range(case.K):
        b_y = np.zeros(case.K, dtype)
        b_y[big] = 1000.0
        readout = LinearParams(np.zeros_like(case.readout.W), b_y)
        stepper = on.OnlineStep(case.p, case.q, readout.W, readout.b, case.B, lr=LR, max_norm=CLIP, update=False)
        y = np.arange(case.B) % case.K                                     # every class a target somewhere
        loss = stepper.step(case.x[0], None, y)
        params = CopyParams(case.p, case.q, readout)
        ref = online_step(params, adam_init(params), np.zeros((case.B, case.H), dtype),
                          zero_traces(case.B, case.H, case.I, dtype), case.x[0], y, LR, CLIP, get_backend("numpy"))
        assert math.isfinite(loss) and loss == pytest.approx(ref.loss, rel=1e-6), big
        np.testing.assert_allclose(stepper.grads_b_y, ref.grads.readout.b, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# copy_online: the fused batch == the reference batch; the option and the flag


def test_fused_copy_batch_matches_the_reference_batch():
    from envs.memory import copy_task_batch
    from rtrl_ref.r2ac.copy_online import fused_params, fused_stepper, init_copy, online_batch, online_batch_fused

    rng = np.random.default_rng(0)
    params = init_copy(rng, 8, np.float64)
    data = copy_task_batch(rng, 5, 3)
    stepper = fused_stepper(params, 5, LR, CLIP)
    ref_params, opt, ref_pred, ref_loss = online_batch(params, adam_init(params), data, LR, CLIP,
                                                       get_backend("numpy"))
    pred, loss = online_batch_fused(stepper, data)
    assert_all_ok(compare_fields("params", fused_params(stepper), ref_params, step_tolerance(np.float64)))
    assert np.array_equal(pred, ref_pred) and abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    assert isinstance(opt, AdamState) and stepper.adam_step == int(opt.step) == 6
    # a second batch starts from a fresh zero state (the reset at t = 0), as the reference does
    data = copy_task_batch(rng, 5, 3)
    ref_params, opt, ref_pred, _ = online_batch(ref_params, opt, data, LR, CLIP, get_backend("numpy"))
    pred, _ = online_batch_fused(stepper, data)
    assert_all_ok(compare_fields("params", fused_params(stepper), ref_params, step_tolerance(np.float64)))


def test_train_copy_fused_option_and_flag(tmp_path, capsys):
    from rtrl_ref.r2ac.copy_online import main as copy_main
    from rtrl_ref.r2ac.copy_online import train_copy

    kw = dict(max_len=2, hidden=8, batch=4, max_sequences=40, progress=False, eval_size=20)
    fused = train_copy(**kw, backend="numba")
    reference = train_copy(**kw, backend="numba", fused=False)
    assert fused.sequences == reference.sequences == 40
    assert abs(fused.symbol_accuracy - reference.symbol_accuracy) <= 0.1
    with pytest.raises(ValueError, match=r"^fused: expected False or None with backend 'numpy'"):
        train_copy(**kw, backend="numpy", fused=True)
    assert copy_main(["--max-len", "2", "--hidden", "8", "--batch", "4", "--max-sequences", "40", "--fused",
                      "--run-dir", str(tmp_path), "--no-progress"]) == 0
    assert copy_main(["--max-len", "2", "--hidden", "8", "--batch", "4", "--max-sequences", "40",
                      "--no-fused", "--run-dir", str(tmp_path), "--no-progress"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        copy_main(["--fused", "--backend", "numpy"])
    assert exit.value.code == 2
    assert "--fused: needs --backend numba, got --backend numpy" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the side-by-side benchmark: a tiny smoke run


def test_online_step_benchmark_smoke(tmp_path, capsys):
    from rtrl_ref.bench.online_step import main as bench_main

    out = tmp_path / "online.json"
    assert bench_main(["--B", "1", "--H", "8", "--steps", "5", "--rounds", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["B"] == 1 and row["H"] == 8 and row["fused_us"] > 0 and row["reference_us"] > 0
    assert row["ratio"] == pytest.approx(row["reference_us"] / row["fused_us"])
    assert "reference / fused" in capsys.readouterr().out
