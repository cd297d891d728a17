"""How stale the actors' carried cell and RTRL traces are, against the policy lag k (in updates).

    python -m rtrl_ref.r2ac.staleness traces [--stop-frames N] [--window W] [--lags 0,1,2,5,10,20]
                                             [--points P] [--out DIR] [training flags...]
    python -m rtrl_ref.r2ac.staleness curves RUN... [--out DIR]
    python -m rtrl_ref.r2ac.staleness tables [--out DIR]

`traces` trains with the synchronous loop (`collect_rollout` + `learner_step`, the training flags
of `python -m rtrl_ref.train`) and keeps, at each update, the last W rollouts and the last W + k_max
parameter versions. At P points of the run it takes the window of the last W rollouts as the
history (the state at its start zero; `episode_start_fraction` says for how many environment rows
an episode starts inside the window, rows for which the window *is* the whole history) and
rebuilds the state carried into the last rollout three ways:

    S_k    rollout j advanced (`actors.advance_state`, the actors' own function) with the parameters
           k updates older than those that acted it in the synchronous run: an actor lagging by k;
           S_0 is what the synchronous learner carries (each rollout with the parameters of its update)
    S*     every rollout advanced with the current parameters (those the last rollout is learned with)
    g*     full-history BPTT of the last rollout's loss through the whole window, current parameters

and reports, per lag: how far the parameters moved in k updates (`param_drift`: the eLSTM's,
`param_drift_all`: all of them, stem included, relative global L2 norms), the relative error
(global L2 norm over the six traces) of S_k against S* and against S_0, the same for the cell,
and the relative error of the learner's eLSTM gradient
(`learner_gradient`: RTRL from S_k, the learner's recomputed forward pass) against g* and against
the gradient from S_0. Where every environment starts an episode at the last rollout's first
step (`carried_fraction` 0: on memory:cue the episodes have one length, so the environments
start them together) the gradient does not depend on the carried state and its errors are None.
The history, the actions and their behaviour log-probabilities are the
synchronous run's for every k: the measurement isolates the carried state; the off-policy part of
a lag (other actions, V-trace's correction) is what the learning curves (`curves`) show. The
gradient from S* equals g* to round-off (`check_rtrl_vs_bptt`, the measurement's own check). All
rebuilding runs in float64 with the NumPy kernels.

`curves` plots the mean return against frames of run folders grouped by their name without the
`-sN` seed suffix, and summarises each group (final return, frames to 90% of optimal, policy lag).

Both write into --out (default docs/results/staleness): results.json (merged by key) and plots;
`tables` prints its tables in Markdown (those of results.md).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

import envs
from rtrl_ref.r2ac.actors import advance_state, copy_state
from rtrl_ref.r2ac.config import Config, make_config
from rtrl_ref.r2ac.core import CoreState, get_learner
from rtrl_ref.r2ac.heads import action_log_probs
from rtrl_ref.r2ac.loop import EnvOutput, Rollout, collect_rollout, learner_step, step_rewards_and_discounts
from rtrl_ref.r2ac.loss import actor_critic_loss
from rtrl_ref.r2ac.network import AgentSpec, agent_spec, init_agent, unroll_backward, unroll_forward
from rtrl_ref.r2ac.optim import global_norm, linear_decay, rmsprop_init
from rtrl_ref.r2ac.runs import read_log
from rtrl_ref.r2ac.tree import tree_map
from rtrl_ref.r2ac.vtrace import vtrace

__all__ = ["learner_gradient", "full_history_gradient", "carried_state", "rollout_float64", "measure_window",
           "record_and_measure", "main"]

OUT = Path("docs/results/staleness")
LAGS = (0, 1, 2, 5, 10, 20)


# ============================================================================= the measurement

def _loss_gradients(config: Config, rollout: Rollout, logits, values):
    """The learner's loss gradients (g_logits (T, B, A), g_values (T, B)) on a rollout, from the
    forward pass's logits (T + 1, B, A) and values (T + 1, B): V-trace and the actor-critic loss, as
    in `learner_step`."""
    T = rollout.actions.shape[0]
    rewards, discounts = step_rewards_and_discounts(rollout, config.reward_clip, config.discount)  # (T, B) float32
    rewards, discounts = rewards.astype(logits.dtype), discounts.astype(logits.dtype)  # the parameters' dtype
    target_logp = action_log_probs(logits[:T], rollout.actions)                     # (T, B)
    vs, pg_adv = vtrace(rollout.logp, target_logp, rewards, discounts, values[:T], values[T])
    _, g = actor_critic_loss(logits[:T], values[:T], rollout.actions, vs, pg_adv,
                             baseline_cost=config.baseline_cost, entropy_cost=config.entropy_cost)
    return g.g_logits, g.g_values


def learner_gradient(config: Config, spec: AgentSpec, params, rollout: Rollout, state: CoreState):
    """The learner's gradient (AgentParams, before clipping) on `rollout` from the carried-in
    `state` (given up: its traces may be overwritten): `learner_step` without the update."""
    logits, values, cache = unroll_forward(spec, params, rollout.obs, rollout.reward, rollout.reset, state)
    g_logits, g_values = _loss_gradients(config, rollout, logits, values)
    return unroll_backward(spec, params, cache, g_logits, g_values, state)[0]


def _history(rollouts: list[Rollout]) -> Rollout:
    """Consecutive rollouts as one (entry T of a rollout is entry 0 of the next)."""

    def join(name: str):
        return np.concatenate([getattr(r, name)[:-1] for r in rollouts[:-1]] + [getattr(rollouts[-1], name)])
    return Rollout(join("obs"), join("reward"), join("reset"), None, None)


def full_history_gradient(config: Config, spec: AgentSpec, params, rollouts: list[Rollout]):
    """BPTT of the last rollout's loss through every rollout (from a zero state), never cut: the
    exact gradient (AgentParams) with `params` over that history."""
    spec = spec._replace(learner="tbptt")
    history = _history(rollouts)
    B = history.reward.shape[1]
    last = rollouts[-1]
    T, T_all = last.actions.shape[0], history.reward.shape[0] - 1
    state = get_learner("tbptt").init_state(B, spec.features + 1, spec.hidden, np.float64)
    logits, values, cache = unroll_forward(spec, params, history.obs, history.reward, history.reset, state)
    g_logits, g_values = _loss_gradients(config, last, logits[T_all - T:], values[T_all - T:])
    g_logits = np.concatenate([np.zeros((T_all - T,) + g_logits.shape[1:]), g_logits])     # (T_all, B, A)
    g_values = np.concatenate([np.zeros((T_all - T,) + g_values.shape[1:]), g_values])     # (T_all, B)
    return unroll_backward(spec, params, cache, g_logits, g_values, state)[0]


def carried_state(spec: AgentSpec, params_of, rollouts: list[Rollout]) -> CoreState:
    """The state carried into the last rollout: rollout j < W - 1 advanced from a zero state with
    params_of(j), as an actor does (`advance_state`); float64 (rollouts from `rollout_float64`)."""
    B = rollouts[0].reward.shape[1]
    state = get_learner(spec.learner).init_state(B, spec.features + 1, spec.hidden, np.float64)
    for j, rollout in enumerate(rollouts[:-1]):
        state = advance_state(spec, params_of(j), rollout, state)
    return state


def rel(a, b) -> float:
    """||a - b|| / ||b||, global L2 norms over every leaf of two trees."""
    return global_norm(tree_map(np.subtract, a, b)) / max(global_norm(b), 1e-300)


def _float64(tree):
    return tree_map(lambda a: np.asarray(a, np.float64), tree)


def rollout_float64(r: Rollout) -> Rollout:
    """A rollout whose arrays enter float64 arithmetic as float64 (pixels stay integers)."""
    return r._replace(obs=r.obs.astype(np.float64) if r.obs.dtype.kind == "f" else r.obs,
                      reward=r.reward.astype(np.float64), logp=r.logp.astype(np.float64), stem=None)


def measure_window(config: Config, spec: AgentSpec, acted: list, rollouts: list[Rollout], lags) -> dict:
    """The errors of one window. acted[-W + j] acted rollouts[j] in the synchronous run, so acted[-1]
    are the current parameters; len(acted) >= W + max(lags)."""
    spec = spec._replace(backend="numpy")
    W = len(rollouts)
    if len(acted) < W + max(lags):
        raise ValueError(f"measure_window: expected >= {W + max(lags)} parameter versions, got {len(acted)}")
    acted = [_float64(p) for p in acted]
    rollouts = [rollout_float64(r) for r in rollouts]
    n, current = len(acted), acted[-1]
    exact = carried_state(spec, lambda j: current, rollouts)
    sync = carried_state(spec, lambda j: acted[n - W + j], rollouts)
    g_exact = full_history_gradient(config, spec, current, rollouts).core.elstm
    g_rtrl_exact = learner_gradient(config, spec, current, rollouts[-1], copy_state(exact)).core.elstm
    g_sync = learner_gradient(config, spec, current, rollouts[-1], copy_state(sync)).core.elstm
    starts = np.concatenate([r.reset[1:-1] for r in rollouts[:-1]]).any(0)         # (B,)
    carried = float((~rollouts[-1].reset[0]).mean())   # rows whose episode goes on into the last rollout
    rows = []
    for k in lags:
        lagged = carried_state(spec, lambda j, k=k: acted[n - W + j - k], rollouts)
        g = learner_gradient(config, spec, current, rollouts[-1], copy_state(lagged)).core.elstm
        rows.append(dict(lag=k,
                         trace_vs_current=rel(lagged.traces, exact.traces),
                         trace_vs_sync=rel(lagged.traces, sync.traces),
                         cell_vs_current=rel(lagged.c, exact.c),
                         cell_vs_sync=rel(lagged.c, sync.c),
                         grad_vs_bptt=rel(g, g_exact) if carried else None,     # None: no row carries a state in
                         grad_vs_sync=rel(g, g_sync) if carried else None,
                         param_drift=rel(acted[n - 1 - k].core.elstm, current.core.elstm),
                         param_drift_all=rel(acted[n - 1 - k], current)))
    return dict(window=W, steps=W * rollouts[0].actions.shape[0], episode_start_fraction=float(starts.mean()),
                carried_fraction=carried, grad_norm=global_norm(g_exact),
                check_rtrl_vs_bptt=rel(g_rtrl_exact, g_exact), lags=rows)


def record_and_measure(config: Config, stop_frames: int, window: int, lags, points: int, log=print) -> dict:
    """Train synchronously (the loop's algorithm: the one seed, `collect_rollout`, `learner_step`)
    until `stop_frames`, measuring `points` windows evenly spread over the updates (the first once
    window + max(lags) updates exist, the last at the end). The learning-rate schedule is the
    config's (total_frames), whatever stop_frames is."""
    env = envs.make(config.env, num_envs=config.num_envs, seed=config.seed)
    try:
        spec = agent_spec(config, env)
        rng = np.random.default_rng(config.seed)
        params = init_agent(rng, spec)
        opt_state = rmsprop_init(params)
        B, T = config.num_envs, config.unroll
        state = get_learner(spec.learner).init_state(B, spec.features + 1, spec.hidden, np.float32)
        obs, _ = env.reset()
        last = EnvOutput(obs, np.zeros(B, np.float32), np.ones(B, bool))
        total_updates = stop_frames // (B * T)
        first = window + max(lags)
        if total_updates < first:
            raise ValueError(f"stop_frames: expected >= {first * B * T} (window + max lag = {first} updates of "
                             f"{B * T} frames), got {stop_frames}")
        at = sorted({int(round(u)) for u in np.linspace(first, total_updates, points)})
        acted: deque = deque(maxlen=first)
        rollouts: deque = deque(maxlen=window)
        results, start = [], time.monotonic()
        for update in range(1, total_updates + 1):
            frames = (update - 1) * B * T
            rollout, last, _ = collect_rollout(env, spec, params, rng, last, state.c, T, keep_stem=config.reuse_stem)
            acted.append(params)
            rollouts.append(rollout._replace(stem=None))
            if update in at:
                point = measure_window(config, spec, list(acted), list(rollouts), lags)
                point.update(update=update, frames=frames, lr=linear_decay(config.lr, frames, config.total_frames))
                results.append(point)
                log(f"update {update} ({frames} frames, {time.monotonic() - start:.0f} s): " + ", ".join(
                    f"k={r['lag']} traces {r['trace_vs_current']:.2e} grad {r['grad_vs_bptt']:.2e}"
                    for r in point["lags"]))
            params, opt_state, state, _ = learner_step(config, spec, params, opt_state, rollout, state, frames,
                                                       update)
    finally:
        env.close()
    return dict(env=config.env, preset=config.preset, num_envs=B, unroll=T, hidden=config.hidden,
                stop_frames=total_updates * B * T, total_frames_schedule=config.total_frames, lr=config.lr,
                window=window, lags=list(lags), seconds=round(time.monotonic() - start, 1), points=results)


# ============================================================================= learning curves

def group_of(run: Path) -> str:
    """A run folder's setting: its name without the -sN seed suffix."""
    return re.sub(r"-s\d+$", "", Path(run).name)


def summarise_run(run: Path, optimal: float = 1.0) -> dict:
    log = read_log(run)
    frames, ret = np.asarray(log["frames"]), np.asarray(log["mean_return"])
    reached = np.flatnonzero(ret >= 0.9 * optimal)
    lag = np.asarray(log.get("policy_lag", [np.nan] * len(frames)))
    return dict(run=Path(run).name, frames=int(frames[-1]), final_return=float(ret[-1]),
                frames_to_90=int(frames[reached[0]]) if reached.size else None,
                policy_lag=float(np.nanmean(lag)) if np.isfinite(lag).any() else 0.0,
                seconds=float(log["seconds"][-1]))


def curves(runs: list[Path], out: Path) -> dict:
    from rtrl_ref.r2ac.plot import plot_runs

    groups: dict[str, list[dict]] = {}
    for run in sorted(runs, key=lambda r: r.name):
        groups.setdefault(group_of(run), []).append(summarise_run(run))
    lag = {name: np.mean([m["policy_lag"] for m in members]) for name, members in groups.items()}
    runs = sorted(runs, key=lambda r: (lag[group_of(r)], r.name))          # the legend in order of lag
    labels = [f"{group_of(r)} (lag {lag[group_of(r)]:.1f})" for r in runs]
    plot_runs(runs, out / "curves.png", title="memory:cue?delay=8, return against frames per policy lag",
              labels=labels, band="se", baseline=0.5, baseline_label="chance")
    return {name: dict(runs=members, mean_final_return=float(np.mean([m["final_return"] for m in members])),
                       mean_policy_lag=float(lag[name]))
            for name, members in sorted(groups.items(), key=lambda item: lag[item[0]])}


# ============================================================================= results and plots

def update_results(out: Path, key: str, value) -> dict:
    file = out / "results.json"
    results = json.loads(file.read_text()) if file.exists() else {}
    results[key] = value
    out.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(results, indent=1) + "\n")
    return results


