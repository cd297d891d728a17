"""Benchmark suite of the library: `python -m rtrl_ref.bench [--quick]`.

It times the public drivers (`elstm_forward`, `bptt`, `rtrl_segment`, `rtrl_sequence`) on a
backend object, and the backends' kernels; it never re-implements the math.

Every measurement checks its result first, warms up once (JIT compile / cache load), times the
candidates in interleaved rounds and reports medians and ratios measured side by side in one
process, with thread counts set explicitly (each task runs in a subprocess whose BLAS and Numba
thread counts are fixed by environment variables before NumPy is imported).

    timing     interleaved median timing, thread environment, machine description
    cases      benchmark inputs (B=32, H=256, I=257 by default)
    checks     correctness of everything that is timed (the part CI runs; properties from verify.checks)
    triad      the DRAM triad kernel (bandwidth reference)
    tasks      the measurements, one function per goal (run inside worker subprocesses)
    worker     subprocess entry: `python -m rtrl_ref.bench.worker TASK ARGS_JSON`
    report     verdicts, JSON and the memory plot
"""
