"""Fully online RTRL on the copy task: a loss, a gradient and an Adam step after every step.

The paper's copy-task experiment (Irie et al. 2024, Sec. 4.1) in miniature, on the *true* copy task of
envs.memory.copy_task_batch. Per time step t of a batch of B sequences:

    c_t, cache = cell_step(p, x_t, c_tm1)                    eLSTM (reset at t = 0)
    h_t = out_gate(q, x_t, c_t);  logits_t = h_t W_y^T + b_y
    L_t = sum_b w_tb cross_entropy(logits_t[b], y_t[b])      w_tb: which targets count (--loss-on)
    g_c_t = immediate_g_c(...)                               the only backward pass: one step
    traces_t, g_p = trace_step_accumulate(traces, cache, reset_t, g_c_t, 0)   RTRL step form
    Adam step on (p, q, W_y, b_y) with the global-norm clipped gradient

so the eLSTM gradient is exact with respect to the whole past (up to the staleness of traces
computed under earlier parameters, which is inherent to online RTRL). Accuracy counts the recall
steps only, both bit values, whatever --loss-on says; a sequence is correct when every recall step is.

Which targets the loss trains (`--loss-on`, `loss_weights`). The targets are the blank outside the
L recall steps (the input phase and the padding after 2L) and the pattern's bits at the recall steps.

    all          (default; this repository's choice) every step: w_tb = 1. The blank targets outside
                 the recall are trained too, so the model also learns to stay silent.
    recall       only the L recall steps of each sequence: w_tb = mask_tb. This is what the paper's
                 code meant by CrossEntropyLoss(ignore_index=tgt_pad_idx = 2), the blank's symbol.
    paper-quirk  the paper's ignore-index quirk, as its code ran: ignore_index = 2 is an index into
                 the target vocabulary, which its data loader builds in order of first appearance
                 from the first target line ("2 ... 2 0 1 ..." with the generator's seed 42), so
                 index 2 is bit "1": the blanks and bit 0 are trained and the recall steps whose
                 target is bit 1 are skipped, w_tb = [y_tb != 1]. (The paper's own accuracy skipped
                 those steps too; ours does not.) See envs/memory.py and docs/envs.md.

The loss is summed over the rows (never a mean over the counted targets); a step where no target
counts still takes its Adam step (zero gradient, the moments carried on), as after every step.
`recall` and `paper-quirk` run on the reference step (the fused kernel trains every target).

Two implementations of the step: `online_step` (the reference above, one call per piece, on any
backend) and the fused step (`online_batch_fused`: `rtrl_ref.kernels.online_numba.OnlineStep`, the
whole step including the clip and Adam in one Numba call, verified against `online_step` and BPTT
in tests/test_online_fused.py). `train_copy` and the command use the fused step on the numba
backend with --loss-on all unless told `fused=False` / `--no-fused`.

The counterpart, `--learner tbptt --window K` (`rtrl_ref.r2ac.copy_tbptt`): the same model and
sequences, each sequence cut into unrolls of K steps, full BPTT inside an unroll and an Adam step
after each; the cell is carried across the cuts, the gradient is not.

`--lr-end` decays Adam's learning rate linearly from --lr to --lr-end over --max-sequences.

The command, `python -m rtrl_ref.copy_task`, trains in a run folder (RUN = --run-dir/--run-name,
default runs/copy-L{max_len}-H{hidden}-s{seed}-TIME-TAG), as `python -m rtrl_ref.train` does:

    config.json      every option of the run and the git revision
    log.csv          a row per evaluation (after the batch that passes each multiple of --eval-every
                     sequences, and at the end): sequences, seconds
                     (training time, summed over resumes), loss (mean cross-entropy per counted
                     target of the last batch), symbol_accuracy, sequence_accuracy (held-out set),
                     longest_solved (the longest pattern length n such that every held-out sequence
                     of length <= n is right; blank in rows logged before this column existed)
    curve.png        accuracy and longest_solved against minutes and against sequences seen (at the
                     end and on interrupt)
    checkpoint.npz   parameters, Adam state, counters, RNG state (atomic, no pickle), written after
                     the first batch, every --checkpoint-minutes and at the end

SIGINT, SIGTERM and SIGHUP finish the current batch, write the checkpoint and stop (exit status
128 + signal; a second signal stops at once, the last checkpoint kept). `--resume RUN` continues a
run exactly where its checkpoint left it; `--evaluate RUN` scores its checkpoint on a fresh held-out
set. User errors are one line on stderr with exit status 2 and create nothing.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from rtrl_ref.cell import cell_step
from rtrl_ref.kernels import get_backend
from rtrl_ref.out_gate import immediate_g_c, out_gate
from rtrl_ref.params import ELSTMParams, OutGateParams, init_elstm, init_out_gate
from rtrl_ref.r2ac.checkpoint import (
    CHECKPOINT_FILE,
    load_checkpoint,
    read_checkpoint,
    rng_from_state,
    rng_state,
    save_checkpoint,
)
from rtrl_ref.r2ac.cli import ArgumentParser
from rtrl_ref.r2ac.copy_plot import (
    CONFIG_FILE,
    CURVE_FILE,
    KIND,
    LOG_FIELDS,
    LOG_FILE,
    OLD_LOG_FIELDS,
    parse_number,
    plot_copy_log,
)
from rtrl_ref.r2ac.copy_tbptt import tbptt_batch
from rtrl_ref.r2ac.layers import LinearParams, ce_grad, init_linear, linear, linear_backward
from rtrl_ref.r2ac.loop import TrainingStopped, UsageError, report_stopped, stop_requests
from rtrl_ref.r2ac.optim import AdamState, adam_init, adam_update, clip_by_global_norm
from rtrl_ref.r2ac.runs import RunLock, check_new_run, git_revision, new_run_dir, remove_orphans
from rtrl_ref.r2ac.tree import tree_leaves
from rtrl_ref.traces import zero_grads, zero_traces

PROG = "python -m rtrl_ref.copy_task"
LOSS_ON = ("all", "recall", "paper-quirk")
PAPER_IGNORED_TARGET = 1          # the target symbol the paper's ignore_index = 2 hit (its vocabulary's index 2)
HELD_OUT_OFFSET = 10_000          # the training-time held-out set is drawn from seed + 10_000
FRESH_STREAM = 21                 # --evaluate draws from SeedSequence(eval_seed, spawn_key=(21,)): its own stream
LEARNERS = ("rtrl", "tbptt")


class CopyParams(NamedTuple):
    elstm: ELSTMParams
    gate: OutGateParams
    readout: LinearParams     # (3, H) logits over {0, 1, blank}


class CopyResult(NamedTuple):
    max_len: int
    hidden: int
    sequences: int
    seconds: float
    symbol_accuracy: float
    sequence_accuracy: float


def init_copy(rng, H: int, dtype=np.float32) -> CopyParams:
    return CopyParams(init_elstm(rng, 3, H, dtype), init_out_gate(rng, 3, H, dtype), init_linear(rng, H, 3, dtype))


def loss_weights(batch, loss_on: str):
    """Which targets the loss trains (module docstring): None (every one, `all`) or (T, B) bool."""
    if loss_on == "all":
        return None
    if loss_on == "recall":
        return batch.mask
    if loss_on == "paper-quirk":
        return batch.targets != PAPER_IGNORED_TARGET
    raise ValueError(f"loss_on: expected one of {list(LOSS_ON)}, got {loss_on!r}")


class StepResult(NamedTuple):
    """What one online step leaves: the new parameters, optimiser state, cell and traces, and the
    step's loss, logits (B, 3), predictions (B,), gradient (before clipping) and its global norm."""

    params: CopyParams
    opt: object
    c: np.ndarray             # (B, H) c_t
    traces: object            # Traces after step t
    loss: float
    logits: np.ndarray        # (B, 3)
    predictions: np.ndarray   # (B,)
    grads: CopyParams         # dL_t/dtheta, not clipped
    norm: float               # global norm of grads


