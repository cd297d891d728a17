"""`python -m rtrl_ref.bench.cells`: the NumPy RTRL step of each cell against its fused Numba kernel.

One online step of a cell of rtrl_ref.cells (reset, forward and trace update; docs/derivation.md,
section 10), timed two ways in the same process on the same data:

    numpy   rtrl_ref.cells.drivers.rtrl_step: the cell's NumPy step, reset and trace update
            (new arrays every step; what `rtrl_sequence(..., backend="numpy")` runs)
    numba   rtrl_ref.kernels.cells_numba: one compiled call, in place, work buffers allocated once
            (what `rtrl_sequence(..., backend="numba")` runs)

For every cell and (B, H): the two are first run side by side for a few steps from the same state and
traces and must agree (tolerance('kernel', dtype) of verify.compare), then `--rounds` interleaved
rounds (numpy, numba, numpy, ...) of `--steps` steps each are timed after one warm-up round (JIT
compile or cache load); the median per-step time of each and their ratio are printed and, with
`--out`, written as JSON with the machine description and thread settings. I defaults to H + 1
(the agent's core input: H features and the reward). The thread pools are those of this process
(set OPENBLAS_NUM_THREADS / NUMBA_NUM_THREADS before starting it to pin them).

    python -m rtrl_ref.bench.cells --B 1 32 --H 64 256 --steps 50 --out cells.json
    python -m rtrl_ref.bench.cells --segment 20 ...   # also one unroll: segment form and numba step vs BPTT
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from rtrl_ref.bench.timing import interleaved, write_results
from rtrl_ref.cells import CELLS, get_cell, rtrl_segment, rtrl_sequence, rtrl_step
from rtrl_ref.cells.drivers import bptt, forward, step_function
from rtrl_ref.r2ac.cli import ArgumentParser
from verify.compare import assert_all_ok, compare_fields, tolerance

CHECK_STEPS = 3                       # steps compared before timing


def as_real(a):
    """A complex array as its real and imaginary parts stacked (the comparisons are real)."""
    return np.stack([a.real, a.imag]) if np.iscomplexobj(a) else a


def problem(name: str, B: int, H: int, I: int, steps: int, dtype, seed: int = 0):
    """(cell, params, x (steps, B, I), reset (steps, B), s_0 (B, H), traces_0): the cell's init, inputs
    N(0, 1), about one reset per row over the steps, a random carried-in state and traces."""
    rng = np.random.default_rng(seed)
    cell = get_cell(name)
    p = cell.init(rng, I, H, dtype)
    x = rng.standard_normal((steps, B, I)).astype(dtype)              # (steps, B, I)
    reset = rng.random((steps, B)) < 1.0 / steps                      # (steps, B)
    s_0 = cell.zero_state(p, B)                                       # (B, H)
    s_0 = s_0 + (0.5 * rng.standard_normal(s_0.shape)).astype(s_0.dtype)
    like = cell.zero_traces(p, B)
    traces_0 = type(like)(*(a + rng.standard_normal(a.shape).astype(a.dtype) for a in like))
    return cell, p, x, reset, s_0, traces_0


def copy_state(s, traces):
    return s.copy(), type(traces)(*(a.copy() for a in traces))


def check_agree(name: str, B: int, H: int, I: int, dtype, seed: int = 0) -> None:
    """The kernel == the NumPy step over CHECK_STEPS steps (state and traces); AssertionError otherwise."""
    cell, p, x, reset, s_0, traces_0 = problem(name, B, H, I, CHECK_STEPS, dtype, seed)
    kernel = step_function(cell, p, B, "numba").step
    s, traces = copy_state(s_0, traces_0)
    s_k, traces_k = copy_state(s_0, traces_0)
    for t in range(CHECK_STEPS):
        s, traces, _ = rtrl_step(cell, p, x[t], reset[t], s, traces)
        s_k, traces_k, _ = kernel(p, x[t], reset[t], s_k, traces_k)
    tol = tolerance("kernel", dtype)
    assert_all_ok(compare_fields("state", [as_real(s_k)], [as_real(s)], tol)
                  + compare_fields("traces", [as_real(a) for a in traces_k], [as_real(a) for a in traces], tol),
                  f"{name} B={B} H={H} I={I} {np.dtype(dtype).name}")


def time_one(name: str, B: int, H: int, I: int, steps: int, rounds: int, dtype=np.float32, seed: int = 0) -> dict:
    """Median per-step microseconds of the NumPy step and the Numba kernel at one (cell, B, H, I)."""
    check_agree(name, B, H, I, dtype, seed)
    cell, p, x, reset, s_0, traces_0 = problem(name, B, H, I, steps, dtype, seed)
    kernel = step_function(cell, p, B, "numba").step
    state = dict(numpy=copy_state(s_0, traces_0), numba=copy_state(s_0, traces_0))

    def numpy_steps():
        s, traces = state["numpy"]
        for t in range(steps):
            s, traces, _ = rtrl_step(cell, p, x[t], reset[t], s, traces)
        state["numpy"] = s, traces

    def numba_steps():
        s, traces = state["numba"]
        for t in range(steps):
            s, traces, _ = kernel(p, x[t], reset[t], s, traces)
        state["numba"] = s, traces

    timings = interleaved({"numpy": numpy_steps, "numba": numba_steps}, rounds=rounds, warmup=1)
    numpy_us = 1e6 * timings["numpy"].median_s / steps
    numba_us = 1e6 * timings["numba"].median_s / steps
    return dict(cell=name, B=B, H=H, I=I, steps=steps, rounds=rounds, dtype=np.dtype(dtype).name,
                numpy_us=numpy_us, numba_us=numba_us, ratio=numpy_us / numba_us,
                numpy_min_us=1e6 * timings["numpy"].min_s / steps, numba_min_us=1e6 * timings["numba"].min_s / steps)


def time_segment(name: str, B: int, H: int, I: int, T: int, rounds: int, dtype=np.float32, seed: int = 0) -> dict:
    """Median microseconds of one unroll of T steps, three ways, on the same data (learner's view):

        bptt        forward + bptt (NumPy drivers): the truncated gradient, the baseline
        segment     rtrl_segment (NumPy): the exact gradient over the whole history (forward, the
                    in-segment BPTT, and the carried traces, Eqs. 40-42)
        step_numba  rtrl_sequence(backend="numba"): the same exact gradient, one fused kernel per step

    First the three must agree with zero carried-in traces (then all are the same gradient)."""
    cell, p, x, reset, s_0, traces_0 = problem(name, B, H, I, T, dtype, seed)
    g_s = np.random.default_rng(seed + 1).standard_normal(x.shape[:2] + (H,)).astype(dtype)   # (T, B, H)
    if cell.name == "lru":
        g_s = g_s.astype(s_0.dtype)

    def bptt_grads():
        return bptt(cell, p, forward(cell, p, x, reset, s_0), reset, g_s).grads

    zero = cell.zero_traces(p, B)
    tol = tolerance("kernel", dtype)
    want = bptt_grads()
    for label, got in (("segment", rtrl_segment(cell, p, x, reset, g_s, s_0, zero).grads),
                       ("step_numba", rtrl_sequence(cell, p, x, reset, g_s, s_0, zero, backend="numba").grads)):
        assert_all_ok(compare_fields(label, [as_real(a) for a in got], [as_real(a) for a in want], tol),
                      f"{name} unroll B={B} H={H} I={I} T={T}")
    fns = {"bptt": bptt_grads,
           "segment": lambda: rtrl_segment(cell, p, x, reset, g_s, s_0, traces_0),
           "step_numba": lambda: rtrl_sequence(cell, p, x, reset, g_s, s_0, traces_0, backend="numba")}
    timings = interleaved(fns, rounds=rounds, warmup=1)
    us = {k: 1e6 * t.median_s for k, t in timings.items()}
    return dict(cell=name, B=B, H=H, I=I, T=T, rounds=rounds, dtype=np.dtype(dtype).name,
                bptt_us=us["bptt"], segment_us=us["segment"], step_numba_us=us["step_numba"],
                segment_over_bptt=us["segment"] / us["bptt"], step_numba_over_bptt=us["step_numba"] / us["bptt"])


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m rtrl_ref.bench.cells",
                            description="NumPy RTRL step vs the fused Numba kernel, per cell (per-step time).",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=list(CELLS), help="cells")
    parser.add_argument("--B", type=int, nargs="+", default=[1, 32], help="batch sizes")
    parser.add_argument("--H", type=int, nargs="+", default=[64, 256], help="hidden sizes")
    parser.add_argument("--I", type=int, default=None, help="input size (default: H + 1)")
    parser.add_argument("--steps", type=int, default=50, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median over them)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="parameter dtype")
    parser.add_argument("--segment", type=int, default=0, metavar="T",
                        help="also time one unroll of T steps: forward + BPTT, the segment form, the numba step "
                             "form (0: per-step only)")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    args = parser.parse_args(argv)
    for flag, values in (("--B", args.B), ("--H", args.H), ("--I", [args.I or 1]), ("--steps", [args.steps]),
                         ("--rounds", [args.rounds])):
        bad = [v for v in values if v < 1]
        if bad:
            parser.error(f"{flag} {bad[0]}: expected an integer >= 1")
    rows = []
    print(f"{'cell':>7} {'B':>4} {'H':>5} {'I':>5} {'numpy us':>10} {'numba us':>10} {'numpy / numba':>14}")
    grid = [(name, B, H, args.I or H + 1) for name in args.cells for H in args.H for B in args.B]
    for name, B, H, I in grid:
        row = time_one(name, B, H, I, args.steps, args.rounds, np.dtype(args.dtype))
        rows.append(row)
        print(f"{name:>7} {B:>4} {H:>5} {I:>5} {row['numpy_us']:>10.1f} {row['numba_us']:>10.1f} "
              f"{row['ratio']:>14.2f}", flush=True)
    if args.segment:
        print(f"{'cell':>7} {'B':>4} {'H':>5} {'T':>4} {'bptt us':>10} {'segment us':>11} {'numba step us':>14} "
              f"{'segment / bptt':>15} {'numba step / bptt':>18}")
        for name, B, H, I in grid:
            row = time_segment(name, B, H, I, args.segment, args.rounds, np.dtype(args.dtype))
            rows.append(row)
            print(f"{name:>7} {B:>4} {H:>5} {args.segment:>4} {row['bptt_us']:>10.0f} {row['segment_us']:>11.0f} "
                  f"{row['step_numba_us']:>14.0f} {row['segment_over_bptt']:>15.2f} "
                  f"{row['step_numba_over_bptt']:>18.2f}", flush=True)
    if args.out:
        write_results(args.out, "rtrl_ref.bench.cells", argv if argv is not None else sys.argv[1:], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
