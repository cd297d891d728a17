"""`dmlab:<level>`: the adapter's own logic against `FakeLab` (no real DMLab runs here)."""

import importlib.util

import numpy as np
import pytest

import envs
from envs.dmlab import ACTION_SET, DMLAB30, level_path
from envs.dmlab_fake import FakeLab


def fake_env(num_envs=2, seed=0, frames=10, processes=False, **options):
    return envs.make("dmlab:rooms_watermaze", num_envs=num_envs, seed=seed, lab_factory=FakeLab,
                     processes=processes, config={"fakeEpisodeFrames": str(frames)}, **options)


def test_missing_deepmind_lab_says_exactly_how_to_install_it(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None
                        if name == "deepmind_lab" else real_find_spec(name, *a))
    with pytest.raises(envs.MissingFamilyError) as err:
        envs.make("dmlab:rooms_watermaze")
    message = str(err.value)
    for words in ("no wheel", "git clone https://github.com/google-deepmind/lab",
                  "bazel build -c opt", "//python/pip_package:build_pip_package",
                  "pip install /tmp/dmlab_pkg/deepmind_lab-", "dmlab-gym build",
                  "docs/envs.md"):
        assert words in message, words


def test_layout_action_mapping_repeat_and_reward_sum(contract):
    with fake_env(num_envs=len(ACTION_SET), frames=1000) as env:
        assert (env.num_actions, env.observation_shape) == (9, (3, 72, 96))
        obs, _ = env.reset()
        actions = np.arange(9)
        step = env.step(actions)
        # red: frames played; blue row 0: the action vector sent to the Lab; blue row 1: columns
        np.testing.assert_array_equal(step.obs[:, 0, 0, 0], 4, err_msg="action repeat 4")
        np.testing.assert_array_equal(step.obs[:, 2, 0, :7].astype(int) - 128, ACTION_SET)
        np.testing.assert_array_equal(step.obs[0, 2, 1, :], np.arange(96), err_msg="(C, H, W)")
        forward, fire = ACTION_SET[:, 3], ACTION_SET[:, 4]
        np.testing.assert_array_equal(step.reward, 4 * (forward + 10 * fire))
        contract.bad_actions(env)


def test_episode_end_is_a_same_step_reset_with_the_summed_last_reward(contract):
    # 10 frames per episode, 4 per step: steps end after 4, 8 and 10 (cut short) frames
    with fake_env(frames=10) as env:
        env.reset()
        forward = np.zeros(2, np.int64)
        steps = [env.step(forward) for _ in range(4)]
        np.testing.assert_array_equal([s.reset[0] for s in steps], [0, 0, 1, 0])
        np.testing.assert_array_equal([s.reward[0] for s in steps], [4, 4, 2, 4])
        np.testing.assert_array_equal([s.obs[0, 0, 0, 0] for s in steps], [4, 8, 0, 4])
        assert steps[2].episodes == (envs.EpisodeStats(0, 10.0, 3),
                                     envs.EpisodeStats(1, 10.0, 3))
    with fake_env(num_envs=3, frames=9) as env:
        contract.run(env, steps=40)


def test_episode_seeds_are_reproducible_and_differ_across_envs_and_episodes(contract):
    a, b = contract.same_stream(lambda: fake_env(num_envs=3, seed=5), 20)
    contract.assert_same_stream(a, b, "dmlab fake seed 5")
    seeds = np.array([o[:, 1, 0, 0] for o in a.obs])        # (T, B) green = episode seed
    assert len(set(seeds[0])) == 3, "each env draws its own episode seeds"
    assert not np.array_equal(seeds[0], seeds[-1]), "a new seed for each episode"
    with fake_env(num_envs=3, seed=6) as env:
        obs, _ = env.reset()
    assert not np.array_equal(obs[:, 1, 0, 0], seeds[0])


def test_worker_processes_give_the_same_stream_as_in_process(contract):
    with fake_env(num_envs=2, seed=1, processes=True) as env:
        assert env._pool.start_method == "spawn"
        in_workers = contract.run(env, steps=15, seed=2)
    with fake_env(num_envs=2, seed=1) as env:
        in_process = contract.run(env, steps=15, seed=2)
    contract.assert_same_stream(in_workers, in_process, "processes vs in-process")


def test_level_names_and_bad_options():
    assert len(DMLAB30) == 32        # 30 tasks; two with separate train/test levels
    assert level_path("rooms_watermaze") == "contributed/dmlab30/rooms_watermaze"
    assert level_path("demos/extra_entities") == "demos/extra_entities"
    with pytest.raises(ValueError, match=r"unknown DMLab level 'watermaze'; expected a DMLab-30"):
        envs.make("dmlab:watermaze", lab_factory=FakeLab)
    with pytest.raises(ValueError, match=r"option 'config' expects a dict of str to str"):
        envs.make("dmlab:rooms_watermaze", lab_factory=FakeLab, config={"width": 96})
    with pytest.raises(ValueError, match=r"option 'lab_factory' expects a callable"):
        envs.make("dmlab:rooms_watermaze", lab_factory="deepmind_lab.Lab")
    with pytest.raises(ValueError, match=r"option 'start_method' expects one of"):
        envs.make("dmlab:rooms_watermaze", lab_factory=FakeLab, start_method="fork")
