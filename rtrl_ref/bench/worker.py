"""Subprocess entry of the benchmark: `python -m rtrl_ref.bench.worker TASK ARGS_JSON OUT_JSON`.

The parent sets the thread environment (OPENBLAS_NUM_THREADS, NUMBA_NUM_THREADS, ...) before this
interpreter starts, so NumPy's BLAS and Numba see it from their first import.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        raise SystemExit("usage: python -m rtrl_ref.bench.worker TASK ARGS_JSON OUT_JSON")
    task, args_json, out_path = argv
    from rtrl_ref.bench import tasks

    fn = {"ops": tasks.ops, "torch": tasks.torch_ops, "memory": tasks.memory,
          "warm_start": tasks.warm_start}.get(task)
    if fn is None:
        raise SystemExit(f"task: expected one of ops, torch, memory, warm_start, got {task!r}")
    result = fn(**json.loads(args_json))
    with open(out_path, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
