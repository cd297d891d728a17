"""The training loop behind `python -m rtrl_ref.train` (see rtrl_ref/r2ac/train.py).

The algorithm is two named steps, `collect_rollout` and `learner_step`; everything else (run
folder, log rows, progress bar, checkpoints, interrupts) is plumbing around them.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections import deque
from pathlib import Path
from typing import NamedTuple

import numpy as np

import envs
from rtrl_ref.r2ac.checkpoint import load_checkpoint, rng_from_state, rng_state, save_checkpoint
from rtrl_ref.r2ac.config import Config, write_config
from rtrl_ref.r2ac.core import get_learner
from rtrl_ref.r2ac.heads import action_log_probs, sample_actions
from rtrl_ref.r2ac.loss import actor_critic_loss
from rtrl_ref.r2ac.network import AgentSpec, act, init_agent, resolve_stem, unroll_backward, unroll_forward
from rtrl_ref.r2ac.optim import clip_by_global_norm, linear_decay, rmsprop_init, rmsprop_update
from rtrl_ref.r2ac.plot import plot_runs
from rtrl_ref.r2ac.runs import CSVLog, git_revision, new_run_dir
from rtrl_ref.r2ac.tree import tree_map
from rtrl_ref.r2ac.vtrace import vtrace

try:
    from threadpoolctl import threadpool_limits
except ImportError:          # optional: without it BLAS keeps its own thread count
    threadpool_limits = None

CHECKPOINT_FILE = "checkpoint.npz"


class TrainingStopped(RuntimeError):
    """Training ended early (non-finite loss, interrupt); the last good checkpoint is kept."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class Summary(NamedTuple):
    run_dir: Path
    frames: int
    updates: int
    seconds: float
    mean_return: float
    episodes: int

    def describe(self) -> str:
        return (f"run {self.run_dir}: {self.frames} frames, {self.updates} updates, "
                f"{self.seconds:.0f} s ({self.frames / max(self.seconds, 1e-9):.0f} frames/s), "
                f"mean return of the last {min(self.episodes, 100)} episodes {self.mean_return:.3f}")


class Counters(NamedTuple):
    frames: int
    updates: int
    episodes: int
    seconds: float


class EnvOutput(NamedTuple):
    """What the B environments returned last: entry 0 of the next rollout."""

    obs: np.ndarray           # (B, ...)
    reward: np.ndarray        # (B,) reward that arrived with obs (zeroed in the core input on resets)
    reset: np.ndarray         # (B,) obs starts a new episode


class Rollout(NamedTuple):
    """T acting steps of B environments plus the bootstrap step (entry T)."""

    obs: np.ndarray           # (T + 1, B, ...)
    reward: np.ndarray        # (T + 1, B) reward that arrived with obs[t]
    reset: np.ndarray         # (T + 1, B) obs[t] starts a new episode
    actions: np.ndarray       # (T, B)
    logp: np.ndarray          # (T, B) log-probability of actions under the acting (behaviour) policy


def fill_none(grads, params):
    """Zero gradients where a part is not trained (frozen stem, feedforward core)."""
    return type(params)(*(tree_map(np.zeros_like, p) if g is None else g for g, p in zip(grads, params)))


# ============================================================================= the algorithm
# Act for T steps in B environments with the current parameters (collect_rollout), then one
# update on that unroll (learner_step): the unroll's forward pass again with caches, V-trace
# targets (docs/derivation.md, Eq. 17), the actor-critic loss (Eq. 18), the learner's backward
# pass (exact RTRL for the eLSTM with --learner rtrl, Eqs. 14-15), a global-norm clip and RMSProp.

def collect_rollout(env, spec: AgentSpec, params, rng: np.random.Generator, last: EnvOutput, c_0, T: int):
    """Act for T steps from `last` (the environments' latest output) and cell c_0 (B, H).

    Returns (rollout, the environments' output after the T actions, the episodes that ended).
    The acting cell is not carried out: the next rollout starts from the learner's state.
    """
    B = c_0.shape[0]
    obs = np.empty((T + 1, B) + tuple(env.observation_shape), env.observation_dtype)  # (T + 1, B, ...)
    reward = np.empty((T + 1, B), np.float32)                              # (T + 1, B)
    reset = np.empty((T + 1, B), bool)                                     # (T + 1, B)
    actions = np.empty((T, B), np.int64)                                   # (T, B)
    logp = np.empty((T, B), np.float32)                                    # (T, B)
    finished = []
    c_t = c_0
    for t in range(T):
        obs[t], reward[t], reset[t] = last
        logits, _, c_t = act(spec, params, last.obs, last.reward, last.reset, c_t)   # (B, A)
        actions[t] = sample_actions(rng, logits)
        logp[t] = action_log_probs(logits, actions[t])
        step = env.step(actions[t])
        last = EnvOutput(step.obs, step.reward, step.reset)
        finished.extend(step.episodes)
    obs[T], reward[T], reset[T] = last                                     # the bootstrap step
    return Rollout(obs, reward, reset, actions, logp), last, finished