def online_step(params: CopyParams, opt, c, traces, x_t, y_t, lr: float, clip: float, backend,
                reset_t=None, weight_t=None) -> StepResult:
    """The reference online step, one call per piece: reset (Eq. 10; reset_t (B,) bool or None for
    none), cell, output gate, readout, cross-entropy (rows weighted by weight_t (B,), None: all
    count), immediate g_c, RTRL step, clip, Adam."""
    B, H = c.shape
    dtype = params.elstm.W_z.dtype
    if reset_t is None:
        reset_t = np.zeros(B, bool)                                        # (B,)
    else:
        c = np.where(reset_t[:, None], dtype.type(0), c)                   # (B, H) c_tm1 after the reset
    c, cache = cell_step(params.elstm, x_t, c)
    h_t, gate_cache = out_gate(params.gate, x_t, c)
    logits, lin_cache = linear(params.readout, h_t)
    loss, g_logits, predictions = ce_grad(logits, y_t, weight_t)
    g_h, g_readout = linear_backward(g_logits, lin_cache, params.readout)
    g_c, _, g_gate = immediate_g_c(g_h, gate_cache, params.gate)
    traces, g_elstm = backend.trace_step_accumulate(traces, cache, reset_t, g_c, zero_grads(H, x_t.shape[-1], dtype))
    grads = CopyParams(g_elstm, g_gate, g_readout)
    clipped, norm = clip_by_global_norm(grads, clip)
    params, opt = adam_update(params, clipped, opt, lr)
    return StepResult(params, opt, c, traces, loss, logits, predictions, grads, norm)


def online_batch(params: CopyParams, opt, batch, lr: float, clip: float, backend, weights=None):
    """One batch, one Adam step per time step; weights (T, B): which targets the loss trains (None:
    all, see `loss_weights`). Returns (params, opt, predictions (T, B), loss summed over the batch)."""
    T, B, _ = batch.inputs.shape
    H = params.elstm.W_z.shape[0]
    dtype = params.elstm.W_z.dtype
    c = np.zeros((B, H), dtype)                                            # (B, H)
    traces = zero_traces(B, H, 3, dtype)
    predictions = np.empty((T, B), np.int64)                               # (T, B)
    total = 0.0
    for t in range(T):
        x_t = batch.inputs[t].astype(dtype)                                # (B, 3)
        r = online_step(params, opt, c, traces, x_t, batch.targets[t], lr, clip, backend,
                        weight_t=None if weights is None else weights[t])
        params, opt, c, traces, predictions[t] = r.params, r.opt, r.c, r.traces, r.predictions
        total += r.loss
    return params, opt, predictions, total


def fused_stepper(params: CopyParams, batch: int, lr: float, clip: float):
    """The fused online step (`rtrl_ref.kernels.online_numba.OnlineStep`) for these parameters: it
    copies them in and owns them, its Adam state and every buffer from then on."""
    from rtrl_ref.kernels.online_numba import OnlineStep

    return OnlineStep(params.elstm, params.gate, params.readout.W, params.readout.b, batch, lr=lr, max_norm=clip)


def _as_copy_params(split) -> CopyParams:
    elstm, gate, W_y, b_y = split
    return CopyParams(elstm, gate, LinearParams(W_y, b_y))


def fused_params(stepper) -> CopyParams:
    """The fused stepper's parameters as a CopyParams of views (they follow every step)."""
    return CopyParams(stepper.elstm, stepper.gate, LinearParams(stepper.W_y, stepper.b_y))


def online_batch_fused(stepper, batch):
    """`online_batch` with one compiled call per step (reset of every row at t = 0, which is the
    fresh zero state of `online_batch`). Returns (predictions (T, B), loss)."""
    T, B, _ = batch.inputs.shape
    first = np.ones(B, bool)                                               # (B,) a new sequence
    predictions = np.empty((T, B), np.int64)                               # (T, B)
    total = 0.0
    for t in range(T):
        total += stepper.step(batch.inputs[t], first if t == 0 else None, batch.targets[t])
        predictions[t] = stepper.predictions
    return predictions, total


