"""Smoke and fault tests of the training CLI (tiny budgets; no learning is asserted here)."""

import hashlib
import os
import re
import signal

import numpy as np
import pytest

from rtrl_ref.r2ac.config import FAMILY_DEFAULTS, Config, build_parser, make_config, read_config, read_run_record
from rtrl_ref.r2ac.loop import TrainingStopped, train
from rtrl_ref.r2ac.runs import read_log
from rtrl_ref.r2ac.train import main as train_main

TINY = ["--num-envs", "4", "--unroll", "3", "--hidden", "6", "--features", "8",
        "--total-frames", "48", "--log-every", "1", "--no-progress", "--backend", "numpy"]


def tiny(tmp_path, *extra, **overrides):
    return make_config(TINY + ["--run-dir", str(tmp_path)] + list(extra), **overrides)


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("learner", ["rtrl", "tbptt", "feedforward"])
def test_each_learner_runs_on_a_vector_env(tmp_path, learner):
    summary = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--learner", learner))
    assert summary.frames == 48 and summary.updates == 4
    run = summary.run_dir
    for name in ("config.json", "log.csv", "checkpoint.npz", "curve.png"):
        assert (run / name).exists(), name
    assert len(read_log(run)["frames"]) == 4


@pytest.mark.parametrize("stem_grad", ["immediate", "frozen"])
def test_stem_gradient_modes_run(tmp_path, stem_grad):
    summary = train(tiny(tmp_path, "--env", "gym:CartPole-v1", "--stem-grad", stem_grad))
    assert summary.updates == 4


def test_pixel_env_with_nature_stem(tmp_path):
    pytest.importorskip("ale_py")
    config = tiny(tmp_path, "--env", "atari:Breakout", "--stem", "nature", "--num-envs", "2",
                  "--total-frames", "12", "--features", "16", "--stem-init", "he")
    summary = train(config)
    assert summary.frames == 12
    assert read_config(summary.run_dir).stem_init == "he"


def test_resume_continues_counters(tmp_path):
    first = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r"))
    resumed = train(make_config(["--resume", str(first.run_dir), "--total-frames", "96", "--no-progress"]))
    assert resumed.run_dir == first.run_dir
    assert resumed.frames == 96 and resumed.updates == 8
    assert read_log(first.run_dir)["updates"][-1] == 8


def test_corrupt_checkpoint_is_refused(tmp_path):
    first = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r"))
    ckpt = first.run_dir / "checkpoint.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    with pytest.raises(ValueError, match="checkpoint"):
        train(make_config(["--resume", str(first.run_dir), "--total-frames", "96", "--no-progress"]))


def test_mismatched_checkpoint_is_refused(tmp_path):
    first = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r"))
    other = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "s", "--hidden", "5"))
    (first.run_dir / "checkpoint.npz").write_bytes((other.run_dir / "checkpoint.npz").read_bytes())
    with pytest.raises(ValueError, match=r"does not match the checkpoint \(hidden: config.json 6, checkpoint 5\)"):
        train(make_config(["--resume", str(first.run_dir), "--total-frames", "96", "--no-progress"]))


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import rtrl_ref.r2ac.loop as loop

    first = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r"))
    before = digest(first.run_dir / "checkpoint.npz")
    real = loop.actor_critic_loss

    def poisoned(*args, **kw):
        parts, grads = real(*args, **kw)
        return parts._replace(total=float("nan")), grads

    monkeypatch.setattr(loop, "actor_critic_loss", poisoned)
    with pytest.raises(TrainingStopped, match="non-finite loss") as stop:
        train(make_config(["--resume", str(first.run_dir), "--total-frames", "96", "--no-progress"]))
    assert stop.value.exit_code == 3
    assert digest(first.run_dir / "checkpoint.npz") == before


