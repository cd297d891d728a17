"""Every kernel backend == the NumPy reference (verify.checks.check_backend_*).

One test body per property runs against every available backend (numpy itself, numba serial and
parallel, cupy where a GPU is present): float64 to round-off, float32 within the documented
tolerance. Each check has a negative twin: a perturbed trace entry, a skipped reset or an
undecayed carried trace must fail.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rtrl_ref.kernels import available_backends
from rtrl_ref.traces import segment_carried_pass, trace_step_accumulate
from verify import broken, checks
from verify.checks import carried_inputs, step_inputs
from verify.compare import assert_all_ok, assert_fields_close, compare_fields, to_numpy, tolerance
from verify.problem import RESET_PATTERNS, make_problem
from verify.strategies import (
    MAX_B,
    ROW_PATTERNS,
    block_bytes,
    chunks,
    describe,
    problems,
    row_reset_mask,
    weighted,
)

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
    """The backend under test: a name, or the parallel Numba backend object."""
    if request.param == "numba-parallel":
        from rtrl_ref.kernels import numba_backend

        return numba_backend.backend(parallel=True)
    return request.param


@pytest.fixture(scope="module",
                params=[pytest.param(n, marks=pytest.mark.gpu) if n == "cupy" else n for n in available_backends()])
def driver_backend(request):
    """The name of a backend the drivers select by name."""
    return request.param


sizes = dict(B=weighted(1, MAX_B, 4), H=weighted(1, 13, 6), I=st.integers(1, 9))
ROW_RESETS = st.one_of(st.sampled_from(RESET_PATTERNS), st.sampled_from(ROW_PATTERNS))


def step_reset(pattern, B, seed):
    """(B,) reset mask of a named pattern; the row patterns differ between rows of one pass."""
    return row_reset_mask(np.random.default_rng(seed + 1), 1, B, pattern)[0]


# ---------------------------------------------------------------------------------------------
# kernel level


@given(seed=st.integers(0, 2**31 - 1), pattern=ROW_RESETS, dtype=st.sampled_from(DTYPES), **sizes)
@example(seed=0, pattern=np.arange(9) % 5 == 1, dtype=np.float64, B=9, H=3, I=4)   # rows 1 and 6 reset
@example(seed=1, pattern=np.arange(8) == 6, dtype=np.float64, B=8, H=2, I=3)       # one row of the 2nd pass
def test_trace_step_accumulate_matches_numpy(backend, seed, pattern, dtype, B, H, I):
    reset_t = step_reset(pattern, B, seed) if isinstance(pattern, str) else pattern
    where = f"{checks.backend_name(backend)} {np.dtype(dtype).name} B={B} H={H} I={I} reset={np.flatnonzero(reset_t)}"
    assert_all_ok(checks.check_backend_step(backend, B, H, I, dtype, seed, reset_t), where)


@given(seed=st.integers(0, 2**31 - 1), pattern=ROW_RESETS, dtype=st.sampled_from(DTYPES),
       B=weighted(1, MAX_B, 4), H=st.integers(5, 17), I=st.integers(1, 5), parallel=st.booleans(),
       n_chunks=chunks(), data=st.data())
def test_numba_step_unit_blocks_match_numpy(seed, pattern, dtype, B, H, I, parallel, n_chunks, data):
    """Several unit blocks and a partial one (blocks of 4 to 7 units forced by a tiny block
    budget), the parallel variant split into 1, 2 or 3 chunks."""
    from rtrl_ref.kernels import numba_backend, step_numba

    itemsize = np.dtype(dtype).itemsize
    budget = data.draw(block_bytes(I, itemsize), label="block bytes")
    reset_t = step_reset(pattern, B, seed)
    with checks.numba_layout(budget, n_chunks):
        units = step_numba.block_units(I, itemsize)
        assert 4 <= units <= 7 and units * I * itemsize == budget
        rows = checks.check_backend_step(numba_backend.backend(parallel=parallel), B, H, I, dtype, seed, reset_t)
    assert_all_ok(rows, f"numba parallel={parallel} chunks={n_chunks} {np.dtype(dtype).name} B={B} H={H} I={I} "
                        f"blocks of {units} reset={np.flatnonzero(reset_t)}")


@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 5), dtype=st.sampled_from(DTYPES),
       H=st.integers(1, 9), I=st.integers(1, 5), B=st.integers(1, 3), n_chunks=chunks())
def test_numba_carried_pass_chunks_match_numpy(seed, T, dtype, H, I, B, n_chunks):
    """The parallel carried pass split into 1, 2 or 3 chunks of units."""
    from rtrl_ref.kernels import numba_backend

    with checks.numba_layout(n_chunks=n_chunks):
        rows = checks.check_backend_carried_pass(numba_backend.backend(parallel=True), T, B, H, I, dtype, seed)
    assert_all_ok(rows, f"numba parallel chunks={n_chunks} {np.dtype(dtype).name} T={T} B={B} H={H} I={I}")


@given(prob=problems(max_T=4, max_I=5, max_H=6), n_chunks=chunks())
def test_batch_rows_are_independent_on_every_backend(backend, prob, n_chunks):
    """The kernels' four-row passes keep rows apart (and their parallel chunks): the batch's
    gradients are the sums of single-row runs, resets differing per row."""
    with checks.numba_layout(n_chunks=n_chunks):
        rows = checks.check_batch_rows(prob, backend=backend)
    assert_all_ok(rows, f"{checks.backend_name(backend)} chunks={n_chunks} {describe(prob)}")


def test_negative_twin_row_leak_in_the_step_kernel_fails(backend):
    prob = make_problem(3, T=3, B=6, I=3, H=4, resets="random")
    rows = checks.check_batch_rows(prob, backend=broken.backend_row_leak(backend))
    failed = {c.name.split(".")[0] for c in rows if not c.ok}
    assert failed == {"rtrl grad (batch vs sum of rows)", "rtrl traces (batch vs rows)"}, failed


@given(seed=st.integers(0, 2**31 - 1), T=st.integers(1, 8), dtype=st.sampled_from(DTYPES), **sizes)
def test_segment_carried_pass_matches_numpy(backend, seed, T, dtype, B, H, I):
    where = f"{checks.backend_name(backend)} {np.dtype(dtype).name} T={T} B={B} H={H} I={I}"
    assert_all_ok(checks.check_backend_carried_pass(backend, T, B, H, I, dtype, seed), where)


# ---------------------------------------------------------------------------------------------
# drivers on real problems (regimes: saturated, forget gate open / closed; every reset pattern)


@given(prob=problems(max_T=8, max_I=6, max_H=6), dtype=st.sampled_from(DTYPES))
def test_drivers_match_numpy(driver_backend, prob, dtype):
    prob = prob._replace(p=prob.p.astype(dtype), q=prob.q.astype(dtype), V=prob.V.astype(dtype),
                         x=prob.x.astype(dtype), c_0=prob.c_0.astype(dtype))
    where = f"{driver_backend} {np.dtype(dtype).name} {describe(prob)}"
    assert_all_ok(checks.check_drivers_on(prob, driver_backend), where)


def test_forward_without_validation_equals_the_validated_forward(driver_backend):
    """elstm_forward(validate=False) skips the input checks only: same c and cell cache."""
    from rtrl_ref.unroll import elstm_forward

    prob = make_problem(4, T=5, B=9, I=3, H=4, resets="random")
    p, x, reset, c_0 = checks.to_backend(driver_backend, prob.p, prob.x, prob.reset, prob.c_0)
    c, traj = elstm_forward(p, x, reset, c_0, validate=True, backend=driver_backend)
    c_fast, traj_fast = elstm_forward(p, x, reset, c_0, validate=False, backend=driver_backend)
    assert_fields_close("forward, validate=False", dict(c=c_fast, traj=traj_fast), dict(c=c, traj=traj), 0.0)


def test_forward_without_validation_still_refuses_what_does_not_fit(monkeypatch):
    """validate=False skips the input checks, not the memory check: T=20000, B=64, H=512 needs
    7 x 2 arrays of (T, B, H) on the NumPy path, refused on an 8 GiB machine naming (T, B, H)."""
    import rtrl_ref.validate as validate
    from rtrl_ref import init_elstm
    from rtrl_ref.unroll import elstm_forward

    monkeypatch.setattr(validate, "available_memory", lambda xp=np: 8 * 2**30)
    p = init_elstm(np.random.default_rng(0), 1, 512)
    x = np.zeros((20000, 64, 1), np.float32)                               # (T, B, I): 5 MB
    with pytest.raises(validate.InsufficientMemory, match=r"\(T, B, H\) = \(20000, 64, 512\)"):
        elstm_forward(p, x, np.zeros((20000, 64), bool), validate=False)


# ---------------------------------------------------------------------------------------------
# negative twins: the comparisons above can fail


@pytest.mark.parametrize("dtype", DTYPES)
def test_negative_twin_perturbed_trace_entry_fails(dtype):
    traces, cache, reset_t, g_c_t, grads = step_inputs(3, 3, 5, 7, dtype, "random")
    want_S, _ = trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, checks.copy_tree(grads))
    W_z = to_numpy(want_S.W_z).copy()
    W_z[1, 2, 3] += 1e-3 * np.abs(W_z).max()
    bad = compare_fields("traces", want_S._replace(W_z=W_z), want_S, tolerance("kernel", dtype))
    assert [c.name for c in bad if not c.ok] == ["traces.W_z"], "perturbed entry not detected"


@pytest.mark.parametrize("dtype", DTYPES)
def test_negative_twin_skipped_reset_fails(backend, dtype):
    rows = checks.check_backend_step(broken.backend_skipping_reset(backend), 3, 5, 7, dtype, 4, "every")
    failed = [c.name for c in rows if not c.ok]
    assert len(failed) == 12, f"{checks.backend_name(backend)}: skipped reset detected only in {failed}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_negative_twin_stale_carried_trace_fails(backend, dtype):
    """A segment pass that forgets to decay the carried-in trace must fail the comparison."""
    rows = checks.check_backend_carried_pass(broken.backend_undecayed_carried(backend), 4, 2, 3, 5, dtype, 5)
    failed = [c.name for c in rows if not c.ok and "traces" in c.name]
    assert len(failed) == 6, f"{checks.backend_name(backend)}: undecayed carried trace detected only in {failed}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_negative_twin_drivers_off_by_ten_tolerances_fail(driver_backend, dtype):
    eps = 10 * tolerance("kernel", dtype)
    rows = checks.check_backend_drivers(driver_backend, 2, 4, 3, 5, dtype, 0, drivers=broken.off_by(eps))
    assert all(not c.ok for c in rows if c.max_abs > 0), "a driver output off by 10 tolerances passed"


def test_negative_twin_segment_overwriting_the_callers_traces_fails():
    """On an in-place backend, a driver that reuses traces it was not given must fail the check."""
    pytest.importorskip("numba")
    rows = checks.check_backend_drivers("numba", 2, 4, 3, 5, np.float64, 0,
                                        drivers=broken.segment_always_overwriting())
    failed = {c.name for c in rows if not c.ok}
    assert failed and all("leaves the carried-in traces" in name for name in failed), failed


# ---------------------------------------------------------------------------------------------
# input handling


def assert_nan_close(name, got, want):
    """NaN where the reference has NaN, round-off elsewhere."""
    for field, a, b in zip(want._fields, got, want):
        a, b = to_numpy(a), to_numpy(b)
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{name}.{field}: NaN positions")
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=f"{name}.{field}")


def test_non_finite_values_propagate_as_in_the_numpy_reference(backend):
    """The kernels do not scan for finiteness (a second pass over the traces): a NaN in a
    carried-in trace flows into exactly the outputs it flows into in the NumPy reference, with
    C-ordered arguments (the fast path of the argument check) and Fortran-ordered ones (the full
    check, which copies them)."""
    traces, cache, reset_t, g_c_t, grads = step_inputs(2, 5, 3, 4, np.float64, np.array([0, 1, 0, 0, 0], bool))
    traces.W_z[0, 2, 1] = traces.w_f[3, 1] = np.nan
    want = trace_step_accumulate(checks.copy_tree(traces), cache, reset_t, g_c_t, checks.copy_tree(grads))
    be = checks.get_backend(backend)
    for layout in (np.ascontiguousarray, np.asfortranarray):
        S, G = (type(tree)(*(layout(a) for a in checks.copy_tree(tree))) for tree in (traces, grads))
        got = be.trace_step_accumulate(*checks.to_backend(backend, S, cache, reset_t, g_c_t, G))
        assert_nan_close(f"step traces ({layout.__name__})", got[0], want[0])
        assert_nan_close(f"step grads ({layout.__name__})", got[1], want[1])
    traces_in, *rest = carried_inputs(3, 4, 5, 3, 4, np.float64)
    traces_in.W_z[4, 1, 2] = traces_in.b_z[2, 0] = np.nan
    want = segment_carried_pass(checks.copy_tree(traces_in), *rest)
    got = be.segment_carried_pass(*checks.to_backend(backend, checks.copy_tree(traces_in), *rest))
    assert_nan_close("carried grads", got[0], want[0])
    assert_nan_close("carried traces", got[1], want[1])


def test_numba_accepts_non_contiguous_inputs():
    be = pytest.importorskip("rtrl_ref.kernels.numba_backend").backend()
    traces, cache, reset_t, g_c_t, grads = step_inputs(6, 3, 4, 5, np.float64, "random")
    want_S, want_G = trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, checks.copy_tree(grads))

    def fortran(tree):
        return type(tree)(*(np.asfortranarray(a) for a in tree))

    got_S, got_G = be.trace_step_accumulate(fortran(traces.copy()), fortran(cache), reset_t,
                                            np.asfortranarray(g_c_t), fortran(grads))
    assert_fields_close("traces (Fortran-ordered inputs)", got_S, want_S, tolerance("kernel", np.float64))
    assert_fields_close("grads (Fortran-ordered inputs)", got_G, want_G, tolerance("kernel", np.float64))
    traces_in, *rest = carried_inputs(7, 4, 3, 4, 5, np.float64)
    want_G, want_S = segment_carried_pass(traces_in.copy(), *rest)
    strided = [a[::-1].copy()[::-1] for a in rest]                   # negative strides
    got_G, got_S = be.segment_carried_pass(fortran(traces_in.copy()), *strided)
    assert_fields_close("segment grads (strided inputs)", got_G, want_G, tolerance("kernel", np.float64))
    assert_fields_close("segment traces (strided inputs)", got_S, want_S, tolerance("kernel", np.float64))


@pytest.mark.parametrize("variant", ["serial", "parallel"])
def test_numba_rejects_bad_shapes_and_dtypes(variant):
    be = pytest.importorskip("rtrl_ref.kernels.numba_backend").backend(parallel=variant == "parallel")
    traces, cache, reset_t, g_c_t, grads = step_inputs(8, 3, 4, 5, np.float64, "none")
    with pytest.raises(ValueError, match=r"cache\.x_t: expected shape \(B=3, I=5\), got \(3, 6\)"):
        be.trace_step_accumulate(traces, cache._replace(x_t=np.zeros((3, 6))), reset_t, g_c_t, grads)
    with pytest.raises(ValueError, match=r"g_c_t: expected dtype float64, got float32"):
        be.trace_step_accumulate(traces, cache, reset_t, g_c_t.astype(np.float32), grads)
    with pytest.raises(ValueError, match=r"reset_t: expected dtype bool, got int64"):
        be.trace_step_accumulate(traces, cache, reset_t.astype(np.int64), g_c_t, grads)
    with pytest.raises(ValueError, match=r"traces\.W_z: expected dtype float32 or float64, got int64"):
        be.trace_step_accumulate(traces._replace(W_z=np.zeros((3, 4, 5), np.int64)), cache, reset_t, g_c_t, grads)
    traces_in, *rest = carried_inputs(9, 4, 3, 4, 5, np.float64)
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
    from rtrl_ref.traces import zero_grads, zero_traces
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


# ---------------------------------------------------------------------------------------------
# bounds checking: an index bug fails an assertion instead of corrupting memory

OOB_SCRIPT = textwrap.dedent("""
    import importlib.util, pathlib, sys
    import numpy as np
    from verify.checks import step_inputs

    source = pathlib.Path("rtrl_ref/kernels/step_numba.py").read_text()
    if sys.argv[2] == "mutant":
        assert source.count("x3 = x_t[b + 3]") == 1
        source = source.replace("x3 = x_t[b + 3]", "x3 = x_t[b + 4]")   # row b + 4 of a (4, I) x_t
    path = pathlib.Path(sys.argv[1]) / "step_kernel_under_test.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("step_kernel_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.trace_step_accumulate(*step_inputs(0, 4, 3, 5, np.float64, "none"))
    except IndexError as e:
        print("IndexError:", e)
        sys.exit(7)