def evaluate(params: CopyParams, batch):
    """Forward only with frozen parameters: predictions (T, B)."""
    T, B, _ = batch.inputs.shape
    c = np.zeros((B, params.elstm.W_z.shape[0]), params.elstm.W_z.dtype)   # (B, H)
    predictions = np.empty((T, B), np.int64)                               # (T, B)
    for t in range(T):
        x_t = batch.inputs[t].astype(c.dtype)
        c, _ = cell_step(params.elstm, x_t, c)
        h_t, _ = out_gate(params.gate, x_t, c)
        predictions[t] = linear(params.readout, h_t)[0].argmax(-1)
    return predictions


# ============================================================================= options


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class CopyConfig:
    """Every option of a copy-task run (config.json); the flags are the names with '-' for '_'."""

    max_len: int = _f(5, "longest pattern length L (sequences of 2L steps)")
    hidden: int = _f(64, "eLSTM hidden units H")
    batch: int = _f(32, "sequences per batch")
    lr: float = _f(3e-3, "Adam learning rate (at the start, if --lr-end is given)")
    lr_end: float | None = _f(None, "Adam learning rate at --max-sequences, reached linearly from --lr (unset: "
                              "--lr throughout); the schedule follows the --max-sequences in force, so a resume "
                              "that changes it stretches the rest of the decay")
    clip: float = _f(1.0, "global gradient-norm clip per step")
    loss_on: str = _f("all", "which targets the loss trains: all = every step, the blank targets outside the "
                      "recall too (this repository's choice); recall = only the L recall steps (what the "
                      "paper's code meant by ignore_index = the blank); paper-quirk = the paper's ignore-index "
                      "quirk as its code ran (ignore_index 2 is bit '1' in its target vocabulary: blanks and "
                      "bit 0 trained, recall steps of bit 1 skipped). recall and paper-quirk run the reference "
                      "step (not --fused); accuracy always counts both bits at the recall steps",
                      choices=LOSS_ON)
    learner: str = _f("rtrl", "rtrl: exact RTRL, an Adam step after every time step; tbptt: truncated BPTT, each "
                      "sequence cut into unrolls of --window steps, an Adam step after each (the counterpart)",
                      choices=LEARNERS)
    window: int = _f(4, "TBPTT unroll length K in steps (--learner tbptt only)")
    seed: int = _f(0, "seed of the parameters and the training sequences (the held-out set: seed + 10000)")
    eval_size: int = _f(500, "held-out sequences scored every --eval-every training sequences (and by --evaluate, "
                        "unless given)")
    eval_every: int = _f(2000, "training sequences between held-out evaluations (a row of log.csv each): the "
                         "evaluation after the batch that passes each multiple; scoring 500 held-out sequences "
                         "costs about as much as training 80, so evaluating much more often slows the run")
    max_sequences: int = _f(200_000, "training budget in sequences")
    minutes: float = _f(0.0, "wall-time limit of this invocation in minutes (0: none; a resume gets its own)")
    target: float = _f(1.0, "stop when the held-out sequence accuracy reaches this")
    backend: str = _f("numba", "trace kernels of the reference step", choices=("numpy", "numba", "cupy"))
    fused: bool | None = _f(None, "one compiled call per online step (numba backend, --loss-on all); unset: on "
                            "when both hold")
    run_dir: str = _f("runs", "parent folder of run folders")
    run_name: str = _f("", "run folder name (default: copy-L{max_len}-H{hidden}-s{seed}-TIME-TAG, with "
                       "-tbptt{window} after H{hidden} for --learner tbptt)")
    checkpoint_minutes: float = _f(5.0, "minutes between atomic checkpoints (one is also written after the first "
                                   "batch and at the end)")
    progress: bool = _f(True, "show a progress bar")
    log: str = _f("", "also write the learning curve to this CSV file (a copy of the run's log.csv) and draw "
                  "its PNG next to it at the end")


FIELDS = {f.name: f for f in dataclasses.fields(CopyConfig)}
# what a resume may change; every other option is the run's (and refused when it differs)
RESUMABLE = ("max_sequences", "eval_every", "minutes", "target", "backend", "fused", "checkpoint_minutes", "progress",
             "log")
# what the checkpoint's arrays and counters mean: must match config.json on resume
IDENTITY = ("max_len", "hidden", "batch", "lr", "lr_end", "clip", "loss_on", "learner", "window", "seed",
            "eval_size")


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def resolve_fused(config: CopyConfig) -> bool:
    """The fused step unless told otherwise, where it applies (numba backend, --loss-on all)."""
    if config.fused is None:
        return config.backend == "numba" and config.loss_on == "all" and config.learner == "rtrl"
    return config.fused


def scheduled_lr(config: CopyConfig, sequences: int) -> float:
    """The learning rate of the batch that starts after `sequences`: --lr, or with --lr-end the
    linear interpolation from --lr (0 sequences) to --lr-end (--max-sequences and beyond)."""
    if config.lr_end is None:
        return config.lr
    done = min(sequences / config.max_sequences, 1.0)
    return config.lr + (config.lr_end - config.lr) * done


