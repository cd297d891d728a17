"""One prepared GPU check of the CuPy backend (< 3 minutes on one H100/H200).

    python scripts/gpu_check.py [--out gpu_check.json] [--quick] [--backend cupy]
    python scripts/gpu_check.py --dry-run      # the correctness part on the CPU (numba), no timings
    python scripts/gpu_check.py --cpu-sweep    # only the CPU side of the B sweep (this machine's cores)

1. correctness: the verify.checks functions on the backend (the per-step kernel, the carried pass,
   the drivers elstm_forward / bptt / rtrl_segment / rtrl_sequence vs the NumPy reference, and the
   step and segment forms vs BPTT), float64 and float32, over sizes that include B = 1, odd I and
   every reset pattern, plus their negative twins (a skipped reset, an undecayed carried trace and
   drivers off by 10 tolerances must fail);
2. timings with CUDA events after synchronising (median of interleaved rounds):
   - per-step kernel: achieved bandwidth (4 B H I + B I) * itemsize / time vs the nominal HBM
     bandwidth (from the device's memory clock and bus width) and vs a device-to-device copy;
   - segment form: carried pass vs the cuBLAS GEMM it contains (and a single large GEMM's
     throughput), and the whole rtrl_segment driver, against the NumPy CPU reference;
   - a B sweep (1, 32, 256, 1024) of the per-step kernel and the rtrl_segment driver (H = 256,
     I = 257, T = 50, float32) on the GPU and on CPU_THREADS CPU cores with the numba backend,
     side by side in one run: where the GPU starts to beat a small CPU machine;
   - the per-step kernel with and without slicing the batch (rtrl_ref.kernels.step_cupy);
3. writes everything to a JSON file (default $OUT/gpu_check.json when $OUT is set).

Exit status 0 when every correctness check passes, 1 otherwise, 2 when the backend cannot run;
timings never fail the script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from functools import partial

import numpy as np

from rtrl_ref import rtrl_segment
from rtrl_ref.kernels import get_backend
from rtrl_ref.traces import trace_step_accumulate
from verify import broken, checks
from verify.compare import tolerance
from verify.problem import REGIMES, RESET_PATTERNS, bptt_grads, make_problem


def rows(tag: str, comparisons) -> list[dict]:
    return [dict(name=f"{tag} {c.name}", rel=c.rel, tol=c.tol, ok=bool(c.ok)) for c in comparisons]


def twin(tag: str, comparisons) -> dict:
    """A negative twin passes when the check it wraps failed."""
    worst = max(comparisons, key=lambda c: c.rel / c.tol if c.tol else 0.0)
    return dict(name=f"negative twin: {tag}", rel=worst.rel, tol=worst.tol,
                ok=any(not c.ok for c in comparisons))


def correctness(backend: str, quick: bool) -> list[dict]:
    out = []
    sizes = [(1, 1, 1, 1), (1, 7, 5, 3), (3, 9, 17, 6), (32, 256, 257, 50)]   # (B, H, I, T)
    if not quick:
        sizes += [(5, 33, 129, 11), (64, 512, 257, 20)]
    for dtype in (np.float64, np.float32):
        dn = np.dtype(dtype).name
        for k, (B, H, I, T) in enumerate(sizes):
            for pattern in RESET_PATTERNS:
                out += rows(f"{dn} B={B} H={H} I={I} reset={pattern}",
                            checks.check_backend_step(backend, B, H, I, dtype, k, pattern))
            out += rows(f"{dn} T={T} B={B} H={H} I={I}",
                        checks.check_backend_carried_pass(backend, T, B, H, I, dtype, k))
        out += rows(f"drivers {dn} T=50 B=32 H=256 I=257",                    # the learner's sizes
                    checks.check_backend_drivers(backend, 32, 256, 257, 50, dtype, 7))
        for k, regime in enumerate(REGIMES):
            prob = make_problem(k, T=12, B=3, I=7, H=6, dtype=dtype, regime=regime, resets="random")
            out += rows(f"drivers {dn} {regime}", checks.check_drivers_on(prob, backend, seed=k))
            out += rows(f"rtrl step vs bptt {dn} {regime}", checks.check_rtrl_step(prob, backend=backend))
            out += rows(f"rtrl segment (cuts 4, 9) vs bptt {dn} {regime}",
                        checks.check_rtrl_segment(prob, (4, 9), backend=backend))
        if backend == "cupy":                   # the unsliced step kernel at sizes that slice by default
            from rtrl_ref.kernels import step_cupy

            with patched(step_cupy, "TARGET_THREADS", 0):
                for k, (B, H, I, _) in enumerate(sizes[2:]):
                    out += rows(f"unsliced {dn} B={B} H={H} I={I}",
                                checks.check_backend_step(backend, B, H, I, dtype, 50 + k, "random"))
            with patched(step_cupy, "MIN_CHUNK", 1), patched(step_cupy, "TARGET_THREADS", 2**40):
                for k, (B, H, I) in enumerate([(2, 3, 5), (7, 5, 9), (33, 17, 130)]):   # ragged last slice
                    out += rows(f"one row per slice {dn} B={B} H={H} I={I}",
                                checks.check_backend_step(backend, B, H, I, dtype, 60 + k, "random"))
        # negative twins: these checks must FAIL
        out.append(twin(f"skipped reset detected {dn}", checks.check_backend_step(
            broken.backend_skipping_reset(backend), 4, 8, 9, dtype, 99, "every")))
        out.append(twin(f"undecayed carried trace detected {dn}", checks.check_backend_carried_pass(
            broken.backend_undecayed_carried(backend), 5, 3, 8, 9, dtype, 98)))
        out.append(twin(f"drivers off by 10 tolerances detected {dn}", checks.check_backend_drivers(
            backend, 3, 6, 7, 12, dtype, 97, drivers=broken.off_by(10 * tolerance("kernel", dtype)))))
    return out


@contextlib.contextmanager
def patched(module, name: str, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


@contextlib.contextmanager
def cpu_threads(n: int):
    """Numba and BLAS limited to n threads (where threadpoolctl is installed)."""
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(n)
    try:
        with limits:
            yield
    finally:
        numba.set_num_threads(old)


def event_time(cp, fn, rounds: int, calls: int = 1) -> float:
    """Median seconds per call of fn() over rounds, CUDA events around `calls` calls, after
    synchronising. With calls > 1 the calls run back to back, as an online loop issues them: the
    host enqueues ahead, so this is the kernels' time wherever the host's per-call time is shorter
    (host_time tells)."""
    fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(rounds):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        for _ in range(calls):
            fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) * 1e-3 / calls)
    return statistics.median(times)


def pipelined_time(cp, fn) -> float:
    """Seconds per call of 20 back-to-back calls (median of 5 rounds)."""
    return event_time(cp, fn, rounds=5, calls=20)


def host_time(cp, fn, rounds: int = 10) -> float:
    """Median seconds the host spends in fn() (launches, Python) without waiting for the GPU: when
    it is close to the event time, the call is bound by launches, not by the kernels."""
    fn()
    cp.cuda.Device().synchronize()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cp.cuda.Device().synchronize()
    return statistics.median(times)


def cpu_time(fn, rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# The vendors' datasheet HBM bandwidth, used where the runtime does not report the memory clock
# (CUDA 13 dropped memoryClockRate from the device properties): NVIDIA H100 SXM and H200 datasheets.
DATASHEET_GBps = {"H200": 4800.0, "H100 80GB HBM3": 3350.0, "H100": 3350.0}
CPU_THREADS = 2
SWEEP_B = (1, 32, 256, 1024)


def nominal_bandwidth(cp) -> dict:
    dev_id = cp.cuda.Device().id
    props = cp.cuda.runtime.getDeviceProperties(dev_id)

    def attribute(key: str, attr: int) -> int:
        value = props.get(key, 0)
        if not value:
            try:
                value = cp.cuda.runtime.deviceGetAttribute(attr, dev_id)
            except Exception:
                value = 0
        return int(value)

    clock_khz = attribute("memoryClockRate", 36)            # cudaDevAttrMemoryClockRate
    bus_bits = attribute("memoryBusWidth", 37)               # cudaDevAttrGlobalMemoryBusWidth
    name = props.get("name", b"")
    name = name.decode() if isinstance(name, bytes) else str(name)
    nominal = 2 * clock_khz * 1e3 * bus_bits / 8 / 1e9
    source = "2 x memory clock x bus width"
    if not nominal:
        match = [k for k in DATASHEET_GBps if k in name]
        nominal = DATASHEET_GBps[match[0]] if match else float("nan")
        source = f"datasheet ({match[0]})" if match else "unknown"
    return dict(name=name, memory_clock_khz=clock_khz, bus_width_bits=bus_bits, nominal_GBps=nominal,
                nominal_source=source, total_memory_GiB=props.get("totalGlobalMem", 0) / 2**30,
                sm_count=props.get("multiProcessorCount"))


def timings(cp, be, quick: bool) -> dict:
    rounds = 10 if quick else 25
    dev = nominal_bandwidth(cp)
    out = dict(device=dev, step={}, segment={})
    n_copy = 2**28 // 4
    dst, src = cp.empty(n_copy, cp.float32), cp.ones(n_copy, cp.float32)
    t_copy = event_time(cp, partial(cp.copyto, dst, src), rounds)
    out["d2d_copy_GBps"] = 2 * dst.nbytes / t_copy / 1e9
    del dst, src
    for dtype in (np.float32, np.float64):
        dn = np.dtype(dtype).name
        out["step"][dn] = {}
        for B in ((32,) if quick else (1, 32, 256)):
            H, I = 256, 257
            case = checks.step_inputs(0, B, H, I, dtype, "first")
            on_device = checks.to_backend("cupy", *case)
            t_gpu = event_time(cp, partial(be.trace_step_accumulate, *on_device), rounds)
            bytes_ = (4 * B * H * I + B * I) * np.dtype(dtype).itemsize
            row = dict(gpu_ms=t_gpu * 1e3, GBps=bytes_ / t_gpu / 1e9,
                       fraction_of_nominal=bytes_ / t_gpu / 1e9 / dev["nominal_GBps"],
                       fraction_of_d2d_copy=bytes_ / t_gpu / 1e9 / out["d2d_copy_GBps"])
            if B == 32:
                row["numpy_cpu_ms"] = cpu_time(partial(trace_step_accumulate, *case), 3) * 1e3
                row["speedup_vs_numpy_cpu"] = row["numpy_cpu_ms"] / row["gpu_ms"]
            out["step"][dn][str(B)] = row
        # segment form at the learner's sizes
        T, B, H, I = 50, 32, 256, 257
        args_d = checks.CarriedInputs(*checks.to_backend("cupy", *checks.carried_inputs(1, T, B, H, I, dtype)))
        t_pass = event_time(cp, partial(be.segment_carried_pass, *args_d), rounds)
        U = cp.asarray(np.random.default_rng(2).standard_normal((B, 2 * H, T)).astype(dtype))   # (B, 2H, T)
        x_b = cp.ascontiguousarray(args_d.x.transpose(1, 0, 2))                                # (B, T, I)
        M = cp.empty((B, 2 * H, I), dtype)                                                     # (B, 2H, I)
        t_pass_pipelined = pipelined_time(cp, partial(be.segment_carried_pass, *args_d))
        t_pass_host = host_time(cp, partial(be.segment_carried_pass, *args_d))
        t_bgemm = event_time(cp, partial(cp.matmul, U, x_b, out=M), rounds)
        g_pre = cp.asarray(np.random.default_rng(3).standard_normal((T * B, 2 * H)).astype(dtype))  # (T B, 2H)
        t_gemm = event_time(cp, partial(cp.matmul, g_pre.T, x_b.reshape(B * T, I)), rounds)
        flops = 2 * B * 2 * H * T * I
        prob = make_problem(5, T=T, B=B, I=I, H=H, dtype=dtype, resets="random")
        back = bptt_grads(prob)
        p_d, traj, reset, g_c = checks.to_backend("cupy", prob.p, back.traj, prob.reset, back.g_c)
        t_driver = event_time(cp, partial(rtrl_segment, p_d, traj, reset, g_c, backend=be), rounds)
        t_driver_cpu = cpu_time(partial(rtrl_segment, prob.p, back.traj, prob.reset, back.g_c), 3)
        out["segment"][dn] = dict(
            carried_pass_ms=t_pass * 1e3, carried_pass_pipelined_ms=t_pass_pipelined * 1e3,
            carried_pass_host_ms=t_pass_host * 1e3, batched_gemm_ms=t_bgemm * 1e3,
            batched_gemm_TFLOPs=flops / t_bgemm / 1e12, large_gemm_TFLOPs=flops / t_gemm / 1e12,
            carried_pass_over_its_gemm=t_pass / t_bgemm,
            carried_pass_effective_TFLOPs=flops / t_pass / 1e12,
            rtrl_segment_driver_ms=t_driver * 1e3, rtrl_segment_numpy_cpu_ms=t_driver_cpu * 1e3,
            driver_speedup_vs_numpy_cpu=t_driver_cpu / t_driver)
    return out


def sweep(cp, be, quick: bool) -> dict:
    """The step kernel and the rtrl_segment driver over B: GPU (sliced and unsliced step kernel) and
    CPU_THREADS CPU cores (numba backend), side by side; cp None times the CPU side only."""
    from rtrl_ref.kernels import step_cupy

    cpu = get_backend("numba")
    H, I, T, dtype = 256, 257, 50, np.float32
    out = dict(H=H, I=I, T=T, dtype="float32", cpu_threads=CPU_THREADS, step={}, segment={})
    nominal = nominal_bandwidth(cp)["nominal_GBps"] if cp is not None else float("nan")
    for B in SWEEP_B[:2] if quick else SWEEP_B:
        case = checks.step_inputs(0, B, H, I, dtype, "random")
        bytes_ = (4 * B * H * I + B * I) * np.dtype(dtype).itemsize
        row = dict(bytes_per_step=bytes_)
        with cpu_threads(CPU_THREADS):
            row["cpu_ms"] = cpu_time(partial(cpu.trace_step_accumulate, *case), 3) * 1e3
        if cp is not None:
            on_device = checks.to_backend("cupy", *case)
            for tag, target in (("gpu", step_cupy.TARGET_THREADS), ("gpu_unsliced", 0)):
                with patched(step_cupy, "TARGET_THREADS", target):
                    t = event_time(cp, partial(be.trace_step_accumulate, *on_device), 10 if quick else 25)
                row[f"{tag}_ms"] = t * 1e3
                row[f"{tag}_GBps"] = bytes_ / t / 1e9
            row["slices"] = step_cupy.n_slices(B, H * I)
            row["host_ms"] = host_time(cp, partial(be.trace_step_accumulate, *on_device)) * 1e3
            t = pipelined_time(cp, partial(be.trace_step_accumulate, *on_device))
            row["gpu_pipelined_ms"] = t * 1e3
            row["gpu_pipelined_GBps"] = bytes_ / t / 1e9
            row["pipelined_fraction_of_nominal"] = bytes_ / t / 1e9 / nominal
            if B == SWEEP_B[-1]:
                row["pipelined_GBps_by_target_threads"] = {}
                for target in (2**18, 2**19, 2**20, 2**21, 2**22):
                    with patched(step_cupy, "TARGET_THREADS", target):
                        t = pipelined_time(cp, partial(be.trace_step_accumulate, *on_device))
                    row["pipelined_GBps_by_target_threads"][str(target)] = bytes_ / t / 1e9
            row["gpu_speedup_vs_cpu"] = row["cpu_ms"] / row["gpu_ms"]
        out["step"][str(B)] = row
        prob = make_problem(5, T=T, B=B, I=I, H=H, dtype=dtype, resets="random")
        back = bptt_grads(prob)
        seg = dict(flops_carried=2 * B * 2 * H * T * I)
        with cpu_threads(CPU_THREADS):
            seg["cpu_ms"] = cpu_time(partial(rtrl_segment, prob.p, back.traj, prob.reset, back.g_c,
                                             backend=cpu), 2) * 1e3
        if cp is not None:
            p_d, traj, reset, g_c = checks.to_backend("cupy", prob.p, back.traj, prob.reset, back.g_c)
            seg["gpu_ms"] = event_time(cp, partial(rtrl_segment, p_d, traj, reset, g_c, backend=be),
                                       5 if quick else 10) * 1e3
            seg["gpu_speedup_vs_cpu"] = seg["cpu_ms"] / seg["gpu_ms"]
            seg["host_ms"] = host_time(cp, partial(rtrl_segment, p_d, traj, reset, g_c, backend=be)) * 1e3
        out["segment"][str(B)] = seg
        print(f"sweep B={B}: step {row}, segment {seg}", flush=True)
    return out


def write(report: dict, path: str):
    with open(path, "w") as f:
        json.dump(report, f, indent=1)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = os.path.join(os.environ["OUT"], "gpu_check.json") if os.environ.get("OUT") else "gpu_check.json"
    ap.add_argument("--out", default=default_out)
    ap.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    ap.add_argument("--backend", default="cupy", help="backend under check (default cupy)")
    ap.add_argument("--dry-run", action="store_true",
                    help="correctness only, on the CPU with the numba backend (no GPU needed)")
    ap.add_argument("--cpu-sweep", action="store_true",
                    help=f"only the CPU side of the B sweep ({CPU_THREADS} threads, numba), no GPU needed")
    args = ap.parse_args(argv)
    if args.cpu_sweep:
        report = dict(command="python scripts/gpu_check.py --cpu-sweep" + (" --quick" if args.quick else ""),
                      host=platform.node(), processor=platform.processor(), python=platform.python_version(),
                      numpy=np.__version__, sweep=sweep(None, None, args.quick))
        write(report, args.out)
        print(f"gpu_check: wrote {args.out}")
        return 0
    backend = "numba" if args.dry_run else args.backend
    t0 = time.perf_counter()
    report = dict(command="python scripts/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                  host=platform.node(), python=platform.python_version(), numpy=np.__version__, backend=backend)
    try:
        be = get_backend(backend)
        if backend == "cupy":
            from rtrl_ref.kernels.cupy_backend import require_cupy

            cp = require_cupy()
            report["cupy"] = cp.__version__
            report["cuda_runtime"] = cp.cuda.runtime.runtimeGetVersion()
            report["device"] = nominal_bandwidth(cp)
    except (ImportError, RuntimeError, ValueError) as err:
        report["error"] = str(err)
        print(f"gpu_check: {err}", file=sys.stderr)
        write(report, args.out)
        return 2
    try:
        found = correctness(backend, args.quick)
    except Exception as err:  # a kernel that does not compile or crashes: keep the report
        report["correctness_error"] = repr(err)
        print(f"gpu_check: correctness crashed: {err!r}", file=sys.stderr)
        found = [dict(name="correctness crashed", rel=float("inf"), tol=0.0, ok=False)]
    failed = [c for c in found if not c["ok"]]
    report["checks_total"] = len(found)
    report["checks_failed"] = failed
    agreement = [c for c in found if not c["name"].startswith("negative twin")]
    report["max_rel"] = {dn: max((c["rel"] for c in agreement if dn in c["name"]), default=0.0)
                         for dn in ("float32", "float64")}
    print(f"correctness ({backend}): {len(found) - len(failed)}/{len(found)} passed; max rel {report['max_rel']}")
    for c in failed:
        print(f"FAILED {c['name']}: rel {c['rel']:.3e} tol {c['tol']:.1e}", file=sys.stderr)
    if backend == "cupy":
        for key, measure in (("timings", timings), ("sweep", sweep)):
            try:
                report[key] = measure(cp, be, args.quick)
            except Exception as err:  # timings are informative; keep the correctness result
                report[f"{key}_error"] = repr(err)
            print(json.dumps(report.get(key, report.get(f"{key}_error")), indent=1), flush=True)
            write(report, args.out)
    report["seconds"] = time.perf_counter() - t0
    write(report, args.out)
    print(f"gpu_check: wrote {args.out} in {report['seconds']:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
