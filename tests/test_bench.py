"""The benchmark's correctness part (what CI runs; no timings) and its verdict logic."""

import numpy as np
import pytest

from rtrl_ref.bench import checks, report
from rtrl_ref.bench.__main__ import main as bench_main


def test_quick_benchmark_checks_pass():
    rows = checks.run_checks(quick=True)
    bad = [f"{r['name']}: rel {r['rel']:.3e} > tol {r['tol']:.1e}" for r in rows if not r["ok"]]
    assert rows and not bad, "\n".join(bad)


def test_negative_twin_broken_segment_backend_fails():
    """A backend whose segment form forgets the carried-in traces must fail the check."""
    be = checks.timed_backends()["numba-serial"]

    def forgets_carried_traces(p, traj, reset, g_c, traces_in):
        zero = type(traces_in)(*(np.zeros_like(a) for a in traces_in))
        return be.segment_unroll(p, traj, reset, g_c, zero)

    rows = checks.check_backend("broken", be._replace(segment_unroll=forgets_carried_traces), 5, 2, 3, 4, np.float64)
    failed = {r["name"] for r in rows if not r["ok"]}
    assert any(name.startswith("broken float64 rtrl_segment grads") for name in failed), failed
    assert not any("bptt" in name for name in failed), failed


def test_negative_twin_broken_bptt_backend_fails():
    be = checks.timed_backends()["numba-serial"]

    def no_input_gradient(p, traj, reset, g_c):
        grads, g_x, g_c0, lam = be.bptt_unroll(p, traj, reset, g_c)
        return grads, np.zeros_like(g_x), g_c0, lam

    rows = checks.check_backend("broken", be._replace(bptt_unroll=no_input_gradient), 5, 2, 3, 4, np.float32)
    failed = {r["name"] for r in rows if not r["ok"]}
    assert failed and all(name.startswith("broken float32 bptt") and "g_x" in name for name in failed), failed


def test_check_only_cli_exits_zero(capsys):
    assert bench_main(["--quick", "--check-only"]) == 0
    assert "comparisons passed" in capsys.readouterr().out


def _ops_run(threads, step_ratio, seg, t_scale=1.0):
    step = {dn: dict(step_numba_over_triad=step_ratio, speedup_numba_vs_numpy=10.0,
                     times_ms=dict(triad=1.0, step_numba=2.0 * t_scale, step_numpy=20.0))
            for dn in ("float32", "float64")}
    segment = {dn: {"32": dict(seg, times_ms=dict(rtrl_segment=5.0 * t_scale),
                               library_segment_speedup_numba_vs_numpy=1.5,
                               carried_pass_speedup_numba_vs_numpy=1.7),
                    "1": dict(seg, times_ms=dict(rtrl_segment=1.0))}
               for dn in ("float32", "float64")}
    return dict(threads=dict(numba_num_threads=threads, OPENBLAS_NUM_THREADS=str(threads)),
                step=step, segment=segment)


def test_verdicts_apply_the_goal_thresholds():
    seg_ok = dict(rtrl_over_bptt=1.1, forward_rtrl_over_bptt=1.6, step_loop_over_rtrl=5.0,
                  step_loop_over_rtrl_same_outputs=5.0)
    results = dict(dtypes=["float32", "float64"], sizes=dict(B=32),
                   ops_runs=[_ops_run(1, 1.3, seg_ok), _ops_run(2, 1.3, seg_ok, t_scale=1.2)],
                   torch=dict(skipped="torch not installed"),
                   memory=dict(state_formula_bytes=100, state_bytes_per_element=100,
                               online_peak_per_element=[104, 105], T=[10, 100], rtrl_bytes=[5, 5],
                               bptt_bytes=[1, 50], method="tracemalloc"),
                   warm_start=dict(first_calls_s=0.5, import_s=0.1, all_from_cache=True))
    v = report.verdicts(results)
    assert v["1"]["float32"]["met"] and v["3"]["float64"]["met"] and v["4"]["met"]
    assert v["5"]["met"] and v["5"]["first_T_where_bptt_exceeds_rtrl"] == 100 and v["7"]["met"]
    assert v["2"]["verdict"] == "skipped: torch not installed"
    # negative twin: the same results just past each threshold must fail
    seg_bad = dict(seg_ok, step_loop_over_rtrl=3.9)
    results["ops_runs"] = [_ops_run(1, 1.19, seg_bad), _ops_run(2, 1.19, seg_bad, t_scale=1.31)]
    results["warm_start"]["first_calls_s"] = 1.01
    v = report.verdicts(results)
    assert not v["1"]["float32"]["met"] and not v["3"]["float32"]["met"] and not v["4"]["met"]
    assert not v["7"]["met"]


@pytest.mark.parametrize("argv", [["--tasks", "ops,bogus"]])
def test_cli_rejects_unknown_task(argv):
    with pytest.raises(SystemExit, match="bogus"):
        bench_main(["--quick"] + argv)


def test_goal2_needs_10x_at_every_batch_size_dtype_and_thread_count():
    def run(speedup_b1):
        return {dn: {"32": dict(speedup=16.0), "1": dict(speedup=speedup_b1)} for dn in ("float32", "float64")} \
            | dict(torch="2.13.0+cpu")
    results = dict(dtypes=["float32", "float64"], torch=dict(threads={"1": run(12.0), "2": run(11.0)}))
    v = report.goal2(results)
    assert v["met"] and v["worst"] == "float32 B=1 threads=2" and v["worst_speedup"] == 11.0
    results["torch"]["threads"]["2"] = run(9.9)                       # negative twin: one cell below 10x
    v = report.goal2(results)
    assert not v["met"] and v["worst_speedup"] == 9.9


def test_bandwidth_and_segment_plots_are_written(tmp_path):
    seg_times = dict(bptt_segment=10.0, rtrl_segment=9.0, forward_rtrl_segment=15.0,
                     rtrl_segment_no_input_grad=7.0, step_loop=30.0)
    run = dict(threads=dict(numba_num_threads=1, OPENBLAS_NUM_THREADS="1"),
               step={dn: dict(triad_GBps=14.0, step_numba_GBps=17.0, step_numba_single_call_GBps=15.5)
                     for dn in ("float32", "float64")},
               segment={dn: {B: dict(times_ms=seg_times) for B in ("32", "1")}
                        for dn in ("float32", "float64")})
    results = dict(dtypes=["float32", "float64"], sizes=dict(B=32, H=256, I=257, T=50),
                   ops_runs=[run, run])
    for name, plot in (("bandwidth.png", report.plot_bandwidth), ("segment.png", report.plot_segment)):
        path = tmp_path / name
        plot(results, str(path))
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