def learner_step(config: Config, spec: AgentSpec, params, opt_state, rollout: Rollout, state, frames: int):
    """One update on an unroll; returns (params, opt_state, state, metrics)."""
    T = rollout.actions.shape[0]
    logits, values, cache = unroll_forward(spec, params, rollout.obs, rollout.reward, rollout.reset, state)
    rewards = np.clip(rollout.reward[1:], -config.reward_clip, config.reward_clip)  # (T, B)
    discounts = (config.discount * ~rollout.reset[1:]).astype(values.dtype)         # (T, B)
    target_logp = action_log_probs(logits[:T], rollout.actions)                    # (T, B)
    vs, pg_adv = vtrace(rollout.logp, target_logp, rewards, discounts, values[:T], values[T])
    loss, loss_grads = actor_critic_loss(logits[:T], values[:T], rollout.actions, vs, pg_adv,
                                         baseline_cost=config.baseline_cost, entropy_cost=config.entropy_cost)
    if not math.isfinite(loss.total):
        raise TrainingStopped(f"non-finite loss {loss.total} at {frames} frames", 3)
    grads, state = unroll_backward(spec, params, cache, loss_grads.g_logits, loss_grads.g_values, state)
    grads = fill_none(grads, params)
    grads, norm = clip_by_global_norm(grads, config.grad_clip)
    if not math.isfinite(norm):
        raise TrainingStopped(f"non-finite gradient norm at {frames} frames", 3)
    lr = linear_decay(config.lr, frames, config.total_frames)
    params, opt_state = rmsprop_update(params, grads, opt_state, lr, alpha=config.rms_alpha, eps=config.rms_eps)
    metrics = dict(loss=loss.total, pg_loss=loss.pg, baseline_loss=loss.baseline,
                   entropy=loss.mean_entropy, grad_norm=norm, lr=lr)
    return params, opt_state, state, metrics


# ============================================================================= the plumbing

def train(config: Config) -> Summary:
    run_dir = Path(config.resume) if config.resume else new_run_dir(config)
    rng = np.random.default_rng(config.seed)                               # the one seed
    env = envs.make(config.env, num_envs=config.num_envs, seed=config.seed)
    try:
        with blas_threads(config.blas_threads):
            return _train(config, env, rng, run_dir)
    finally:
        env.close()


def blas_threads(n: int):
    """Limit BLAS thread pools to n threads inside the block (n = 0: leave them alone)."""
    if n <= 0 or threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def agent_spec(config: Config, env) -> AgentSpec:
    stem = resolve_stem(config.stem, env.observation_shape)
    features = int(np.prod(env.observation_shape)) if stem == "identity" else config.features
    return AgentSpec(config.learner, config.stem_grad, stem, tuple(env.observation_shape),
                     env.num_actions, features, config.hidden, config.reward_clip, config.backend,
                     config.forget_bias, config.stem_init)


class EpisodeStats:
    """Episodes finished so far: their count and the returns and lengths of the last 100."""

    def __init__(self, count: int = 0):
        self.count = count
        self.returns: deque = deque(maxlen=100)
        self.lengths: deque = deque(maxlen=100)

    def add(self, episodes) -> None:
        for ep in episodes:
            self.returns.append(ep.score)
            self.lengths.append(ep.length)
            self.count += 1

    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    def mean_length(self) -> float:
        return float(np.mean(self.lengths)) if self.lengths else float("nan")


