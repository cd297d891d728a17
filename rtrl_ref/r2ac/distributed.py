"""Actor-learner R2AC on Ray: `python -m rtrl_ref.train --actors N` (IMPALA-style, as in the paper).

    N actors (Ray actors, rtrl_ref/r2ac/actors.py)             the learner (this process)
    b = num_envs / N environments each, a parameter      ---> takes the first N rollouts to arrive
    copy, the carried cell and RTRL traces (stale:            (B = num_envs environments, as the
    computed with the actor's copy)                           synchronous loop's batch), reruns the
      ActorRollout: T + 1 steps, initial state, version       forward pass with its current parameters
                                                        <---  from each rollout's initial state, V-trace,
      the next request: the latest parameters' ref            RMSProp (`learner_step`); ray.put(params)
                                                              once per update, actors pull the ref

The actor moves its state over a rollout with the stem pass it made while acting (--reuse-stem);
the learner always runs the stem again, its parameters being newer than the actor's.

Backpressure: each actor has at most --rollouts-in-flight requests queued; a request is renewed
when the learner takes its rollout, with the parameters of that moment, so an actor acts while the
learner learns and never more than that many rollouts ahead of it. `policy_lag` (log.csv) is the
mean over a batch of (updates made when the learner takes a rollout) - (updates made when it was
acted): 0 is the synchronous loop's on-policy update; V-trace corrects the rest.

Injected lag (--inject-lag K, for the staleness study rtrl_ref.r2ac.staleness): the learner keeps
the references of its last K + 1 parameter versions and every request carries the oldest of them,
the parameters K updates older than the newest (the initial ones until K updates exist), so
`policy_lag` >= K once K updates are made. The cell and traces the actors carry are then computed
with those older parameters too.

Faults: an actor that dies loses its rollout in flight (a line on stderr, `lost_rollouts` in
log.csv: rollouts lost per update, a row's mean) and is restarted with fresh environments and a
zero state; training continues. Ctrl-C, SIGTERM and SIGHUP stop the learner after the rollout it
waits for, write a checkpoint and stop the actors (as the synchronous loop does); every actor
process is gone when `train` returns, and a Ray started here is shut down. Checkpoints hold the
learner's parameters, optimizer and counters (the same file as the synchronous loop's, so a run
may resume with another number of actors or none); the actors' environments and states restart.

Budget: the counters count the frames the learner learned from. The last update is cut to the
steps the budget needs (as in the synchronous loop); actors' rollouts still in flight at the end,
and lost ones, are not counted.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from collections import deque

import numpy as np

from rtrl_ref.r2ac.actors import ActorRollout, RolloutActor, concat_states
from rtrl_ref.r2ac.config import Config
from rtrl_ref.r2ac.loop import (
    Counters,
    EpisodeStats,
    Logger,
    Rollout,
    Summary,
    TrainingStopped,
    _plot,
    _save,
    after_update,
    interrupted,
    learner_step,
    ray_module,
    stop_requests,
)
from rtrl_ref.r2ac.loop import train as loop_train
from rtrl_ref.r2ac.network import AgentSpec

__all__ = ["ActorPool", "batch_rollouts", "train", "train_with_actors"]

MAX_RESTARTS_PER_ACTOR = 10                  # more deaths than this (e.g. an actor that cannot start) stop the run


def train(config: Config) -> Summary:
    """Train (or resume) a run: with --actors N on Ray, else the synchronous loop (`loop.train`)."""
    return loop_train(config, learn=train_with_actors if config.actors else None)


def connect(ray, config: Config) -> bool:
    """Join --ray-address, else start a local Ray with this machine's cores (nothing if this process
    already runs one). True when this call connected, so that the caller disconnects."""
    if ray.is_initialized():
        return False
    if config.ray_address:
        ray.init(address=config.ray_address, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, logging_level=logging.WARNING)
    return True


def batch_rollouts(messages: list[ActorRollout], T: int):
    """The first T steps (and the bootstrap step T) of N actor rollouts as one rollout of B = N b
    environments, and its initial state; both are new, writable arrays (the learner's RTRL overwrites
    the traces it is given, and arrays from Ray's object store are read-only)."""

    def join(name: str, steps: int):
        return np.concatenate([getattr(m.rollout, name)[:steps] for m in messages], axis=1)   # (steps, B, ...)

    rollout = Rollout(join("obs", T + 1), join("reward", T + 1), join("reset", T + 1), join("actions", T),
                      join("logp", T))
    return rollout, concat_states([m.state for m in messages])                            # c (B, H)


def actor_seed(seed: int, first_update: int, actor: int, generation: int) -> int:
    """Environment and action seed of one actor's life (a restart or a resume gets fresh ones)."""
    return int(np.random.SeedSequence([seed, first_update, actor, generation]).generate_state(1)[0])


class ActorPool:
    """The N Ray actors, the rollout requests in flight and the restarts of actors that die.

    fill(params_ref, version) tops every actor up to `rollouts_in_flight` requests; next() waits for
    the next rollout to arrive (None when it was lost with its actor, which is then restarted).
    """

    def __init__(self, ray, config: Config, spec: AgentSpec, first_update: int, name: str):
        self.ray, self.config, self.spec = ray, config, spec
        self.first_update, self.name = first_update, name
        self.remote_class = ray.remote(RolloutActor)
        N = config.actors
        self.handles: list = [None] * N
        self.generation = [0] * N
        self.where: list = [None] * N                 # ref of (host, pid) of each actor's process
        self.pending: dict = {}                       # rollout ref -> (actor, generation)
        self.lost = 0                                 # rollouts lost to dead actors
        self.restarts = 0
        for i in range(N):
            self._spawn(i)

    def _spawn(self, i: int) -> None:
        seed = actor_seed(self.config.seed, self.first_update, i, self.generation[i])
        options = dict(name=f"{self.name}:actor-{i}.{self.generation[i]}", max_restarts=0)
        self.handles[i] = self.remote_class.options(**options).remote(
            self.config, self.spec, self.config.num_envs // self.config.actors, seed)
        self.where[i] = self.handles[i].where.remote()

    def in_flight(self, i: int) -> int:
        return sum(1 for actor, generation in self.pending.values() if (actor, generation) == (i, self.generation[i]))

    def fill(self, params_ref, version: int) -> None:
        for i, handle in enumerate(self.handles):
            for _ in range(self.config.rollouts_in_flight - self.in_flight(i)):
                ref = handle.rollout.remote(params_ref, version, self.config.unroll)
                self.pending[ref] = (i, self.generation[i])

    def next(self, restart: bool = True) -> ActorRollout | None:
        (ref,), _ = self.ray.wait(list(self.pending), num_returns=1)
        i, generation = self.pending.pop(ref)
        try:
            return self.ray.get(ref)
        except self.ray.exceptions.RayActorError as err:
            self.lost += 1
            current = generation == self.generation[i]
            again = current and restart
            print(f"actor {i} died ({type(err).__name__}): its rollout in flight is lost ({self.lost} lost so "
                  f"far)" + ("; restarting it with fresh environments" if again else ""), file=sys.stderr,
                  flush=True)
            if again:
                self.restarts += 1
                if self.restarts > MAX_RESTARTS_PER_ACTOR * len(self.handles):
                    raise TrainingStopped(f"actors died {self.restarts} times; stopped (the last checkpoint "
                                          f"is kept)", 3) from err
                self.generation[i] += 1
                self._spawn(i)
            return None

    def stop(self, timeout: float = 10.0) -> None:
        """Kill every actor and wait (up to `timeout` s) until the processes on this host have exited."""
        places = []
        for handle, where in zip(self.handles, self.where):
            try:
                places.append(self.ray.get(where, timeout=timeout))
            except self.ray.exceptions.RayError:      # died, or not started in time: nothing to wait for
                pass
            self.ray.kill(handle, no_restart=True)
        self.pending.clear()
        pids = [pid for host, pid in places if host == platform.node()]
        deadline = time.monotonic() + timeout
        while pids and time.monotonic() < deadline:
            pids = [pid for pid in pids if _alive(pid)]
            time.sleep(0.05)
        if pids:
            print(f"actor processes {pids} still run {timeout:.0f} s after they were killed", file=sys.stderr)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ============================================================================= the learner

def train_with_actors(config: Config, env, spec: AgentSpec, params, opt_state, counters: Counters,
                      rng: np.random.Generator, run_dir) -> Summary:
    """The synchronous loop's `_train` with N actors acting on Ray (see the module docstring); the
    learner's own environments (`env`, opened by the start's checks) are not stepped."""
    ray = ray_module(config)
    connected = connect(ray, config)
    try:
        return _learn(ray, config, spec, params, opt_state, counters, rng, run_dir)
    finally:
        if connected:
            ray.shutdown()


def _learn(ray, config: Config, spec: AgentSpec, params, opt_state, counters: Counters,
           rng: np.random.Generator, run_dir) -> Summary:
    B, T, N = config.num_envs, config.unroll, config.actors
    logger = Logger(config, run_dir, counters.frames)
    stats = EpisodeStats(counters.episodes)
    pool = None
    start = time.monotonic() - counters.seconds
    last_save = None                                                       # the first update saves at once
    try:
        with stop_requests() as received:
            pool = ActorPool(ray, config, spec, counters.updates, run_dir.name)
            versions = deque([(counters.updates, ray.put(params))], maxlen=config.inject_lag + 1)
            version, params_ref = versions[0]                              # the broadcast: one copy per version;
            pool.fill(params_ref, version)                                 # the oldest kept (--inject-lag) acts
            while counters.frames < config.total_frames and not received:
                batch: list[ActorRollout] = []
                lost = pool.lost
                while len(batch) < N and not received:
                    message = pool.next(restart=not received)
                    pool.fill(params_ref, version)                         # renew the request (backpressure)
                    if message is not None:
                        batch.append(message)
                if received:
                    break
                T_k = min(T, -(-(config.total_frames - counters.frames) // B))   # the last update may be shorter
                rollout, state = batch_rollouts(batch, T_k)
                for message in batch:
                    stats.add(message.episodes)
                lag = float(np.mean([counters.updates - message.version for message in batch]))
                params, opt_state, _, metrics = learner_step(config, spec, params, opt_state, rollout, state,
                                                             counters.frames, counters.updates + 1)
                versions.append((counters.updates + 1, ray.put(params)))
                version, params_ref = versions[0]
                counters = Counters(counters.frames + T_k * B, counters.updates + 1, stats.count,
                                    time.monotonic() - start)
                metrics.update(policy_lag=lag, lost_rollouts=pool.lost - lost)
                last_save = after_update(config, spec, params, opt_state, counters, rng, run_dir, logger, stats,
                                         metrics, T_k * B, last_save)
            counters = counters._replace(episodes=stats.count, seconds=time.monotonic() - start)
            _save(run_dir, config, spec, params, opt_state, counters, rng)  # still under the handlers
    finally:
        if pool is not None:
            pool.stop()
        logger.close()
    _plot(run_dir)
    if received:
        raise interrupted(received[0], counters, run_dir)
    return Summary(run_dir, counters.frames, counters.updates, counters.seconds, stats.mean_return(), stats.count)
