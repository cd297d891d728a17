"""The measurements, one function per task; each runs inside a worker subprocess whose thread
counts were fixed before NumPy was imported, and returns a JSON-able dict.

Everything timed is a public library function: the drivers `elstm_forward`, `bptt`,
`rtrl_segment`, `rtrl_sequence` on a backend object, or a backend's kernel.

    ops         per-step kernel vs DRAM triad and vs NumPy (goal 1, Part A), segment form vs
                BPTT and vs the step loop (goal 3), the library drivers numba vs numpy (Part A);
                the same op set is timed at 1 and 2 threads for goal 4
    torch       per-step kernel vs the PyTorch-eager formulation (goal 2; skipped without torch)
    memory      peak memory of online RTRL and of full BPTT vs T, and the RTRL state (goal 5)
    warm_start  first call of every kernel in a fresh process (goal 7)
"""

from __future__ import annotations

import time

import numpy as np

from rtrl_ref import traces as ref
from rtrl_ref.bench import cases
from rtrl_ref.bench.timing import interleaved, peak_bytes, thread_settings
from rtrl_ref.bench.triad import triad, triad_arrays
from rtrl_ref.bptt import bptt
from rtrl_ref.kernels import get_backend, numba_backend
from rtrl_ref.params import ELSTMParams
from rtrl_ref.rtrl import rtrl_segment, rtrl_sequence
from rtrl_ref.unroll import elstm_forward


def _ms(t) -> float:
    return t.median_s * 1e3


def _fresh_grads(grads: ELSTMParams) -> ELSTMParams:
    return ELSTMParams(*(np.zeros_like(a) for a in grads))


# One step call takes milliseconds and the triad tens of them, so the step timings (and the
# segment timings at small B) afford 4x the rounds of the other ops: their medians then move less
# with the shared machine's bandwidth, which varied from 10 to 16 GB/s between runs of the same
# process here.
STEP_ROUNDS_FACTOR = 4


# The fused step is timed in steady state: one timing is STEP_COPIES back-to-back calls, each on
# its own copy of the traces (8 copies are 134 MB in float32 and 270 MB in float64 at the default
# sizes, far beyond the 32 MiB L3), so no call finds its traces in cache and each one pays for
# writing back the lines its predecessor left dirty, about its own volume, as a streaming kernel
# does in a loop. A single call timed right after the triad instead paid for the triad's dirty
# lines (up to an L3 of them: as much again as a float32 call's own writes); that single-call
# ratio is still reported (`*_single_call`).
STEP_COPIES = 8


def step_ops(B, H, I, dtype, rounds, triad_n) -> dict:
    """Fused per-step update: numba serial/parallel vs NumPy reference vs single-thread triad."""
    case = cases.step_case(B, H, I, dtype)
    copies = {k: [case.traces.copy() for _ in range(STEP_COPIES)] for k in ("serial", "parallel")}
    grads = {k: _fresh_grads(case.grads) for k in ("serial", "parallel", "single")}
    S_single = case.traces.copy()
    kernels = {k: numba_backend.backend(parallel=k == "parallel").trace_step_accumulate
               for k in ("serial", "parallel")}

    def steady(k):
        def run():
            for S in copies[k]:
                kernels[k](S, case.cache, case.reset_t, case.g_c_t, grads[k])
        return run

    a, b, c, s = triad_arrays(triad_n, dtype)
    t = interleaved({
        "triad": lambda: triad(a, b, c, s),
        "step_numba_single_call": lambda: kernels["serial"](
            S_single, case.cache, case.reset_t, case.g_c_t, grads["single"]),
        "step_numba": steady("serial"),
        "step_numba_parallel": steady("parallel"),
        "step_numpy": lambda: ref.trace_step_accumulate(case.traces, case.cache, case.reset_t,
                                                        case.g_c_t, case.grads),
    }, rounds=STEP_ROUNDS_FACTOR * rounds)
    per_call = {k: (STEP_COPIES if k in ("step_numba", "step_numba_parallel") else 1) for k in t}
    median = {k: v.median_s / per_call[k] for k, v in t.items()}
    best = {k: v.min_s / per_call[k] for k, v in t.items()}
    itemsize = np.dtype(dtype).itemsize
    step_bytes = (4 * B * H * I + B * I) * itemsize
    triad_bytes = 3 * triad_n * itemsize
    triad_bw = triad_bytes / median["triad"]
    out = dict(times_ms={k: v * 1e3 for k, v in median.items()}, step_bytes=step_bytes,
               triad_bytes=triad_bytes, triad_GBps=triad_bw / 1e9, step_copies=STEP_COPIES)
    out["min_times_ms"] = {k: v * 1e3 for k, v in best.items()}
    for k in ("step_numba", "step_numba_parallel", "step_numba_single_call"):
        bw = step_bytes / median[k]
        out[f"{k}_GBps"] = bw / 1e9
        out[f"{k}_over_triad"] = bw / triad_bw
        # the same ratio from the fastest round of each (less sensitive to other load on the machine)
        out[f"{k}_over_triad_best_round"] = best["triad"] / best[k] * step_bytes / triad_bytes
    out["speedup_numba_vs_numpy"] = median["step_numpy"] / median["step_numba"]
    return out