def log_progress(config: Config, log: CSVLog, bar, counters: Counters, stats: EpisodeStats, metrics: dict,
                 frames_per_update: int) -> None:
    """Advance the progress bar; write a log.csv row every log_every updates and at the end."""
    mean_return = stats.mean_return()
    if bar is not None:
        bar.update(frames_per_update)
        bar.set_postfix(upd=counters.updates, ret=f"{mean_return:.3g}", eps=stats.count, refresh=False)
    if counters.updates % config.log_every == 0 or counters.frames >= config.total_frames:
        log.write(dict(frames=counters.frames, updates=counters.updates, seconds=round(counters.seconds, 2),
                       fps=round(counters.frames / max(counters.seconds, 1e-9), 1), episodes=stats.count,
                       mean_return=mean_return, mean_length=stats.mean_length(), **metrics))


def maybe_checkpoint(config: Config, run_dir: Path, params, opt_state, counters: Counters, rng,
                     last_save: float) -> float:
    """Save a checkpoint if checkpoint_minutes have passed since `last_save`; returns the new last_save."""
    if time.monotonic() - last_save <= 60 * config.checkpoint_minutes:
        return last_save
    _save(run_dir, config, params, opt_state, counters, rng)
    return time.monotonic()


def _train(config: Config, env, rng: np.random.Generator, run_dir: Path) -> Summary:
    B, T = config.num_envs, config.unroll
    spec = agent_spec(config, env)
    params = init_agent(rng, spec)
    opt_state = rmsprop_init(params)
    counters = Counters(0, 0, 0, 0.0)
    if config.resume:
        params, opt_state, counters, rng = _restore(run_dir, params, opt_state)
    else:
        write_config(run_dir, config, git_revision())
    log = CSVLog(run_dir)
    stats = EpisodeStats(counters.episodes)
    state = get_learner(config.learner).init_state(B, spec.features + 1, config.hidden, np.float32)
    obs, _ = env.reset()
    last = EnvOutput(obs, np.zeros(B, np.float32), np.ones(B, bool))      # reward (B,), reset (B,)
    last_save = time.monotonic()
    start = time.monotonic() - counters.seconds
    bar = _progress(config, counters.frames)
    interrupted = []
    old_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    try:
        while counters.frames < config.total_frames and not interrupted:
            rollout, last, finished = collect_rollout(env, spec, params, rng, last, state.c, T)
            stats.add(finished)
            params, opt_state, state, metrics = learner_step(config, spec, params, opt_state, rollout, state,
                                                             counters.frames)
            counters = Counters(counters.frames + T * B, counters.updates + 1, stats.count,
                                time.monotonic() - start)
            log_progress(config, log, bar, counters, stats, metrics, T * B)
            last_save = maybe_checkpoint(config, run_dir, params, opt_state, counters, rng, last_save)
    except TrainingStopped:
        log.close()
        raise
    finally:
        signal.signal(signal.SIGINT, old_handler)
        if bar is not None:
            bar.close()
    counters = counters._replace(episodes=stats.count, seconds=time.monotonic() - start)
    _save(run_dir, config, params, opt_state, counters, rng)
    log.close()
    _plot(run_dir)
    if interrupted:
        raise TrainingStopped(f"interrupted at {counters.frames} frames; checkpoint saved in {run_dir} "
                              f"(continue with --resume {run_dir})", 130)
    return Summary(run_dir, counters.frames, counters.updates, counters.seconds, stats.mean_return(), stats.count)


def _progress(config: Config, initial: int):
    if not config.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=config.total_frames, initial=initial, unit="frame", unit_scale=True,
                desc=f"{config.env} {config.learner}", dynamic_ncols=True)


def _save(run_dir: Path, config: Config, params, opt_state, counters: Counters, rng) -> None:
    meta = dict(counters=counters._asdict(), rng=rng_state(rng), env=config.env,
                learner=config.learner)
    save_checkpoint(run_dir / CHECKPOINT_FILE, dict(params=params, opt_state=opt_state), meta)


def _restore(run_dir: Path, params, opt_state):
    trees, meta = load_run_checkpoint(run_dir, params, opt_state)
    rng = rng_from_state(meta["rng"])
    return trees["params"], trees["opt_state"], Counters(**meta["counters"]), rng


def load_run_checkpoint(run_dir: Path, params, opt_state):
    """(trees, meta) of a run's checkpoint; ValueError with a clear message if it cannot be used."""
    file = Path(run_dir) / CHECKPOINT_FILE
    if not file.exists():
        raise ValueError(f"{run_dir}: no checkpoint ({file} is missing)")
    return load_checkpoint(file, dict(params=params, opt_state=opt_state))


def _plot(run_dir: Path) -> None:
    try:
        plot_runs([run_dir], run_dir / "curve.png")
    except (ImportError, ValueError):
        pass
