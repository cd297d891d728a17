"""The copy task's truncated-BPTT counterpart (rtrl_ref.r2ac.copy_tbptt).

(a) One unroll that covers the whole sequence has the gradient of the summed loss: it equals the
    sum of the fully online RTRL step gradients taken with frozen parameters (the fused step with
    update=False, accumulate=True), which tests/test_online_fused.py checks against full BPTT.
    Negative twin: cut the same sequence into shorter unrolls and the summed gradient differs (the
    truncation is real), while the loss and the forward pass stay the same.
(b) A batch makes one clipped Adam step per unroll, and the cell is carried across the cuts.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envs.memory import copy_task_batch
from rtrl_ref.kernels.online_numba import OnlineStep
from rtrl_ref.r2ac import copy_online as co
from rtrl_ref.r2ac.copy_tbptt import tbptt_batch, tbptt_unroll
from rtrl_ref.r2ac.optim import adam_init
from rtrl_ref.r2ac.tree import tree_leaves

PROPERTY = settings(derandomize=True, deadline=None, max_examples=15)


def online_gradient_sum(params, batch):
    """Sum over the steps of the RTRL gradients, parameters frozen: the gradient of the summed loss."""
    T, B, _ = batch.inputs.shape
    step = OnlineStep(params.elstm, params.gate, params.readout.W, params.readout.b, B, lr=0.0, max_norm=1.0,
                      update=False, accumulate=True)
    loss = sum(step.step(batch.inputs[t].astype(np.float64), np.ones(B, bool) if t == 0 else None,
                         batch.targets[t]) for t in range(T))
    return loss, co.CopyParams(step.grads_elstm, step.grads_gate,
                               co.LinearParams(step.grads_W_y, step.grads_b_y))


def unrolled_gradient_sum(params, batch, window):
    """Sum of the per-unroll gradients with frozen parameters, the cell carried across cuts."""
    T, B, _ = batch.inputs.shape
    c = np.zeros((B, params.elstm.W_z.shape[0]))
    total, grads = 0.0, None
    for start in range(0, T, window):
        x = batch.inputs[start:start + window].astype(np.float64)
        loss, g, c, _ = tbptt_unroll(params, c, x, batch.targets[start:start + window])
        total += loss
        grads = g if grads is None else co.CopyParams(*[type(a)(*[u + v for u, v in zip(a, b)])
                                                        for a, b in zip(grads, g)])
    return total, grads


def drawn_problem(B, H, max_len, seed):
    """float64 parameters, a batch, and the summed online gradient (loss, grads) on it."""
    rng = np.random.default_rng(seed)
    params = co.init_copy(rng, H, np.float64)
    batch = copy_task_batch(rng, B, max_len)
    return params, batch, online_gradient_sum(params, batch)


def max_rel_error(a, b) -> float:
    return max(float(np.abs(x - y).max() / (np.abs(y).max() + 1e-12))
               for (_, x), (_, y) in zip(tree_leaves(a), tree_leaves(b)))


@PROPERTY
@given(B=st.integers(1, 9), H=st.integers(1, 9), max_len=st.integers(1, 5), seed=st.integers(0, 2**31 - 1))
def test_one_unroll_over_the_sequence_is_the_summed_online_gradient(B, H, max_len, seed):
    params, batch, (loss_rtrl, g_rtrl) = drawn_problem(B, H, max_len, seed)
    T = 2 * max_len
    for window in (T, T + 3):                                       # one unroll, however long the window
        loss, g = unrolled_gradient_sum(params, batch, window)
        assert loss == pytest.approx(loss_rtrl, rel=1e-12)
        assert max_rel_error(g, g_rtrl) < 1e-10


@PROPERTY
@given(B=st.integers(1, 9), H=st.integers(2, 9), max_len=st.integers(2, 5), seed=st.integers(0, 2**31 - 1))
def test_shorter_unrolls_truncate_the_gradient_but_not_the_forward_pass(B, H, max_len, seed):
    """The negative twin of the test above: the same loss, another gradient."""
    params, batch, (loss_rtrl, g_rtrl) = drawn_problem(B, H, max_len, seed)
    loss, g = unrolled_gradient_sum(params, batch, 1)
    assert loss == pytest.approx(loss_rtrl, rel=1e-12)
    assert max_rel_error(g.elstm, g_rtrl.elstm) > 1e-6
    # the readout sees h_t only: its gradient does not depend on the cut
    assert max_rel_error(g.readout, g_rtrl.readout) < 1e-10


def test_a_batch_takes_one_adam_step_per_unroll():
    rng = np.random.default_rng(0)
    params = co.init_copy(rng, 5, np.float64)
    batch = copy_task_batch(rng, 3, 5)                              # T = 10
    for window, steps in ((4, 3), (5, 2), (10, 1), (64, 1)):
        _, opt, predictions, loss = tbptt_batch(params, adam_init(params), batch, 1e-3, 1.0, window)
        assert int(opt.step) == steps, window
        assert predictions.shape == (10, 3) and loss > 0
    # one unroll: its predictions are the forward pass of the parameters it starts from
    _, _, predictions, _ = tbptt_batch(params, adam_init(params), batch, 1e-3, 1.0, 10)
    np.testing.assert_array_equal(predictions, co.evaluate(params, batch))


def test_the_command_trains_tbptt_in_a_named_folder_and_refuses_fused(tmp_path, capsys):
    args = ["--max-len", "2", "--hidden", "6", "--batch", "4", "--eval-size", "20", "--no-progress",
            "--run-dir", str(tmp_path), "--learner", "tbptt", "--window", "3", "--max-sequences", "40"]
    assert co.main(args) == 0
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("copy-L2-H6-tbptt3-s0-")
    assert "truncated BPTT, unrolls of 3 steps" in capsys.readouterr().out
    assert co.read_copy_config(run).learner == "tbptt"
    assert co.main(["--resume", str(run), "--max-sequences", "80", "--no-progress"]) == 0
    with pytest.raises(SystemExit):
        co.main(args[:-2] + ["--fused", "--run-name", "x"])
    assert "--fused: the fused step is RTRL's, got --learner tbptt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        co.main(args[:-2] + ["--window", "0", "--run-name", "y"])
    assert "--window 0: expected an integer >= 1" in capsys.readouterr().err
