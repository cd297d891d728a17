"""User errors of every CLI: one line on stderr, exit status 2, the flag named, nothing created."""

import subprocess
import sys
from pathlib import Path

import pytest

from rtrl_ref.r2ac.config import make_config
from rtrl_ref.r2ac.evaluate import main as evaluate_main
from rtrl_ref.r2ac.loop import train
from rtrl_ref.r2ac.plot import main as plot_main
from rtrl_ref.r2ac.train import main as train_main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num-envs", "2", "--unroll", "2", "--hidden", "4", "--features", "4", "--total-frames", "8",
        "--log-every", "1", "--no-progress", "--backend", "numpy"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("args, expected", [
    (["--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["--stem", "impala", "--env", "gym:CartPole-v1"], "--stem impala: needs image observations"),
    (["--stem", "identity", "--env", "atari:Breakout", "--num-envs", "1"], "--stem identity: needs vector"),
    (["--env", "nosuch:Game"], "--env nosuch:Game: spec: unknown family 'nosuch'"),
    (["--env", "memory:cue?delya=3"], "--env memory:cue?delya=3: unknown option(s) ['delya']"),
    (["--env", "memory:copy?max_len=2"], "python -m rtrl_ref.copy_task"),
    (["--checkpoint-minutes", "-1"], "--checkpoint-minutes: expected a number >= 0"),
    (["--unroll", "0"], "--unroll: expected a positive integer, got 0"),
    (["--lr", "abc"], "argument --lr: invalid float value: 'abc'"),
    (["--learner", "bptt"], "argument --learner: invalid choice: 'bptt'"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--eval-every", "-2"], "--eval-every, --eval-episodes: expected integers"),
])
def test_train_errors_are_one_line_rc2_and_create_nothing(tmp_path, capsys, args, expected):
    if "atari:Breakout" in args:
        pytest.importorskip("ale_py")
    runs = tmp_path / "runs"
    try:
        rc = train_main(TINY + ["--run-dir", str(runs), *args])
    except SystemExit as exit:                       # argparse's own errors
        rc = exit.code
    assert rc == 2
    err = one_line_error(capsys)
    assert err.startswith("python -m rtrl_ref.train: error: ") and expected in err, err
    assert not runs.exists()


def test_run_dir_errors_name_the_flag_and_create_nothing(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert train_main(TINY + ["--run-dir", str(blocker)]) == 2
    assert f"--run-dir {blocker}: expected a folder" in one_line_error(capsys)
    (tmp_path / "taken").mkdir()
    assert train_main(TINY + ["--run-dir", str(tmp_path), "--run-name", "taken"]) == 2
    assert "--run-name taken:" in one_line_error(capsys) and not list((tmp_path / "taken").iterdir())
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o500)
    try:
        if not __import__("os").access(locked, __import__("os").W_OK):     # root can write anywhere
            assert train_main(TINY + ["--run-dir", str(locked / "sub")]) == 2
            assert "is not writable" in one_line_error(capsys)
    finally:
        locked.chmod(0o700)
    assert train_main(TINY + ["--resume", str(tmp_path / "missing")]) == 2
    assert "--resume:" in one_line_error(capsys)


def test_a_real_process_reports_one_line_and_rc2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rtrl_ref.train", *TINY, "--run-dir", str(tmp_path / "runs"),
                           "--stem", "impala", "--env", "gym:CartPole-v1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--stem impala" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "runs").exists()


def test_evaluate_errors(tmp_path, capsys):
    run = train(make_config(TINY + ["--env", "memory:cue?delay=2", "--run-dir", str(tmp_path),
                                    "--run-name", "r"])).run_dir
    capsys.readouterr()
    assert evaluate_main([str(run), "--num-envs", "0"]) == 2
    assert "--num-envs 0: expected an integer >= 1" in one_line_error(capsys)
    assert evaluate_main([str(run), "--episodes", "0"]) == 2
    assert "--episodes 0" in one_line_error(capsys)
    assert evaluate_main([str(tmp_path / "missing")]) == 2
    assert "not a run folder" in one_line_error(capsys)
    with pytest.raises(SystemExit) as exit:
        evaluate_main([str(run), "--bogus"])
    assert exit.value.code == 2 and "unrecognized arguments" in one_line_error(capsys)


def test_plot_errors_name_the_file(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "log.csv").write_text("")
    assert plot_main([str(empty), "--out", str(tmp_path / "c.png")]) == 2
    assert f"{empty / 'log.csv'}: " in one_line_error(capsys)
    header_only = tmp_path / "header"
    header_only.mkdir()
    (header_only / "log.csv").write_text("frames,mean_return\n")
    assert plot_main([str(header_only), "--out", str(tmp_path / "c.png")]) == 2
    assert "empty log" in one_line_error(capsys)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "log.csv").write_text("frames,mean_return\n12,abc\n")
    assert plot_main([str(garbage), "--out", str(tmp_path / "c.png")]) == 2
    assert "line 2" in one_line_error(capsys) and not (tmp_path / "c.png").exists()
    assert plot_main([str(tmp_path / "nothing")]) == 2
    assert "no log.csv" in one_line_error(capsys)


def test_copy_task_errors(tmp_path, capsys):
    from rtrl_ref.r2ac.copy_online import main as copy_main

    for args, expected in ((["--max-len", "0"], "--max-len 0: expected an integer >= 1"),
                           (["--batch", "0"], "--batch 0: expected an integer >= 1"),
                           (["--log", str(tmp_path / "f" / "x.csv"), "--max-len", "-1"], "--max-len -1")):
        with pytest.raises(SystemExit) as exit:
            copy_main(args)
        assert exit.value.code == 2 and expected in one_line_error(capsys)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SystemExit):
        copy_main(["--log", str(blocker / "x.csv")])
    assert f"--log {blocker / 'x.csv'}: cannot write it" in one_line_error(capsys)


def test_confirm_refuses_a_previous_result_unless_overwrite_and_shows_progress(tmp_path, capsys, monkeypatch):
    import rtrl_ref.r2ac.confirm as confirm

    out = tmp_path / "out"
    (out / "runs" / "rtrl-s0").mkdir(parents=True)
    assert confirm.main(["memory-span", "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert f"--out {out}: holds a previous result" in err and "--overwrite" in err
    assert (out / "runs" / "rtrl-s0").exists()
    tiny = dict(confirm.EXPERIMENTS["memory-span"], env="memory:cue?delay=1",
                flags=["--unroll", "2", "--num-envs", "2", "--hidden", "4", "--total-frames", "8",
                       "--backend", "numpy"])
    monkeypatch.setitem(confirm.EXPERIMENTS, "memory-span", tiny)
    assert confirm.main(["memory-span", "--out", str(out), "--overwrite", "--seeds", "1", "--episodes", "2"]) == 0
    err = capsys.readouterr().err
    assert "[3/3] trained" in err and "[3/3] evaluating" in err
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["feedforward-s0", "rtrl-s0", "tbptt-s0"]
    assert (out / "results.md").exists()
