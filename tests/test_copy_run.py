"""The copy task's run folder (python -m rtrl_ref.copy_task): config.json, log.csv, curve.png and the
checkpoint; resume (exact continuation, refused changes), interrupts, --evaluate, and --loss-on.

Tiny runs only (pattern length <= 2, H <= 8, a few hundred sequences); no learning is asserted
except on the length-1 task, which a tiny model learns in ~160 sequences.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import signal

import numpy as np
import pytest

from envs.memory import BLANK, copy_task_batch
from rtrl_ref.kernels import get_backend
from rtrl_ref.r2ac import copy_online as co
from rtrl_ref.r2ac import copy_plot as cp
from rtrl_ref.r2ac.checkpoint import load_checkpoint
from rtrl_ref.r2ac.optim import adam_init
from rtrl_ref.r2ac.runs import RunLock
from rtrl_ref.r2ac.tree import tree_leaves
from rtrl_ref.traces import zero_traces

TINY = ["--max-len", "2", "--hidden", "6", "--batch", "4", "--eval-size", "20", "--eval-every", "40", "--no-progress"]


def run_main(tmp_path, name, *extra, backend="numpy"):
    return co.main(TINY + ["--run-dir", str(tmp_path), "--run-name", name, "--backend", backend, *extra])


def rows(run):
    with open(run / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def checkpoint(run, hidden=6):
    return load_checkpoint(run / "checkpoint.npz", co._checkpoint_like(hidden))


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ---------------------------------------------------------------------------------------------
# the folder


def test_run_folder_holds_config_log_curve_and_checkpoint(tmp_path, capsys):
    assert run_main(tmp_path, "r", "--max-sequences", "88") == 0
    run = tmp_path / "r"
    assert sorted(p.name for p in run.iterdir()) == [".lock", "checkpoint.npz", "config.json", "curve.png", "log.csv"]
    data = json.loads((run / "config.json").read_text())
    assert data["kind"] == "copy_task" and data["git_revision"]
    assert set(data["config"]) == {f.name for f in dataclasses.fields(co.CopyConfig)}
    assert data["config"]["hidden"] == 6 and data["config"]["loss_on"] == "all"
    # a row every 40 sequences (40, 80) and one at the end (88)
    logged = rows(run)
    assert list(logged[0]) == list(co.LOG_FIELDS)
    assert [int(r["sequences"]) for r in logged] == [40, 80, 88]
    assert all(0 <= float(r[k]) <= 1 for r in logged for k in ("symbol_accuracy", "sequence_accuracy"))
    assert all(float(r["loss"]) > 0 for r in logged)
    assert (run / "curve.png").read_bytes()[:4] == b"\x89PNG"
    trees, meta = checkpoint(run)
    assert meta["kind"] == "copy_task" and meta["counters"]["sequences"] == 88 and meta["counters"]["batches"] == 22
    assert int(trees["opt"].step) == 22 * 4                    # an Adam step per time step (T = 2 max_len)
    assert meta["rng"]["bit_generator"] == "PCG64" and meta["identity"]["hidden"] == 6
    assert meta["sequence_accuracy"] == float(logged[-1]["sequence_accuracy"])
    out = capsys.readouterr().out
    assert f"run folder: {run}" in out and "88 sequences" in out and f"learning curve: {run / 'curve.png'}" in out


def test_the_run_trains_as_train_copy_does(tmp_path):
    """Same seed and options: the command's run and `train_copy` (no folder) end with the same accuracy."""
    assert run_main(tmp_path, "r", "--max-sequences", "80") == 0
    result = co.train_copy(2, 6, batch=4, max_sequences=80, backend="numpy", progress=False, eval_size=20)
    assert float(rows(tmp_path / "r")[-1]["symbol_accuracy"]) == pytest.approx(result.symbol_accuracy, abs=1e-4)


