"""The POPGym table (`python -m rtrl_ref.confirm popgym-table`): every task it runs can be created and
stepped, and its chance return follows from the reward definition; a tiny smoke run of the real command
(files, table structure, resuming) and its one-line errors."""

import json

import numpy as np
import pytest

pytest.importorskip("popgym")

import envs
from rtrl_ref.r2ac import confirm
from rtrl_ref.r2ac.confirm import TABLE_TASKS, chance_return, main, task_info
from rtrl_ref.r2ac.evidence import memory_times, run_evidence

REQUIRED = {"RepeatPreviousEasy", "RepeatFirstEasy", "CountRecallEasy", "AutoencodeEasy", "HigherLowerEasy",
            "PositionOnlyCartPoleEasy", "VelocityOnlyCartPoleEasy", "NoisyPositionOnlyCartPoleEasy"}


def test_the_table_runs_the_issues_eight_tasks():
    assert REQUIRED <= set(TABLE_TASKS)


@pytest.mark.parametrize("task", TABLE_TASKS)
def test_table_task_steps_and_random_play_scores_its_chance(task):
    """Random actions for 600 steps in 4 environments: episodes end, scores lie in [-1, 1], and where the
    chance return has a closed form, random play's mean score is near it."""
    info, _ = task_info(task)
    rng = np.random.default_rng(0)
    scores = []
    with envs.make(f"popgym:{task}", num_envs=4, seed=0) as env:
        obs, _ = env.reset()
        assert obs.shape == (4, *env.observation_shape) and np.isfinite(obs).all()
        for _ in range(600):
            step = env.step(rng.integers(env.num_actions, size=4))
            assert np.isfinite(step.obs).all()
            scores += [ep.score for ep in step.episodes]
        chance = chance_return(info, env.num_actions)
    assert len(scores) >= 4, task
    assert all(-1 - 1e-6 <= s <= 1 + 1e-6 for s in scores), task
    if chance is not None:
        assert abs(np.mean(scores) - chance) < 0.15, (task, np.mean(scores), chance)
    else:                                          # CartPole: +1/200 per step survived
        assert 0 < np.mean(scores) < 0.5, (task, np.mean(scores))


def test_chance_from_the_reward_definitions():
    assert chance_return(task_info("RepeatPreviousEasy")[0], 4) == -0.5
    assert chance_return(task_info("CountRecallEasy")[0], 27) == pytest.approx(2 / 27 - 1)
    assert chance_return(task_info("HigherLowerEasy")[0], 2) == 0.0
    assert chance_return(task_info("PositionOnlyCartPoleEasy")[0], 2) is None


SMOKE = ["popgym-table", "--tasks", "RepeatPreviousEasy,PositionOnlyCartPoleEasy", "--seeds", "1",
         "--frames", "320", "--eval-episodes", "4", "--parallel", "2"]


