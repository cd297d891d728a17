"""Every kernel backend == the NumPy reference (DESIGN.md section 4, item 3).

One test body per property runs against every available backend (numpy itself, numba serial and
parallel, cupy where a GPU is present): float64 to round-off, float32 within the documented
tolerance. Each check has a negative twin: a perturbed trace entry or a skipped reset must fail.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtrl_ref import rtrl
from rtrl_ref.cell import CellCache
from rtrl_ref.kernels import available_backends, get_backend
from rtrl_ref.params import ELSTMParams
from rtrl_ref.rtrl import Traces, rtrl_segment, rtrl_sequence
from verify.compare import assert_fields_close, compare_fields, to_numpy, tolerance
from verify.problem import RESET_PATTERNS, bptt_grads, reset_mask
from verify.strategies import describe, problems

DTYPES = (np.float32, np.float64)


def _backend_params():
    params = []
    for name in available_backends():
        params.append(pytest.param(name, marks=pytest.mark.gpu) if name == "cupy" else name)
        if name == "numba":
            params.append("numba-parallel")
    return params


@pytest.fixture(scope="module", params=_backend_params())
def backend(request):
    """(name, namespace, xp): the backend under test and its array module."""
    if request.param == "numba-parallel":
        from rtrl_ref.kernels import numba_backend

        return "numba-parallel", numba_backend.backend(parallel=True), np
    be = get_backend(request.param)
    if request.param == "cupy":
        import cupy

        return "cupy", be, cupy
    return request.param, be, np


@pytest.fixture(scope="module",
                params=[pytest.param(n, marks=pytest.mark.gpu) if n == "cupy" else n for n in available_backends()])
def driver_backend(request):
    """(name, xp) of a backend the drivers select by name."""
    if request.param == "cupy":
        import cupy

        return "cupy", cupy
    return request.param, np


def _to(xp, tree):
    """Move a NamedTuple of arrays to the backend's array module."""
    return type(tree)(*(xp.asarray(a) for a in tree))


def _random_step(seed, B, H, I, dtype, pattern):
    """Random non-zero traces, grads and step coefficients (every code path touches a number)."""
    rng = np.random.default_rng(seed)
    draw = lambda *shape: rng.standard_normal(shape).astype(dtype)
    traces = Traces(draw(B, H, I), draw(B, H, I), draw(B, H), draw(B, H), draw(B, H), draw(B, H))
    grads = ELSTMParams(draw(H, I), draw(H, I), draw(H), draw(H), draw(H), draw(H))
    x_t, c_tm1 = draw(B, I), draw(B, H)                                # (B, I), (B, H)
    z_t, f_t, c_t = draw(B, H), draw(B, H), draw(B, H)                 # (B, H)
    cache = CellCache(x_t, c_tm1, z_t, f_t, c_t, draw(B, H), draw(B, H), draw(B, H))
    reset_t = reset_mask(rng, 1, B, pattern)[0]                        # (B,)
    g_c_t = draw(B, H)                                                 # (B, H)
    return traces, cache, reset_t, g_c_t, grads


def _random_segment(seed, T, B, H, I, dtype):
    rng = np.random.default_rng(seed)
    draw = lambda *shape: rng.standard_normal(shape).astype(dtype)
    traces = Traces(draw(B, H, I), draw(B, H, I), draw(B, H), draw(B, H), draw(B, H), draw(B, H))
    return traces, draw(B, H), draw(B, H), draw(T, B, H), draw(T, B, H), draw(T, B, I), draw(T, B, H)


sizes = dict(B=st.integers(1, 4), H=st.integers(1, 9), I=st.integers(1, 9))


# ---------------------------------------------------------------------------------------------
# kernel level


@given(seed=st.integers(0, 2**31 - 1), pattern=st.sampled_from(RESET_PATTERNS),
       dtype=st.sampled_from(DTYPES), **sizes)
def test_trace_step_accumulate_matches_numpy(backend, seed, pattern, dtype, B, H, I):
    name, be, xp = backend
    traces, cache, reset_t, g_c_t, grads = _random_step(seed, B, H, I, dtype, pattern)
    want_S, want_G = rtrl.trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, grads)
    got_S, got_G = be.trace_step_accumulate(_to(xp, traces.copy()), _to(xp, cache), xp.asarray(reset_t),
                                            xp.asarray(g_c_t), _to(xp, grads))
    tol = tolerance("kernel", dtype)
    where = f"{name} {np.dtype(dtype).name} B={B} H={H} I={I} reset={pattern}"
    assert_fields_close(f"step traces ({where})", got_S, want_S, tol)
    assert_fields_close(f"step grads ({where})", got_G, want_G, tol)


