"""Verdicts of the performance goals (issue 6), the result JSON and the memory plot."""

from __future__ import annotations

import json
import statistics

GOAL_TEXT = {
    "1": "fused per-step update >= 1.2x the same-process single-thread DRAM triad bandwidth",
    "2": "per-step update >= 10x faster than the PyTorch-eager formulation",
    "3": "segment RTRL (rtrl_segment on a forward trajectory) <= 1.2x BPTT (elstm_forward + bptt), "
         "forward+RTRL <= 1.7x BPTT, >= 4x faster than the step loop (rtrl_sequence; >= 2x at B=1); "
         "all library drivers on the numba backend",
    "4": "no op > 1.3x slower with BLAS and Numba allowed 2 threads than with 1",
    "5": "RTRL state <= 1.1x (2HI + 5H) itemsize per batch element, constant in T; memory vs T curve",
    "7": "every kernel loads from cache; first calls in a fresh process <= 1 s in total",
}


def _median(values):
    return statistics.median(values) if values else float("nan")


def _runs(results: dict, threads: int) -> list[dict]:
    return [r for r in results["ops_runs"] if r["threads"]["numba_num_threads"] == threads
            and r["threads"]["OPENBLAS_NUM_THREADS"] == str(threads)]


def goal1(results) -> dict:
    if not _runs(results, 1):
        return dict(verdict="not measured", met=None)
    out = {}
    for dn in results["dtypes"]:
        ratios = [r["step"][dn]["step_numba_over_triad"] for r in _runs(results, 1)]
        best = [r["step"][dn].get("step_numba_over_triad_best_round") for r in _runs(results, 1)]
        single = [r["step"][dn].get("step_numba_single_call_over_triad") for r in _runs(results, 1)]
        out[dn] = dict(ratio=_median(ratios), runs=ratios, best_round_ratio_runs=best,
                       single_call_after_triad_runs=single, met=_median(ratios) >= 1.2)
    return out


def goal2(results) -> dict:
    t = results.get("torch")
    if t is None:
        return dict(verdict="not measured", met=None)
    if "skipped" in t:
        return dict(verdict=f"skipped: {t['skipped']}", met=None)
    # every dtype, B and thread count (both sides allowed the same threads) must reach 10x
    speedups = {f"{dn} B={B} threads={n}": run[dn][B]["speedup"]
                for n, run in t["threads"].items() for dn in results["dtypes"] for B in run[dn]}
    worst = min(speedups, key=speedups.get)
    return dict(speedups=speedups, worst=worst, worst_speedup=speedups[worst],
                torch=next(iter(t["threads"].values()))["torch"], met=speedups[worst] >= 10)


def goal3(results) -> dict:
    if not _runs(results, 1):
        return dict(verdict="not measured", met=None)
    out = {}
    B = str(results["sizes"]["B"])
    for dn in results["dtypes"]:
        runs = _runs(results, 1)

        def seg(key, b=B, dn=dn, runs=runs):
            return _median([r["segment"][dn][b].get(key, float("nan")) for r in runs])

        # the segment form also computes the input gradient, the step loop does not: the step-loop
        # ratio is conservative. BPTT backward alone is reported for reference, not judged.
        row = dict(rtrl_over_bptt=seg("rtrl_over_bptt"), forward_rtrl_over_bptt=seg("forward_rtrl_over_bptt"),
                   step_loop_over_rtrl=seg("step_loop_over_rtrl"),
                   rtrl_over_bptt_backward_only=seg("rtrl_over_bptt_backward"))
        met = (row["rtrl_over_bptt"] <= 1.2 and row["forward_rtrl_over_bptt"] <= 1.7
               and row["step_loop_over_rtrl"] >= 4)
        if "1" in runs[0]["segment"][dn]:
            row["step_loop_over_rtrl_B1"] = seg("step_loop_over_rtrl", "1")
            met = met and row["step_loop_over_rtrl_B1"] >= 2
        row["met"] = met
        out[dn] = row
    return out


def _op_times(run: dict) -> dict:
    ops = {}
    for dn, s in run["step"].items():
        for k, v in s["times_ms"].items():
            if k not in ("triad", "step_numpy"):
                ops[f"{dn} {k}"] = v
    for dn, by_b in run["segment"].items():
        for b, s in by_b.items():
            for k, v in s["times_ms"].items():
                if not k.endswith("_numpy"):
                    ops[f"{dn} B={b} {k}"] = v
    return ops


