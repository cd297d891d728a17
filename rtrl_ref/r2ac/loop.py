"""The training loop behind `python -m rtrl_ref.train` (see rtrl_ref/r2ac/train.py).

The algorithm is two named steps, `collect_rollout` and `learner_step`; everything else (run
folder, log rows, progress bar, checkpoints, interrupts) is plumbing around them.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import NamedTuple

import numpy as np

import envs
from rtrl_ref.r2ac.checkpoint import (
    CHECKPOINT_FILE,
    load_run_checkpoint,
    read_checkpoint,
    rng_from_state,
    rng_state,
    save_checkpoint,
)
from rtrl_ref.r2ac.config import Config, write_config
from rtrl_ref.r2ac.core import get_learner
from rtrl_ref.r2ac.evaluate import evaluate_policy
from rtrl_ref.r2ac.heads import action_log_probs, sample_actions
from rtrl_ref.r2ac.loss import actor_critic_loss
from rtrl_ref.r2ac.network import (
    AgentParams,
    AgentSpec,
    StemPass,
    act_with_stem,
    agent_spec,
    init_agent,
    join_stem_passes,
    unroll_backward,
    unroll_forward,
)
from rtrl_ref.r2ac.optim import clip_by_global_norm, global_norm, linear_decay, rmsprop_init, rmsprop_update
from rtrl_ref.r2ac.plot import plot_runs
from rtrl_ref.r2ac.runs import CSVLog, RunLock, check_new_run, git_revision, new_run_dir, remove_orphans, truncate_log
from rtrl_ref.r2ac.stems import get_stem
from rtrl_ref.r2ac.tree import tree_map
from rtrl_ref.r2ac.vtrace import vtrace

try:
    from threadpoolctl import threadpool_limits
except ImportError:          # optional: without it BLAS keeps its own thread count
    threadpool_limits = None

__all__ = ["train", "collect_rollout", "learner_step", "agent_spec", "load_run_checkpoint", "CHECKPOINT_FILE",
           "Rollout", "Summary", "TrainingStopped", "UsageError", "check_start"]


class UsageError(ValueError):
    """A start refused before anything was created (bad flag, environment spec, stem, run folder)."""


class TrainingStopped(RuntimeError):
    """Training ended early (non-finite loss, interrupt); the last good checkpoint is kept."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def report_stopped(stop: TrainingStopped) -> int:
    """Say on stderr why training stopped (after SIGHUP the terminal may be gone); its exit code."""
    try:
        print(f"\ntraining stopped: {stop}", file=sys.stderr, flush=True)
    except OSError:
        pass
    return stop.exit_code


class Summary(NamedTuple):
    run_dir: Path
    frames: int
    updates: int
    seconds: float
    mean_return: float
    episodes: int
    already_complete: bool = False       # a --resume of a run that had met its budget: nothing was done

    def describe(self) -> str:
        if self.already_complete:
            return (f"run {self.run_dir} is already complete: {self.frames} frames, {self.updates} updates "
                    f"(raise --total-frames to train further)")
        return (f"run {self.run_dir}: {self.frames} frames, {self.updates} updates, "
                f"{self.seconds:.0f} s ({self.frames / max(self.seconds, 1e-9):.0f} frames/s), "
                + (f"mean return of the last {min(self.episodes, 100)} episodes {self.mean_return:.3f}"
                   if self.episodes else "no episode has finished yet"))


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
    stem: StemPass | None = None  # the acting pass's stem over obs (features (T + 1, B, F)), reused by
                                  # the learner while the parameters are those that acted; None: rerun


def fill_none(grads, params):
    """Zero gradients where a part is not trained (frozen stem, feedforward core)."""
    return type(params)(*(tree_map(np.zeros_like, p) if g is None else g for g, p in zip(grads, params)))


# ============================================================================= the algorithm
# Act for T steps in B environments with the current parameters (collect_rollout), then one
# update on that unroll (learner_step): the unroll's forward pass again with caches, V-trace
# targets (docs/derivation.md, Eq. 17), the actor-critic loss (Eq. 18), the learner's backward
# pass (exact RTRL for the eLSTM with --learner rtrl, Eqs. 14-15), a global-norm clip and RMSProp.

