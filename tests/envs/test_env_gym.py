"""`gym:<id>`: the contract on CartPole, the POMDP mask, seeding and bad specs."""

import numpy as np
import pytest

pytest.importorskip("gymnasium")

import envs


def test_cartpole_follows_the_contract(contract):
    with envs.make("gym:CartPole-v1", num_envs=4, seed=0) as env:
        assert (env.num_actions, env.observation_shape) == (2, (4,))
        stream = contract.run(env, steps=300)
        contract.bad_actions(env)
    assert len(stream.episodes) > 10


def test_hide_removes_the_velocities_of_cartpole():
    with envs.make("gym:CartPole-v1", num_envs=3, seed=5) as full, \
            envs.make("gym:CartPole-v1?hide=1,3", num_envs=3, seed=5) as masked:
        assert masked.observation_shape == (2,)
        obs_full, _ = full.reset()
        obs_masked, _ = masked.reset()
        np.testing.assert_array_equal(obs_masked, obs_full[:, [0, 2]])
        for t in range(40):
            actions = np.array([t % 2, 1, 0])
            np.testing.assert_array_equal(masked.step(actions).obs,
                                          full.step(actions).obs[:, [0, 2]], err_msg=f"{t}")


@pytest.mark.parametrize("mode", ["next_step", "disabled"])
def test_every_autoreset_mode_of_a_real_env_gives_the_same_stream(contract, mode):
    same, other = (contract.same_stream(lambda m=m: envs.make(f"gym:CartPole-v1?autoreset={m}",
                                                              num_envs=3, seed=2), 120)[0]
                   for m in ("same_step", mode))
    contract.assert_same_stream(same, other, f"CartPole same_step vs {mode}")


def test_same_seed_same_stream_and_other_seed_other_stream(contract):
    a, b = contract.same_stream(lambda: envs.make("gym:CartPole-v1", num_envs=2, seed=7), 100)
    contract.assert_same_stream(a, b, "CartPole seed 7")
    with envs.make("gym:CartPole-v1", num_envs=2, seed=8) as env:
        other = contract.run(env, 100, seed=1)
    assert not np.array_equal(a.obs[0], other.obs[0])


@pytest.mark.parametrize("spec, message", [
    ("gym:NoSuchEnv-v0", r"unknown gymnasium environment id 'NoSuchEnv-v0'"),
    ("gym:Pendulum-v1", r"needs a Discrete action space"),
    ("gym:CartPole-v1?hide=4", r"option 'hide' expects distinct indices in \[0, 3\]"),
    ("gym:CartPole-v1?hide=0,1,2,3", r"option 'hide' expects distinct indices"),
    ("gym:CartPole-v1?autoreset=sometimes", r"option 'autoreset' expects one of"),
])
def test_bad_gym_specs_raise_value_error(spec, message):
    with pytest.raises(ValueError, match=message):
        envs.make(spec, num_envs=2)
