"""The training loop behind `python -m rtrl_ref.train` (see rtrl_ref/train.py)."""

from __future__ import annotations

import math
import signal
import time
from collections import deque
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rtrl_ref.r2ac.checkpoint import load_checkpoint, rng_from_state, rng_state, save_checkpoint
from rtrl_ref.r2ac.config import Config
from rtrl_ref.r2ac.core import init_state
from rtrl_ref.r2ac.heads import action_log_probs, sample_actions
from rtrl_ref.r2ac.loss import actor_critic_loss
from rtrl_ref.r2ac.network import AgentSpec, act, init_agent, resolve_stem, unroll_backward, unroll_forward
from rtrl_ref.r2ac.optim import clip_by_global_norm, linear_decay, rmsprop_init, rmsprop_update
from rtrl_ref.r2ac.runs import CSVLog, new_run_dir, write_config
from rtrl_ref.r2ac.tree import tree_map
from rtrl_ref.r2ac.vtrace import vtrace

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


def fill_none(grads, params):
    """Zero gradients where a part is not trained (frozen stem, feedforward core)."""
    return type(params)(*(tree_map(np.zeros_like, p) if g is None else g for g, p in zip(grads, params)))


def learner_step(config: Config, spec: AgentSpec, params, opt_state, rollout, state, frames: int):
    """One update on an unroll; returns (params, opt_state, state, metrics)."""
    obs, reward, reset, actions, logp_behaviour = rollout
    T = actions.shape[0]
    logits, values, cache = unroll_forward(spec, params, obs, reward, reset, state)
    rewards = np.clip(reward[1:], -config.reward_clip, config.reward_clip)  # (T, B)
    discounts = (config.discount * ~reset[1:]).astype(values.dtype)        # (T, B)
    target_logp = action_log_probs(logits[:T], actions)                    # (T, B)
    vs, pg_adv = vtrace(logp_behaviour, target_logp, rewards, discounts, values[:T], values[T])
    loss, loss_grads = actor_critic_loss(logits[:T], values[:T], actions, vs, pg_adv,
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


def train(config: Config) -> Summary:
    import envs

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
    import contextlib

    if n <= 0:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def agent_spec(config: Config, env) -> AgentSpec:
    stem = resolve_stem(config.stem, env.observation_shape)
    features = int(np.prod(env.observation_shape)) if stem == "identity" else config.features
    return AgentSpec(config.learner, config.stem_grad, stem, tuple(env.observation_shape),
                     env.num_actions, features, config.hidden, config.reward_clip, config.backend,
                     config.forget_bias, config.stem_init)


def _train(config: Config, env, rng: np.random.Generator, run_dir: Path) -> Summary:
    B, T = config.num_envs, config.unroll
    spec = agent_spec(config, env)
    params = init_agent(rng, spec)
    opt_state = rmsprop_init(params)
    counters = Counters(0, 0, 0, 0.0)
    if config.resume:
        params, opt_state, counters, rng = _restore(run_dir, params, opt_state)
    else:
        write_config(run_dir, config)
    log = CSVLog(run_dir)
    returns, lengths = deque(maxlen=100), deque(maxlen=100)
    state = init_state(config.learner, B, spec.features + 1, config.hidden, np.float32)
    obs, _ = env.reset()
    reward = np.zeros(B, np.float32)                                       # (B,)
    reset = np.ones(B, bool)                                               # (B,)
    last_save = time.monotonic()
    start = time.monotonic() - counters.seconds
    bar = _progress(config, counters.frames)
    interrupted = []
    old_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    frames, updates, episodes = counters.frames, counters.updates, counters.episodes
    metrics: dict = {}
    try:
        while frames < config.total_frames and not interrupted:
            obs_buf = np.empty((T + 1, B) + tuple(env.observation_shape), env.observation_dtype)
            reward_buf = np.empty((T + 1, B), np.float32)                 # (T + 1, B)
            reset_buf = np.empty((T + 1, B), bool)                        # (T + 1, B)
            action_buf = np.empty((T, B), np.int64)                       # (T, B)
            logp_buf = np.empty((T, B), np.float32)                       # (T, B)
            c = state.c
            for t in range(T):
                obs_buf[t], reward_buf[t], reset_buf[t] = obs, reward, reset
                logits, _, c = act(spec, params, obs, reward, reset, c)
                a = sample_actions(rng, logits)
                action_buf[t] = a
                logp_buf[t] = action_log_probs(logits, a)
                step = env.step(a)
                obs, reward, reset = step.obs, step.reward, step.reset
                for ep in step.episodes:
                    returns.append(ep.score)
                    lengths.append(ep.length)
                    episodes += 1
            obs_buf[T], reward_buf[T], reset_buf[T] = obs, reward, reset
            rollout = (obs_buf, reward_buf, reset_buf, action_buf, logp_buf)
            params, opt_state, state, metrics = learner_step(config, spec, params, opt_state, rollout, state, frames)
            frames += T * B
            updates += 1
            seconds = time.monotonic() - start
            mean_return = float(np.mean(returns)) if returns else float("nan")
            if bar is not None:
                bar.update(T * B)
                bar.set_postfix(upd=updates, ret=f"{mean_return:.3g}", eps=episodes, refresh=False)
            if updates % config.log_every == 0 or frames >= config.total_frames:
                log.write(dict(frames=frames, updates=updates, seconds=round(seconds, 2),
                               fps=round(frames / max(seconds, 1e-9), 1), episodes=episodes,
                               mean_return=mean_return,
                               mean_length=float(np.mean(lengths)) if lengths else float("nan"),
                               **metrics))
            if time.monotonic() - last_save > 60 * config.checkpoint_minutes:
                _save(run_dir, config, params, opt_state, Counters(frames, updates, episodes, seconds), rng)
                last_save = time.monotonic()
    except TrainingStopped:
        log.close()
        raise
    finally:
        signal.signal(signal.SIGINT, old_handler)
        if bar is not None:
            bar.close()
    seconds = time.monotonic() - start
    _save(run_dir, config, params, opt_state, Counters(frames, updates, episodes, seconds), rng)
    log.close()
    _plot(run_dir)
    if interrupted:
        raise TrainingStopped(f"interrupted at {frames} frames; checkpoint saved in {run_dir} "
                              f"(continue with --resume {run_dir})", 130)
    return Summary(run_dir, frames, updates, seconds,
                   float(np.mean(returns)) if returns else float("nan"), episodes)


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
    from rtrl_ref.r2ac.plot import plot_runs

    try:
        plot_runs([run_dir], run_dir / "curve.png")
    except (ImportError, ValueError):
        pass
