"""Training throughput of the three learners, side by side in one process.

    python -m rtrl_ref.bench.training --env atari:Breakout --frames 3000 --rounds 3

Each round trains `rtrl`, `tbptt` and `feedforward` (same model, unroll and seed) for the same
number of frames, in turn, plus `rtrl` with `--no-reuse-stem` (the learner runs the stem again
instead of reusing the acting pass), and steps the environment alone with random actions for the
same number of frames; the median frames/s over rounds and the ratios are printed and written as
JSON. The agent's share of wall time is 1 - (env-only time / training time).

The machine's limit for this agent is the lower of two rates: the environments alone, and the
single-core SGEMM rate (measured in the same process, float32, one BLAS thread) divided by the
FLOPs of one agent step. Those FLOPs are counted from the layer shapes (multiply-adds x 2): the
acting forward pass (stem, eLSTM, output gate, heads), the learner's forward pass (without the stem
when it is reused) and its backward pass (twice the forward: gradients of weights and of inputs),
plus the RTRL trace update and gradient contraction (about 12 H I per step).

With `--actors N` each round also trains `rtrl` with N actors on Ray (`python -m rtrl_ref.train
--actors N`, the same model, batch and budget) right after the synchronous `rtrl`, on one local Ray
started once for the whole benchmark: its frames/s (the learner's, counted from the start of the
actors, not of Ray) and its ratio to the synchronous loop's are reported. No machine limit is
given for it: it runs on several cores.

    python -m rtrl_ref.bench.training --env atari:Breakout --preset cpu-atari --actors 2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def env_only_fps(env_spec: str, num_envs: int, frames: int, seed: int) -> float:
    import envs

    rng = np.random.default_rng(seed)
    with envs.make(env_spec, num_envs=num_envs, seed=seed) as env:
        env.reset()
        start = time.perf_counter()
        for _ in range(max(1, frames // num_envs)):
            env.step(rng.integers(0, env.num_actions, num_envs))
        return (frames // num_envs) * num_envs / (time.perf_counter() - start)


def sgemm_flops_per_s(n: int = 768, repeats: int = 5) -> float:
    """Best float32 n x n x n matmul rate of one BLAS thread, in FLOP/s."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), np.float32), rng.standard_normal((n, n), np.float32)
    best = np.inf
    limit = threadpool_limits(limits=1, user_api="blas") if threadpool_limits else None
    try:
        a @ b                                                       # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    finally:
        if limit is not None:
            limit.unregister() if hasattr(limit, "unregister") else limit.restore_original_limits()
    return 2 * n ** 3 / best


def _conv_macs(C: int, D: int, K: int, Y: int, X: int, S: int, P: int) -> tuple[int, int, int]:
    OY, OX = (Y + 2 * P - K) // S + 1, (X + 2 * P - K) // S + 1
    return D * C * K * K * OY * OX, OY, OX


def stem_macs(stem: str, obs_shape: tuple, features: int) -> int:
    """Multiply-adds of the stem's forward pass for one observation."""
    from rtrl_ref.r2ac.stems import IMPALA_CHANNELS, NATURE_CONVS

    if stem == "identity":
        return 0
    if stem == "mlp":
        widths = (obs_shape[0], 256, features)
        return sum(a * b for a, b in zip(widths, widths[1:]))
    C, Y, X = obs_shape
    macs = 0
    if stem == "nature":
        for D, K, S in NATURE_CONVS:
            m, Y, X = _conv_macs(C, D, K, Y, X, S, 0)
            macs, C = macs + m, D
    else:                                                           # impala: conv, pool, 2 residual blocks
        for D in IMPALA_CHANNELS:
            m, Y, X = _conv_macs(C, D, 3, Y, X, 1, 1)
            _, Y, X = _conv_macs(D, D, 3, Y, X, 2, 1)               # max-pool 3x3/2: no multiply-adds
            macs += m + 4 * _conv_macs(D, D, 3, Y, X, 1, 1)[0]
            C = D
    return macs + C * Y * X * features


def agent_step_flops(stem: str, obs_shape: tuple, features: int, hidden: int, actions: int, learner: str,
                     reuse_stem: bool = True) -> dict:
    """FLOPs of one agent step (see the module docstring), by part."""
    stem_f = 2 * stem_macs(stem, obs_shape, features)
    I, H = features + 1, hidden
    core_f = 0 if learner == "feedforward" else 2 * (2 * H * I + H * (I + H))
    heads_f = 2 * (actions + 1) * (H if learner != "feedforward" else I)
    forward = stem_f + core_f + heads_f
    parts = dict(acting_forward=forward, learner_forward=forward - (stem_f if reuse_stem else 0),
                 learner_backward=2 * forward, rtrl_traces=12 * H * I if learner == "rtrl" else 0)
    return dict(parts, total=sum(parts.values()))