def test_default_folder_name_and_no_folder_on_bad_options(tmp_path, capsys):
    assert co.main(TINY + ["--run-dir", str(tmp_path / "runs"), "--max-sequences", "8", "--seed", "3",
                           "--backend", "numpy"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("copy-L2-H6-s3-")
    capsys.readouterr()
    for args, expected in ((["--lr", "0"], "--lr 0.0: expected a finite number > 0"),
                           (["--target", "1.5"], "--target 1.5: expected a number in (0, 1]"),
                           (["--run-dir", str(run / "config.json")], "expected a folder, got a file"),
                           (["--run-name", "a/b"], "--run-name a/b: expected a folder name without '/'"),
                           (["--eval-seed", "1"], "--eval-seed 1: only with --evaluate RUN"),
                           (["--eval-every", "0"], "--eval-every 0: expected an integer >= 1")):
        with pytest.raises(SystemExit) as stop:
            co.main(TINY + ["--run-dir", str(tmp_path / "new"), *args])
        assert stop.value.code == 2 and expected in one_line_error(capsys)
    assert not (tmp_path / "new").exists()


def test_evaluations_follow_eval_every_in_sequences_whatever_the_batch(tmp_path):
    """A row after each batch that passes a multiple of --eval-every (batch 12 does not divide 40:
    rows at 48, 84 and 120), one at the end unless the last batch had one, and a resume may change
    the cadence."""
    assert run_main(tmp_path, "r", "--batch", "12", "--max-sequences", "132") == 0
    assert [int(r["sequences"]) for r in rows(tmp_path / "r")] == [48, 84, 120, 132]
    assert run_main(tmp_path, "s", "--batch", "12", "--max-sequences", "120") == 0
    assert [int(r["sequences"]) for r in rows(tmp_path / "s")] == [48, 84, 120]     # no second row at 120
    assert co.main(["--resume", str(tmp_path / "s"), "--max-sequences", "180", "--eval-every", "24",
                    "--no-progress"]) == 0
    assert [int(r["sequences"]) for r in rows(tmp_path / "s")] == [48, 84, 120, 144, 168, 180]
    assert [co.evaluates(b, b + 4, 10) for b in (0, 4, 8, 12, 16)] == [False, False, True, False, True]


# ---------------------------------------------------------------------------------------------
# resume


@pytest.mark.parametrize("backend", ["numpy", "numba"])           # reference step, fused step
def test_resume_continues_counters_exactly(tmp_path, backend, capsys):
    """40 sequences, then --resume to 80: the same parameters, Adam state and log as 80 in one go."""
    assert run_main(tmp_path, "whole", "--max-sequences", "80", backend=backend) == 0
    assert run_main(tmp_path, "split", "--max-sequences", "40", backend=backend) == 0
    split = tmp_path / "split"
    assert co.main(["--resume", str(split), "--max-sequences", "80", "--no-progress"]) == 0
    assert f"run folder: {split} (resumed at 40 sequences" in capsys.readouterr().out
    (whole, meta_w), (parts, meta_s) = checkpoint(tmp_path / "whole"), checkpoint(split)
    assert meta_s["counters"]["sequences"] == 80 and meta_s["counters"]["batches"] == 20
    for (name, a), (_, b) in zip(tree_leaves(whole), tree_leaves(parts)):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert meta_w["rng"] == meta_s["rng"]
    assert [r["sequences"] for r in rows(split)] == ["40", "80"]
    assert [r["symbol_accuracy"] for r in rows(split)] == [r["symbol_accuracy"] for r in rows(tmp_path / "whole")]


def test_resume_refuses_changed_run_options(tmp_path, capsys):
    assert run_main(tmp_path, "r", "--max-sequences", "8") == 0
    run = tmp_path / "r"
    before = digest(run / "checkpoint.npz")
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        co.main(["--resume", str(run), "--hidden", "7", "--loss-on", "recall", "--max-sequences", "16"])
    err = one_line_error(capsys)
    assert stop.value.code == 2
    assert "--hidden 7 (the run has 6)" in err and "--loss-on recall (the run has all)" in err
    assert "--max-sequences" in err.split("only", 1)[1]              # named among the options that may change
    # an edited config.json no longer matches the checkpoint
    data = json.loads((run / "config.json").read_text())
    data["config"]["lr"] = 0.01
    (run / "config.json").write_text(json.dumps(data))
    with pytest.raises(SystemExit):
        co.main(["--resume", str(run), "--max-sequences", "16"])
    err = one_line_error(capsys)
    assert "config.json does not match the checkpoint (lr: config.json 0.01, checkpoint 0.003)" in err
    assert digest(run / "checkpoint.npz") == before
    # a run being written by another process is refused
    data["config"]["lr"] = 0.003
    (run / "config.json").write_text(json.dumps(data))
    with RunLock(run):
        with pytest.raises(SystemExit):
            co.main(["--resume", str(run), "--max-sequences", "16"])
        assert "the run is being written by" in one_line_error(capsys)
    # not a copy-task run folder
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps(dict(config=dict(env="gym:CartPole-v1"))))
    with pytest.raises(SystemExit):
        co.main(["--resume", str(tmp_path / "other")])
    assert "not a copy-task run" in one_line_error(capsys)


def test_resume_of_a_finished_run_does_nothing(tmp_path, capsys):
    assert run_main(tmp_path, "r", "--max-sequences", "8") == 0
    before = digest(tmp_path / "r" / "checkpoint.npz")
    capsys.readouterr()
    assert co.main(["--resume", str(tmp_path / "r")]) == 0
    assert "is already complete: 8 sequences" in capsys.readouterr().out
    assert digest(tmp_path / "r" / "checkpoint.npz") == before


# ---------------------------------------------------------------------------------------------
# interrupts


def test_interrupt_saves_a_checkpoint_and_stops_cleanly(tmp_path, monkeypatch, capsys):
    real = co.CopyModel.train_batch
    calls = []

    def interrupting(self, data):
        out = real(self, data)
        calls.append(1)
        if len(calls) == 12:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(co.CopyModel, "train_batch", interrupting)
    before = signal.getsignal(signal.SIGINT)
    assert run_main(tmp_path, "r", "--max-sequences", "400", "--checkpoint-minutes", "60") == 130
    assert signal.getsignal(signal.SIGINT) is before                      # handlers restored
    err = capsys.readouterr().err
    run = tmp_path / "r"
    assert "interrupted by SIGINT at 48 sequences" in err and f"--resume {run}" in err
    _, meta = checkpoint(run)                                             # written on the signal (not by the clock)
    assert meta["counters"]["sequences"] == 48
    assert (run / "curve.png").read_bytes()[:4] == b"\x89PNG"             # drawn on the interrupt
    assert [r["sequences"] for r in rows(run)] == ["40"]
    monkeypatch.undo()
    assert co.main(["--resume", str(run), "--max-sequences", "80", "--no-progress"]) == 0
    assert [r["sequences"] for r in rows(run)] == ["40", "80"]
    assert checkpoint(run)[1]["counters"]["sequences"] == 80


def test_a_non_finite_gradient_stops_and_keeps_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    assert run_main(tmp_path, "r", "--max-sequences", "8") == 0
    before = digest(tmp_path / "r" / "checkpoint.npz")

    def poisoned(self, data):
        raise ValueError("grads: expected a finite global norm, got nan")

    monkeypatch.setattr(co.CopyModel, "train_batch", poisoned)
    assert co.main(["--resume", str(tmp_path / "r"), "--max-sequences", "16"]) == 3
    assert "non-finite gradient after 8 sequences" in capsys.readouterr().err
    assert digest(tmp_path / "r" / "checkpoint.npz") == before


def test_rows_after_the_checkpoint_are_dropped_on_resume(tmp_path):
    assert run_main(tmp_path, "r", "--max-sequences", "40") == 0
    run = tmp_path / "r"
    with open(run / "log.csv", "a") as fh:                     # rows a killed process logged after its checkpoint
        fh.write("80,1.0,0.5,0.5,0.5,1\n")
    assert co.truncate_copy_log(run / "log.csv", 40) == 1
    assert [r["sequences"] for r in rows(run)] == ["40"]


def test_a_log_without_longest_solved_is_upgraded_on_resume_and_still_plots(tmp_path):
    """A run logged before the longest_solved column: the resume rewrites the header and leaves
    the old rows' value blank; reading and plotting such a log works (NaN there)."""
    assert run_main(tmp_path, "r", "--max-sequences", "40") == 0
    run = tmp_path / "r"
    logged = rows(run)
    assert 0 <= int(logged[-1]["longest_solved"]) <= 2
    old = [",".join(co.OLD_LOG_FIELDS)] + [",".join(r[k] for k in co.OLD_LOG_FIELDS) for r in logged]
    (run / "log.csv").write_text("\n".join(old) + "\n")
    assert np.isnan(cp.read_copy_log(run / "log.csv")["longest_solved"]).all()
    assert co.plot_copy_log(run / "log.csv", tmp_path / "old.png").read_bytes()[:4] == b"\x89PNG"
    assert co.main(["--resume", str(run), "--max-sequences", "80", "--no-progress"]) == 0
    upgraded = rows(run)
    assert list(upgraded[0]) == list(co.LOG_FIELDS)
    assert [r["longest_solved"] for r in upgraded[:-1]] == [""] * (len(upgraded) - 1)
    assert upgraded[-1]["sequences"] == "80" and upgraded[-1]["longest_solved"].isdigit()


# ---------------------------------------------------------------------------------------------
# --evaluate


def test_evaluate_scores_the_checkpoint_on_a_fresh_held_out_set(tmp_path, capsys):
    assert co.main(["--max-len", "1", "--hidden", "8", "--batch", "8", "--lr", "0.01", "--max-sequences", "2000",
                    "--eval-size", "50", "--eval-every", "80", "--backend", "numpy", "--no-progress",
                    "--run-dir", str(tmp_path), "--run-name", "r"]) == 0
    run = tmp_path / "r"
    assert rows(run)[-1]["sequence_accuracy"] == "1.0000"            # the length-1 task is learned
    capsys.readouterr()
    assert co.main(["--evaluate", str(run), "--eval-size", "64", "--eval-seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "fresh held-out set of 64 sequences (eval seed 5): sequence accuracy 1.000" in out
    assert "longest pattern length with every sequence up to it right: 1; sequence accuracy per pattern " \
           "length: 1: 1.000 (" in out
    assert rows(run)[-1]["longest_solved"] == "1"
    result = co.evaluate_run(run)
    assert result["eval_size"] == 50 and result["sequence_accuracy"] == 1.0
    assert result["sequences_trained"] == checkpoint(run, 8)[1]["counters"]["sequences"]
    # its own stream: not the training-time held-out set
    config = co.read_copy_config(run)
    fresh = co.fresh_held_out_set(2, 50, 0)
    assert not np.array_equal(fresh.targets, co.held_out_set(dataclasses.replace(config, max_len=2)).targets)
    # a resume of a run that reached its target does nothing
    assert co.main(["--resume", str(run)]) == 0
    assert "already reached --target 1.0" in capsys.readouterr().out


def test_evaluate_errors(tmp_path, capsys):
    for args, expected in ((["--evaluate", str(tmp_path / "none")], "expected a run folder, got nothing there"),
                           (["--evaluate", str(tmp_path)], "not a run folder (no config.json)"),
                           (["--evaluate", str(tmp_path), "--hidden", "3"], "takes only --eval-size and --eval-seed"),
                           (["--evaluate", str(tmp_path), "--eval-size", "0"], "--eval-size 0: expected an integer")):
        with pytest.raises(SystemExit) as stop:
            co.main(args)
        assert stop.value.code == 2 and expected in one_line_error(capsys)
    assert run_main(tmp_path, "r", "--max-sequences", "4") == 0
    (tmp_path / "r" / "checkpoint.npz").write_bytes(b"not a checkpoint")
    capsys.readouterr()
    with pytest.raises(SystemExit):
        co.main(["--evaluate", str(tmp_path / "r")])
    assert f"--evaluate {tmp_path / 'r'}: checkpoint" in one_line_error(capsys)


# ---------------------------------------------------------------------------------------------
# --loss-on


def test_loss_weights_of_each_setting():
    data = copy_task_batch(np.random.default_rng(0), 16, 4)
    assert co.loss_weights(data, "all") is None
    np.testing.assert_array_equal(co.loss_weights(data, "recall"), data.mask)
    quirk = co.loss_weights(data, "paper-quirk")
    np.testing.assert_array_equal(quirk, data.targets != 1)
    assert quirk[data.targets == BLANK].all() and quirk[data.targets == 0].all() and not quirk[data.targets == 1].any()
    with pytest.raises(ValueError, match="loss_on: expected one of"):
        co.loss_weights(data, "none")


def _by_hand(logits, y, counted):
    """sum over the counted rows of -log softmax(logits)[y], in float64."""
    z = logits.astype(np.float64)
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    return float(((lse - z[np.arange(len(y)), y]) * counted).sum())


def test_recall_loss_is_the_sum_over_the_recall_steps_and_differs_from_all():
    rng = np.random.default_rng(1)
    params = co.init_copy(rng, 8, np.float64)
    data = copy_task_batch(rng, 6, 3)
    backend = get_backend("numpy")
    totals = {}
    by_definition = {"all": np.ones(data.targets.shape, bool), "recall": data.mask,    # (T, B) the counted targets
                     "paper-quirk": data.targets != 1}
    for loss_on in ("all", "recall", "paper-quirk"):
        weights = co.loss_weights(data, loss_on)
        _, _, _, totals[loss_on] = co.online_batch(params, adam_init(params), data, 3e-3, 1.0, backend, weights)
        # the same batch step by step: each step's loss from its logits by hand, over the counted rows only
        p, opt = params, adam_init(params)
        c, traces = np.zeros((6, 8)), zero_traces(6, 8, 3, np.float64)
        by_hand = 0.0
        for t in range(data.inputs.shape[0]):
            counted = by_definition[loss_on][t].astype(float)                 # (B,)
            r = co.online_step(p, opt, c, traces, data.inputs[t].astype(np.float64), data.targets[t], 3e-3, 1.0,
                               backend, weight_t=None if weights is None else weights[t])
            assert r.loss == pytest.approx(_by_hand(r.logits, data.targets[t], counted), rel=1e-12)
            if not counted.any():                                         # nothing counted: no gradient at all
                assert r.norm == 0.0 and r.loss == 0.0
            by_hand += _by_hand(r.logits, data.targets[t], counted)
            p, opt, c, traces = r.params, r.opt, r.c, r.traces
        assert totals[loss_on] == pytest.approx(by_hand, rel=1e-12)
    assert data.mask[0].sum() == 0                                        # t = 0 is never a recall step
    assert len({totals["all"], totals["recall"], totals["paper-quirk"]}) == 3
    assert totals["recall"] < totals["all"]


def test_ce_grad_weights_rows():
    logits = np.array([[1.0, -2.0, 0.5], [0.0, 0.3, -1.0], [2.0, 2.0, 2.0]])
    y = np.array([0, 2, 1])
    loss, g, _ = co.ce_grad(logits, y, np.array([True, False, True]))
    full_loss, full_g, _ = co.ce_grad(logits, y)
    assert loss == pytest.approx(_by_hand(logits, y, np.array([1.0, 0.0, 1.0])), rel=1e-12)
    assert full_loss == pytest.approx(_by_hand(logits, y, np.ones(3)), rel=1e-12)
    np.testing.assert_array_equal(g[1], 0.0)
    np.testing.assert_array_equal(g[[0, 2]], full_g[[0, 2]])


def test_loss_on_option_of_the_command_and_of_train_copy(tmp_path, capsys):
    assert run_main(tmp_path, "r", "--max-sequences", "40", "--loss-on", "recall", backend="numba") == 0
    assert "(new; reference step, loss on recall targets)" in capsys.readouterr().out    # not fused by default
    assert co.read_copy_config(tmp_path / "r").loss_on == "recall"
    with pytest.raises(SystemExit) as stop:
        run_main(tmp_path, "f", "--loss-on", "paper-quirk", "--fused", backend="numba")
    assert stop.value.code == 2
    assert "--fused: needs --loss-on all (the fused kernel trains the target of every step), got --loss-on " \
           "paper-quirk" in one_line_error(capsys)
    assert not (tmp_path / "f").exists()
    kw = dict(max_len=2, hidden=6, batch=4, max_sequences=8, progress=False, eval_size=10, backend="numpy")
    assert co.train_copy(**kw, loss_on="paper-quirk").sequences == 8
    with pytest.raises(ValueError, match="fused: expected False or None with loss_on 'recall'"):
        co.train_copy(**{**kw, "backend": "numba"}, loss_on="recall", fused=True)
    with pytest.raises(SystemExit):
        co.main(["--loss-on", "ignore"])
    assert "argument --loss-on: invalid choice: 'ignore'" in one_line_error(capsys)


# ---------------------------------------------------------------------------------------------
# --lr-end: a linear learning-rate decay over --max-sequences


def test_scheduled_lr_is_linear_from_lr_to_lr_end():
    constant = co.CopyConfig(lr=3e-3, max_sequences=1000)
    assert [co.scheduled_lr(constant, n) for n in (0, 500, 5000)] == [3e-3, 3e-3, 3e-3]
    decay = dataclasses.replace(constant, lr_end=1e-3)
    assert co.scheduled_lr(decay, 0) == 3e-3
    assert co.scheduled_lr(decay, 250) == pytest.approx(2.5e-3, rel=1e-12)
    assert co.scheduled_lr(decay, 1000) == pytest.approx(1e-3, rel=1e-12)
    assert co.scheduled_lr(decay, 4000) == pytest.approx(1e-3, rel=1e-12)      # held after the budget
    with pytest.raises(ValueError, match=r"--lr-end -1: expected a finite number >= 0"):
        co.check_config(dataclasses.replace(constant, lr_end=-1))


def test_fused_and_reference_steps_follow_the_same_schedule():
    """Two batches at different learning rates through set_lr: the fused step and the reference
    step end with the same parameters, and a constant rate ends elsewhere (the twin)."""
    rng = np.random.default_rng(5)
    params = co.init_copy(rng, 6, np.float64)
    data = [copy_task_batch(rng, 4, 3) for _ in range(2)]

    def train(fused, rates):
        model = co.CopyModel(params, adam_init(params), 4, rates[0], 1.0, "numba", fused)
        for lr, batch in zip(rates, data):
            model.set_lr(lr)
            model.train_batch(batch)
        return [a for _, a in tree_leaves(model.params)]

    fused, reference = train(True, (3e-3, 1e-4)), train(False, (3e-3, 1e-4))
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    constant = train(True, (3e-3, 3e-3))
    assert max(float(np.abs(a - b).max()) for a, b in zip(fused, constant)) > 1e-6


def test_the_run_records_lr_end_and_resume_refuses_a_change(tmp_path, capsys):
    assert run_main(tmp_path, "r", "--max-sequences", "8", "--lr-end", "1e-4") == 0
    run = tmp_path / "r"
    assert json.loads((run / "config.json").read_text())["config"]["lr_end"] == 1e-4
    assert checkpoint(run)[1]["identity"]["lr_end"] == 1e-4
    capsys.readouterr()
    with pytest.raises(SystemExit):
        co.main(["--resume", str(run), "--lr-end", "2e-4", "--max-sequences", "16"])
    assert "--lr-end 0.0002 (the run has 0.0001)" in one_line_error(capsys)


def test_the_plot_command_draws_copy_task_runs_and_refuses_a_mix(tmp_path, capsys):
    from rtrl_ref.r2ac import plot

    for name in ("a", "b"):
        assert run_main(tmp_path, name, "--max-sequences", "40") == 0
    capsys.readouterr()
    out = tmp_path / "figs" / "copy.png"
    assert plot.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--label", "A", "--label", "B"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and f"wrote {out}" in capsys.readouterr().out
    other = tmp_path / "train-run"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"env": "memory:cue"}))
    assert plot.main([str(tmp_path / "a"), str(other), "--out", str(tmp_path / "mix.png")]) == 2
    assert "expected only training runs or only copy-task runs, got both" in one_line_error(capsys)
    with pytest.raises(ValueError, match=r"--label: expected one per run \(2\), got 1"):
        cp.plot_copy_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "x.png", labels=["A"])
    (tmp_path / "b" / "log.csv").write_text(",".join(co.LOG_FIELDS) + "\n")
    with pytest.raises(ValueError, match=r"has no row yet"):
        cp.plot_copy_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "x.png")
