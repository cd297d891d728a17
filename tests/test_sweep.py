"""The memory-span sweep (`python -m rtrl_ref.confirm memory-span-sweep`): a tiny smoke run of the
real command, and its summary logic on hand-made rows."""

import json

import pytest

from rtrl_ref.r2ac import sweep
from rtrl_ref.r2ac.confirm import main as confirm_main


def test_smoke_run_writes_results_table_and_plot(tmp_path):
    out = tmp_path / "sweep"
    rc = confirm_main(["memory-span-sweep", "--delays", "1,3", "--learners", "rtrl,feedforward",
                       "--seeds", "1", "--episodes-per-run", "40", "--eval-episodes", "8",
                       "--parallel", "1", "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "results.json").read_text())
    runs = data["runs"]
    assert {(r["delay"], r["learner"]) for r in runs} == {(1, "rtrl"), (1, "feedforward"),
                                                         (3, "rtrl"), (3, "feedforward")}
    for r in runs:
        assert r["frames"] >= sweep.frames_for(r["delay"], 40), r
        assert 0.0 <= r["eval_mean"] <= 1.0, r
    assert set(data["summary"]["means"]) == {"rtrl", "feedforward"}
    assert (out / "span.png").stat().st_size > 10_000
    text = (out / "results.md").read_text()
    assert "memory-span-sweep --delays 1,3" in text and "| rtrl |" in text
    assert all((out / "runs" / f"d{d}-{lr}-s0" / "log.csv").exists() for d in (1, 3) for lr in ("rtrl", "feedforward"))


def test_an_existing_result_is_kept_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "sweep"
    (out / "runs" / "d8-rtrl-s0").mkdir(parents=True)
    argv = ["--delays", "1", "--learners", "feedforward", "--seeds", "1", "--episodes-per-run", "10",
            "--eval-episodes", "2", "--parallel", "1", "--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        sweep.main(argv)
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "runs" / "d8-rtrl-s0").exists()
    assert sweep.main(argv + ["--overwrite"]) == 0
    assert not (out / "runs" / "d8-rtrl-s0").exists() and (out / "runs" / "d1-feedforward-s0").exists()


def test_budget_is_episodes_times_episode_length():
    assert sweep.frames_for(8, 1000) == 10_000
    assert sweep.frames_for(128, 1000) == 130_000


def test_summary_longest_learned_delay():
    rows = [dict(learner="rtrl", delay=d, eval_mean=m) for d, m in ((8, 1.0), (8, 0.96), (16, 0.95), (32, 0.7))]
    rows += [dict(learner="tbptt", delay=d, eval_mean=0.5) for d in (8, 16, 32)]
    s = sweep.summarise(rows, (8, 16, 32), ("rtrl", "tbptt"))
    assert s["means"]["rtrl"][8] == pytest.approx(0.98)
    assert s["longest_learned"] == {"rtrl": 16, "tbptt": None}


@pytest.mark.parametrize("argv, flag", [(["--seeds", "0"], "--seeds"), (["--learners", "rtrl,lstm"], "--learners"),
                                        (["--delays", "8,x"], "--delays")])
def test_bad_options_are_one_line_errors(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        sweep.main(argv)
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err


def test_train_flags_reach_every_run(tmp_path):
    out = tmp_path / "sweep"
    assert sweep.main(["--delays", "1,2", "--learners", "rtrl", "--seeds", "1", "--episodes-per-run", "20",
                       "--eval-episodes", "4", "--parallel", "1", "--out", str(out),
                       "--train-flags", "--forget-init constant --forget-bias 1"]) == 0
    for d in (1, 2):
        config = json.loads((out / "runs" / f"d{d}-rtrl-s0" / "config.json").read_text())["config"]
        assert (config["forget_init"], config["forget_bias"]) == ("constant", 1.0)
    assert "plus `--forget-init constant --forget-bias 1` on every run" in (out / "results.md").read_text()
    assert json.loads((out / "results.json").read_text())["train_flags"] == "--forget-init constant --forget-bias 1"
