"""Per-step costs of actor-learner R2AC, measured, and the scaling model they feed (docs/distributed.md).

    python -m rtrl_ref.bench.actors --env atari:Breakout --preset cpu-atari [--ray] [--out FILE]
    python -m rtrl_ref.bench.actors --env atari:Breakout --preset paper-atari --learner-envs 2 --ray

Measured in one process, each the median of --repeats after one warm-up (JIT compilation):

    c_env     s per agent step: the actor's environments alone (random actions)
    c_actor   s per agent step: a whole actor rollout (`RolloutActor.rollout`: environments, acting
              forward pass, the RTRL trace pass `advance_state` over the rollout), of which
    c_adv     s per agent step is the trace pass alone; c_act = c_actor - c_env is the agent's share
    c_learn   s per agent step of the learner (`learner_step` on --learner-envs environments x unroll,
              divided by their product: its cost is linear in the batch, so the preset's batch costs
              c_learn B T per update)
    S_r       bytes of one ActorRollout of --envs-per-actor environments (pickle protocol 5, as Ray
              serialises it: observations, actions, rewards, the initial cell and traces)
    S_p       bytes of one parameter broadcast (the agent's parameters)

and with --ray, on a local Ray started here: t_put, the median time of ray.put of the parameters
(the learner's broadcast, once per update); t_get_params, an actor's ray.get of them; t_rollout,
the learner's ray.get of an S_r-byte rollout returned by an actor (transfer and deserialisation).

`predict` turns them into throughput and learner utilisation for N actors (docs/distributed.md
gives the formulas); it is printed for N in --predict and written with the measurements as JSON.
As `--actors N` does, the learner batch is one rollout per actor (B = N b) unless
--predict-num-envs fixes it; --from FILE predicts from an earlier --out without measuring.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys
import time
from pathlib import Path

import numpy as np

import envs
from rtrl_ref.bench.timing import write_results
from rtrl_ref.r2ac.actors import ActorRollout, RolloutActor, advance_state, copy_state
from rtrl_ref.r2ac.config import make_config
from rtrl_ref.r2ac.loop import collect_rollout, learner_step
from rtrl_ref.r2ac.network import agent_spec, init_agent
from rtrl_ref.r2ac.optim import rmsprop_init
from rtrl_ref.r2ac.tree import tree_leaves

__all__ = ["measure", "predict", "main"]


def _median_time(fn, repeats: int) -> float:
    fn()                                                                   # warm-up (Numba compiles)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def measure(config, envs_per_actor: int, learner_envs: int, repeats: int, use_ray: bool) -> dict:
    """The measured inputs of the scaling model (see the module docstring)."""
    with envs.make(config.env, num_envs=1, seed=config.seed) as env:
        spec = agent_spec(config, env)
    params = init_agent(np.random.default_rng(config.seed), spec)
    b, T = envs_per_actor, config.unroll
    actor = RolloutActor(config, spec, b, config.seed)
    rng = np.random.default_rng(1)
    try:
        def env_only():
            for _ in range(T):
                actor.env.step(rng.integers(0, spec.num_actions, b))

        t_env = _median_time(env_only, repeats)
        message = actor.rollout(params, 0, T)
        t_actor = _median_time(lambda: actor.rollout(params, 0, T), repeats)
        acted, _, _ = collect_rollout(actor.env, spec, params, rng, actor.last, actor.state.c, T,
                                      keep_stem=config.reuse_stem)          # with the acting stem pass, as the actor
        t_adv = _median_time(lambda: advance_state(spec, params, acted, copy_state(actor.state)), repeats)
    finally:
        actor.close()
    S_r = len(pickle.dumps(message, protocol=5))
    S_p = len(pickle.dumps(params, protocol=5))
    learner = RolloutActor(config, spec, learner_envs, config.seed + 1)
    try:
        batch = learner.rollout(params, 0, T)
    finally:
        learner.close()
    opt_state = rmsprop_init(params)

    def learn():
        learner_step(config, spec, params, opt_state, batch.rollout, copy_state(batch.state), 0, 1)

    t_learn = _median_time(learn, repeats)
    steps = T * b
    result = dict(env=config.env, preset=config.preset, stem=spec.stem, hidden=config.hidden, features=spec.features,
                  unroll=T, envs_per_actor=b, learner_envs=learner_envs, num_envs=config.num_envs,
                  backend=config.backend, repeats=repeats,
                  c_env=t_env / steps, c_actor=t_actor / steps, c_adv=t_adv / steps,
                  c_act=(t_actor - t_env) / steps, c_learn=t_learn / (learner_envs * T),
                  S_r=S_r, S_p=S_p, params=sum(a.size for _, a in tree_leaves(params)),
                  trace_bytes=sum(a.nbytes for a in message.state.traces) if message.state.traces else 0,
                  obs_bytes=int(message.rollout.obs.nbytes))
    if use_ray:
        result.update(measure_ray(params, message, repeats))
    return result


class _Echo:
    """A Ray actor that holds one rollout and returns it (the transfer alone), and fetches parameters."""

    def __init__(self, message: ActorRollout):
        self.message = message

    def rollout(self) -> ActorRollout:
        return self.message

    def fetch(self, refs) -> float:
        import ray

        start = time.perf_counter()
        ray.get(refs[0])
        return time.perf_counter() - start


def measure_ray(params, message: ActorRollout, repeats: int) -> dict:
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        echo = ray.remote(_Echo).remote(message)
        ray.get(echo.rollout.remote())
        t_put = _median_time(lambda: ray.put(params), repeats)
        fetches = [ray.get(echo.fetch.remote([ray.put(params)])) for _ in range(repeats + 1)][1:]
        t_rollout = _median_time(lambda: ray.get(echo.rollout.remote()), repeats)
        ray.kill(echo)
    finally:
        if started:
            ray.shutdown()
    return dict(t_put=t_put, t_get_params=float(np.median(fetches)), t_rollout=t_rollout)


def predict(m: dict, N: int, B: int, b: int, T: int, c_learn: float | None = None,
            link_bytes_per_s: float = 1.25e9) -> dict:
    """Throughput and learner utilisation of N actors of b environments each, the learner taking
    B environments' rollouts (B / b of them) per update of T steps. Every actor a core of its own;
    link_bytes_per_s: the learner host's network link (10 Gbit/s) for rollouts in and parameters out
    when actors are on other hosts; c_learn overrides the measured learner cost (e.g. a GPU's)."""
    c_learn = m["c_learn"] if c_learn is None else c_learn
    per_update_steps = B * T
    rollouts_per_update = B / b
    t_update = c_learn * per_update_steps + rollouts_per_update * m.get("t_rollout", 0.0) + m.get("t_put", 0.0)
    learner_rate = per_update_steps / t_update                             # agent steps/s the learner can take
    actor_rate = N * b * T / (b * T * m["c_actor"] + m.get("t_get_params", 0.0))   # agent steps/s of N actors
                                                                       # (each fetches the parameters per rollout)
    rate = min(actor_rate, learner_rate)
    updates = rate / per_update_steps
    rollout_in = rate / (b * T) * m["S_r"]                                 # bytes/s into the learner
    broadcast_out = rate / (b * T) * m["S_p"]                              # bytes/s out: one pull per rollout
    return dict(N=N, B=B, b=b, T=T, actor_rate=actor_rate, learner_rate=learner_rate, rate=rate,
                learner_utilisation=rate / learner_rate, actor_utilisation=rate / actor_rate,
                updates_per_s=updates, rollout_bytes_per_s=rollout_in, broadcast_bytes_per_s=broadcast_out,
                link_share=(rollout_in + broadcast_out) / link_bytes_per_s,
                policy_lag=N * b / B)                                  # each actor's one request cycles once
                                                                       # through N b / B updates (module doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rtrl_ref.bench.actors", description=__doc__.split("\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--envs-per-actor", type=int, default=1, help="environments b of one actor")
    parser.add_argument("--learner-envs", type=int, default=0, help="environments of the timed learner batch "
                        "(0 = the preset's num_envs); its cost per agent step is scaled to the preset's batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ray", action="store_true", help="also time Ray's put and get (starts a local Ray)")
    parser.add_argument("--predict", default="8,48,256", help="actor counts N to predict, comma-separated")
    parser.add_argument("--out", type=Path, default=None, help="write the measurements and predictions as JSON")
    parser.add_argument("--from", dest="source", type=Path, default=None,
                        help="predict from the measurements of this JSON file (an earlier --out) instead of measuring")
    parser.add_argument("--learner-speedup", type=float, default=1.0,
                        help="predict with the measured learner cost c_learn divided by this (e.g. a GPU learner)")
    parser.add_argument("--predict-num-envs", type=int, default=0,
                        help="predict for a learner batch of B environments taken from any N actors (IMPALA's, "
                             "not implemented by --actors); 0 = N b, as --actors N batches one rollout per actor")
    args, rest = parser.parse_known_args(argv)
    if args.source:
        m = json.loads(args.source.read_text())["rows"][0]["measured"]
    else:
        try:
            config = make_config(rest + ["--no-progress"])
        except ValueError as err:
            parser.error(str(err))
        m = measure(config, args.envs_per_actor, args.learner_envs or config.num_envs, args.repeats, args.ray)
    print(" ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items()))
    b, T, c_learn = m["envs_per_actor"], m["unroll"], m["c_learn"] / args.learner_speedup
    rows = [predict(m, int(n), args.predict_num_envs or int(n) * b, b, T, c_learn=c_learn)
            for n in args.predict.split(",")]
    print(f"B={args.predict_num_envs or 'N b'} b={b} T={T} c_learn={c_learn:.3g}")
    print(f"{'N':>5} {'frames/s':>10} {'learner util':>12} {'updates/s':>10} {'rollouts MB/s':>13} "
          f"{'broadcast MB/s':>14} {'lag':>6}")
    for r in rows:
        print(f"{r['N']:>5} {r['rate']:>10.0f} {r['learner_utilisation']:>12.2f} {r['updates_per_s']:>10.2f} "
              f"{r['rollout_bytes_per_s'] / 1e6:>13.1f} {r['broadcast_bytes_per_s'] / 1e6:>14.1f} "
              f"{r['policy_lag']:>6.1f}")
    if args.out:
        write_results(args.out, "rtrl_ref.bench.actors", argv if argv is not None else sys.argv[1:],
                      [dict(measured=m, predicted=rows)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