@given(seed=st.integers(0, 2**31 - 1), pattern=st.sampled_from(RESET_PATTERNS),
       dtype=st.sampled_from(DTYPES), B=st.integers(1, 6), H=st.integers(5, 13), I=st.integers(1, 5),
       parallel=st.booleans())
def test_numba_step_unit_blocks_match_numpy(seed, pattern, dtype, B, H, I, parallel):
    """Several unit blocks and a partial one (blocks of 4 units forced by a tiny block budget)."""
    from rtrl_ref.kernels import numba_backend, step_numba

    traces, cache, reset_t, g_c_t, grads = _random_step(seed, B, H, I, dtype, pattern)
    want_S, want_G = rtrl.trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, grads)
    saved = step_numba.BLOCK_BYTES
    step_numba.BLOCK_BYTES = 1
    try:
        assert step_numba.block_units(I, np.dtype(dtype).itemsize) == 4
        be = numba_backend.backend(parallel=parallel)
        got_S, got_G = be.trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t,
                                                ELSTMParams(*(a.copy() for a in grads)))
    finally:
        step_numba.BLOCK_BYTES = saved
    tol = tolerance("kernel", dtype)
    where = f"numba parallel={parallel} {np.dtype(dtype).name} B={B} H={H} I={I} blocks of 4"
    assert_fields_close(f"step traces ({where})", got_S, want_S, tol)
    assert_fields_close(f"step grads ({where})", got_G, want_G, tol)


@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 8), dtype=st.sampled_from(DTYPES), **sizes)
def test_segment_carried_pass_matches_numpy(backend, seed, T, dtype, B, H, I):
    name, be, xp = backend
    traces_in, *rest = _random_segment(seed, T, B, H, I, dtype)
    want_G, want_S = rtrl.segment_carried_pass(traces_in.copy(), *rest)
    got_G, got_S = be.segment_carried_pass(_to(xp, traces_in.copy()), *(xp.asarray(a) for a in rest))
    tol = tolerance("kernel", dtype)
    where = f"{name} {np.dtype(dtype).name} T={T} B={B} H={H} I={I}"
    assert_fields_close(f"segment grads ({where})", got_G, want_G, tol)
    assert_fields_close(f"segment traces ({where})", got_S, want_S, tol)


# ---------------------------------------------------------------------------------------------
# drivers on real problems (regimes: saturated, forget gate open / closed; every reset pattern)


def _driver_case(prob):
    back = bptt_grads(prob)
    g = np.random.default_rng(1)
    traces_in = rtrl.zero_traces(*prob.x.shape[1:2], prob.p.W_z.shape[0], prob.x.shape[2], prob.x.dtype)
    traces_in = Traces(*(g.standard_normal(a.shape).astype(a.dtype) for a in traces_in))
    return back, traces_in


def _assert_result_close(prefix, got, want, tol):
    # a field that is exactly zero in the reference (e.g. fully saturated gates) must be exactly zero
    assert_fields_close(f"{prefix} grads", got.grads, want.grads, tol, allow_zero=ELSTMParams._fields)
    assert_fields_close(f"{prefix} traces", got.traces, want.traces, tol, allow_zero=Traces._fields)


@given(prob=problems(max_T=8, max_B=3, max_I=6, max_H=6), dtype=st.sampled_from(DTYPES))
def test_drivers_match_numpy(driver_backend, prob, dtype):
    name, xp = driver_backend
    prob = prob._replace(p=prob.p.astype(dtype), q=prob.q.astype(dtype), V=prob.V.astype(dtype),
                         x=prob.x.astype(dtype), c_0=prob.c_0.astype(dtype))
    back, traces_in = _driver_case(prob)
    tol = tolerance("kernel", dtype)
    where = f"{name} {np.dtype(dtype).name} {describe(prob)}"
    traj, reset, g_c = _to(xp, back.traj), xp.asarray(prob.reset), xp.asarray(back.g_c)
    tr_in = _to(xp, traces_in)
    want = rtrl_sequence(back.traj, prob.reset, back.g_c, traces_in)
    got = rtrl_sequence(traj, reset, g_c, tr_in, backend=name)
    _assert_result_close(f"rtrl_sequence ({where})", got, want, tol)
    want = rtrl_segment(prob.p, back.traj, prob.reset, back.g_c, traces_in)
    got = rtrl_segment(_to(xp, prob.p), traj, reset, g_c, tr_in, backend=name)
    _assert_result_close(f"rtrl_segment ({where})", got, want, tol)