def collect_rollout(env, spec: AgentSpec, params, rng: np.random.Generator, last: EnvOutput, c_0, T: int,
                    keep_stem: bool = True):
    """Act for T steps from `last` (the environments' latest output) and cell c_0 (B, H).

    Returns (rollout, the environments' output after the T actions, the episodes that ended).
    The acting cell is not carried out: the next rollout starts from the learner's state.
    keep_stem: keep the stem's acting pass (and run it on the bootstrap observation) so that the
    learner, updating these same parameters, need not run the stem again.
    """
    B = c_0.shape[0]
    obs = np.empty((T + 1, B) + tuple(env.observation_shape), env.observation_dtype)  # (T + 1, B, ...)
    reward = np.empty((T + 1, B), np.float32)                              # (T + 1, B)
    reset = np.empty((T + 1, B), bool)                                     # (T + 1, B)
    actions = np.empty((T, B), np.int64)                                   # (T, B)
    logp = np.empty((T, B), np.float32)                                    # (T, B)
    finished = []
    passes = []                                                            # the stem's pass per step
    c_t = c_0
    for t in range(T):
        obs[t], reward[t], reset[t] = last
        logits, _, c_t, stem_pass = act_with_stem(spec, params, last.obs, last.reward, last.reset, c_t)  # (B, A)
        if keep_stem:
            passes.append(stem_pass)
        actions[t] = sample_actions(rng, logits)
        logp[t] = action_log_probs(logits, actions[t])
        step = env.step(actions[t])
        last = EnvOutput(step.obs, step.reward, step.reset)
        finished.extend(step.episodes)
    obs[T], reward[T], reset[T] = last                                     # the bootstrap step
    stem = None
    if keep_stem:
        passes.append(StemPass(*get_stem(spec.stem).forward(params.stem, last.obs)))
        stem = join_stem_passes(spec, passes)
    return Rollout(obs, reward, reset, actions, logp, stem), last, finished


def step_rewards_and_discounts(rollout: Rollout, reward_clip: float, discount: float):
    """V-trace's r_t and gamma_t for the T actions of a rollout, both (T, B) float32: action t was
    taken on obs[t] and answered by reward[t + 1]; gamma_t = 0 where obs[t + 1] starts a new episode
    (the bootstrap must not reach into it)."""
    rewards = np.clip(rollout.reward[1:], -reward_clip, reward_clip).astype(np.float32)  # (T, B)
    discounts = (discount * ~rollout.reset[1:]).astype(np.float32)                      # (T, B)
    return rewards, discounts


def learner_step(config: Config, spec: AgentSpec, params, opt_state, rollout: Rollout, state, frames: int,
                 update: int = 1):
    """The `update`-th update (1, 2, ...), on an unroll; returns (params, opt_state, state, metrics)."""
    T = rollout.actions.shape[0]
    logits, values, cache = unroll_forward(spec, params, rollout.obs, rollout.reward, rollout.reset, state,
                                           rollout.stem)
    rewards, discounts = step_rewards_and_discounts(rollout, config.reward_clip, config.discount)
    target_logp = action_log_probs(logits[:T], rollout.actions)                    # (T, B)
    vs, pg_adv = vtrace(rollout.logp, target_logp, rewards, discounts, values[:T], values[T])
    loss, loss_grads = actor_critic_loss(logits[:T], values[:T], rollout.actions, vs, pg_adv,
                                         baseline_cost=config.baseline_cost, entropy_cost=config.entropy_cost)
    if not math.isfinite(loss.total):
        raise TrainingStopped(f"non-finite loss {loss.total} at {frames} frames", 3)
    grads, state = unroll_backward(spec, params, cache, loss_grads.g_logits, loss_grads.g_values, state)
    grads = fill_none(grads, params)
    part_norms = {f"grad_norm_{name}": global_norm(g) for name, g in zip(AgentParams._fields, grads)}
    grads, norm = clip_by_global_norm(grads, config.grad_clip)
    if not math.isfinite(norm):
        raise TrainingStopped(f"non-finite gradient norm at {frames} frames", 3)
    lr = linear_decay(config.lr, frames, config.total_frames)
    params, opt_state = rmsprop_update(params, grads, opt_state, lr, alpha=config.rms_alpha, eps=config.rms_eps,
                                       step=update if config.rms_bias_correction else 0)
    metrics = dict(loss=loss.total, pg_loss=loss.pg, baseline_loss=loss.baseline,
                   entropy=loss.mean_entropy, grad_norm=norm, lr=lr, **part_norms,
                   clipped=float(norm > config.grad_clip), adv_abs=float(np.abs(pg_adv).mean()),
                   pg_logit_grad=loss.pg_logit_grad, entropy_logit_grad=loss.entropy_logit_grad,
                   explained_variance=explained_variance(vs, values[:T]))
    return params, opt_state, state, metrics


