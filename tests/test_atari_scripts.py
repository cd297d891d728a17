"""The Breakout diagnosis scripts (scripts/) run and can fail."""

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("ale_py")
pytest.importorskip("cv2")

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load(name):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_serve_check_sees_every_serve_under_the_paper_chain_and_misses_them_without_fire():
    check = load("breakout_serve_check").serve_check
    with_fire = check(steps=150, num_envs=2, seed=0)
    assert with_fire["lives_lost"] > 0
    assert with_fire["episodes_starting_with_ball_in_play"] == with_fire["episodes"]
    assert with_fire["agent_steps_without_ball"] == 0
    without = check(steps=150, num_envs=2, seed=0, spec="atari:Breakout?fire_reset=false")
    assert without["episodes_starting_with_ball_in_play"] < without["episodes"]
    assert without["ball_in_play_fraction"] < 1.0


def test_feature_check_reads_a_run_and_its_initialisation(tmp_path):
    from rtrl_ref.r2ac.config import make_config
    from rtrl_ref.r2ac.loop import train

    run = train(make_config(["--env", "atari:Breakout", "--num-envs", "2", "--unroll", "3", "--hidden", "4",
                             "--features", "8", "--total-frames", "12", "--run-dir", str(tmp_path),
                             "--no-progress", "--backend", "numpy"])).run_dir
    check = load("atari_feature_check").feature_check
    trained, fresh = check(run), check(run, fresh=True)
    assert trained["frames_trained"] == 12 and fresh["frames_trained"] == 0
    for values in (trained, fresh):
        assert 0 <= values["z_saturated"] <= 1 and 0 <= values["fc_dead_units"] <= 1
    assert trained["fc_mean"] != fresh["fc_mean"]                    # the checkpoint was read
