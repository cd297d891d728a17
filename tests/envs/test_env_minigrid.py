"""`minigrid:<name>`: the contract on the memory tasks, the one-hot encoding, seeding, bad specs."""

import importlib.util

import numpy as np
import pytest

pytest.importorskip("minigrid")

import envs
from envs.minigrid import one_hot_symbolic


@pytest.mark.parametrize("spec, num_actions", [("minigrid:MemoryS7", 7),
                                               ("minigrid:MemoryS7?actions=3", 3),
                                               ("minigrid:DoorKey-5x5", 7)])
def test_minigrid_follows_the_contract(contract, spec, num_actions):
    with envs.make(spec, num_envs=3, seed=0) as env:
        assert (env.observation_shape, env.num_actions) == ((7 * 7 * 20 + 4,), num_actions)
        stream = contract.run(env, steps=260)
        contract.bad_actions(env)
    assert stream.episodes, "no episode ended in 260 steps (MemoryS7 truncates at 245)"
    for obs in stream.obs:   # every cell one-hot in object, colour and state; one direction
        cells = obs[:, :980].reshape(3, 49, 20)                         # (B, V*V, 20)
        assert set(np.unique(obs)) <= {0.0, 1.0}
        np.testing.assert_array_equal(cells[..., :11].sum(-1), 1.0)
        np.testing.assert_array_equal(cells[..., 11:17].sum(-1), 1.0)
        np.testing.assert_array_equal(cells[..., 17:].sum(-1), 1.0)
        np.testing.assert_array_equal(obs[:, 980:].sum(-1), 1.0)
    for _, ep in stream.episodes:   # MiniGrid's reward: 1 - 0.9 * steps / max_steps, or 0
        if "Memory" in spec:
            assert ep.length <= 245
            expected = 1.0 - 0.9 * ep.length / 245
            assert ep.score == 0.0 or ep.score == pytest.approx(expected, rel=1e-5), ep


def test_one_hot_symbolic_layout():
    image = np.zeros((7, 7, 3), dtype=np.uint8)                          # (V, V, 3)
    image[0, 0] = (5, 2, 0)        # a blue key in cell (x 0, y 0)
    image[6, 6] = (4, 4, 2)        # a locked yellow door in the last cell
    x = one_hot_symbolic(image, direction=3)                             # (984,)
    assert x.dtype == np.float32 and x.shape == (984,)
    assert np.flatnonzero(x[:20]).tolist() == [5, 11 + 2, 17 + 0]
    assert np.flatnonzero(x[48 * 20:49 * 20]).tolist() == [4, 11 + 4, 17 + 2]
    assert np.flatnonzero(x[980:]).tolist() == [3]
    assert x.sum() == 49 * 3 + 1


def test_a_scripted_memory_policy_solves_memory_s7():
    """Walk down the hallway, turn to the matching object and step next to it: success.

    The route is read from the env's state (the test's oracle, not the agent's input). It pins
    the reward alignment (the success reward, 1 - 0.9 * steps / 245, arrives on the reset step)
    and the cell layout of the encoding: facing the matching object, two cells ahead of the
    agent (view cell x 3, y 4, flat index 3 * 7 + 4) is that object, green, and the cell
    between (the success cell) is empty."""
    scores, expected = [], []
    with envs.make("minigrid:MemoryS7?actions=3", num_envs=1, seed=0) as env:
        obs, _ = env.reset()
        for _ in range(4):
            grid = env._vec.envs[0].unwrapped                # MiniGrid's MemoryEnv
            (x, y), (goal_x, goal_y) = grid.agent_pos, grid.success_pos
            wanted = grid.grid.get(1, y - 1).type            # the start room's object
            actions = [2] * (goal_x - x) + [0 if goal_y < y else 1]   # forward..., turn
            for action in actions:
                obs = env.step(np.array([action])).obs
            cells = obs[0, :980].reshape(49, 20)                            # (V*V, 20)
            assert np.flatnonzero(cells[3 * 7 + 4]).tolist() == [_OBJECT[wanted], 11 + 1, 17]
            assert np.flatnonzero(cells[3 * 7 + 5]).tolist() == [1, 11 + 0, 17]   # empty
            step = env.step(np.array([2]))                   # step next to it
            assert step.reset[0] and len(step.episodes) == 1
            scores.append(step.episodes[0].score)
            expected.append(1.0 - 0.9 * (len(actions) + 1) / 245)
            obs = step.obs
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


_OBJECT = {"key": 5, "ball": 6}


def test_minigrid_seeding(contract):
    a, b = contract.same_stream(lambda: envs.make("minigrid:MemoryS7", num_envs=2, seed=4), 80)
    contract.assert_same_stream(a, b, "minigrid:MemoryS7 seed 4")
    with envs.make("minigrid:MemoryS7", num_envs=2, seed=5) as env:
        other = contract.run(env, 80, seed=1)
    assert not all(np.array_equal(x, y) for x, y in zip(a.obs, other.obs, strict=True))


@pytest.mark.parametrize("spec, message", [
    ("minigrid:MemoryS5", r"^minigrid:MemoryS5: unknown MiniGrid environment 'MemoryS5'; "
                          r"known: \['MemoryS7', 'MemoryS9', 'MemoryS11'[^\n]*\]$"),
    ("minigrid:MiniGrid-Nope-v0", r"unknown MiniGrid environment 'MiniGrid-Nope-v0'"),
    ("minigrid:MemoryS7?actions=5", r"option 'actions' expects one of \[3, 7\], got 5"),
    ("minigrid:MemoryS7?actions=8", r"option 'actions' expects a value <= 7"),
])
def test_bad_minigrid_specs_raise_one_line_value_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        envs.make(spec, num_envs=2)


def test_missing_minigrid_says_how_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "minigrid" else real_find_spec(name, *a))
    with pytest.raises(envs.MissingFamilyError, match=r"minigrid.*Install with:.*"
                                                      r"rtrl_ref\[minigrid\]"):
        envs.make("minigrid:MemoryS7")