def learner_fps(env_spec: str, learner: str, frames: int, extra: list[str], seed: int) -> float:
    from rtrl_ref.r2ac.config import make_config
    from rtrl_ref.r2ac.distributed import train

    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(["--env", env_spec, "--learner", learner, "--total-frames", str(frames),
                              "--run-dir", tmp, "--no-progress", "--seed", str(seed),
                              "--checkpoint-minutes", "1000", *extra])
        summary = train(config)
    return summary.frames / summary.seconds


@contextlib.contextmanager
def local_ray(config, actors: int):
    """One local Ray for every run with actors (none when actors = 0); shut down at the end."""
    if not actors:
        yield
        return
    from rtrl_ref.r2ac.distributed import connect
    from rtrl_ref.r2ac.loop import ray_module

    config = dataclasses.replace(config, actors=actors)
    connected = connect(ray_module(config), config)
    try:
        yield
    finally:
        if connected:
            import ray

            ray.shutdown()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtrl_ref.bench.training", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default="atari:Breakout", help="environment spec")
    parser.add_argument("--frames", type=int, default=3000, help="frames per learner per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    parser.add_argument("--out", type=Path, default=None, help="JSON output file")
    parser.add_argument("--actors", type=int, default=0,
                        help="also train rtrl with this many actors on Ray (needs the distributed extra); 0 = not")
    args, extra = parser.parse_known_args(argv)
    from rtrl_ref.r2ac.config import make_config

    config = make_config(["--env", args.env, *extra])
    num_envs = config.num_envs
    import envs
    from rtrl_ref.r2ac.network import agent_spec

    with envs.make(args.env, num_envs=1, seed=0) as probe:
        spec = agent_spec(config, probe)
    runs = {"rtrl": ("rtrl", []), "tbptt": ("tbptt", []), "feedforward": ("feedforward", []),
            "rtrl_rerun_stem": ("rtrl", ["--no-reuse-stem"])}
    with_actors = {f"rtrl_{args.actors}_actors": ("rtrl", ["--actors", str(args.actors)])} if args.actors else {}
    fps: dict[str, list[float]] = {k: [] for k in (*runs, *with_actors, "env_only", "sgemm_gflops")}
    with local_ray(config, args.actors):
        for r in range(args.rounds):
            for name, (learner, flags) in {**runs, **with_actors}.items():
                fps[name].append(learner_fps(args.env, learner, args.frames, extra + flags, seed=r))
            fps["env_only"].append(env_only_fps(args.env, num_envs, args.frames, seed=r))
            fps["sgemm_gflops"].append(sgemm_flops_per_s() / 1e9)
    med = {k: float(np.median(v)) for k, v in fps.items()}
    flops = {name: agent_step_flops(spec.stem, spec.obs_shape, spec.features, spec.hidden, spec.num_actions,
                                    learner, reuse_stem="--no-reuse-stem" not in flags)
             for name, (learner, flags) in runs.items()}
    limit = {name: min(med["env_only"], med["sgemm_gflops"] * 1e9 / flops[name]["total"]) for name in runs}
    result = dict(env=args.env, frames=args.frames, rounds=args.rounds, extra_flags=extra, fps=fps,
                  median_fps=med, rtrl_over_tbptt=med["rtrl"] / med["tbptt"],
                  reuse_speedup=med["rtrl"] / med["rtrl_rerun_stem"], flops_per_agent_step=flops,
                  limit_fps=limit, fraction_of_limit={k: med[k] / limit[k] for k in runs},
                  agent_share_of_wall_time={k: 1 - med[k] / med["env_only"] for k in runs})
    print(f"single-core SGEMM {med['sgemm_gflops']:.1f} GFLOP/s; env only {med['env_only']:.1f} frames/s")
    for k in runs:
        print(f"{k:16s} {med[k]:8.1f} frames/s   {flops[k]['total'] / 1e6:7.1f} MFLOP/step   limit "
              f"{limit[k]:7.1f}   fraction of limit {result['fraction_of_limit'][k]:.2f}   agent share of wall "
              f"time {result['agent_share_of_wall_time'][k]:.0%}")
    print(f"rtrl / tbptt throughput: {result['rtrl_over_tbptt']:.2f}; reusing the acting stem pass: "
          f"{result['reuse_speedup']:.2f}x")
    for k in with_actors:
        result[f"{k}_over_sync"] = med[k] / med["rtrl"]
        print(f"{k:16s} {med[k]:8.1f} frames/s   {result[f'{k}_over_sync']:.2f}x the synchronous rtrl loop")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