def segment_ops(T, B, H, I, dtype, rounds, with_library: bool = True) -> dict:
    """One unroll through the library drivers on the numba backend: forward + BPTT vs segment-form
    RTRL vs the step loop; the drivers and the carried pass numba vs numpy.

    rtrl_segment runs as a learner runs it: carried-in traces overwritten (overwrite_traces=True),
    on the trajectory of an earlier forward pass; it computes the input gradient g_x too."""
    be = numba_backend.backend(parallel=False)
    c = cases.segment_case(T, B, H, I, dtype)
    S_rtrl = c.traces.copy()
    S_fr = c.traces.copy()
    W = np.concatenate([c.p.W_z, c.p.W_f])                            # (2H, I)
    x2d = c.x.reshape(T * B, I)                                       # (TB, I)

    def forward():
        return elstm_forward(c.p, c.x, c.reset, c.c_0, backend=be)[1]

    def bptt_segment():
        return bptt(c.p, forward(), c.reset, c.g_c, backend=be)

    def forward_rtrl():
        return rtrl_segment(c.p, forward(), c.reset, c.g_c, S_fr, backend=be, overwrite_traces=True)

    ops = {
        "gemm_forward": lambda: x2d @ W.T,
        "forward": forward,
        "bptt_backward": lambda: bptt(c.p, c.traj, c.reset, c.g_c, backend=be),
        "bptt_segment": bptt_segment,
        "rtrl_segment": lambda: rtrl_segment(c.p, c.traj, c.reset, c.g_c, S_rtrl, backend=be,
                                             overwrite_traces=True),
        "forward_rtrl_segment": forward_rtrl,
        "step_loop": lambda: rtrl_sequence(c.traj, c.reset, c.g_c, c.traces, backend=be),
    }
    if with_library:
        numpy_be = get_backend("numpy")
        rng = np.random.default_rng(2)

        def draw(*shape):
            return rng.standard_normal(shape).astype(dtype)

        pass_args = (draw(B, H), (0.5 * np.ones((B, H))).astype(dtype), draw(T, B, H), draw(T, B, H),
                     c.x, c.traj.c_tm1)
        S_pass = c.traces.copy()
        ops.update({
            "library_rtrl_segment_numpy": lambda: rtrl_segment(c.p, c.traj, c.reset, c.g_c, c.traces,
                                                               backend=numpy_be),
            "library_rtrl_segment_numba_copy": lambda: rtrl_segment(c.p, c.traj, c.reset, c.g_c, c.traces,
                                                                    backend=be),
            "library_bptt_numpy": lambda: bptt(c.p, c.traj, c.reset, c.g_c, backend=numpy_be),
            "library_forward_numpy": lambda: elstm_forward(c.p, c.x, c.reset, c.c_0, backend=numpy_be),
            "carried_pass_numba": lambda: be.segment_carried_pass(S_pass, *pass_args),
            "carried_pass_numpy": lambda: numpy_be.segment_carried_pass(c.traces, *pass_args),
        })
    t = interleaved(ops, rounds=rounds)
    ms = {k: _ms(v) for k, v in t.items()}
    out = dict(times_ms=ms,
               gemm_forward_GFLOPs=2 * T * B * I * 2 * H / t["gemm_forward"].median_s / 1e9,
               rtrl_over_bptt=ms["rtrl_segment"] / ms["bptt_segment"],
               rtrl_over_bptt_backward=ms["rtrl_segment"] / ms["bptt_backward"],
               forward_rtrl_over_bptt=ms["forward_rtrl_segment"] / ms["bptt_segment"],
               step_loop_over_rtrl=ms["step_loop"] / ms["rtrl_segment"])
    if with_library:
        out["library_segment_speedup_numba_vs_numpy"] = (ms["library_rtrl_segment_numpy"]
                                                         / ms["rtrl_segment"])
        out["library_bptt_speedup_numba_vs_numpy"] = ms["library_bptt_numpy"] / ms["bptt_backward"]
        out["library_forward_speedup_numba_vs_numpy"] = ms["library_forward_numpy"] / ms["forward"]
        out["carried_pass_speedup_numba_vs_numpy"] = ms["carried_pass_numpy"] / ms["carried_pass_numba"]
    return out