def goal4(results) -> dict:
    one, two = _runs(results, 1), _runs(results, 2)
    if not one or not two:
        return dict(verdict="not measured", met=None)
    t1 = [_op_times(r) for r in one]
    t2 = [_op_times(r) for r in two]
    ratios = {op: _median([t[op] for t in t2]) / _median([t[op] for t in t1]) for op in t1[0]}
    worst = max(ratios, key=ratios.get)
    return dict(method=results.get("thread_method"), ratios=ratios, worst_op=worst,
                worst_ratio=ratios[worst], met=ratios[worst] <= 1.3)


def goal5(results) -> dict:
    m = results.get("memory")
    if not m:
        return dict(verdict="not measured", met=None)
    formula = m["state_formula_bytes"]
    peaks = m["online_peak_per_element"]
    state_ratio = m["state_bytes_per_element"] / formula
    peak_ratio = max(peaks) / formula
    constant = max(peaks) / min(peaks)
    crossing = next((T for T, r, b in zip(m["T"], m["rtrl_bytes"], m["bptt_bytes"]) if b > r), None)
    curve = m["rtrl_bytes"]
    return dict(state_ratio=state_ratio, online_peak_ratio=peak_ratio, peak_max_over_min_in_T=constant,
                rtrl_curve_MiB=[curve[0] / 2**20, curve[-1] / 2**20],
                bptt_curve_MiB=[m["bptt_bytes"][0] / 2**20, m["bptt_bytes"][-1] / 2**20],
                first_T_where_bptt_exceeds_rtrl=crossing, method=m["method"],
                met=state_ratio <= 1.1 and peak_ratio <= 1.1 and constant <= 1.05)


def goal7(results) -> dict:
    w = results.get("warm_start")
    if not w:
        return dict(verdict="not measured", met=None)
    return dict(first_calls_s=w["first_calls_s"], import_s=w["import_s"], all_from_cache=w["all_from_cache"],
                met=w["all_from_cache"] and w["first_calls_s"] <= 1.0)


def part_a(results) -> dict:
    if not _runs(results, 1):
        return dict(verdict="not measured", met=None)
    out = {}
    B = str(results["sizes"]["B"])
    for dn in results["dtypes"]:
        runs = _runs(results, 1)
        out[dn] = dict(
            step_speedup=_median([r["step"][dn]["speedup_numba_vs_numpy"] for r in runs]),
            library_segment_speedup=_median([r["segment"][dn][B]["library_segment_speedup_numba_vs_numpy"]
                                             for r in runs]),
            carried_pass_speedup=_median([r["segment"][dn][B]["carried_pass_speedup_numba_vs_numpy"]
                                          for r in runs]))
    return out


def verdicts(results: dict) -> dict:
    return {"1": goal1(results), "2": goal2(results), "3": goal3(results), "4": goal4(results),
            "5": goal5(results), "7": goal7(results), "part_a": part_a(results)}


def summary_text(results: dict, v: dict) -> str:
    lines = [f"# rtrl_ref benchmark ({'quick' if results['quick'] else 'full'})", "",
             f"command: `{results['command']}`", f"machine: {results['machine'].get('Model name')}, "
             f"{results['machine'].get('cpu_count')} CPUs, load average at start "
             f"{results['machine'].get('loadavg')}", f"sizes: {results['sizes']}", "",
             f"correctness: {results['checks_passed']}/{results['checks_total']} comparisons passed", ""]
    for g in ("1", "2", "3", "4", "5", "7"):
        met = v[g].get("met") if isinstance(v[g].get("met"), bool) or v[g].get("met") is None else None
        if met is None and g in ("1", "3") and "verdict" not in v[g]:
            met = all(x["met"] for x in v[g].values())
        verdict = "MET" if met else ("not measured / skipped" if met is None else "NOT MET")
        lines.append(f"- goal {g} ({GOAL_TEXT[g]}): **{verdict}**")
        lines.append(f"  `{json.dumps(_short(v[g]))}`")
    lines.append(f"- Part A speed-ups (numba vs numpy, 1 thread): `{json.dumps(_short(v['part_a']))}`")
    return "\n".join(lines) + "\n"


