"""The batched-env contract of envs/base.py, checked the same way for every family."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest

from envs import BatchedEnv, EpisodeStats, StepResult


class Stream(NamedTuple):
    """What a contract run saw, for family-specific checks."""

    obs: list[np.ndarray]          # T + 1 observations (B, ...), the first from reset()
    rewards: np.ndarray            # (T, B)
    resets: np.ndarray             # (T, B)
    episodes: list[tuple[int, EpisodeStats]]   # (step index, stats)


def check_contract(env: BatchedEnv, steps: int, seed: int = 0,
                   whole_episodes_are_resets: bool = True) -> Stream:
    """Step `env` with random actions and assert the contract at every step.

    Checks shapes and dtypes, that results are not overwritten by later steps, that every
    finished episode coincides with a reset of its env, that its length counts the steps since
    that env's previous episode end (or the start) and that its score sums the rewards since.
    With `whole_episodes_are_resets` (every family but Atari with life-loss episodes) every
    reset also ends an episode.
    """
    B = env.num_envs
    assert isinstance(env.num_actions, int) and env.num_actions >= 2, env.num_actions
    assert env.observation_dtype in (np.dtype(np.uint8), np.dtype(np.float32)), env.spec
    obs, info = env.reset()
    assert isinstance(info, dict)
    _check_obs(env, obs)
    rng = np.random.default_rng(seed)
    since_end = np.zeros(B, dtype=np.int64)          # (B,) steps since the last episode end
    score = np.zeros(B, dtype=np.float64)            # (B,) rewards since then
    seen = Stream([obs], np.zeros((steps, B), np.float32), np.zeros((steps, B), bool), [])
    for t in range(steps):
        step = env.step(rng.integers(0, env.num_actions, size=B))
        assert isinstance(step, StepResult)
        _check_obs(env, step.obs)
        assert step.reward.dtype == np.float32 and step.reward.shape == (B,), env.spec
        assert step.reset.dtype == np.bool_ and step.reset.shape == (B,), env.spec
        assert np.all(np.isfinite(step.reward)), env.spec
        since_end += 1
        score += step.reward
        ended = [ep.env for ep in step.episodes]
        assert len(set(ended)) == len(ended), f"{env.spec}: two episodes of one env in a step"
        for ep in step.episodes:
            assert isinstance(ep, EpisodeStats) and 0 <= ep.env < B
            assert step.reset[ep.env], f"{env.spec}: episode of env {ep.env} ended without reset"
            assert ep.length == since_end[ep.env], (env.spec, t, ep, since_end[ep.env])
            np.testing.assert_allclose(ep.score, score[ep.env], rtol=1e-6, atol=1e-6,
                                       err_msg=f"{env.spec} step {t} env {ep.env}")
            since_end[ep.env] = 0
            score[ep.env] = 0.0
            seen.episodes.append((t, ep))
        if whole_episodes_are_resets:
            assert sorted(ended) == list(np.flatnonzero(step.reset)), (env.spec, t)
        seen.obs.append(step.obs)
        seen.rewards[t], seen.resets[t] = step.reward, step.reset
        if t == 0:
            first = step, step.obs.copy(), step.reward.copy(), step.reset.copy()
    if steps:   # results are the caller's: later steps must not write into them
        step, obs_0, reward_0, reset_0 = first
        np.testing.assert_array_equal(step.obs, obs_0, err_msg=f"{env.spec}: obs reused")
        np.testing.assert_array_equal(step.reward, reward_0, err_msg=f"{env.spec}: reward")
        np.testing.assert_array_equal(step.reset, reset_0, err_msg=f"{env.spec}: reset reused")
    return seen


def _check_obs(env: BatchedEnv, obs: np.ndarray) -> None:
    assert isinstance(obs, np.ndarray), env.spec
    assert obs.shape == (env.num_envs, *env.observation_shape), (env.spec, obs.shape)
    assert obs.dtype == env.observation_dtype, (env.spec, obs.dtype)


def check_bad_actions(env: BatchedEnv) -> None:
    """Wrong shape, dtype or range raise ValueError naming `actions`, expected and actual."""
    B, A = env.num_envs, env.num_actions
    with pytest.raises(ValueError, match=r"actions: expected shape"):
        env.step(np.zeros(B + 1, dtype=np.int64))
    with pytest.raises(ValueError, match=r"actions: expected an integer array.*float"):
        env.step(np.zeros(B, dtype=np.float32))
    with pytest.raises(ValueError, match=rf"actions: expected values in \[0, {A - 1}\]"):
        env.step(np.full(B, A, dtype=np.int64))
    with pytest.raises(ValueError, match=r"actions: expected values"):
        env.step(np.full(B, -1, dtype=np.int64))


def same_stream(make_env: Callable[[], BatchedEnv], steps: int,
                **run_options: bool) -> tuple[Stream, Stream]:
    """Run two envs made the same way with the same actions; return both streams."""
    runs = []
    for _ in range(2):
        with make_env() as env:
            runs.append(check_contract(env, steps, seed=1, **run_options))
    return runs[0], runs[1]


def assert_same_stream(a: Stream, b: Stream, what: str) -> None:
    for t, (oa, ob) in enumerate(zip(a.obs, b.obs, strict=True)):
        np.testing.assert_array_equal(oa, ob, err_msg=f"{what}: obs at step {t}")
    np.testing.assert_array_equal(a.rewards, b.rewards, err_msg=f"{what}: rewards")
    np.testing.assert_array_equal(a.resets, b.resets, err_msg=f"{what}: resets")
    assert a.episodes == b.episodes, f"{what}: episodes"


@pytest.fixture
def contract() -> SimpleNamespace:
    """The contract helpers: run, bad_actions, same_stream, assert_same_stream."""
    return SimpleNamespace(run=check_contract, bad_actions=check_bad_actions,
                           same_stream=same_stream, assert_same_stream=assert_same_stream)