def explained_variance(targets, predictions) -> float:
    """1 - Var(targets - predictions) / Var(targets): 1 = the baseline predicts its targets, 0 = no
    better than their mean, < 0 worse (nan when the targets are constant)."""
    var = float(np.var(targets))
    return 1.0 - float(np.var(targets - predictions)) / var if var > 0 else float("nan")


# ============================================================================= the plumbing

def train(config: Config, learn=None) -> Summary:
    """Train (or resume) a run. Every check runs before the run folder is created or touched: a start
    that fails raises UsageError (a ValueError naming the flag) and leaves nothing behind.

    learn: what trains once the run has started, called like `_train` (default: the synchronous
    loop); rtrl_ref.r2ac.distributed.train passes its actor-learner for --actors N.
    """
    if config.actors and learn is None:
        raise UsageError(f"--actors {config.actors}: this loop runs no actors; train with "
                         f"rtrl_ref.r2ac.distributed.train (as python -m rtrl_ref.train does)")
    try:
        start = _start(config)
    except ValueError as err:
        raise UsageError(str(err)) from None
    env, spec, params, opt_state, counters, rng, run_dir, lock = start
    try:
        if config.resume and counters.frames >= config.total_frames:
            return Summary(run_dir, counters.frames, counters.updates, counters.seconds, float("nan"),
                           counters.episodes, already_complete=True)
        if config.resume:
            truncate_log(run_dir, counters.frames)                         # rows after the checkpoint go
        else:
            write_config(run_dir, config, git_revision())
        print(f"run folder: {run_dir}", flush=True)
        print(budget_plan(config, counters.frames), flush=True)
        with blas_threads(config.blas_threads):
            return (learn or _train)(config, env, spec, params, opt_state, counters, rng, run_dir)
    finally:
        lock.release()
        env.close()


class Start(NamedTuple):
    env: object
    spec: AgentSpec
    params: object
    opt_state: object
    counters: Counters
    rng: np.random.Generator
    run_dir: Path
    lock: RunLock


def check_start(config: Config) -> AgentSpec:
    """Every check of a start (flags, environment spec, stem, run folder, resume), creating nothing."""
    return _checked_setup(config, close=True)[1]


def _checked_setup(config: Config, close: bool):
    if not config.resume:
        check_new_run(config)
    tensorboard_writer_class(config)                                       # --tensorboard needs its package
    ray_module(config)                                                     # --actors needs ray
    env = make_env(config)
    try:
        spec = agent_spec(config, env)
        rng = np.random.default_rng(config.seed)                           # the one seed
        try:
            params = init_agent(rng, spec)
        except ValueError as err:                                          # e.g. images too small for the stem
            raise ValueError(f"--stem {spec.stem}: {err}" if "obs_shape" in str(err) else str(err)) from None
        if config.resume:
            check_checkpoint_matches(Path(config.resume), config, spec)
    except BaseException:
        env.close()
        raise
    if close:
        env.close()
    return env, spec, params, rng


def _start(config: Config) -> Start:
    env, spec, params, rng = _checked_setup(config, close=False)
    lock = None
    try:
        opt_state = rmsprop_init(params)
        counters = Counters(0, 0, 0, 0.0)
        if config.resume:
            run_dir = Path(config.resume)
            lock = RunLock(run_dir).acquire()
            remove_orphans(run_dir)
            params, opt_state, counters, rng = _restore(run_dir, params, opt_state)
        else:
            run_dir = new_run_dir(config)                                  # the first thing created
            lock = RunLock(run_dir).acquire()
        return Start(env, spec, params, opt_state, counters, rng, run_dir, lock)
    except BaseException:
        if lock is not None:
            lock.release()
        env.close()
        raise


def make_env(config: Config):
    """The training environments; a bad spec or a missing package is a ValueError naming --env."""
    try:
        return envs.make(config.env, num_envs=config.num_envs, seed=config.seed)
    except (ValueError, ImportError) as err:
        message = str(err).removeprefix(f"{config.env}: ")
        raise ValueError(f"--env {config.env}: {message}") from None


def tensorboard_writer_class(config: Config):
    """tensorboardX's SummaryWriter when --tensorboard is on (None otherwise); ValueError if missing."""
    if not config.tensorboard:
        return None
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise ValueError("--tensorboard: needs the tensorboardX package (pip install 'rtrl_ref[tensorboard]' "
                         "or pip install tensorboardX)") from None
    return SummaryWriter


def ray_module(config: Config):
    """The ray module when --actors is on (None otherwise); ValueError naming --actors if it is missing."""
    if not config.actors:
        return None
    try:
        import ray
    except ImportError:
        raise ValueError(f"--actors {config.actors}: needs the ray package (pip install 'rtrl_ref[distributed]' "
                         f"or pip install ray)") from None
    return ray