def ops(sizes: dict, dtypes: list[str], rounds: int, triad_n: int, segment_B: list[int]) -> dict:
    """Everything timed for goals 1, 3, 4 and Part A, in this process's thread setting."""
    out = dict(threads=thread_settings(), sizes=sizes, step={}, segment={})
    for dn in dtypes:
        dtype = np.dtype(dn)
        out["step"][dn] = step_ops(sizes["B"], sizes["H"], sizes["I"], dtype, rounds, triad_n)
        out["segment"][dn] = {}
        for B in segment_B:
            # small batches run in about a millisecond: more rounds for the same robustness
            n_rounds = rounds if B == sizes["B"] else STEP_ROUNDS_FACTOR * rounds
            out["segment"][dn][str(B)] = segment_ops(sizes["T"], B, sizes["H"], sizes["I"], dtype,
                                                     n_rounds, with_library=B == sizes["B"])
    return out


def _torch_candidates(case, threads: int) -> dict:
    """Closures over one case: the numba step (serial; parallel too with threads > 1) and torch."""
    from rtrl_ref.bench import torch_eager

    S, cache, keep, g_c, G = torch_eager.to_torch(case)
    variants = ("serial", "parallel") if threads > 1 else ("serial",)
    names = dict(serial="step_numba", parallel="step_numba_parallel")
    candidates = {}
    for variant in variants:
        step = numba_backend.backend(parallel=variant == "parallel").trace_step_accumulate
        S_numba, G_numba = case.traces.copy(), _fresh_grads(case.grads)

        def run(step=step, S_numba=S_numba, G_numba=G_numba):
            step(S_numba, case.cache, case.reset_t, case.g_c_t, G_numba)
        candidates[names[variant]] = run
    candidates["step_torch_eager"] = lambda: torch_eager.step(S, cache, keep, g_c, G)
    return candidates


def torch_ops(sizes: dict, dtypes: list[str], rounds: int, B_list: list[int] | None = None) -> dict:
    """Per-step update: Numba (serial, and parallel when threads > 1) vs the PyTorch-eager
    formulation, in this worker's thread setting, for every B in B_list; speedup = torch time /
    the faster Numba variant's time."""
    from rtrl_ref.bench import torch_eager

    if not torch_eager.available():
        return dict(skipped="torch not installed")
    import numba
    import torch

    threads = numba.get_num_threads()
    out = dict(torch=torch_eager.version(), torch_threads=torch.get_num_threads(), numba_threads=threads)
    for dn in dtypes:
        out[dn] = {}
        for B in B_list or [sizes["B"]]:
            case = cases.step_case(B, sizes["H"], sizes["I"], np.dtype(dn))
            with torch.no_grad():
                t = interleaved(_torch_candidates(case, threads), rounds=STEP_ROUNDS_FACTOR * rounds)
            numba_best = min(t[k].median_s for k in t if k.startswith("step_numba"))
            out[dn][str(B)] = dict(times_ms={k: _ms(v) for k, v in t.items()},
                                   speedup=t["step_torch_eager"].median_s / numba_best)
    return out


