"""`python -m rtrl_ref.bench.stacked`: time and memory of one exact RTRL step for L stacked eLSTM layers.

The library's own step, `rtrl_ref.stacked.stacked_rtrl_step` (docs/derivation.md, section 11, Eqs. 34-36),
for L layers of H cells each over I inputs, B rows, float32 by default. For every (L, H):

    check   the step is right before it is timed: `stacked_rtrl_sequence` over CHECK_STEPS steps equals
            `stacked_bptt` (Eq. 38) at the same (L, H, I) in float64, tolerance('exact', float64)
    bytes   the traces the step carries (own and cross, Eq. 39): `trace_bytes` and the summed nbytes of the
            state the step returns must be equal (the cells c^l are counted apart)
    peak    tracemalloc's peak over one step from a carried-in state: the new state plus the step's
            temporaries (the carried-in state and the parameters exist before and are not counted)
    time    median seconds per step over `--rounds` rounds, configurations interleaved (every round times
            every (L, H) once, so a busy machine slows all of them alike); each timed call runs enough
            steps to last about TARGET_S, after one warm-up call

It also solves `trace_bytes(B, L, H, I) <= budget` (24 GiB by default) for the largest H per L: the traces
only, not the parameters, the cells or the step's temporaries (the measured peak / trace ratio says how much
more the NumPy step needs). Writes results.json, results.md and stacked.png (memory and time against H, one
line per L, log-log) to --out.

    OPENBLAS_NUM_THREADS=1 python -m rtrl_ref.bench.stacked --out docs/results/stacked
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rtrl_ref.bench.timing import interleaved, machine, peak_bytes, thread_settings
from rtrl_ref.r2ac.cli import ArgumentParser
from rtrl_ref.stacked import (
    StackedState,
    init_stacked,
    stacked_bptt,
    stacked_forward,
    stacked_rtrl_sequence,
    stacked_rtrl_step,
    trace_bytes,
    zero_stacked_state,
)
from verify.compare import assert_all_ok, compare_fields, tolerance

CHECK_STEPS = 3          # steps of the RTRL == BPTT check before timing
TARGET_S = 0.05          # seconds one timed call should last (steps per call chosen from the warm-up)
MAX_STEPS = 500          # at most this many steps per timed call
GiB = 2**30


def state_trace_nbytes(state: StackedState) -> int:
    """Bytes of the traces a StackedState carries (own and cross; not the cells)."""
    own = sum(a.nbytes for S in state.own for a in S)
    cross = sum(a.nbytes for row in state.cross for S in row for a in S)
    return own + cross


def problem(L: int, H: int, I: int, B: int, dtype, seed: int = 0):
    """(params, x_t (B, I), reset_t (B,), state): the stacked init, one input N(0, 1), no reset, and the state
    after one step from zero (every trace non-zero)."""
    rng = np.random.default_rng(seed)
    params = init_stacked(rng, I, [H] * L, dtype)
    x_t = rng.standard_normal((B, I)).astype(dtype)                   # (B, I)
    reset_t = np.zeros(B, bool)                                       # (B,)
    state, _ = stacked_rtrl_step(params, x_t, reset_t, zero_stacked_state(params, B))
    return params, x_t, reset_t, state


def check_exact(L: int, H: int, I: int, B: int, seed: int = 0) -> None:
    """RTRL over CHECK_STEPS steps == stacked BPTT, every layer's gradient, float64; AssertionError otherwise."""
    rng = np.random.default_rng(seed)
    params = init_stacked(rng, I, [H] * L, np.float64)
    x = rng.standard_normal((CHECK_STEPS, B, I))                      # (T, B, I)
    reset = np.zeros((CHECK_STEPS, B), bool)                          # (T, B)
    g_c = tuple(rng.standard_normal((CHECK_STEPS, B, H)) for _ in range(L))   # L x (T, B, H)
    trajs = stacked_forward(params, x, reset)
    want = stacked_bptt(params, trajs, reset, g_c).grads
    got = stacked_rtrl_sequence(params, x, reset, g_c).grads
    rows = [c for l in range(L) for c in compare_fields(f"layer {l + 1}", got[l], want[l],
                                                        tolerance("exact", np.float64))]
    assert_all_ok(rows, f"stacked RTRL vs BPTT, L={L} H={H} I={I} B={B}")