def budget_plan(config: Config, frames: int) -> str:
    """How the budget is met: whole updates of unroll * num_envs frames, the last one shortened so
    that the run stops at the first multiple of num_envs >= total_frames (the overshoot is < num_envs)."""
    B, T, total = config.num_envs, config.unroll, config.total_frames
    steps = max(-(-(total - frames) // B), 0)                              # acting steps left per environment
    updates, last = divmod(steps, T)
    end = frames + steps * B
    text = f"budget: {total} frames from {frames}: {updates} updates of {T} x {B} frames"
    if last:
        text += f" and a last update shortened to {last} steps"
    return text + (f" -> {end} frames (exact)" if end == total else
                   f" -> {end} frames ({end - total} over: budgets are met in multiples of num_envs={B})")


def blas_threads(n: int):
    """Limit BLAS thread pools to n threads inside the block (n = 0: leave them alone)."""
    if n <= 0 or threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


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


class Logger:
    """log.csv rows (every log_every updates, after an evaluation, and at the end), the same scalars
    in TensorBoard with --tensorboard, and the progress bar. A row's learner metrics are means over
    the updates since the previous row (so `clipped` is the fraction of clipped updates)."""

    def __init__(self, config: Config, run_dir: Path, initial_frames: int):
        self.config = config
        self.csv = CSVLog(run_dir)
        writer = tensorboard_writer_class(config)
        self.tb = writer(str(run_dir / "tensorboard")) if writer is not None else None
        self.bar = _progress(config, initial_frames)
        self.sums: dict[str, float] = {}                  # metrics summed since the last row
        self.count = 0

    def update(self, counters: Counters, stats: EpisodeStats, metrics: dict, frames: int,
               eval_return: float | None = None) -> None:
        mean_return = stats.mean_return()
        if self.bar is not None:
            try:
                self.bar.update(frames)
                self.bar.set_postfix(upd=counters.updates, ret=f"{mean_return:.3g}", eps=stats.count,
                                     refresh=False)
            except OSError:                          # the terminal is gone (SIGHUP): train on without a bar
                self.bar = None
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1
        if counters.updates % self.config.log_every and counters.frames < self.config.total_frames \
                and eval_return is None:
            return
        row = dict(frames=counters.frames, updates=counters.updates, seconds=round(counters.seconds, 2),
                   fps=round(counters.frames / max(counters.seconds, 1e-9), 1), episodes=stats.count,
                   mean_return=mean_return, mean_length=stats.mean_length(),
                   **{key: total / self.count for key, total in self.sums.items()})
        self.sums, self.count = {}, 0
        if eval_return is not None:
            row["eval_return"] = eval_return
        self.csv.write(row)
        if self.tb is not None:
            for key, value in row.items():
                if key != "frames" and math.isfinite(float(value)):
                    self.tb.add_scalar(key, float(value), global_step=counters.frames)
            self.tb.flush()

    def close(self) -> None:
        if self.bar is not None:
            with contextlib.suppress(OSError):
                self.bar.close()
        self.csv.close()
        if self.tb is not None:
            self.tb.close()


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def stop_requests():
    """Inside the block, SIGINT, SIGTERM and SIGHUP record themselves in the yielded list (the loop
    then checkpoints and stops); a second one stops at once. Outside the main thread no handler
    can be set."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, _frame):
        received.append(signum)
        if len(received) > 1:                        # asked twice: stop now (a checkpoint write is atomic)
            raise TrainingStopped(f"{signal.Signals(signum).name} received a second time: stopped at once, "
                                  f"without a final checkpoint (the last one is kept)", 128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _train(config: Config, env, spec: AgentSpec, params, opt_state, counters: Counters,
           rng: np.random.Generator, run_dir: Path) -> Summary:
    B, T = config.num_envs, config.unroll
    logger = Logger(config, run_dir, counters.frames)
    stats = EpisodeStats(counters.episodes)
    state = get_learner(spec.learner, spec.cell, spec.layers).init_state(B, spec.features + 1, spec.hidden,
                                                                          np.float32)
    obs, _ = env.reset()
    last = EnvOutput(obs, np.zeros(B, np.float32), np.ones(B, bool))      # reward (B,), reset (B,)
    start = time.monotonic() - counters.seconds
    last_save = None                                                       # the first update saves at once
    try:
        with stop_requests() as received:
            while counters.frames < config.total_frames and not received:
                T_k = min(T, -(-(config.total_frames - counters.frames) // B))   # the last update may be shorter
                rollout, last, finished = collect_rollout(env, spec, params, rng, last, state.c, T_k,
                                                          keep_stem=config.reuse_stem)
                stats.add(finished)
                params, opt_state, state, metrics = learner_step(config, spec, params, opt_state, rollout, state,
                                                                 counters.frames, counters.updates + 1)
                counters = Counters(counters.frames + T_k * B, counters.updates + 1, stats.count,
                                    time.monotonic() - start)
                last_save = after_update(config, spec, params, opt_state, counters, rng, run_dir, logger, stats,
                                         metrics, T_k * B, last_save)
            counters = counters._replace(episodes=stats.count, seconds=time.monotonic() - start)
            _save(run_dir, config, spec, params, opt_state, counters, rng)  # still under the handlers
    finally:
        logger.close()
    _plot(run_dir)
    if received:
        raise interrupted(received[0], counters, run_dir)
    return Summary(run_dir, counters.frames, counters.updates, counters.seconds, stats.mean_return(), stats.count)


def after_update(config: Config, spec: AgentSpec, params, opt_state, counters: Counters, rng, run_dir: Path,
                 logger: Logger, stats: EpisodeStats, metrics: dict, frames: int, last_save: float | None) -> float:
    """After an update: evaluate (every --eval-every updates), log the row, checkpoint (every
    --checkpoint-minutes, and after the first update); returns when the last checkpoint was written."""
    eval_return = None
    if config.eval_every and counters.updates % config.eval_every == 0:
        eval_return = evaluate_policy(config, spec, params, config.eval_episodes,
                                      seed=10_000_019 + counters.updates).mean
    logger.update(counters, stats, metrics, frames, eval_return)
    if last_save is None or time.monotonic() - last_save > 60 * config.checkpoint_minutes:
        _save(run_dir, config, spec, params, opt_state, counters, rng)
        return time.monotonic()
    return last_save


def interrupted(signum: int, counters: Counters, run_dir: Path) -> TrainingStopped:
    """The stop after a signal, once the checkpoint is saved: what it says and its exit status."""
    return TrainingStopped(f"interrupted by {signal.Signals(signum).name} at {counters.frames} frames; checkpoint "
                           f"saved in {run_dir}; continue with: python -m rtrl_ref.train --resume {run_dir}",
                           128 + signum)


def _progress(config: Config, initial: int):
    if not config.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=config.total_frames, initial=initial, unit="frame", unit_scale=True,
                desc=f"{config.env} {config.learner}", dynamic_ncols=True)


def run_identity(config: Config, spec: AgentSpec) -> dict:
    """What a checkpoint's arrays mean: the setting a resume must match (stored in its metadata)."""
    return dict(env=config.env, learner=config.learner, cell=config.cell, layers=spec.layers, stem=spec.stem,
                stem_grad=config.stem_grad, hidden=config.hidden, features=spec.features, num_envs=config.num_envs,
                unroll=config.unroll, obs_shape=list(spec.obs_shape), num_actions=spec.num_actions)


def _save(run_dir: Path, config: Config, spec: AgentSpec, params, opt_state, counters: Counters, rng) -> None:
    meta = dict(counters=counters._asdict(), rng=rng_state(rng), **run_identity(config, spec))
    save_checkpoint(run_dir / CHECKPOINT_FILE, dict(params=params, opt_state=opt_state), meta)


def check_checkpoint_matches(run_dir: Path, config: Config, spec: AgentSpec) -> None:
    """Refuse to resume when config.json and the checkpoint describe different settings (an edited
    config.json would otherwise train the old weights in a new setting)."""
    file = Path(run_dir) / CHECKPOINT_FILE
    if not file.exists():
        raise ValueError(f"--resume {run_dir}: no checkpoint ({file} is missing)")
    _, header = read_checkpoint(file)
    recorded = header.get("meta", {})
    expected = run_identity(config, spec)
    differ = [f"{k}: config.json {expected[k]!r}, checkpoint {recorded[k]!r}"
              for k in expected if k in recorded and recorded[k] != expected[k]]
    if differ:
        raise ValueError(f"--resume {run_dir}: config.json does not match the checkpoint ({'; '.join(differ)}); "
                         f"refusing to resume")


def _restore(run_dir: Path, params, opt_state):
    trees, meta = load_run_checkpoint(run_dir, params, opt_state)
    rng = rng_from_state(meta["rng"])
    return trees["params"], trees["opt_state"], Counters(**meta["counters"]), rng


def _plot(run_dir: Path) -> None:
    try:
        plot_runs([run_dir], run_dir / "curve.png")
    except (ImportError, ValueError):
        pass