# ---------------------------------------------------------------------------------------------
# negative twins: the comparisons above can fail


@pytest.mark.parametrize("dtype", DTYPES)
def test_negative_twin_perturbed_trace_entry_fails(backend, dtype):
    name, be, xp = backend
    traces, cache, reset_t, g_c_t, grads = _random_step(3, 3, 5, 7, dtype, "random")
    want_S, want_G = rtrl.trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, grads)
    got_S, got_G = be.trace_step_accumulate(_to(xp, traces.copy()), _to(xp, cache), xp.asarray(reset_t),
                                            xp.asarray(g_c_t), _to(xp, grads))
    W_z = to_numpy(got_S.W_z).copy()
    W_z[1, 2, 3] += 1e-3 * np.abs(W_z).max()
    bad = compare_fields("traces", got_S._replace(W_z=W_z), want_S, tolerance("kernel", dtype))
    assert [c.name for c in bad if not c.ok] == ["traces.W_z"], f"{name}: perturbed entry not detected"


@pytest.mark.parametrize("dtype", DTYPES)
def test_negative_twin_skipped_reset_fails(backend, dtype):
    name, be, xp = backend
    traces, cache, reset_t, g_c_t, grads = _random_step(4, 3, 5, 7, dtype, "first")
    assert reset_t.all()
    want_S, want_G = rtrl.trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, grads)
    no_reset = xp.zeros(reset_t.shape, bool)                          # (B,) the deliberate bug
    got_S, got_G = be.trace_step_accumulate(_to(xp, traces.copy()), _to(xp, cache), no_reset,
                                            xp.asarray(g_c_t), _to(xp, grads))
    tol = tolerance("kernel", dtype)
    failed = [c.name for c in compare_fields("traces", got_S, want_S, tol) + compare_fields("grads", got_G, want_G, tol)
              if not c.ok]
    assert len(failed) == 12, f"{name}: skipped reset detected only in {failed}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_negative_twin_stale_carried_trace_fails(backend, dtype):
    """A segment pass that forgets to decay the carried-in trace must fail the comparison."""
    name, be, xp = backend
    traces_in, coef_in, decay_in, *rest = _random_segment(5, 4, 2, 3, 5, dtype)
    want_G, want_S = rtrl.segment_carried_pass(traces_in.copy(), coef_in, decay_in, *rest)
    ones = xp.ones(decay_in.shape, dtype)                             # (B, H) the deliberate bug
    got_G, got_S = be.segment_carried_pass(_to(xp, traces_in.copy()), xp.asarray(coef_in), ones,
                                           *(xp.asarray(a) for a in rest))
    failed = [c.name for c in compare_fields("traces", got_S, want_S, tolerance("kernel", dtype)) if not c.ok]
    assert len(failed) == 6, f"{name}: undecayed carried trace detected only in {failed}"


# ---------------------------------------------------------------------------------------------
# input handling


def test_numba_accepts_non_contiguous_inputs():
    be = pytest.importorskip("rtrl_ref.kernels.numba_backend").backend()
    traces, cache, reset_t, g_c_t, grads = _random_step(6, 3, 4, 5, np.float64, "random")
    want_S, want_G = rtrl.trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, grads)
    fortran = lambda tree: type(tree)(*(np.asfortranarray(a) for a in tree))
    got_S, got_G = be.trace_step_accumulate(fortran(traces.copy()), fortran(cache), reset_t,
                                            np.asfortranarray(g_c_t), fortran(grads))
    assert_fields_close("traces (Fortran-ordered inputs)", got_S, want_S, tolerance("kernel", np.float64))
    assert_fields_close("grads (Fortran-ordered inputs)", got_G, want_G, tolerance("kernel", np.float64))
    traces_in, *rest = _random_segment(7, 4, 3, 4, 5, np.float64)
    want_G, want_S = rtrl.segment_carried_pass(traces_in.copy(), *rest)
    strided = [a[::-1].copy()[::-1] for a in rest]                   # negative strides
    got_G, got_S = be.segment_carried_pass(fortran(traces_in.copy()), *strided)
    assert_fields_close("segment grads (strided inputs)", got_G, want_G, tolerance("kernel", np.float64))
    assert_fields_close("segment traces (strided inputs)", got_S, want_S, tolerance("kernel", np.float64))