def largest_H(L: int, I: int | None, B: int, budget_bytes: int, dtype=np.float32) -> int:
    """The largest H (every layer H wide) with trace_bytes(B, L, H, I) <= budget_bytes (0 if none). I None: the
    agent core's input width I = H + 1 (H features and the reward)."""
    def fits_in(H: int) -> bool:
        return trace_bytes(B, L, H, H + 1 if I is None else I, dtype) <= budget_bytes

    if not fits_in(1):
        return 0
    lo, hi = 1, 2
    while fits_in(hi):
        lo, hi = hi, 2 * hi
    while hi - lo > 1:                                                # trace_bytes grows with H
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits_in(mid) else (lo, mid)
    return lo


def measure(Ls, Hs, I: int, B: int = 1, rounds: int = 7, dtype=np.float32, check: bool = True) -> list[dict]:
    """One row per (L, H): trace bytes (formula and state), peak bytes of a step, median seconds per step."""
    dtype = np.dtype(dtype)
    configs = [(L, H) for L in Ls for H in Hs]
    if check:
        for L, H in configs:
            check_exact(L, H, I, B)
    problems = {cfg: problem(*cfg, I, B, dtype) for cfg in configs}
    rows = {}
    for (L, H), (params, x_t, reset_t, state) in problems.items():
        formula = trace_bytes(B, L, H, I, dtype)
        peak = peak_bytes(lambda: stacked_rtrl_step(*problems[L, H]))  # noqa: B023 (called at once)
        t0 = time.perf_counter()
        stacked_rtrl_step(params, x_t, reset_t, state)                # warm-up, and the size of a timed call
        steps = int(min(MAX_STEPS, max(1, round(TARGET_S / (time.perf_counter() - t0)))))
        rows[L, H] = dict(L=L, H=H, I=I, B=B, dtype=dtype.name, trace_bytes=formula,
                          state_trace_bytes=state_trace_nbytes(state),
                          cell_bytes=sum(c.nbytes for c in state.c), step_peak_bytes=peak,
                          peak_over_traces=peak / formula, steps_per_call=steps)

    def steps_of(cfg):
        params, x_t, reset_t, state = problems[cfg]
        steps = rows[cfg]["steps_per_call"]

        def run():
            for _ in range(steps):
                stacked_rtrl_step(params, x_t, reset_t, state)
        return run

    timings = interleaved({cfg: steps_of(cfg) for cfg in configs}, rounds=rounds, warmup=1)
    for cfg, t in timings.items():
        row = rows[cfg]
        row.update(step_s=t.median_s / row["steps_per_call"], step_min_s=t.min_s / row["steps_per_call"],
                   rounds=rounds)
    for (_, H), row in rows.items():                                  # ratios to L = 1 at the same H
        base = rows.get((1, H))
        if base is not None:
            row["time_over_L1"] = row["step_s"] / base["step_s"]
            row["traces_over_L1"] = row["trace_bytes"] / base["trace_bytes"]
    return [rows[cfg] for cfg in configs]


def slopes(rows: list[dict], key: str) -> dict:
    """Per L, the log-log slope of `key` against H between the two largest H measured."""
    out = {}
    for L in sorted({r["L"] for r in rows}):
        mine = sorted((r["H"], r[key]) for r in rows if r["L"] == L)
        if len(mine) >= 2:
            (h0, v0), (h1, v1) = mine[-2], mine[-1]
            out[L] = float(np.log(v1 / v0) / np.log(h1 / h0))
    return out