def check_config(config: CopyConfig) -> None:
    """ValueError naming the flag, the expected and the actual value, for the first bad option."""
    for name in ("max_len", "hidden", "batch", "max_sequences", "eval_size", "eval_every", "window"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{flag(name)} {value}: expected an integer >= 1")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ValueError(f"--seed {config.seed}: expected an integer >= 0")
    for name in ("lr", "clip"):
        value = getattr(config, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{flag(name)} {value}: expected a finite number > 0")
    lr_end = config.lr_end
    if lr_end is not None and not (isinstance(lr_end, (int, float)) and not isinstance(lr_end, bool)
                                   and math.isfinite(lr_end) and lr_end >= 0):
        raise ValueError(f"--lr-end {config.lr_end}: expected a finite number >= 0 (or unset)")
    for name in ("minutes", "checkpoint_minutes"):
        value = getattr(config, name)
        if not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(f"{flag(name)} {value}: expected a number >= 0")
    if not (isinstance(config.target, (int, float)) and 0 < config.target <= 1):
        raise ValueError(f"--target {config.target}: expected a number in (0, 1]")
    for name in ("loss_on", "backend", "learner"):
        choices = FIELDS[name].metadata["choices"]
        if getattr(config, name) not in choices:
            raise ValueError(f"{flag(name)} {getattr(config, name)}: expected one of {list(choices)}")
    if config.fused and config.learner != "rtrl":
        raise ValueError(f"--fused: the fused step is RTRL's, got --learner {config.learner}")
    if config.fused and config.backend != "numba":
        raise ValueError(f"--fused: needs --backend numba, got --backend {config.backend}")
    if config.fused and config.loss_on != "all":
        raise ValueError(f"--fused: needs --loss-on all (the fused kernel trains the target of every step), "
                         f"got --loss-on {config.loss_on}")


# ============================================================================= training


class Counters(NamedTuple):
    sequences: int
    batches: int
    seconds: float            # training time, summed over resumes


class CopyModel:
    """The parameters and Adam state of a run, trained one batch at a time by the fused step or
    the reference `online_batch` (with the loss weights of `loss_on`)."""

    def __init__(self, params: CopyParams, opt: AdamState, batch: int, lr: float, clip: float, backend: str,
                 fused: bool, loss_on: str = "all", learner: str = "rtrl", window: int = 4):
        if fused and loss_on != "all":
            raise ValueError(f"fused: expected False or None with loss_on {loss_on!r} (the fused kernel trains "
                             f"the target of every step), got {fused!r}")
        if fused and learner != "rtrl":
            raise ValueError(f"fused: expected False or None with learner {learner!r}, got {fused!r}")
        self.lr, self.clip, self.loss_on, self.learner, self.window = lr, clip, loss_on, learner, window
        self.backend_name = backend
        self.backend = get_backend(backend)
        self.stepper = None
        self._params, self._opt = params, opt
        if fused:
            self.stepper = fused_stepper(params, batch, lr, clip)
            m, v = self.stepper.moments()
            for views, saved in ((m, opt.m), (v, opt.v)):
                for (_, dst), (_, src) in zip(tree_leaves(_as_copy_params(views)), tree_leaves(saved)):
                    dst[...] = src
            self.stepper.adam_step = int(opt.step)

    def set_lr(self, lr: float) -> None:
        """The Adam learning rate of the following steps."""
        self.lr = lr
        if self.stepper is not None:
            self.stepper.lr = lr

    @property
    def params(self) -> CopyParams:
        return fused_params(self.stepper) if self.stepper is not None else self._params

    def adam_state(self) -> AdamState:
        if self.stepper is None:
            return self._opt
        m, v = self.stepper.moments()
        return AdamState(np.array(self.stepper.adam_step, np.int64), _as_copy_params(m), _as_copy_params(v))

    def train_batch(self, data) -> tuple[float, int]:
        """One batch, an Adam step per time step: (loss summed over the counted targets, their number)."""
        weights = loss_weights(data, self.loss_on)
        if self.stepper is not None:
            _, loss = online_batch_fused(self.stepper, data)
        elif self.learner == "tbptt":
            self._params, self._opt, _, loss = tbptt_batch(self._params, self._opt, data, self.lr, self.clip,
                                                           self.window, weights, self.backend_name)
        else:
            self._params, self._opt, _, loss = online_batch(self._params, self._opt, data, self.lr, self.clip,
                                                            self.backend, weights)
        return loss, int(data.targets.size if weights is None else weights.sum())


def held_out_set(config: CopyConfig):
    from envs.memory import copy_task_batch

    return copy_task_batch(np.random.default_rng(config.seed + HELD_OUT_OFFSET), config.eval_size, config.max_len)


def fresh_held_out_set(max_len: int, size: int, eval_seed: int):
    """A held-out set of its own stream (never the training or the training-time held-out stream)."""
    from envs.memory import copy_task_batch

    rng = np.random.default_rng(np.random.SeedSequence(eval_seed, spawn_key=(FRESH_STREAM,)))
    return copy_task_batch(rng, size, max_len)


class CopyLog:
    """Rows of a copy-task log (LOG_FIELDS), flushed one by one. `path` is appended to (a header
    first if it is new or empty; truncate=True starts it afresh); `mirror`, if given, starts as a
    copy of `path` and receives the same rows (the --log file of the command)."""

    def __init__(self, path, mirror=None, truncate: bool = False):
        path = Path(path)
        new = truncate or not path.exists() or path.stat().st_size == 0
        self._handles = [open(path, "w" if truncate else "a", newline="")]
        if new:
            self._handles[0].write(",".join(LOG_FIELDS) + "\n")
            self._handles[0].flush()
        if mirror is not None:
            try:
                shutil.copyfile(path, mirror)
                self._handles.append(open(mirror, "a", newline=""))
            except BaseException:
                self.close()
                raise

    def write(self, counters: Counters, loss: float, acc: tuple[float, float], longest: int) -> None:
        line = f"{counters.sequences},{counters.seconds:.1f},{loss:.5f},{acc[0]:.4f},{acc[1]:.4f},{longest}\n"
        for fh in self._handles:
            fh.write(line)
            fh.flush()

    def close(self) -> None:
        for fh in self._handles:
            fh.close()
        self._handles = []


def score(params: CopyParams, held_out) -> tuple[tuple[float, float], int]:
    """((symbol, sequence) accuracy, longest pattern length solved) on the held-out set."""
    from envs.memory import copy_task_accuracy, copy_task_longest_solved

    predictions = evaluate(params, held_out)                               # (T, B)
    return copy_task_accuracy(predictions, held_out), copy_task_longest_solved(predictions, held_out)


def _train_batches(model: CopyModel, rng, held_out, config: CopyConfig, counters: Counters, *, bar=None,
                   log: CopyLog | None = None, received=(), after_batch=None):
    """Train batch after batch from `counters` until the budget (--max-sequences, --minutes of this
    call), the target accuracy or a stop request; evaluate on `held_out` after each batch that passes
    a multiple of config.eval_every sequences (`evaluates`).
    Returns (counters, the last (symbol, sequence) accuracy or None, the batches' mean loss)."""
    from envs.memory import copy_task_batch

    began = time.monotonic()
    start = began - counters.seconds
    acc = None
    mean_loss = float("nan")
    while counters.sequences < config.max_sequences and not received \
            and not (config.minutes > 0 and time.monotonic() - began > 60 * config.minutes):
        data = copy_task_batch(rng, config.batch, config.max_len)
        model.set_lr(scheduled_lr(config, counters.sequences))
        try:
            loss, counted = model.train_batch(data)
        except ValueError as err:
            if "finite" not in str(err):
                raise
            raise TrainingStopped(f"non-finite gradient after {counters.sequences} sequences ({err})", 3) from None
        mean_loss = loss / max(counted, 1)
        before, counters = counters, Counters(counters.sequences + config.batch, counters.batches + 1,
                                              time.monotonic() - start)
        if evaluates(before.sequences, counters.sequences, config.eval_every):
            acc, longest = score(model.params, held_out)
            if log is not None:
                log.write(counters, mean_loss, acc, longest)
            if bar is not None:
                bar.set_postfix(loss=f"{mean_loss:.3f}", seq_acc=f"{acc[1]:.3f}", refresh=False)
        if after_batch is not None:
            after_batch(counters, acc)
        if bar is not None:
            bar.update(config.batch)
        if acc is not None and acc[1] >= config.target:
            break
    return counters, acc, mean_loss


def evaluates(before: int, after: int, eval_every: int) -> bool:
    """Whether the batch that took the run from `before` to `after` sequences passed a multiple of
    `eval_every` (and so ends with an evaluation)."""
    return after // eval_every > before // eval_every


def _progress_bar(config: CopyConfig, initial: int = 0):
    if not config.progress:
        return None
    from tqdm import tqdm

    return tqdm(total=config.max_sequences, initial=initial, unit="seq",
                desc=f"copy L<={config.max_len} H={config.hidden}")


def train_copy(max_len: int, hidden: int, batch: int = 32, lr: float = 3e-3, clip: float = 1.0,
               max_sequences: int = 200_000, target: float = 1.0, seed: int = 0,
               backend: str = "numba", progress: bool = True, eval_size: int = 500,
               minutes: float = 0.0, log_path: str | Path | None = None, fused: bool | None = None,
               loss_on: str = "all", eval_every: int = 2000) -> CopyResult:
    """Train until the held-out sequence accuracy reaches `target` or the budget (sequences, and
    `minutes` of wall time if > 0) is spent, without a run folder (the command makes one).
    `log_path`: a CSV row per evaluation (every `eval_every` sequences): sequences, seconds, mean loss per
    counted target, symbol and sequence accuracy. `fused`: one compiled call per step
    (`online_batch_fused`; numba backend and loss_on 'all' only); None: fused where it applies.
    `loss_on`: which targets the loss trains (module docstring)."""
    from envs.memory import copy_task_accuracy

    if fused and backend != "numba":
        raise ValueError(f"fused: expected False or None with backend {backend!r} (the fused step is a "
                         f"Numba kernel), got {fused!r}")
    config = CopyConfig(max_len=max_len, hidden=hidden, batch=batch, lr=lr, clip=clip, loss_on=loss_on, seed=seed,
                        eval_size=eval_size, eval_every=eval_every, max_sequences=max_sequences, minutes=minutes,
                        target=target, backend=backend, fused=fused, progress=progress)
    rng = np.random.default_rng(seed)
    params = init_copy(rng, hidden)
    model = CopyModel(params, adam_init(params), batch, lr, clip, backend, resolve_fused(config), loss_on)  # rtrl
    held_out = held_out_set(config)
    log = CopyLog(log_path, truncate=True) if log_path is not None else None
    bar = _progress_bar(config)
    try:
        counters, _, _ = _train_batches(model, rng, held_out, config, Counters(0, 0, 0.0), bar=bar, log=log)
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    acc = copy_task_accuracy(evaluate(model.params, held_out), held_out)
    return CopyResult(max_len, hidden, counters.sequences, counters.seconds, acc[0], acc[1])


# ============================================================================= the run folder


class CopySummary(NamedTuple):
    run_dir: Path
    max_len: int
    hidden: int
    sequences: int
    seconds: float
    symbol_accuracy: float | None       # the held-out set's at the end (None: never evaluated)
    sequence_accuracy: float | None
    already_complete: str = ""          # a --resume with nothing left to do: why

    def describe(self) -> str:
        if self.already_complete:
            return self.already_complete
        acc = ("no evaluation yet" if self.sequence_accuracy is None else
               f"sequence accuracy {self.sequence_accuracy:.3f}, symbol accuracy {self.symbol_accuracy:.3f}")
        return (f"copy task L<={self.max_len}, H={self.hidden}: {acc}, {self.sequences} sequences, "
                f"{self.seconds:.0f} s\nrun folder: {self.run_dir}")


def _run_namer(config: CopyConfig):
    """What runs.check_new_run and runs.new_run_dir read: the folder copy-L{L}-H{H}-s{seed}-TIME-TAG
    (copy-L{L}-H{H}-tbptt{K}-s{seed}-TIME-TAG with --learner tbptt)."""
    learner = f"H{config.hidden}" + ("" if config.learner == "rtrl" else f"-tbptt{config.window}")
    return SimpleNamespace(run_dir=config.run_dir, run_name=config.run_name, exp_name="",
                           env=f"copy-L{config.max_len}", learner=learner, seed=config.seed)


def write_copy_config(run_dir: Path, config: CopyConfig) -> None:
    """RUN/config.json, atomically: every option and the git revision."""
    data = dict(kind=KIND, config=dataclasses.asdict(config), git_revision=git_revision())
    tmp = Path(run_dir) / (CONFIG_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, Path(run_dir) / CONFIG_FILE)


def read_copy_config(run, action: str = "--resume") -> CopyConfig:
    """The checked config of a copy-task run folder; ValueError naming `action` and the folder."""
    run = Path(run)
    file = run / CONFIG_FILE
    if not run.is_dir():
        raise ValueError(f"{action} {run}: expected a run folder, got {'a file' if run.exists() else 'nothing there'}")
    if not file.exists():
        raise ValueError(f"{action} {run}: not a run folder (no {CONFIG_FILE})")
    try:
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{action} {run}: {file} is unreadable ({err})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ValueError(f"{action} {run}: not a copy-task run ({file} was written by another command)")
    try:
        config = CopyConfig(**data["config"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"{action} {run}: {file} is not a valid copy-task config ({err})") from None
    try:
        check_config(config)
    except ValueError as err:
        raise ValueError(f"{action} {run}: {file}: {err}") from None
    return config


def resume_config(run, given: dict) -> CopyConfig:
    """The run's config with the options of RESUMABLE that were given; any other option given with
    a value other than the run's is refused (ValueError naming each flag, its value and the run's)."""
    saved = read_copy_config(run, "--resume")
    differ = [k for k, v in given.items() if k not in RESUMABLE and v != getattr(saved, k)]
    if differ:
        named = "; ".join(f"{flag(k)} {given[k]} (the run has {getattr(saved, k)})" for k in differ)
        raise ValueError(f"--resume {run}: {named}: these options define the run; only "
                         f"{', '.join(flag(k) for k in RESUMABLE)} may change when resuming")
    config = dataclasses.replace(saved, **{k: v for k, v in given.items() if k in RESUMABLE})
    check_config(config)
    return config


def _identity(config: CopyConfig) -> dict:
    return {k: getattr(config, k) for k in IDENTITY}


def _check_checkpoint_matches(run: Path, config: CopyConfig) -> None:
    """Refuse a resume whose config.json and checkpoint describe different runs (an edited config.json)."""
    file = run / CHECKPOINT_FILE
    if not file.exists():
        raise ValueError(f"--resume {run}: no checkpoint ({file} is missing)")
    try:
        _, header = read_checkpoint(file)
    except ValueError as err:
        raise ValueError(f"--resume {run}: {err}") from None
    meta = header.get("meta", {})
    if meta.get("kind") != KIND:
        raise ValueError(f"--resume {run}: {file} is not a copy-task checkpoint")
    recorded = meta.get("identity", {})
    differ = [f"{k}: config.json {getattr(config, k)!r}, checkpoint {recorded[k]!r}"
              for k in IDENTITY if k in recorded and recorded[k] != getattr(config, k)]
    if differ:
        raise ValueError(f"--resume {run}: config.json does not match the checkpoint ({'; '.join(differ)}); "
                         f"refusing to resume")


def _checkpoint_like(hidden: int) -> dict:
    template = init_copy(np.random.default_rng(0), hidden)
    return dict(params=template, opt=adam_init(template))


def _save(run_dir: Path, config: CopyConfig, model: CopyModel, rng, counters: Counters, acc) -> None:
    meta = dict(kind=KIND, counters=counters._asdict(), rng=rng_state(rng), identity=_identity(config),
                symbol_accuracy=None if acc is None else acc[0], sequence_accuracy=None if acc is None else acc[1])
    save_checkpoint(run_dir / CHECKPOINT_FILE, dict(params=model.params, opt=model.adam_state()), meta)


def _check_log_file(path: str) -> None:
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).touch()
    except OSError as err:
        raise ValueError(f"--log {path}: cannot write it ({err.strerror or err})") from None


def truncate_copy_log(file: Path, sequences: int) -> int:
    """Drop the rows logged after `sequences` (after the checkpoint a resume restarts from); returns
    how many went. The file is rewritten atomically."""
    file = Path(file)
    if not file.exists():
        return 0
    with open(file, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or tuple(rows[0]) not in (LOG_FIELDS, OLD_LOG_FIELDS):
        return 0
    keep = [r for r in rows[1:] if r and parse_number(r[0]) <= sequences]
    if tuple(rows[0]) == OLD_LOG_FIELDS:                 # an older run's log: longest_solved left blank
        rows[0], keep = list(LOG_FIELDS), [r + [""] for r in keep]
    elif len(keep) == len(rows) - 1:
        return 0
    tmp = file.with_name(f".{file.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([rows[0], *keep])
    os.replace(tmp, file)
    return len(rows) - 1 - len(keep)


class _Start(NamedTuple):
    run_dir: Path
    lock: RunLock
    model: CopyModel
    rng: np.random.Generator
    counters: Counters
    acc: tuple | None


def _start(config: CopyConfig, resume) -> _Start:
    """Every check first (creating nothing), then the run folder (new) or the lock and the
    checkpoint (resume)."""
    check_config(config)
    if resume:
        run_dir = Path(resume)
        _check_checkpoint_matches(run_dir, config)
    else:
        check_new_run(_run_namer(config))
    if config.log:
        _check_log_file(config.log)
    lock = None
    try:
        if resume:
            lock = RunLock(run_dir).acquire()
            remove_orphans(run_dir)
            try:
                trees, meta = load_checkpoint(run_dir / CHECKPOINT_FILE, _checkpoint_like(config.hidden))
                rng = rng_from_state(meta["rng"])
                counters = Counters(**meta["counters"])
            except (KeyError, TypeError) as err:
                raise ValueError(f"--resume {run_dir}: the checkpoint's metadata lacks {err}") from None
            except ValueError as err:
                raise ValueError(f"--resume {run_dir}: {err}") from None
            params, opt = trees["params"], trees["opt"]
            acc = None
            if meta.get("sequence_accuracy") is not None:
                acc = (meta["symbol_accuracy"], meta["sequence_accuracy"])
        else:
            rng = np.random.default_rng(config.seed)
            params = init_copy(rng, config.hidden)                         # the first draws of the one seed
            opt = adam_init(params)
            counters, acc = Counters(0, 0, 0.0), None
            run_dir = new_run_dir(_run_namer(config))                      # the first thing created
            lock = RunLock(run_dir).acquire()
        model = CopyModel(params, opt, config.batch, config.lr, config.clip, config.backend, resolve_fused(config),
                          config.loss_on, config.learner, config.window)
        return _Start(run_dir, lock, model, rng, counters, acc)
    except BaseException:
        if lock is not None:
            lock.release()
        raise


def _already_complete(run_dir: Path, config: CopyConfig, counters: Counters, acc) -> str:
    if counters.sequences >= config.max_sequences:
        return (f"run {run_dir} is already complete: {counters.sequences} sequences, --max-sequences "
                f"{config.max_sequences} (raise it to train further)")
    if acc is not None and acc[1] >= config.target:
        return (f"run {run_dir} already reached --target {config.target}: held-out sequence accuracy {acc[1]:.3f} "
                f"at {counters.sequences} sequences (raise --target to train further)")
    return ""


def run_copy(config: CopyConfig, resume: str | Path = "") -> CopySummary:
    """Train in a run folder (new, or `resume`: continue it). A start that fails raises UsageError
    (a ValueError naming the flag) and creates nothing; an interrupt raises TrainingStopped after
    the checkpoint is written."""
    try:
        start = _start(config, resume)
    except ValueError as err:
        raise UsageError(str(err)) from None
    run_dir, lock, model, rng, counters, acc = start
    try:
        if resume:
            done = _already_complete(run_dir, config, counters, acc)
            if done:
                return CopySummary(run_dir, config.max_len, config.hidden, counters.sequences, counters.seconds,
                                   *(acc or (None, None)), already_complete=done)
            truncate_copy_log(run_dir / LOG_FILE, counters.sequences)
        else:
            write_copy_config(run_dir, config)
        step = ("fused step" if model.stepper is not None else "reference step") if config.learner == "rtrl" \
            else f"truncated BPTT, unrolls of {config.window} steps"
        print(f"run folder: {run_dir} ({f'resumed at {counters.sequences} sequences' if resume else 'new'}; "
              f"{step}, loss on {config.loss_on} targets)", flush=True)
        return _run(config, run_dir, model, rng, counters, acc)
    finally:
        lock.release()


def _run(config: CopyConfig, run_dir: Path, model: CopyModel, rng, counters: Counters, acc) -> CopySummary:
    held_out = held_out_set(config)
    log = CopyLog(run_dir / LOG_FILE, mirror=config.log or None)
    bar = _progress_bar(config, counters.sequences)
    last = dict(acc=acc, saved=None)

    def after_batch(counters: Counters, new_acc) -> None:
        if new_acc is not None:
            last["acc"] = new_acc
        if last["saved"] is None or time.monotonic() - last["saved"] > 60 * config.checkpoint_minutes:
            _save(run_dir, config, model, rng, counters, last["acc"])
            last["saved"] = time.monotonic()

    try:
        with stop_requests() as received:
            try:
                end, _, loss = _train_batches(model, rng, held_out, config, counters, bar=bar, log=log,
                                              received=received, after_batch=after_batch)
            except TrainingStopped as stop:
                if stop.exit_code != 3:
                    raise
                raise TrainingStopped(f"{stop}; the last checkpoint in {run_dir} is kept", 3) from None
            if not received and end.batches > counters.batches and \
                    not evaluates(end.sequences - config.batch, end.sequences, config.eval_every):
                last["acc"], longest = score(model.params, held_out)                # the end's row
                log.write(end, loss, last["acc"], longest)
            _save(run_dir, config, model, rng, end, last["acc"])              # still under the handlers
    finally:
        if bar is not None:
            bar.close()
        log.close()
        _plot(run_dir / LOG_FILE, run_dir / CURVE_FILE,
              f"{run_dir.name}: copy task L<={config.max_len}, H={config.hidden}, loss on {config.loss_on} targets")
        if config.log:
            _plot(Path(config.log), None, Path(config.log).stem)
    if received:
        name = signal.Signals(received[0]).name
        raise TrainingStopped(f"interrupted by {name} at {end.sequences} sequences; checkpoint saved in {run_dir}; "
                              f"continue with: {PROG} --resume {run_dir}", 128 + received[0])
    acc = last["acc"]
    return CopySummary(run_dir, config.max_len, config.hidden, end.sequences, end.seconds, *(acc or (None, None)))


def _plot(log_path: Path, out: Path | None, title: str) -> Path | None:
    try:
        return plot_copy_log(log_path, out, title)
    except (ImportError, ValueError, OSError):
        return None


def evaluate_run(run, eval_size: int | None = None, eval_seed: int = 0) -> dict:
    """Score a run's checkpoint on a fresh held-out set (`fresh_held_out_set`: eval_size sequences,
    default the run's --eval-size, of the run's max_len), overall and per pattern length
    (`by_length`: {n: (sequences, sequence accuracy)}). ValueError naming --evaluate if unusable."""
    from envs.memory import copy_task_accuracy, copy_task_accuracy_by_length, copy_task_longest_solved

    run = Path(run)
    config = read_copy_config(run, "--evaluate")
    file = run / CHECKPOINT_FILE
    if not file.exists():
        raise ValueError(f"--evaluate {run}: no checkpoint ({file} is missing)")
    try:
        trees, meta = load_checkpoint(file, _checkpoint_like(config.hidden))
        trained = int(meta["counters"]["sequences"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"--evaluate {run}: the checkpoint's metadata lacks {err}") from None
    except ValueError as err:
        raise ValueError(f"--evaluate {run}: {err}") from None
    size = config.eval_size if eval_size is None else eval_size
    data = fresh_held_out_set(config.max_len, size, eval_seed)
    predictions = evaluate(trees["params"], data)                          # (T, B)
    symbol, sequence = copy_task_accuracy(predictions, data)
    return dict(run=str(run), max_len=config.max_len, hidden=config.hidden, sequences_trained=trained,
                eval_size=size, eval_seed=eval_seed, symbol_accuracy=symbol, sequence_accuracy=sequence,
                by_length=copy_task_accuracy_by_length(predictions, data),
                longest_solved=copy_task_longest_solved(predictions, data))


# ============================================================================= the command


DESCRIPTION = ("Fully online RTRL (step form, Adam after every step) on the true copy task, in a run folder: "
               "config.json, log.csv, curve.png and an atomic checkpoint; --resume and --evaluate.")
EPILOG = """\
which targets the loss trains (--loss-on):
  all          every step, the blank targets outside the recall (input phase, padding after 2L)
               too: the default, this repository's choice
  recall       only the L recall steps of each sequence: what the paper's code meant by
               CrossEntropyLoss(ignore_index=2), 2 being the blank's symbol
  paper-quirk  the paper's ignore-index quirk as its code ran: ignore_index=2 indexes its target
               vocabulary, built in order of first appearance ("2", "0", "1"), so the recall steps
               whose target is bit 1 are skipped and the blanks and bit 0 are trained
  The loss is summed over the rows. recall and paper-quirk run the reference step (not --fused).
  Accuracy always counts both bits at the recall steps.

run folder (--run-dir/--run-name): config.json (every option and the git revision), log.csv (a row
every --eval-every sequences and at the end: sequences, seconds, loss, symbol_accuracy, sequence_accuracy,
longest_solved),
curve.png, checkpoint.npz (parameters, Adam state, counters, RNG; atomic, no pickle; written after
the first batch, every --checkpoint-minutes and at the end). Ctrl-C, SIGTERM and SIGHUP write the
checkpoint and stop (exit status 128 + signal); --resume RUN continues; --evaluate RUN scores the
checkpoint on fresh held-out sequences."""


def _integer(text: str) -> int:
    """An integer flag: 200000, 200_000 or 2e5."""
    try:
        if "e" in text.lower():
            value = float(text)
            if not value.is_integer():
                raise ValueError
            return int(value)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _shown(default) -> str:
    if default is None:
        return "unset"
    if default == "":
        return "none"
    return repr(default)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """The epilog's line breaks kept."""


def build_parser() -> argparse.ArgumentParser:
    """Flags from CopyConfig (given flags only: a resume tells them from the run's), and the actions."""
    parser = ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter)
    for f in dataclasses.fields(CopyConfig):
        shown = "" if "(default:" in f.metadata["help"] else f" (default: {_shown(f.default)})"
        kw = dict(help=f.metadata["help"] + shown, default=argparse.SUPPRESS)
        if f.name in ("fused", "progress"):
            parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, **kw)
            continue
        kind = {"int": _integer, "float": float, "float | None": float, "str": str}[str(f.type)]
        parser.add_argument(flag(f.name), type=kind, choices=f.metadata.get("choices"),
                            metavar="{" + ",".join(f.metadata["choices"]) + "}" if "choices" in f.metadata else None,
                            **kw)
    group = parser.add_argument_group("resume and evaluation")
    group.add_argument("--resume", metavar="RUN", default=None,
                       help=f"continue the run folder RUN from its checkpoint (parameters, Adam state, counters, "
                            f"RNG); only {', '.join(flag(k) for k in RESUMABLE)} may be given with other values "
                            f"than the run's")
    group.add_argument("--evaluate", metavar="RUN", default=None,
                       help="score RUN's checkpoint on a fresh held-out set and stop: --eval-size sequences "
                            "(default: the run's) of the run's --max-len, drawn from --eval-seed in a random stream "
                            "of its own, neither the training stream nor the training-time held-out set's (short "
                            "patterns recur all the same: there are only 2^L of length L)")
    group.add_argument("--eval-seed", type=_integer, metavar="N", default=None,
                       help="seed of --evaluate's fresh held-out set (default: 0)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    resume, evaluate_dir, eval_seed = given.pop("resume"), given.pop("evaluate"), given.pop("eval_seed")
    if evaluate_dir is not None:
        return _evaluate_command(parser, evaluate_dir, given, eval_seed)
    if eval_seed is not None:
        parser.error(f"--eval-seed {eval_seed}: only with --evaluate RUN")
    try:
        config = resume_config(resume, given) if resume else CopyConfig(**given)
        check_config(config)
    except ValueError as err:
        parser.error(str(err))
    try:
        summary = run_copy(config, resume or "")
    except UsageError as err:                      # refused at the start: nothing was created
        parser.error(str(err))
    except TrainingStopped as stop:
        return report_stopped(stop)
    print(summary.describe())
    if not summary.already_complete:
        if (summary.run_dir / CURVE_FILE).exists():
            print(f"learning curve: {summary.run_dir / CURVE_FILE}")
        if config.log and Path(config.log).with_suffix(".png").exists():
            print(f"learning curve: {Path(config.log).with_suffix('.png')}")
    return 0


def _evaluate_command(parser, run: str, given: dict, eval_seed: int | None) -> int:
    other = sorted(set(given) - {"eval_size"})
    if other:
        parser.error(f"--evaluate: takes only --eval-size and --eval-seed, got {flag(other[0])}")
    size = given.get("eval_size")
    if size is not None and size < 1:
        parser.error(f"--eval-size {size}: expected an integer >= 1")
    if eval_seed is not None and eval_seed < 0:
        parser.error(f"--eval-seed {eval_seed}: expected an integer >= 0")
    try:
        r = evaluate_run(run, size, eval_seed or 0)
    except ValueError as err:
        parser.error(str(err))
    print(f"{r['run']} (L<={r['max_len']}, H={r['hidden']}, checkpoint at {r['sequences_trained']} sequences): "
          f"fresh held-out set of {r['eval_size']} sequences (eval seed {r['eval_seed']}): sequence accuracy "
          f"{r['sequence_accuracy']:.3f}, symbol accuracy {r['symbol_accuracy']:.3f}")
    print(f"longest pattern length with every sequence up to it right: {r['longest_solved']}; "
          "sequence accuracy per pattern length: " + ", ".join(
        f"{n}: {acc:.3f} ({count})" for n, (count, acc) in r["by_length"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
