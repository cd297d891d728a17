"""`procgen:<game>`: the real engine (procgen-gym, CPython >= 3.13)."""

import numpy as np
import pytest

pytest.importorskip("procgen_gym")

import envs
from envs.procgen import GAMES, MODES


def test_chaser_follows_the_contract(contract):
    with envs.make("procgen:chaser?distribution_mode=easy", num_envs=4, seed=0) as env:
        assert (env.num_actions, env.observation_shape) == (15, (3, 64, 64))
        stream = contract.run(env, steps=250)
        contract.bad_actions(env)
    assert stream.episodes, "random chaser players die within 250 steps"


def test_engine_returns_the_new_level_on_the_ending_step():
    """procgen-gym declares NEXT_STEP, but on the step flagged terminated the engine already
    shows the next level (its level seed changes on that very step). This is why the adapter
    treats it as SAME_STEP; as NEXT_STEP it would insert a dummy step and lose a real one."""
    from gymnasium.vector import AutoresetMode
    from procgen_gym import ProcgenVecEnv

    vec = ProcgenVecEnv(num_envs=4, env_name="chaser", distribution_mode="easy", rand_seed=0,
                        num_threads=0)
    try:
        assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
        _, info = vec.reset()
        level = info["level_seed"].copy()
        rng = np.random.default_rng(0)
        ended = 0
        for _ in range(400):
            _, _, terminated, _, info = vec.step(rng.integers(0, 15, 4).astype(np.int32))
            np.testing.assert_array_equal(info["level_seed"] != level, terminated)
            np.testing.assert_array_equal(info["prev_level_seed"][terminated], level[terminated])
            ended += terminated.sum()
            level = info["level_seed"].copy()
        assert ended > 0
    finally:
        vec.close()


def test_same_seed_same_levels_other_seed_other_levels(contract):
    make = lambda seed: envs.make("procgen:maze?distribution_mode=easy",  # noqa: E731
                                  num_envs=2, seed=seed)
    a, b = contract.same_stream(lambda: make(11), 80)
    contract.assert_same_stream(a, b, "procgen:maze seed 11")
    with make(12) as env:
        first, _ = env.reset()
    assert not np.array_equal(first, a.obs[0])


def test_memory_mode_and_level_set(contract):
    with envs.make("procgen:heist?distribution_mode=memory&num_levels=3&start_level=5",
                   num_envs=2, seed=0) as env:
        contract.run(env, steps=30)


@pytest.mark.parametrize("mode", ["extreme", "memory", "exploration"])
def test_unsupported_game_mode_pairs_raise_instead_of_killing_the_process(mode):
    game = next(g for g in GAMES if g not in MODES[mode])
    with pytest.raises(ValueError, match=rf"distribution_mode '{mode}' exists only for"):
        envs.make(f"procgen:{game}?distribution_mode={mode}")


def test_unknown_game_and_bad_options():
    with pytest.raises(ValueError, match=r"unknown ProcGen game 'pacman'; known games"):
        envs.make("procgen:pacman")
    with pytest.raises(ValueError, match=r"option 'num_levels' expects a value >= 0"):
        envs.make("procgen:chaser?num_levels=-2")