def test_smoke_run_writes_the_table_and_is_resumable(tmp_path, capsys):
    out = tmp_path / "table"
    assert main(SMOKE + ["--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert set(data["tasks"]) == {"RepeatPreviousEasy", "PositionOnlyCartPoleEasy"}
    assert data["frames"] == 320 and data["settings"]["unroll"] == 2 and data["settings"]["forget_init"] == "chrono"
    rp = data["tasks"]["RepeatPreviousEasy"]
    assert (rp["chance"], rp["optimal"], rp["span"], rp["paper"]) == (-0.5, 1.0, 5, None)
    assert set(rp["means"]) == {"rtrl", "tbptt", "feedforward"} and all(len(v) == 1 for v in rp["seeds"].values())
    assert isinstance(rp["rtrl_ge_tbptt"], bool) and isinstance(rp["rtrl_gt_feedforward"], bool)
    assert len(data["runs"]) == 6 and all(r["frames"] >= 320 for r in data["runs"])
    config = json.loads((out / "runs" / "RepeatPreviousEasy-rtrl-s0" / "config.json").read_text())["config"]
    assert (config["stem"], config["rms_eps"], config["chrono_t_max"]) == ("identity", 1e-5, 100.0)
    text = (out / "results.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| task | memory span"))
    assert "rtrl >= tbptt" in header and "rtrl > feedforward" in header and "POPGym paper" in header
    lines = text.splitlines()
    table = lines[lines.index(header) + 2:lines.index("", lines.index(header))]
    starts = ("| RepeatPreviousEasy | 5 |", "| PositionOnlyCartPoleEasy | 2 |")
    rows = [line for line in table if line.startswith(starts)]
    assert len(rows) == 2 and all(row.count("|") == header.count("|") for row in rows)
    assert "not found" in rows[0] and "popgym-table --tasks" in text
    assert (out / "table.png").stat().st_size > 10_000 and (out / "curves.png").stat().st_size > 10_000
    evidence = rp["rtrl_evidence"]
    run = out / "runs" / "RepeatPreviousEasy-rtrl-s0"
    assert evidence == run_evidence(run, 5) and evidence["grad_norm_core"] > 0
    assert evidence["return_end"] is None               # 20 steps per environment: no episode of 52 ended
    row = next(line for line in lines if line.startswith("| RepeatPreviousEasy | 5 | - | - |"))
    assert f"| {evidence['tau_median']:.1f} / {evidence['tau_max']:.0f} |" in row
    capsys.readouterr()

    # a second call trains nothing and writes the same table
    checkpoint = out / "runs" / "RepeatPreviousEasy-rtrl-s0" / "checkpoint.npz"
    mtime = checkpoint.stat().st_mtime_ns
    assert main(SMOKE + ["--out", str(out)]) == 0
    assert "6 runs (6 already trained)" in capsys.readouterr().out
    assert checkpoint.stat().st_mtime_ns == mtime
    assert json.loads((out / "results.json").read_text())["runs"] == data["runs"]

    # an interrupted run is continued, a folder without a checkpoint is trained afresh
    run = out / "runs" / "RepeatPreviousEasy-feedforward-s0"
    record = json.loads((run / "config.json").read_text())
    record["config"]["total_frames"] = 640                 # as if stopped at 320 of 640 frames
    (run / "config.json").write_text(json.dumps(record))
    (out / "runs" / "RepeatPreviousEasy-feedforward-s1").mkdir()
    assert main(["popgym-table", "--tasks", "RepeatPreviousEasy", "--learners", "feedforward", "--seeds", "2",
                 "--frames", "640", "--eval-episodes", "4", "--parallel", "2", "--out", str(out)]) == 0
    assert confirm.checkpoint_frames(run) == 640
    assert confirm.checkpoint_frames(out / "runs" / "RepeatPreviousEasy-feedforward-s1") == 640
    assert json.loads((run / "eval.json").read_text())["key"]["frames"] == 640

    # other settings in the same --out: refused, unless --overwrite
    with pytest.raises(SystemExit) as exc:
        main(SMOKE + ["--out", str(out), "--train-flags", "--hidden 8"])
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("argv, flag", [
    (["--tasks", "RepeatPreviousEasy,BattleshipEasy"], "--tasks"), (["--seeds", "0"], "--seeds"),
    (["--frames", "0"], "--frames"), (["--learners", "rtrl,lstm"], "--learners"),
    (["--train-flags", "--seed 3"], "--train-flags"), (["--train-flags", "--unroll x"], "--train-flags")])
def test_bad_options_are_one_line_errors(argv, flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["popgym-table", *argv, "--out", str(tmp_path / "t")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "t").exists()


def test_a_finished_run_counts_whatever_preset_named_the_same_values(tmp_path):
    # a run made under another preset name (as the table's first runs were, before the popgym family
    # got its preset) is kept when every value matches; a run whose values differ is refused
    from rtrl_ref.r2ac.config import make_config
    from rtrl_ref.r2ac.train import main as train_main

    job = confirm.TableJob("RepeatPreviousEasy", "feedforward", 0)
    expected = make_config(confirm.table_argv(tmp_path, job, 64, ""))
    assert expected.preset == "cpu-popgym"
    # cpu-memory differs from cpu-popgym only in unroll and total_frames, which the flags set
    assert train_main(confirm.table_argv(tmp_path, job, 64, "") + ["--no-progress", "--preset", "cpu-memory"]) == 0
    run = tmp_path / "runs" / job.name
    assert json.loads((run / "config.json").read_text())["config"]["preset"] == "cpu-memory"
    assert confirm.run_status(run, expected) == "done"
    with pytest.raises(ValueError, match="hidden"):
        confirm.run_status(run, make_config(confirm.table_argv(tmp_path, job, 64, "--hidden 8")))


def test_memory_time_is_the_decay_time_of_the_forget_gate():
    # f = sigmoid(b_f) keeps f^t of what a cell wrote; tau = 1 / (1 - f) = 1 + exp(b_f)
    b_f = np.array([-3.0, 0.0, 2.0, 6.0])
    f = 1 / (1 + np.exp(-b_f))
    assert np.allclose(memory_times(b_f), 1 / (1 - f))
    assert memory_times(np.array([0.0]))[0] == 2.0
