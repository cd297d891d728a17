"""Fully online RTRL on the copy task: a loss, a gradient and an Adam step after every step.

The paper's copy-task experiment (Irie et al. 2024, Sec. 4.1) in miniature, on the *true* copy task of
envs.memory.copy_task_batch. Per time step t of a batch of B sequences:

    c_t, cache = cell_step(p, x_t, c_tm1)                    eLSTM (reset at t = 0)
    h_t = out_gate(q, x_t, c_t);  logits_t = h_t W_y^T + b_y
    L_t = sum_b cross_entropy(logits_t[b], y_t[b])           (blank targets outside the recall)
    g_c_t = immediate_g_c(...)                               the only backward pass: one step
    traces_t, g_p = trace_step_accumulate(traces, cache, reset_t, g_c_t, 0)   RTRL step form
    Adam step on (p, q, W_y, b_y) with the global-norm clipped gradient

so the eLSTM gradient is exact with respect to the whole past (up to the staleness of traces
computed under earlier parameters, which is inherent to online RTRL). Accuracy counts the recall
steps only; a sequence is correct when every recall step is.

Two implementations of the step: `online_step` (the reference above, one call per piece, on any
backend) and the fused step (`online_batch_fused`: `rtrl_ref.kernels.online_numba.OnlineStep`, the
whole step including the clip and Adam in one Numba call, verified against `online_step` and BPTT
in tests/test_online_fused.py). `train_copy` and the command use the fused step on the numba
backend unless told `fused=False` / `--no-fused`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rtrl_ref.cell import cell_step
from rtrl_ref.kernels import get_backend
from rtrl_ref.out_gate import immediate_g_c, out_gate
from rtrl_ref.params import ELSTMParams, OutGateParams, init_elstm, init_out_gate
from rtrl_ref.r2ac.cli import ArgumentParser
from rtrl_ref.r2ac.layers import LinearParams, init_linear, linear, linear_backward, log_softmax
from rtrl_ref.r2ac.optim import adam_init, adam_update, clip_by_global_norm
from rtrl_ref.traces import zero_grads, zero_traces


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


def ce_grad(logits, y):
    """Cross-entropy summed over the batch: (loss, g_logits (B, 3), predictions (B,))."""
    log_p = log_softmax(logits)                                            # (B, 3)
    onehot = np.eye(logits.shape[-1], dtype=logits.dtype)[y]               # (B, 3)
    return float(-(onehot * log_p).sum()), np.exp(log_p) - onehot, log_p.argmax(-1)


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
                reset_t=None) -> StepResult:
    """The reference online step, one call per piece: reset (Eq. 10; reset_t (B,) bool or None for
    none), cell, output gate, readout, cross-entropy, immediate g_c, RTRL step, clip, Adam."""
    B, H = c.shape
    dtype = params.elstm.W_z.dtype
    if reset_t is None:
        reset_t = np.zeros(B, bool)                                        # (B,)
    else:
        c = np.where(reset_t[:, None], dtype.type(0), c)                   # (B, H) c_tm1 after the reset
    c, cache = cell_step(params.elstm, x_t, c)
    h_t, gate_cache = out_gate(params.gate, x_t, c)
    logits, lin_cache = linear(params.readout, h_t)
    loss, g_logits, predictions = ce_grad(logits, y_t)
    g_h, g_readout = linear_backward(g_logits, lin_cache, params.readout)
    g_c, _, g_gate = immediate_g_c(g_h, gate_cache, params.gate)
    traces, g_elstm = backend.trace_step_accumulate(traces, cache, reset_t, g_c, zero_grads(H, x_t.shape[-1], dtype))
    grads = CopyParams(g_elstm, g_gate, g_readout)
    clipped, norm = clip_by_global_norm(grads, clip)
    params, opt = adam_update(params, clipped, opt, lr)
    return StepResult(params, opt, c, traces, loss, logits, predictions, grads, norm)


def online_batch(params: CopyParams, opt, batch, lr: float, clip: float, backend):
    """One batch, one Adam step per time step. Returns (params, opt, predictions (T, B), loss)."""
    T, B, _ = batch.inputs.shape
    H = params.elstm.W_z.shape[0]
    dtype = params.elstm.W_z.dtype
    c = np.zeros((B, H), dtype)                                            # (B, H)
    traces = zero_traces(B, H, 3, dtype)
    predictions = np.empty((T, B), np.int64)                               # (T, B)
    total = 0.0
    for t in range(T):
        x_t = batch.inputs[t].astype(dtype)                                # (B, 3)
        r = online_step(params, opt, c, traces, x_t, batch.targets[t], lr, clip, backend)
        params, opt, c, traces, predictions[t] = r.params, r.opt, r.c, r.traces, r.predictions
        total += r.loss
    return params, opt, predictions, total


def fused_stepper(params: CopyParams, batch: int, lr: float, clip: float):
    """The fused online step (`rtrl_ref.kernels.online_numba.OnlineStep`) for these parameters: it
    copies them in and owns them, its Adam state and every buffer from then on."""
    from rtrl_ref.kernels.online_numba import OnlineStep

    return OnlineStep(params.elstm, params.gate, params.readout.W, params.readout.b, batch, lr=lr, max_norm=clip)


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


def train_copy(max_len: int, hidden: int, batch: int = 32, lr: float = 3e-3, clip: float = 1.0,
               max_sequences: int = 200_000, target: float = 1.0, seed: int = 0,
               backend: str = "numba", progress: bool = True, eval_size: int = 500,
               minutes: float = 0.0, log_path: str | Path | None = None, fused: bool | None = None) -> CopyResult:
    """Train until the held-out sequence accuracy reaches `target` or the budget (sequences, and
    `minutes` of wall time if > 0) is spent. `log_path`: a CSV row per evaluation (every 10
    batches): sequences, seconds, mean loss per symbol, symbol and sequence accuracy.
    `fused`: one compiled call per step (`online_batch_fused`; numba backend only); None: fused
    on the numba backend, the reference `online_batch` otherwise."""
    from envs.memory import copy_task_accuracy, copy_task_batch

    if fused is None:
        fused = backend == "numba"
    if fused and backend != "numba":
        raise ValueError(f"fused: expected False or None with backend {backend!r} (the fused step is a "
                         f"Numba kernel), got {fused!r}")
    rng = np.random.default_rng(seed)
    be = get_backend(backend)
    params = init_copy(rng, hidden)
    opt = adam_init(params)
    stepper = None
    if fused:
        stepper = fused_stepper(params, batch, lr, clip)
        params = fused_params(stepper)
    held_out = copy_task_batch(np.random.default_rng(seed + 10_000), eval_size, max_len)
    start, seen, acc = time.monotonic(), 0, (0.0, 0.0)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=max_sequences, unit="seq", desc=f"copy L<={max_len} H={hidden}")
    log = None
    if log_path is not None:
        log = open(log_path, "w", newline="")
        log.write("sequences,seconds,loss,symbol_accuracy,sequence_accuracy\n")
    while seen < max_sequences and not (minutes > 0 and time.monotonic() - start > 60 * minutes):
        data = copy_task_batch(rng, batch, max_len)
        if stepper is not None:
            _, loss = online_batch_fused(stepper, data)
        else:
            params, opt, _, loss = online_batch(params, opt, data, lr, clip, be)
        seen += batch
        if (seen // batch) % 10 == 0:
            acc = copy_task_accuracy(evaluate(params, held_out), held_out)
            if log is not None:
                log.write(f"{seen},{time.monotonic() - start:.1f},{loss / data.inputs.shape[0] / batch:.5f},"
                          f"{acc[0]:.4f},{acc[1]:.4f}\n")
                log.flush()
            if bar is not None:
                bar.set_postfix(loss=f"{loss / data.inputs.shape[0] / batch:.3f}", seq_acc=f"{acc[1]:.3f}")
            if acc[1] >= target:
                break
        if bar is not None:
            bar.update(batch)
    if bar is not None:
        bar.close()
    if log is not None:
        log.close()
    acc = copy_task_accuracy(evaluate(params, held_out), held_out)
    return CopyResult(max_len, hidden, seen, time.monotonic() - start, acc[0], acc[1])


def plot_copy_log(log_path: str | Path, out: str | Path | None = None) -> Path:
    """Sequence and symbol accuracy against wall time from a `--log` CSV; PNG next to it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.genfromtxt(log_path, delimiter=",", names=True)
    out = Path(out) if out is not None else Path(log_path).with_suffix(".png")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(data["seconds"] / 60, data["sequence_accuracy"], label="sequence accuracy")
    ax.plot(data["seconds"] / 60, data["symbol_accuracy"], label="symbol accuracy", alpha=0.7)
    ax.set_xlabel("minutes")
    ax.set_ylim(0, 1.02)
    ax.set_title(Path(log_path).stem)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m rtrl_ref.copy_task",
                                     description="Fully online RTRL (step form, Adam) on the true copy task.",
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--max-len", type=int, default=5, help="longest pattern length L (sequence length 2L)")
    parser.add_argument("--hidden", type=int, default=64, help="eLSTM hidden units H")
    parser.add_argument("--batch", type=int, default=32, help="sequences per batch")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip per step")
    parser.add_argument("--max-sequences", type=int, default=200_000, help="training budget in sequences")
    parser.add_argument("--minutes", type=float, default=0.0, help="wall-time limit in minutes (0: none)")
    parser.add_argument("--log", default=None, help="CSV file for the learning curve (a row every 10 batches; "
                        "a PNG of it is drawn at the end)")
    parser.add_argument("--seed", type=int, default=0, help="seed")
    parser.add_argument("--backend", default="numba", choices=("numpy", "numba", "cupy"), help="trace kernels")
    parser.add_argument("--fused", default=None, action=argparse.BooleanOptionalAction,
                        help="one compiled call per online step (numba backend only); unset: on with numba")
    args = parser.parse_args(argv)
    if args.fused and args.backend != "numba":
        parser.error(f"--fused: needs --backend numba, got --backend {args.backend}")
    for flag, value in (("--max-len", args.max_len), ("--hidden", args.hidden), ("--batch", args.batch),
                        ("--max-sequences", args.max_sequences)):
        if value < 1:
            parser.error(f"{flag} {value}: expected an integer >= 1")
    if args.log:
        try:
            Path(args.log).parent.mkdir(parents=True, exist_ok=True)
            Path(args.log).touch()
        except OSError as err:
            parser.error(f"--log {args.log}: cannot write it ({err.strerror or err})")
    r = train_copy(args.max_len, args.hidden, args.batch, args.lr, args.clip, args.max_sequences,
                   seed=args.seed, backend=args.backend, minutes=args.minutes, log_path=args.log,
                   fused=args.fused)
    print(f"copy task L<={r.max_len}, H={r.hidden}: sequence accuracy {r.sequence_accuracy:.3f}, "
          f"symbol accuracy {r.symbol_accuracy:.3f}, {r.sequences} sequences, {r.seconds:.0f} s")
    if args.log:
        print(f"learning curve: {plot_copy_log(args.log)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