""")


@pytest.mark.slow
@pytest.mark.parametrize("kernel", ["mutant", "shipped"])
def test_boundscheck_turns_an_out_of_bounds_row_into_an_index_error(tmp_path, kernel):
    """With NUMBA_BOUNDSCHECK=1 (the opt-in `pytest --boundscheck` run), a per-step kernel that
    reads row b + 4 raises IndexError (exit 7 here) rather than reading past the array; the
    shipped kernel runs clean under the same check (the twin)."""
    pytest.importorskip("numba")
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "cache"), NUMBA_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", OOB_SCRIPT, str(tmp_path), kernel], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    want = 7 if kernel == "mutant" else 0
    assert run.returncode == want, f"{kernel}: exit {run.returncode}: {run.stdout} {run.stderr[-2000:]}"
    assert ("index is out of bounds" in run.stdout) == (kernel == "mutant")


def test_boundscheck_option_is_active_when_asked(request):
    """`pytest --boundscheck` sets NUMBA_BOUNDSCHECK=1 before any kernel is compiled."""
    import numba

    if not request.config.getoption("--boundscheck"):
        pytest.skip("bounds-checked run not requested (pytest --boundscheck)")
    assert os.environ.get("NUMBA_BOUNDSCHECK") == "1" and numba.config.BOUNDSCHECK