@pytest.mark.parametrize("variant", ["serial", "parallel"])
def test_numba_rejects_bad_shapes_and_dtypes(variant):
    be = pytest.importorskip("rtrl_ref.kernels.numba_backend").backend(parallel=variant == "parallel")
    traces, cache, reset_t, g_c_t, grads = _random_step(8, 3, 4, 5, np.float64, "none")
    with pytest.raises(ValueError, match=r"cache\.x_t: expected shape \(B=3, I=5\), got \(3, 6\)"):
        be.trace_step_accumulate(traces, cache._replace(x_t=np.zeros((3, 6))), reset_t, g_c_t, grads)
    with pytest.raises(ValueError, match=r"g_c_t: expected dtype float64, got float32"):
        be.trace_step_accumulate(traces, cache, reset_t, g_c_t.astype(np.float32), grads)
    with pytest.raises(ValueError, match=r"reset_t: expected dtype bool, got int64"):
        be.trace_step_accumulate(traces, cache, reset_t.astype(np.int64), g_c_t, grads)
    with pytest.raises(ValueError, match=r"traces\.W_z: expected dtype float32 or float64, got int64"):
        be.trace_step_accumulate(traces._replace(W_z=np.zeros((3, 4, 5), np.int64)), cache, reset_t, g_c_t, grads)
    traces_in, *rest = _random_segment(9, 4, 3, 4, 5, np.float64)
    with pytest.raises(ValueError, match=r"x: expected shape \(T=4, B=3, I=5\), got \(4, 3, 6\)"):
        be.segment_carried_pass(traces_in, *rest[:-2], np.zeros((4, 3, 6)), rest[-1])
    with pytest.raises(ValueError, match=r"u_f: expected shape \(T=4, B=3, H=4\), got \(5, 3, 4\)"):
        be.segment_carried_pass(traces_in, *rest[:3], np.zeros((5, 3, 4)), *rest[4:])


# ---------------------------------------------------------------------------------------------
# threading: fork() after a parallel kernel (gymnasium's AsyncVectorEnv forks on Linux)

FORK_SCRIPT = textwrap.dedent("""
    import multiprocessing, sys, warnings
    import numba, numpy as np
    from rtrl_ref.kernels import numba_backend
    from rtrl_ref.rtrl import zero_traces, zero_grads
    from rtrl_ref.cell import CellCache

    warnings.simplefilter("ignore", DeprecationWarning)   # 3.12+: fork() of a threaded process
    be = numba_backend.backend(parallel=True)
    B, H, I = 2, 8, 5
    rng = np.random.default_rng(0)
    cache = CellCache(*(rng.standard_normal((B, I if k == 0 else H)) for k in range(8)))

    def step():
        S, G = be.trace_step_accumulate(zero_traces(B, H, I, np.float64), cache, np.zeros(B, bool),
                                        np.ones((B, H)), zero_grads(H, I, np.float64))
        return float(G.W_z.sum())

    def child(conn):
        conn.send(step())

    expected = step()
    ctx = multiprocessing.get_context("fork")
    parent, child_end = ctx.Pipe()
    proc = ctx.Process(target=child, args=(child_end,))
    proc.start()
    proc.join(60)
    ok = proc.exitcode == 0 and parent.poll(1) and parent.recv() == expected
    print(numba.threading_layer(), proc.exitcode)
    sys.exit(0 if ok else 3)
""")


def _run_fork_script(layer=None):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    env["NUMBA_NUM_THREADS"] = "2"
    if layer is not None:
        env["NUMBA_THREADING_LAYER"] = layer
    return subprocess.run([sys.executable, "-c", FORK_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=240)


def test_fork_after_parallel_kernel_works():
    pytest.importorskip("numba")
    run = _run_fork_script()
    assert run.returncode == 0, f"fork after a parallel kernel failed: {run.stdout} {run.stderr[-2000:]}"
    assert run.stdout.split()[0] == "workqueue", f"threading layer: {run.stdout}"


def test_negative_twin_fork_after_openmp_kernel_dies():
    """The check above can fail: with the OpenMP layer the forked child is killed."""
    pytest.importorskip("numba")
    run = _run_fork_script("omp")
    if "No threading layer could be loaded" in run.stderr or "omp" not in run.stdout + run.stderr:
        pytest.skip("Numba's OpenMP threading layer is not available here")
    assert run.returncode != 0, f"fork after an OpenMP kernel unexpectedly survived: {run.stdout}"