# ---------------------------------------------------------------------------------------------
# memory (goal 5): tracemalloc sees every NumPy data buffer


def rtrl_online(p, x_pool, T: int, B: int, dtype):
    """Fully online RTRL over T steps (cell step, immediate gradient, fused trace step); holds only
    the state (c, traces), the gradient accumulators and one step's temporaries."""
    from rtrl_ref.cell import cell_step
    from rtrl_ref.kernels import step_numba

    H, I = p.W_z.shape
    state = ref.zero_state(B, H, I, dtype)
    grads = ref.zero_grads(H, I, dtype)
    traces, c_t = state.traces, state.c
    reset_t = np.zeros(B, bool)                                       # (B,)
    for t in range(T):
        c_t, cache = cell_step(p, x_pool[t % len(x_pool)], c_t)
        g_c_t = cache.c_t * dtype.type(0.01)                          # (B, H) a stand-in loss gradient
        traces, grads = step_numba.trace_step_accumulate(traces, cache, reset_t, g_c_t, grads)
    return grads


def rtrl_segmented(p, x_pool, T: int, B: int, dtype, M: int = 50):
    """Exact RTRL as a learner runs it: unrolls of M steps, segment form, traces carried across
    unrolls; holds the state, the gradient and one unroll's activations (constant in T)."""
    H, I = p.W_z.shape
    traces = ref.zero_traces(B, H, I, dtype)
    c_t = np.zeros((B, H), dtype)                                     # (B, H)
    grads = ref.zero_grads(H, I, dtype)
    for t0 in range(0, T, M):
        m = min(M, T - t0)
        x = x_pool[np.arange(t0, t0 + m) % len(x_pool)]               # (m, B, I)
        reset = np.zeros((m, B), bool)                                # (m, B)
        c, traj = elstm_forward(p, x, reset, c_t, backend="numba")
        g_c = c * dtype.type(0.01)                                    # (m, B, H)
        seg = rtrl_segment(p, traj, reset, g_c, traces, backend="numba", overwrite_traces=True)
        traces = seg.traces
        grads = ELSTMParams(*(a + b for a, b in zip(grads, seg.grads)))
        c_t = c[-1]
    return grads