def _short(obj):
    if isinstance(obj, float):
        return float(f"{obj:.3g}")
    if isinstance(obj, dict):
        return {k: _short(x) for k, x in obj.items() if k not in ("ratios",)}
    if isinstance(obj, list):
        return [_short(x) for x in obj]
    return obj


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_memory(m: dict, path: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    T = m["T"]
    ax.loglog(T, [b / 2**20 for b in m["rtrl_bytes"]], "o-", label="RTRL, segment form, unroll 50")
    if m.get("T_online"):
        ax.loglog(m["T_online"], [b / 2**20 for b in m["rtrl_online_bytes"]], "^-",
                  label="RTRL, fully online step form")
    ax.loglog(T, [b / 2**20 for b in m["bptt_bytes"]], "s-", label="full BPTT (measured peak)")
    ax.loglog(T, [m["bptt_min_bytes_per_step_model"] * t / 2**20 for t in T], "--",
              label="BPTT lower bound (3H + I) per step")
    ax.axhline(m["state_formula_bytes"] / 2**20, color="gray", lw=0.8, ls=":",
               label="RTRL state (2HI + 5H)")
    ax.set_xlabel("sequence length T (steps, B = 1)")
    ax.set_ylabel("peak memory (MiB, tracemalloc)")
    ax.set_title(f"eLSTM H={m['H']}, I={m['I']}, {m['dtype']}: memory vs T")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", lw=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_bandwidth(results: dict, path: str) -> None:
    """Per-step update bandwidth (counted bytes / time) vs the triad, every 1-thread run:
    one group of bars per dtype, one bar per run, the 1.2x triad goal as a tick per run."""
    plt = _pyplot()
    runs = _runs(results, 1)
    series = (("triad", "triad_GBps", "0.6"), ("step, steady state", "step_numba_GBps", "C0"),
              ("step, single call after triad", "step_numba_single_call_GBps", "C1"))
    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    width = 0.8 / (len(series) * max(1, len(runs)))
    for d, dn in enumerate(results["dtypes"]):
        for r, run in enumerate(runs):
            s = run["step"][dn]
            for k, (label, key, color) in enumerate(series):
                x = d + (k * len(runs) + r - (len(series) * len(runs) - 1) / 2) * width
                ax.bar(x, s.get(key, float("nan")), width, color=color,
                       label=label if d == 0 and r == 0 else None)
            x_run = d + (len(runs) + r - (len(series) * len(runs) - 1) / 2) * width
            ax.plot([x_run - width / 2, x_run + width / 2], [1.2 * s["triad_GBps"]] * 2, "k-", lw=1.5,
                    label="goal: 1.2x that run's triad" if d == 0 and r == 0 else None)
    ax.set_xticks(range(len(results["dtypes"])), results["dtypes"])
    ax.set_ylabel("GB/s (counted bytes / median time)")
    ax.set_title(f"fused per-step update vs DRAM triad, 1 thread, {len(runs)} runs "
                 f"(B={results['sizes']['B']}, H={results['sizes']['H']}, I={results['sizes']['I']})",
                 fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, axis="y", lw=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


SEGMENT_OPS = (("bptt_segment", "BPTT (forward + backward)"),
               ("rtrl_segment", "RTRL segment form"),
               ("forward_rtrl_segment", "forward + RTRL segment form"),
               ("step_loop", "T calls of the per-step kernel"))


def plot_segment(results: dict, path: str) -> None:
    """One unroll, times relative to BPTT (median over the 1-thread runs), per dtype and B."""
    plt = _pyplot()
    runs = _runs(results, 1)
    panels = [(dn, B) for dn in results["dtypes"] for B in runs[0]["segment"][dn]]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.8), sharey=True,
                             squeeze=False)
    for ax, (dn, B) in zip(axes[0], panels):
        ms = {k: _median([r["segment"][dn][B]["times_ms"][k] for r in runs]) for k, _ in SEGMENT_OPS}
        rel = [ms[k] / ms["bptt_segment"] for k, _ in SEGMENT_OPS]
        ax.barh(range(len(SEGMENT_OPS)), rel, color=["0.6", "C0", "C2", "C3"])
        for y, (value, (k, _)) in enumerate(zip(rel, SEGMENT_OPS)):
            ax.text(value, y, f" {value:.2f} ({ms[k]:.1f} ms)", va="center", fontsize=7)
        ax.axvline(1.2, color="k", ls=":", lw=0.8)
        ax.set_title(f"{dn}, B={B}, T={results['sizes']['T']}", fontsize=9)
        ax.set_xlabel("time / BPTT")
        ax.set_xlim(0, max(rel) * 1.6)
    axes[0][0].set_yticks(range(len(SEGMENT_OPS)), [label for _, label in SEGMENT_OPS], fontsize=8)
    axes[0][0].invert_yaxis()
    fig.suptitle("one unroll, 1 thread (dotted: the 1.2x BPTT goal)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