def test_interrupt_saves_and_exits_cleanly(tmp_path, monkeypatch):
    import rtrl_ref.r2ac.loop as loop

    real = loop.learner_step

    def interrupting(*args, **kw):
        out = real(*args, **kw)
        os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(loop, "learner_step", interrupting)
    with pytest.raises(TrainingStopped, match="interrupted") as stop:
        train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r", "--total-frames", "480"))
    assert stop.value.exit_code == 130
    run = tmp_path / "r"
    assert (run / "checkpoint.npz").exists()
    monkeypatch.undo()
    resumed = train(make_config(["--resume", str(run), "--no-progress"]))
    assert resumed.frames == 480


def test_evaluate_and_plot_commands(tmp_path):
    from rtrl_ref.r2ac.evaluate import main as evaluate_main
    from rtrl_ref.r2ac.plot import main as plot_main

    run = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r")).run_dir
    assert evaluate_main([str(run), "--episodes", "5", "--num-envs", "2"]) == 0
    out = tmp_path / "c.png"
    assert plot_main([str(run), str(run), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert evaluate_main([str(tmp_path / "missing")]) == 2


def test_evaluate_random_policy_needs_no_checkpoint_and_scores_chance(tmp_path):
    from rtrl_ref.r2ac.evaluate import evaluate_run

    run = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r")).run_dir
    (run / "checkpoint.npz").unlink()
    ev = evaluate_run(run, episodes=400, num_envs=4, random_policy=True)
    # the cue task pays 1 for the right one of 2 answers, 0 otherwise: chance is 0.5, and the
    # std of a 400-episode mean of Bernoulli(0.5) is 0.025
    assert ev.episodes == 400 and abs(ev.mean - 0.5) < 0.1
    with pytest.raises(ValueError, match="checkpoint"):
        evaluate_run(run, episodes=2, num_envs=2)


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for field in Config.__dataclass_fields__:
        assert "--" + field.replace("_", "-") in text, field
    flat = " ".join(text.split())
    for family, preset in FAMILY_DEFAULTS.items():
        assert f"{family} -> {preset}" in flat, family


def test_bad_options_give_clear_errors():
    with pytest.raises(ValueError, match="unroll: expected a positive integer, got 0"):
        make_config(["--unroll", "0"])
    with pytest.raises(ValueError, match="preset: expected one of"):
        make_config(["--preset", "paper-nes"])
    with pytest.raises(SystemExit):
        make_config(["--learner", "bptt"])


def test_presets_give_the_papers_settings():
    c = make_config(["--preset", "paper-atari", "--env", "atari:Breakout"])
    assert (c.num_envs, c.unroll, c.hidden, c.stem, c.lr, c.grad_clip, c.discount) == \
        (32, 50, 256, "impala", 6e-4, 40.0, 0.99)
    assert make_config(["--preset", "paper-dmlab"]).unroll == 100
    assert (c.stem_init, c.rms_eps) == ("pytorch", 0.01)
    cpu = make_config(["--env", "atari:Breakout"])
    assert (cpu.stem_init, cpu.rms_eps) == ("he", 1e-5)
    assert make_config(["--preset", "paper-atari", "--unroll", "20"]).unroll == 20


def test_resume_refuses_changed_model_options(tmp_path):
    first = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r"))
    with pytest.raises(ValueError, match=r"resume: options \['hidden'\] differ"):
        make_config(["--resume", str(first.run_dir), "--hidden", "7"])


def test_copy_task_is_refused_by_train_with_a_pointer_to_its_entry_point(capsys):
    assert train_main(["--env", "memory:copy?max_len=2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "python -m rtrl_ref.copy_task" in err and len(err.splitlines()) == 1
    with pytest.raises(ValueError, match="env: memory:copy"):
        make_config(["--env", "memory:copy?max_len=2"])


def test_the_applied_preset_is_printed_and_stored(tmp_path, capsys):
    assert train_main(TINY + ["--run-dir", str(tmp_path), "--run-name", "r", "--env", "memory:cue?delay=2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("configuration (preset cpu-memory:") and re.search(r"\n  hidden +6\n", out)
    record = read_run_record(tmp_path / "r")
    assert record.config.preset == "cpu-memory" and record.config.hidden == 6
    assert record.preset_applied["name"] == "cpu-memory" and record.preset_applied["values"]["unroll"] == 4
    assert make_config(["--env", "gym:CartPole-v1"]).preset == ""
    assert make_config(["--env", "gym:CartPole-v1", "--preset", "cpu-atari"]).preset == "cpu-atari"


def test_copy_online_logs_and_plots_its_curve(tmp_path):
    from rtrl_ref.r2ac.copy_online import main as copy_main

    log = tmp_path / "copy.csv"
    assert copy_main(["--max-len", "2", "--hidden", "8", "--max-sequences", "640", "--backend", "numpy",
                      "--log", str(log), "--run-dir", str(tmp_path / "runs"), "--no-progress"]) == 0
    (run,) = (tmp_path / "runs").iterdir()                      # --log is a copy of the run folder's log.csv
    assert (run / "log.csv").read_text() == log.read_text()
    rows = np.genfromtxt(log, delimiter=",", names=True)
    assert rows.dtype.names == ("sequences", "seconds", "loss", "symbol_accuracy", "sequence_accuracy",
                                "longest_solved")
    assert np.all(np.diff(np.atleast_1d(rows["sequences"])) > 0)
    assert log.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_identity_stem_feeds_observations_to_the_core(tmp_path):
    summary = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--stem", "identity"))
    assert summary.updates == 4
    with pytest.raises(ValueError, match="--stem identity: needs vector observations"):
        train(tiny(tmp_path, "--env", "atari:Breakout", "--stem", "identity", "--num-envs", "1"))


def test_training_throughput_benchmark_runs(tmp_path, capsys):
    from rtrl_ref.bench.training import main as bench_main

    out = tmp_path / "t.json"
    assert bench_main(["--env", "memory:cue?delay=2", "--frames", "48", "--rounds", "1", "--out", str(out),
                       "--num-envs", "4", "--unroll", "3", "--hidden", "6", "--backend", "numpy"]) == 0
    import json

    result = json.loads(out.read_text())
    assert set(result["median_fps"]) == {"rtrl", "tbptt", "feedforward", "rtrl_rerun_stem", "env_only",
                                         "sgemm_gflops"}
    assert all(v > 0 for v in result["median_fps"].values())
    assert all(0 < f for f in result["fraction_of_limit"].values())
    out = capsys.readouterr().out
    assert "rtrl / tbptt throughput" in out and "fraction of limit" in out and "MFLOP/step" in out


def test_agent_step_flops_by_hand():
    from rtrl_ref.bench.training import agent_step_flops, stem_macs

    # Nature CNN on (4, 84, 84): 32*4*8*8*20*20 + 64*32*4*4*9*9 + 64*64*3*3*7*7 + 3136*256 multiply-adds
    assert stem_macs("nature", (4, 84, 84), 256) == 3_276_800 + 2_654_208 + 1_806_336 + 802_816
    # IMPALA stem on (4, 84, 84): per stage conv at full size + 4 residual convs after the pool
    # (84 -> 42 -> 21 -> 11), then FC 32*11*11 = 3872 -> 256
    assert stem_macs("impala", (4, 84, 84), 256) == 54_222_848
    assert stem_macs("identity", (7,), 7) == 0
    stem_f = 2 * 8_540_160
    core_f = 2 * (2 * 64 * 257 + 64 * (257 + 64))                   # W_z, W_f and the output gate
    heads_f = 2 * 5 * 64                                            # 4 actions + value
    reuse = agent_step_flops("nature", (4, 84, 84), 256, 64, 4, "rtrl")
    assert reuse["total"] == 4 * (stem_f + core_f + heads_f) - stem_f + 12 * 64 * 257
    rerun = agent_step_flops("nature", (4, 84, 84), 256, 64, 4, "rtrl", reuse_stem=False)
    assert rerun["total"] - reuse["total"] == stem_f


def _edit_config(run, **changes):
    import json

    data = json.loads((run / "config.json").read_text())
    data["config"].update(changes)
    (run / "config.json").write_text(json.dumps(data))


@pytest.mark.parametrize("changes, named", [
    (dict(env="memory:cue?delay=3"), "env: config.json 'memory:cue?delay=3', checkpoint 'memory:cue?delay=2'"),
    (dict(learner="tbptt"), "learner: config.json 'tbptt', checkpoint 'rtrl'"),
    (dict(num_envs=2), "num_envs: config.json 2, checkpoint 4"),
])
def test_an_edited_config_json_is_refused_on_resume(tmp_path, changes, named):
    run = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r")).run_dir
    before = digest(run / "log.csv")
    _edit_config(run, **changes)
    with pytest.raises(ValueError, match="refusing to resume") as err:
        train(make_config(["--resume", str(run), "--total-frames", "96", "--no-progress"]))
    assert named in str(err.value)
    assert digest(run / "log.csv") == before


def test_resume_of_a_finished_run_says_already_complete(tmp_path, capsys):
    run = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r")).run_dir
    before = (digest(run / "log.csv"), digest(run / "checkpoint.npz"))
    capsys.readouterr()
    assert train_main(["--resume", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "already complete: 48 frames, 4 updates" in out and "nan" not in out
    assert (digest(run / "log.csv"), digest(run / "checkpoint.npz")) == before


def test_the_budget_is_met_exactly_by_shortening_the_last_update(tmp_path, capsys):
    summary = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--unroll", "100000", "--total-frames", "1000"))
    assert (summary.frames, summary.updates) == (1000, 1)                  # one update of 250 steps x 4
    assert "a last update shortened to 250 steps -> 1000 frames (exact)" in capsys.readouterr().out
    summary = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--total-frames", "50"))
    assert summary.frames == 52                                            # the next multiple of num_envs = 4
    assert "-> 52 frames (2 over: budgets are met in multiples of num_envs=4)" in capsys.readouterr().out


def test_concurrent_runs_get_distinct_folders_and_print_them(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "rtrl_ref.train", *TINY, "--env", "memory:cue?delay=2", "--run-dir",
           str(tmp_path), "--exp-name", "sweep"]
    procs = [subprocess.Popen(cmd + ["--lr", lr], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for lr in ("1e-3", "2e-3", "3e-3")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in outs]
    folders = sorted(tmp_path.iterdir())
    assert len(folders) == 3 and all(f.name.startswith("sweep-memory_cue_delay2-rtrl-s0-") for f in folders)
    for out, _ in outs:
        assert any(f"run folder: {f}" in out for f in folders)
    assert {read_config(f).exp_name for f in folders} == {"sweep"}


def test_checkpoint_mode_matches_the_rest_of_the_folder(tmp_path):
    run = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r")).run_dir
    mode = (run / "config.json").stat().st_mode & 0o777
    assert (run / "checkpoint.npz").stat().st_mode & 0o777 == mode == (run / "log.csv").stat().st_mode & 0o777


def test_print_config_and_dry_run_create_nothing(tmp_path, capsys):
    runs = tmp_path / "runs"
    assert train_main(TINY + ["--run-dir", str(runs), "--print-config", "--hidden", "7"]) == 0
    assert re.search(r"\n  hidden +7\n", capsys.readouterr().out)
    assert train_main(TINY + ["--run-dir", str(runs), "--dry-run", "--env", "memory:cue?delay=2"]) == 0
    assert "every check passed" in capsys.readouterr().out
    assert train_main(TINY + ["--run-dir", str(runs), "--dry-run", "--env", "gym:CartPole-v1",
                              "--stem", "nature"]) == 2
    assert "--stem nature" in capsys.readouterr().err
    assert not runs.exists()


def test_config_file_options_and_flags_win(tmp_path, capsys):
    file = tmp_path / "run.toml"
    file.write_text('env = "memory:cue?delay=2"\nhidden = 7\nlr = 0.001\nprogress = false\n'
                    'total-frames = 1_000\n')
    assert train_main(["--config", str(file), "--hidden", "5", "--print-config"]) == 0
    out = capsys.readouterr().out
    for name, value in (("hidden", "5"), ("lr", "0.001"), ("total_frames", "1000"), ("progress", "False"),
                        ("env", "memory:cue?delay=2")):
        assert re.search(rf"\n  {name} +{re.escape(value)}\n", out), name
    file.write_text("hiden = 7\n")
    assert train_main(["--config", str(file), "--print-config"]) == 2
    assert "unknown option 'hiden'" in capsys.readouterr().err
    file.write_text('hidden = "seven"\n')
    assert train_main(["--config", str(file), "--print-config"]) == 2
    assert "option 'hidden' expects a int, got 'seven'" in capsys.readouterr().err
    file.write_text("hidden = \n")
    assert train_main(["--config", str(file), "--print-config"]) == 2
    assert "not valid TOML" in capsys.readouterr().err


def test_eval_every_logs_evaluation_returns(tmp_path):
    run = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--eval-every", "2", "--eval-episodes", "4",
                     "--log-every", "100")).run_dir
    log = read_log(run)
    assert log["updates"] == [2, 4]
    assert all(0 <= v <= 1 for v in log["eval_return"])


def _event_tags(folder):
    """Scalar tags and steps of the TensorBoard event files in a folder (TFRecord of Event protos)."""
    import struct

    from tensorboardX.proto import event_pb2

    tags: dict[str, list[int]] = {}
    for file in folder.glob("events.out.tfevents.*"):
        data = file.read_bytes()
        i = 0
        while i < len(data):
            (length,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
            i += 12 + length + 4
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


def test_tensorboard_writes_the_csv_scalars(tmp_path):
    pytest.importorskip("tensorboardX")
    run = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--tensorboard")).run_dir
    tags = _event_tags(run / "tensorboard")
    log = read_log(run)
    for column in ("loss", "pg_loss", "entropy", "grad_norm", "lr", "mean_return", "fps"):
        # NaN (mean_return before the first episode ends) is left out of TensorBoard
        assert tags[column] == [int(f) for f, v in zip(log["frames"], log[column]) if np.isfinite(v)], column
    assert len(tags["loss"]) == len(log["frames"])


def test_evaluate_records_videos(tmp_path, capsys):
    pytest.importorskip("imageio")
    from rtrl_ref.r2ac.evaluate import main as evaluate_main

    run = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r")).run_dir
    videos = tmp_path / "videos"
    assert evaluate_main([str(run), "--episodes", "4", "--num-envs", "2", "--record", str(videos),
                          "--max-videos", "2", "--no-progress"]) == 0
    files = sorted(videos.glob("*.gif"))
    assert [f.name for f in files] == ["episode-000.gif", "episode-001.gif"]
    assert all(f.read_bytes()[:6] in (b"GIF89a", b"GIF87a") for f in files)


def test_help_shows_what_each_preset_sets_and_the_run_control_options(capsys):
    with pytest.raises(SystemExit):
        train_main(["--help"])
    flat = " ".join(capsys.readouterr().out.split())
    assert ("(default: 8; presets: cpu-memory 4, cpu-popgym 2, cpu-atari 20, paper-atari 50, paper-procgen 50, "
            "paper-dmlab 100)") in flat
    for option in ("--config FILE.toml", "--print-config", "--dry-run", "--exp-name", "--tensorboard",
                   "--eval-every"):
        assert option in flat, option


def test_evaluate_shows_progress(tmp_path, capsys):
    from rtrl_ref.r2ac.evaluate import main as evaluate_main

    run = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r")).run_dir
    capsys.readouterr()
    assert evaluate_main([str(run), "--episodes", "4", "--num-envs", "2"]) == 0
    assert "evaluating" in capsys.readouterr().err


def test_video_frames_of_pixel_and_vector_observations():
    from rtrl_ref.r2ac.evaluate import observation_frame

    stack = np.arange(4 * 84 * 84, dtype=np.int64).reshape(4, 84, 84).astype(np.uint8)   # (C, Y, X)
    frame = observation_frame(stack)
    assert frame.shape == (84, 84) and frame.dtype == np.uint8 and np.array_equal(frame, stack[-1])
    v = observation_frame(np.array([-1.0, 0.0, 1.0], np.float32))
    assert v.shape == (16, 48) and v.dtype == np.uint8 and (v[0, 0], v[0, 47]) == (0, 255)


def test_a_second_signal_stops_at_once_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    import rtrl_ref.r2ac.loop as loop

    real = loop.learner_step
    calls = []

    def twice_interrupted(*args, **kw):
        out = real(*args, **kw)
        calls.append(1)
        if len(calls) == 2:                           # after the first-update checkpoint
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(loop, "learner_step", twice_interrupted)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingStopped, match="SIGTERM received a second time") as stop:
        train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--run-name", "r", "--total-frames", "480"))
    assert stop.value.exit_code == 128 + signal.SIGTERM
    from rtrl_ref.r2ac.checkpoint import read_checkpoint

    assert read_checkpoint(tmp_path / "r" / "checkpoint.npz")[1]["meta"]["counters"]["updates"] == 1
    assert signal.getsignal(signal.SIGTERM) is before                          # handlers restored


def test_explained_variance_by_hand():
    from rtrl_ref.r2ac.loop import explained_variance

    targets = np.array([1.0, 2.0, 3.0, 4.0])                       # Var = 1.25
    assert explained_variance(targets, targets) == 1.0
    assert explained_variance(targets, np.full(4, 2.5)) == 0.0      # the mean explains nothing
    # residuals [0.5, 0.5, -0.5, -0.5]: Var 0.25, so 1 - 0.25 / 1.25 = 0.8
    assert np.isclose(explained_variance(targets, targets - [0.5, 0.5, -0.5, -0.5]), 0.8)
    assert np.isnan(explained_variance(np.ones(4), np.zeros(4)))


def test_log_rows_carry_the_learner_diagnostics(tmp_path):
    summary = train(tiny(tmp_path, "--env", "memory:cue?delay=2", "--grad-clip", "1e-9"))
    log = {k: np.array(v) for k, v in read_log(summary.run_dir).items()}
    parts = np.sqrt(np.square(log["grad_norm_stem"]) + np.square(log["grad_norm_core"])
                    + np.square(log["grad_norm_heads"]))
    np.testing.assert_allclose(parts, log["grad_norm"], rtol=1e-5)   # one update per row: parts make the total
    assert np.all(log["clipped"] == 1.0)                           # every norm exceeds a clip of 1e-9
    for key in ("adv_abs", "pg_logit_grad", "entropy_logit_grad"):
        assert np.all(log[key] > 0), key
    assert np.all(log["explained_variance"] <= 1.0)


def test_log_rows_average_the_learner_metrics_over_their_updates(tmp_path):
    every = np.array(read_log(train(tiny(tmp_path / "a", "--env", "memory:cue?delay=2")).run_dir)["grad_norm"])
    rows = np.array(read_log(train(tiny(tmp_path / "b", "--env", "memory:cue?delay=2", "--log-every", "2")).run_dir)
                    ["grad_norm"])
    np.testing.assert_allclose(rows, (every[0::2] + every[1::2]) / 2,
                               rtol=1e-6)
