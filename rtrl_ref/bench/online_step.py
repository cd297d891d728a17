"""`python -m rtrl_ref.bench.online_step`: the fused online step against today's reference step path.

One fully online step of the copy-task model (eLSTM, output gate, readout to 3 classes, cross-entropy,
immediate g_c, RTRL trace update and gradient, global-norm clip, Adam), timed two ways in the same
process on the same data:

    reference   rtrl_ref.r2ac.copy_online.online_step: one call per piece, the numba backend's
                trace_step_accumulate, NumPy for the rest (what `--no-fused` runs)
    fused       rtrl_ref.kernels.online_numba.OnlineStep.step: one compiled call (what `--fused` runs)
    torch       (opt-in, `--torch`) rtrl_ref.bench.torch_online.TorchOnlineStep.step: the paper-style
                eager PyTorch formulation of the same step (trace-sized temporaries, autograd for the
                output gate and readout, torch.optim.Adam); torch is optional, never a dependency

For every (B, H): `--rounds` interleaved rounds (reference, fused[, torch], reference, ...), each
`--steps` steps; the median per-step time of each and the ratios reference / fused (and, with
`--torch`, torch / fused) are printed and, with `--out`, written as JSON with the machine
description and thread settings. The thread pools are those of this process (set
OPENBLAS_NUM_THREADS / NUMBA_NUM_THREADS before starting it to pin them); torch's intra-op pool is
set by `--torch-threads N` (default: Numba's thread count).

    python -m rtrl_ref.bench.online_step --B 1 8 32 --H 64 256 1024 --steps 200 --out online.json
    python -m rtrl_ref.bench.online_step --B 1 32 --H 256 --torch --out online_torch.json   # needs torch
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from rtrl_ref.bench.timing import interleaved, write_results
from rtrl_ref.kernels import get_backend
from rtrl_ref.r2ac.cli import ArgumentParser
from rtrl_ref.r2ac.copy_online import fused_stepper, init_copy, online_step
from rtrl_ref.r2ac.optim import adam_init
from rtrl_ref.traces import zero_traces

NUM_SYMBOLS = 3                                      # inputs and classes of the copy task


def time_one(B: int, H: int, steps: int, rounds: int, dtype=np.float32, lr: float = 3e-3, clip: float = 1.0,
             seed: int = 0, torch_threads: int | None = None) -> dict:
    """Median per-step microseconds of the reference and the fused step at one (B, H); with
    torch_threads (an int), the paper-style PyTorch step too, on that many torch threads."""
    rng = np.random.default_rng(seed)
    params = init_copy(rng, H, dtype)
    x = np.eye(NUM_SYMBOLS, dtype=dtype)[rng.integers(0, NUM_SYMBOLS, (steps, B))]   # (steps, B, 3)
    y = rng.integers(0, NUM_SYMBOLS, (steps, B))                                      # (steps, B)
    backend = get_backend("numba")
    stepper = fused_stepper(params, B, lr, clip)
    state = dict(params=params, opt=adam_init(params), c=np.zeros((B, H), dtype),
                 traces=zero_traces(B, H, NUM_SYMBOLS, dtype))

    def reference():
        s = state
        for t in range(steps):
            r = online_step(s["params"], s["opt"], s["c"], s["traces"], x[t], y[t], lr, clip, backend)
            s["params"], s["opt"], s["c"], s["traces"] = r.params, r.opt, r.c, r.traces

    def fused():
        step = stepper.step
        for t in range(steps):
            step(x[t], None, y[t])

    candidates = {"reference": reference, "fused": fused}
    if torch_threads is not None:
        from rtrl_ref.bench import torch_online

        torch_step = torch_online.TorchOnlineStep(params, B, lr, clip, threads=torch_threads).step

        def torch_eager():
            for t in range(steps):
                torch_step(x[t], y[t])
        candidates["torch"] = torch_eager
    timings = interleaved(candidates, rounds=rounds, warmup=1)
    reference_us = 1e6 * timings["reference"].median_s / steps
    fused_us = 1e6 * timings["fused"].median_s / steps
    row = dict(B=B, H=H, steps=steps, rounds=rounds, dtype=np.dtype(dtype).name, reference_us=reference_us,
               fused_us=fused_us, ratio=reference_us / fused_us,
               reference_min_us=1e6 * timings["reference"].min_s / steps,
               fused_min_us=1e6 * timings["fused"].min_s / steps)
    if torch_threads is not None:
        torch_us = 1e6 * timings["torch"].median_s / steps
        row.update(torch_us=torch_us, torch_over_fused=torch_us / fused_us,
                   torch_min_us=1e6 * timings["torch"].min_s / steps, torch_threads=torch_threads,
                   torch_version=torch_online.torch_version())
    return row


def main(argv=None) -> int:
    parser = ArgumentParser(prog="python -m rtrl_ref.bench.online_step",
                            description="Fused online step vs the reference step path (per-step time); with "
                                        "--torch, the paper-style PyTorch step too.",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--B", type=int, nargs="+", default=[1, 8, 32], help="batch sizes")
    parser.add_argument("--H", type=int, nargs="+", default=[64, 256, 1024], help="hidden sizes")
    parser.add_argument("--steps", type=int, default=200, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median over them)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="parameter dtype")
    parser.add_argument("--out", default=None, help="JSON file for the results")
    parser.add_argument("--torch", action="store_true",
                        help="also time the paper-style eager PyTorch step (rtrl_ref.bench.torch_online; needs "
                             "torch, an optional comparison: pip install torch)")
    parser.add_argument("--torch-threads", type=int, default=None, metavar="N",
                        help="torch's intra-op threads with --torch; unset: Numba's thread count")
    args = parser.parse_args(argv)
    for flag, values in (("--B", args.B), ("--H", args.H), ("--steps", [args.steps]), ("--rounds", [args.rounds]),
                         ("--torch-threads", [] if args.torch_threads is None else [args.torch_threads])):
        bad = [v for v in values if v < 1]
        if bad:
            parser.error(f"{flag} {bad[0]}: expected an integer >= 1")
    torch_threads = None
    if args.torch_threads is not None and not args.torch:
        parser.error(f"--torch-threads {args.torch_threads}: only with --torch")
    if args.torch:
        from rtrl_ref.bench import torch_online

        if not torch_online.available():
            parser.error("--torch: needs PyTorch, which is not installed in this environment (an optional "
                         "comparison, not a dependency of rtrl_ref): pip install torch")
        import numba

        torch_threads = args.torch_threads if args.torch_threads is not None else numba.get_num_threads()
    rows = []
    head = f"{'B':>4} {'H':>6} {'reference us':>13} {'fused us':>10} {'reference / fused':>18}"
    print(head + (f" {'torch us':>10} {'torch / fused':>14}" if args.torch else ""))
    for H in args.H:
        for B in args.B:
            row = time_one(B, H, args.steps, args.rounds, np.dtype(args.dtype), torch_threads=torch_threads)
            rows.append(row)
            line = f"{B:>4} {H:>6} {row['reference_us']:>13.1f} {row['fused_us']:>10.1f} {row['ratio']:>18.2f}"
            if args.torch:
                line += f" {row['torch_us']:>10.1f} {row['torch_over_fused']:>14.2f}"
            print(line, flush=True)
    if args.out:
        write_results(args.out, "rtrl_ref.bench.online_step", argv if argv is not None else sys.argv[1:], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