def plot_traces(results: dict, out: Path) -> None:
    """Trace and gradient errors against the lag (median over the measured points, band: their
    range; lag 0, off the log axis, as a dotted line), one row per environment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    studies = [v for k, v in results.items() if k.startswith("traces/")]
    if not studies:
        return
    fig, axes = plt.subplots(len(studies), 2, figsize=(10, 3.6 * len(studies)), squeeze=False)
    panels = ((("trace_vs_current", "vs traces with the current parameters"),
               ("trace_vs_sync", "vs the synchronous learner's traces"),
               ("param_drift", "parameter drift in k updates (eLSTM)")),
              (("grad_vs_bptt", "vs full-history BPTT"), ("grad_vs_sync", "vs the synchronous learner's gradient")))
    for row, study in zip(axes, studies):
        lags = np.array(study["lags"])
        keep = lags > 0
        for ax, panel, what in zip(row, panels, ("carried RTRL traces", "learner's eLSTM gradient")):
            for (name, label), colour in zip(panel, ("C0", "C1", "0.5")):
                v = np.array([[np.nan if p["lags"][i].get(name) is None else p["lags"][i][name]
                               for i in range(len(lags))] for p in study["points"]], float)   # (points, lags)
                v = v[~np.isnan(v).all(1)]
                if not v.size:
                    continue
                if colour == "C0" and not keep[0]:                      # lag 0: the synchronous loop's own error
                    ax.axhline(np.median(v[:, 0]), color=colour, linestyle=":", label=f"lag 0, {label}")
                v = v[:, keep]
                ax.plot(lags[keep], np.median(v, 0), "o-", color=colour, label=label)
                ax.fill_between(lags[keep], v.min(0), v.max(0), color=colour, alpha=0.15, linewidth=0)
            ax.set_title(f"{study['env']}: {what}\n(median over {len(study['points'])} points of a learning run, "
                         f"band: range)", fontsize=9)
            ax.set_xscale("log"), ax.set_yscale("log"), ax.grid(alpha=0.3)
            ax.set_xlabel("policy lag k (updates)"), ax.set_ylabel("relative error")
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "traces.png", dpi=110)
    plt.close(fig)


def tables(results: dict) -> str:
    """results.json as the Markdown tables of results.md: per study, the errors per lag (median over
    the measured points, and their range), then the learning curves per setting."""
    lines = []
    for key, study in results.items():
        if not key.startswith("traces/"):
            continue
        points = study["points"]
        lines += [f"### {study['env']}: window {study['window']} rollouts ({points[0]['steps']} steps), "
                  f"{len(points)} points at updates {', '.join(str(p['update']) for p in points)}", "",
                  f"RTRL from S* vs BPTT (the check): max {max(p['check_rtrl_vs_bptt'] for p in points):.1e}; "
                  f"rows with an episode start in the window: "
                  f"{min(p['episode_start_fraction'] for p in points):.2f}-"
                  f"{max(p['episode_start_fraction'] for p in points):.2f}; points whose gradient depends on the "
                  f"carried state: {sum(p.get('carried_fraction', 1) > 0 for p in points)}", "",
                  "| lag k | param drift, eLSTM | param drift, all | traces vs current | traces vs synchronous "
                  "| cell vs current | gradient vs BPTT | gradient vs synchronous |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        names = ("param_drift", "param_drift_all", "trace_vs_current", "trace_vs_sync", "cell_vs_current",
                 "grad_vs_bptt", "grad_vs_sync")
        for i, k in enumerate(study["lags"]):
            values = [[v for p in points if (v := p["lags"][i].get(name)) is not None] for name in names]
            lines.append(f"| {k} | " + " | ".join(f"{np.median(v):.2g} ({min(v):.2g}-{max(v):.2g})" if v else "-"
                                                  for v in values) + " |")
        lines.append("")
    if "curves" in results:
        lines += ["| setting | policy lag (mean) | final return per seed | frames to 90% per seed | frames/s |",
                  "|---|---:|---|---|---:|"]
        for name, group in results["curves"].items():
            runs = group["runs"]
            lines.append(f"| {name} | {group['mean_policy_lag']:.1f} | "
                         + "; ".join(f"{r['final_return']:.2f}" for r in runs) + " | "
                         + "; ".join(f"{r['frames_to_90']:,}" if r["frames_to_90"] else "-" for r in runs)
                         + f" | {np.median([r['frames'] / r['seconds'] for r in runs]):.0f} |")
    return "\n".join(lines)


# ============================================================================= command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtrl_ref.r2ac.staleness", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("traces", allow_abbrev=False, help="trace and gradient errors against policy lag (other "
                       "flags: the training flags of python -m rtrl_ref.train)")
    t.add_argument("--stop-frames", type=int, default=200_000, help="frames of the synchronous run")
    t.add_argument("--window", type=int, default=25, help="rollouts in the history window W")
    t.add_argument("--lags", default=",".join(map(str, LAGS)), help="policy lags k, comma-separated")
    t.add_argument("--points", type=int, default=5, help="windows measured over the run")
    t.add_argument("--out", type=Path, default=OUT)
    c = sub.add_parser("curves", allow_abbrev=False, help="learning curves of run folders grouped by setting")
    c.add_argument("runs", nargs="+", type=Path)
    c.add_argument("--out", type=Path, default=OUT)
    r = sub.add_parser("tables", allow_abbrev=False, help="print results.json as Markdown tables")
    r.add_argument("--out", type=Path, default=OUT)
    args, rest = parser.parse_known_args(argv)
    if args.command == "tables":
        print(tables(json.loads((args.out / "results.json").read_text())))
        return 0
    if args.command == "curves":
        if rest:
            parser.error(f"curves: unknown arguments {rest}")
        update_results(args.out, "curves", curves(args.runs, args.out))
        print(f"wrote {args.out / 'results.json'} and {args.out / 'curves.png'}")
        return 0
    try:
        lags = tuple(int(k) for k in args.lags.split(","))
    except ValueError:
        parser.error(f"--lags: expected integers separated by commas, got {args.lags!r}")
    if min(lags) < 0 or args.window < 2 or args.points < 1:
        parser.error(f"--lags, --window, --points: expected lags >= 0, window >= 2, points >= 1, got "
                     f"{args.lags}, {args.window}, {args.points}")
    try:
        config = make_config(rest + ["--no-progress"])
    except ValueError as err:
        parser.error(str(err))
    if config.learner != "rtrl" or config.cell != "elstm" or config.layers != 1 or config.actors:
        parser.error("traces: expected --learner rtrl, --cell elstm, --layers 1 and no --actors (the eLSTM's "
                     "carried RTRL traces of the synchronous loop)")
    print(f"traces: {config.env} (preset {config.preset or 'none'}), {args.stop_frames} frames, window "
          f"{args.window}, lags {lags}, {args.points} points", file=sys.stderr)
    study = record_and_measure(config, args.stop_frames, args.window, lags, args.points,
                               log=lambda line: print(line, file=sys.stderr, flush=True))
    study["command"] = "python -m rtrl_ref.r2ac.staleness " + " ".join(argv if argv is not None else sys.argv[1:])
    results = update_results(args.out, f"traces/{config.env}", study)
    plot_traces(results, args.out)
    print(f"wrote {args.out / 'results.json'} and {args.out / 'traces.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