def bptt_full(p, x_pool, T: int, B: int, dtype):
    """Full (untruncated) BPTT over T steps: the inputs and activations of all T steps are held."""
    H, I = p.W_z.shape
    reps = -(-T // len(x_pool))
    x = np.concatenate([x_pool] * reps)[:T]                           # (T, B, I)
    reset = np.zeros((T, B), bool)                                    # (T, B)
    c, traj = elstm_forward(p, x, reset, np.zeros((B, H), dtype), backend="numba")
    g_c = c * dtype.type(0.01)                                        # (T, B, H)
    return bptt(p, traj, reset, g_c, backend="numba").grads


def memory(H: int, I: int, dtype: str, T_grid: list[int], B_state: int, T_state: list[int],
           T_online_max: int = 10000) -> dict:
    from rtrl_ref.params import init_elstm

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    p = init_elstm(rng, I, H, dtype)
    out = dict(H=H, I=I, dtype=dtype.name, method="tracemalloc peak (NumPy data buffers) during the "
               "run, excluding parameters", T=T_grid, rtrl_bytes=[], bptt_bytes=[], rtrl_seconds=[],
               bptt_seconds=[], T_online=[t for t in T_grid if t <= T_online_max], rtrl_online_bytes=[],
               rtrl_online_seconds=[], rtrl_form="segment form, unrolls of 50 steps, traces carried")
    x_pool = rng.standard_normal((64, 1, I)).astype(dtype)            # (64, 1, I) reused inputs
    rtrl_online(p, x_pool, 2, 1, dtype)                               # warm-up (JIT cache load)
    rtrl_segmented(p, x_pool, 2, 1, dtype)
    bptt_full(p, x_pool, 2, 1, dtype)

    def timed_peak(fn, T, B, pool):
        t0 = time.perf_counter()
        peak = peak_bytes(lambda: fn(p, pool, T, B, dtype))
        return peak, time.perf_counter() - t0

    for T in out["T_online"]:
        peak, seconds = timed_peak(rtrl_online, T, 1, x_pool)
        out["rtrl_online_bytes"].append(peak)
        out["rtrl_online_seconds"].append(seconds)
    for T in T_grid:
        for key, fn in (("rtrl", rtrl_segmented), ("bptt", bptt_full)):
            peak, seconds = timed_peak(fn, T, 1, x_pool)
            out[f"{key}_bytes"].append(peak)
            out[f"{key}_seconds"].append(seconds)
    # the state a batch element carries, by array sizes and by tracemalloc (B_state elements)
    state = ref.zero_state(B_state, H, I, dtype)
    out["state_bytes_per_element"] = sum(a.nbytes for a in (state.c, *state.traces)) / B_state
    out["state_formula_bytes"] = (2 * H * I + 5 * H) * dtype.itemsize
    x_pool_b = rng.standard_normal((64, B_state, I)).astype(dtype)    # (64, B, I)
    out["B_state"] = B_state
    out["T_state"] = T_state
    out["online_peak_per_element"] = [timed_peak(rtrl_online, T, B_state, x_pool_b)[0] / B_state
                                      for T in T_state]
    out["bptt_min_bytes_per_step_model"] = (3 * H + I) * dtype.itemsize
    return out


# ---------------------------------------------------------------------------------------------
# warm start (goal 7)


def warm_start() -> dict:
    """First call of every library kernel, float32 and float64, in this (fresh) process."""
    t_import = time.perf_counter()
    from rtrl_ref.kernels import adjoint_numba, numba_backend, segment_numba, step_numba
    import_s = time.perf_counter() - t_import
    kernels = {
        "step_serial": step_numba.step_serial, "step_parallel": step_numba.step_parallel,
        "carry_serial": segment_numba.carry_serial, "carry_parallel": segment_numba.carry_parallel,
        "bptt_adjoint": adjoint_numba.bptt_adjoint,
        "segment_coefficients": adjoint_numba.segment_coefficients,
    }
    t0 = time.perf_counter()
    for dn in ("float32", "float64"):
        dtype = np.dtype(dn)
        c = cases.step_case(2, 3, 4, dtype)
        for parallel in (False, True):
            be = numba_backend.backend(parallel=parallel)
            be.trace_step_accumulate(c.traces.copy(), c.cache, c.reset_t, c.g_c_t, _fresh_grads(c.grads))
        s = cases.segment_case(3, 2, 3, 4, dtype)
        for parallel in (False, True):
            be = numba_backend.backend(parallel=parallel)
            rtrl_segment(s.p, s.traj, s.reset, s.g_c, s.traces, backend=be)
            be.segment_carried_pass(s.traces.copy(), s.g_c[0], s.g_c[0], s.g_c, s.g_c, s.x, s.traj.c_tm1)
        bptt(s.p, s.traj, s.reset, s.g_c, backend="numba")
    first_calls_s = time.perf_counter() - t0
    stats = {}
    for name, k in kernels.items():
        st = k.stats
        stats[name] = dict(signatures=len(k.signatures), cache_hits=sum(st.cache_hits.values()),
                           cache_misses=sum(st.cache_misses.values()))
    return dict(import_s=import_s, first_calls_s=first_calls_s, kernels=stats,
                all_from_cache=all(v["cache_misses"] == 0 and v["cache_hits"] > 0 for v in stats.values()))