def fits(Ls, I: int, B: int, budget_gib: float, rows: list[dict]) -> list[dict]:
    """The largest H whose traces fit the budget, per L, at the fixed I and at the agent's I = H + 1; with the
    peak / trace ratio measured at the largest H of that L, the largest H (fixed I) whose measured step peak (new
    state + temporaries) would also fit."""
    out = []
    for L in Ls:
        mine = sorted((r for r in rows if r["L"] == L), key=lambda r: r["H"])
        ratio = mine[-1]["peak_over_traces"] if mine else None
        H_traces = largest_H(L, I, B, int(budget_gib * GiB))
        H_peak = largest_H(L, I, B, int(budget_gib * GiB / ratio)) if ratio else None
        out.append(dict(L=L, I=I, B=B, budget_gib=budget_gib, H_traces_only=H_traces,
                        trace_gib_at_H=trace_bytes(B, L, H_traces, I) / GiB if H_traces else 0.0,
                        peak_over_traces_used=ratio, H_with_step_peak=H_peak,
                        H_traces_only_I_H_plus_1=largest_H(L, None, B, int(budget_gib * GiB))))
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax_m, ax_t) = plt.subplots(1, 2, figsize=(10, 4))
    for L in sorted({r["L"] for r in rows}):
        mine = sorted((r for r in rows if r["L"] == L), key=lambda r: r["H"])
        H = [r["H"] for r in mine]
        line, = ax_m.loglog(H, [r["trace_bytes"] / 2**20 for r in mine], "o-", label=f"L = {L}: traces")
        ax_m.loglog(H, [r["step_peak_bytes"] / 2**20 for r in mine], "x--", color=line.get_color(),
                    label=f"L = {L}: step peak")
        ax_t.loglog(H, [1e3 * r["step_s"] for r in mine], "o-", color=line.get_color(), label=f"L = {L}")
    I, B = rows[0]["I"], rows[0]["B"]
    ax_m.set_ylabel("MiB")
    ax_m.set_title(f"memory of one step (B = {B}, I = {I}, {rows[0]['dtype']})", fontsize=10)
    ax_t.set_ylabel("ms per step (median)")
    ax_t.set_title("time of one stacked_rtrl_step (NumPy)", fontsize=10)
    Hs = sorted({r["H"] for r in rows})
    for ax in (ax_m, ax_t):
        ax.set_xlabel("H (cells per layer)")
        ax.set_xticks(Hs, [str(H) for H in Hs])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", lw=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(result: dict) -> str:
    rows, fit = result["rows"], result["fits"]
    I, B = rows[0]["I"], rows[0]["B"]
    lines = [
        "# Exact RTRL for stacked eLSTM layers: measured memory and time",
        "",
        f"One `rtrl_ref.stacked.stacked_rtrl_step` (the NumPy reference, docs/derivation.md section 11) for L "
        f"layers of H cells, I = {I} inputs, B = {B}, {rows[0]['dtype']}. Made by",
        "",
        "    " + " ".join([*(f"{k}={v}" for k, v in result["threads"].items() if k.isupper() and v),
                         *result["command"]]),
        "",
        "The machine was shared with other jobs while this ran: the absolute times are noisy, the ratios "
        "between configurations measured in the same run (interleaved rounds) are what counts. The memory "
        "columns do not depend on the machine. Before timing, every configuration's RTRL gradient was checked "
        "against stacked BPTT (float64, 3 steps).",
        "",
        "- traces: `trace_bytes(B, L, H, I)` (Eq. 39), equal to the summed nbytes of the traces the step "
        "returns (column 'state = formula')",
        "- step peak: tracemalloc's peak over one step from a carried-in state (the new state and the "
        "temporaries; the carried-in state and the parameters are not counted)",
        "- ms / step: median over interleaved rounds; x L=1: the ratio to L = 1 at the same H",
        "",
        "| L | H | traces (MiB) | state = formula | step peak (MiB) | peak / traces | ms / step | "
        "time x L=1 | traces x L=1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['L']} | {r['H']} | {r['trace_bytes'] / 2**20:,.3f} | "
                     f"{'yes' if r['state_trace_bytes'] == r['trace_bytes'] else 'NO'} | "
                     f"{r['step_peak_bytes'] / 2**20:,.3f} | {r['peak_over_traces']:.2f} | {1e3 * r['step_s']:.3f} | "
                     f"{r.get('time_over_L1', float('nan')):,.1f} | {r.get('traces_over_L1', float('nan')):,.1f} |")
    lines += ["", "Log-log slope against H between the two largest H (traces; time):", ""]
    for L, s in result["trace_slopes"].items():
        lines.append(f"- L = {L}: traces ~ H^{s:.2f}, time ~ H^{result['time_slopes'][L]:.2f}")
    budget = fit[0]["budget_gib"]
    lines += [
        "",
        f"Largest H (every layer) whose traces fit in {budget:g} GiB at B = {B}, I = {I}, float32: solved from "
        "`trace_bytes` alone (the traces only: not the parameters, the cells, the forward caches or the step's "
        "temporaries). The fourth column divides the budget by the peak / traces ratio measured at the largest H "
        "of this run, i.e. what the NumPy step (new state allocated beside the old one) could run. The fifth "
        "column solves the traces again with the agent core's input width I = H + 1 (H features and the reward) "
        "instead of the fixed I.",
        "",
        f"| L | largest H, I = {I} (traces only) | traces at that H (GiB) | largest H, I = {I} (measured step peak) "
        "| largest H, I = H + 1 (traces only) |",
        "|---|---|---|---|---|",
    ]
    for f in fit:
        lines.append(f"| {f['L']} | {f['H_traces_only']:,d} | {f['trace_gib_at_H']:.2f} | "
                     f"{f['H_with_step_peak']:,d} (peak / traces = {f['peak_over_traces_used']:.2f}) | "
                     f"{f['H_traces_only_I_H_plus_1']:,d} |")
    lines += ["", "![memory and time against H](stacked.png)", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m rtrl_ref.bench.stacked",
                            description="Time and memory of one exact RTRL step for L stacked eLSTM layers.",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--L", type=int, nargs="+", default=[1, 2, 3], help="numbers of layers")
    parser.add_argument("--H", type=int, nargs="+", default=[16, 32, 64, 128, 256], help="cells per layer")
    parser.add_argument("--I", type=int, default=32, help="inputs of the first layer")
    parser.add_argument("--B", type=int, default=1, help="batch rows")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median over them)")
    parser.add_argument("--budget-gib", type=float, default=24.0, help="memory budget for the largest-H solve")
    parser.add_argument("--no-check", action="store_true", help="skip the RTRL == BPTT check before timing")
    parser.add_argument("--out", default=None, help="folder for results.json, results.md and stacked.png")
    args = parser.parse_args(argv)
    for flag, values in (("--L", args.L), ("--H", args.H), ("--I", [args.I]), ("--B", [args.B]),
                         ("--rounds", [args.rounds])):
        bad = [v for v in values if v < 1]
        if bad:
            parser.error(f"{flag} {bad[0]}: expected an integer >= 1")
    if args.budget_gib <= 0:
        parser.error(f"--budget-gib {args.budget_gib}: expected a number > 0")
    rows = measure(args.L, args.H, args.I, args.B, args.rounds, check=not args.no_check)
    result = dict(command=["python", "-m", "rtrl_ref.bench.stacked", *(argv if argv is not None else sys.argv[1:])],
                  rows=rows, trace_slopes=slopes(rows, "trace_bytes"), time_slopes=slopes(rows, "step_s"),
                  fits=fits(args.L, args.I, args.B, args.budget_gib, rows), machine=machine(),
                  threads=thread_settings())
    print(f"{'L':>2} {'H':>5} {'traces MiB':>11} {'peak MiB':>9} {'ms/step':>9} {'x L=1':>7}")
    for r in rows:
        print(f"{r['L']:>2} {r['H']:>5} {r['trace_bytes'] / 2**20:>11.3f} {r['step_peak_bytes'] / 2**20:>9.3f} "
              f"{1e3 * r['step_s']:>9.3f} {r.get('time_over_L1', float('nan')):>7.1f}")
    for f in result["fits"]:
        print(f"L = {f['L']}: largest H whose traces fit {f['budget_gib']:g} GiB: {f['H_traces_only']}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "results.md").write_text(markdown(result))
        plot(rows, out / "stacked.png")
        print(f"wrote {out / 'results.json'}, {out / 'results.md'}, {out / 'stacked.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
