"""`atari:<Game>`: real ALE games through ale-py's native vector env."""

import numpy as np
import pytest

pytest.importorskip("ale_py")

import envs
from envs.atari import rom_id


def game_resets(stream, env_index):
    """Number of resets inside each finished game of one env."""
    resets = stream.resets[:, env_index]
    ends = [t for t, ep in stream.episodes if ep.env == env_index]
    starts = [-1] + ends[:-1]
    return [int(resets[s + 1:e + 1].sum()) for s, e in zip(starts, ends)]


def test_breakout_paper_protocol_life_loss_episodes_whole_game_scores(contract):
    with envs.make("atari:Breakout", num_envs=2, seed=0) as env:
        assert env.num_actions == 4 and env.observation_shape == (4, 84, 84)
        assert env.observation_dtype == np.uint8
        assert env.settings["sticky"] == 0.0 and env.settings["noop_max"] == 30
        stream = contract.run(env, steps=500, whole_episodes_are_resets=False)
        contract.bad_actions(env)
    for b in range(2):
        per_game = game_resets(stream, b)
        assert per_game, f"env {b}: no finished game"
        assert set(per_game) == {5}, f"env {b}: 5 lives, so 5 resets per game: {per_game}"


def test_machado_protocol_has_sticky_actions_and_whole_game_episodes(contract):
    with envs.make("atari:Breakout?protocol=machado", num_envs=1, seed=0) as env:
        assert env.settings["sticky"] == 0.25 and not env.settings["episodic_life"]
        stream = contract.run(env, steps=400)          # every reset is a whole game here
    assert stream.episodes
    with envs.make("atari:Breakout", num_envs=1, episodic_life=False) as env:
        assert env.settings["sticky"] == 0.0 and not env.settings["episodic_life"]


def test_rewards_are_raw_game_scores(contract):
    with envs.make("atari:MsPacman", num_envs=2, seed=0) as env:
        assert env.num_actions == 9
        stream = contract.run(env, steps=100, whole_episodes_are_resets=False)
    assert stream.rewards.max() >= 10, "MsPacman pellets score 10: rewards must not be clipped"


def test_rgb_frames_are_channels_first():
    with envs.make("atari:Pong?grayscale=false&frame_stack=2&size=64", num_envs=1) as env:
        obs, _ = env.reset()
        assert obs.shape == (1, 6, 64, 64) == (1, *env.observation_shape)
        for _ in range(3):
            obs = env.step(np.zeros(1, np.int64)).obs
        newest = obs[0, 3:]                                  # (3, 64, 64) RGB of last frame
        assert newest.any() and not np.array_equal(newest[0], newest[1]), "channels differ"


@pytest.mark.parametrize("threads", [1, 2])
def test_same_seed_same_games(contract, threads):
    make = lambda seed: envs.make("atari:Breakout", num_envs=2, seed=seed,  # noqa: E731
                                  threads=threads)
    a, b = contract.same_stream(lambda: make(3), 60, whole_episodes_are_resets=False)
    contract.assert_same_stream(a, b, f"Breakout seed 3, {threads} threads")
    assert not np.array_equal(a.obs[0][0], a.obs[0][1]) or not np.array_equal(a.obs[20][0],
                                                                              a.obs[20][1])


def test_game_names_and_bad_options():
    assert [rom_id(n) for n in ("MsPacman", "ms_pacman", "Qbert", "SpaceInvaders")] == \
        ["ms_pacman", "ms_pacman", "qbert", "space_invaders"]
    with pytest.raises(ValueError, match=r"unknown Atari game 'Brekout'.*close matches: "
                                         r"\['breakout'"):
        envs.make("atari:Brekout")
    with pytest.raises(ValueError, match=r"option 'sticky' expects a value <= 1.0, got '2'"):
        envs.make("atari:Breakout?sticky=2")
    with pytest.raises(ValueError, match=r"option 'protocol' expects one of"):
        envs.make("atari:Breakout", protocol="nature")


def test_python_backend_is_the_paper_chain(contract):
    with envs.make("atari:Breakout?backend=python", num_envs=1, seed=0) as env:
        assert (env.num_actions, env.observation_shape) == (4, (4, 84, 84))
        stream = contract.run(env, steps=400, whole_episodes_are_resets=False)
        contract.bad_actions(env)
    assert set(game_resets(stream, 0)) == {5}
    a, b = contract.same_stream(lambda: envs.make("atari:Breakout?backend=python", num_envs=2,
                                                  seed=4), 40, whole_episodes_are_resets=False)
    contract.assert_same_stream(a, b, "python backend seed 4")


@pytest.mark.parametrize("backend, games_end", [("python", True), ("native", False)])
def test_fire_after_a_lost_life_only_in_the_python_chain(backend, games_end):
    """A NOOP-only Breakout player: the chain serves the ball after every lost life, so games
    end; the native engine serves only at a new game, so the first lost life is the last."""
    with envs.make(f"atari:Breakout?backend={backend}", num_envs=1, seed=0) as env:
        env.reset()
        steps = [env.step(np.zeros(1, np.int64)) for _ in range(400)]
    resets = sum(int(s.reset[0]) for s in steps)
    games = sum(len(s.episodes) for s in steps)
    assert (games > 0) == games_end, (backend, resets, games)
    assert resets >= 1
