"""The measurements, one function per task; each runs inside a worker subprocess whose thread
counts were fixed before NumPy was imported, and returns a JSON-able dict.

    ops         per-step kernel vs DRAM triad and vs NumPy (goal 1, Part A), segment form vs
                BPTT and vs the step loop (goal 3), the library drivers numba vs numpy (Part A);
                the same op set is timed at 1 and 2 threads for goal 4
    torch       per-step kernel vs the PyTorch-eager formulation (goal 2; skipped without torch)
    memory      peak memory of online RTRL and of full BPTT vs T, and the RTRL state (goal 5)
    warm_start  first call of every kernel in a fresh process (goal 7)
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import numpy as np

from rtrl_ref import rtrl
from rtrl_ref.bench import cases, pipelines
from rtrl_ref.bench.timing import interleaved, thread_settings
from rtrl_ref.bench.triad import triad, triad_arrays
from rtrl_ref.params import ELSTMParams


def _ms(t) -> float:
    return t.median_s * 1e3


def _fresh_grads(grads: ELSTMParams) -> ELSTMParams:
    return ELSTMParams(*(np.zeros_like(a) for a in grads))


# One step call takes milliseconds and the triad tens of them, so the step timings (and the
# segment timings at small B) afford 4x the rounds of the other ops: their medians then move less with the shared machine's bandwidth,
# which varied from 10 to 16 GB/s between runs of the same process here.
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
    from rtrl_ref.kernels import step_numba

    case = cases.step_case(B, H, I, dtype)
    copies = {k: [case.traces.copy() for _ in range(STEP_COPIES)] for k in ("serial", "parallel")}
    grads = {k: _fresh_grads(case.grads) for k in ("serial", "parallel", "single")}
    S_single = case.traces.copy()
    kernels = dict(serial=step_numba.trace_step_accumulate,
                   parallel=step_numba.trace_step_accumulate_parallel)

    def steady(k):
        def run():
            for S in copies[k]:
                kernels[k](S, case.cache, case.reset_t, case.g_c_t, grads[k])
        return run

    a, b, c, s = triad_arrays(triad_n, dtype)
    t = interleaved({
        "triad": lambda: triad(a, b, c, s),
        "step_numba_single_call": lambda: step_numba.trace_step_accumulate(
            S_single, case.cache, case.reset_t, case.g_c_t, grads["single"]),
        "step_numba": steady("serial"),
        "step_numba_parallel": steady("parallel"),
        "step_numpy": lambda: rtrl.trace_step_accumulate(case.traces, case.cache, case.reset_t,
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
    """One unroll: BPTT segment vs segment-form RTRL vs step loop; library drivers numba vs numpy."""
    from rtrl_ref.kernels import numba_backend, step_numba

    c = cases.segment_case(T, B, H, I, dtype)
    S_rtrl = c.traces.copy()
    S_fr = c.traces.copy()
    S_loop = c.traces.copy()
    G_loop = rtrl.zero_grads(H, I, dtype)
    x2d = c.x.reshape(T * B, I)
    # the faster forward (Numba recurrence with scalar tanh, or NumPy's SIMD tanh per step) serves
    # BPTT and RTRL alike
    pick = interleaved({
        "forward_numba": lambda: pipelines.forward_numba(c.p, c.W, c.x, c.keep, c.c_0),
        "forward_numpy": lambda: pipelines.forward_numpy(c.p, c.W, c.x, c.keep, c.c_0),
    }, rounds=3)
    forward_name = min(pick, key=lambda k: pick[k].median_s)
    forward = getattr(pipelines, forward_name)

    def bptt_segment():
        traj = forward(c.p, c.W, c.x, c.keep, c.c_0)
        return pipelines.bptt_backward(c.W, traj, c.keep, c.g_c)

    def forward_rtrl():
        traj = forward(c.p, c.W, c.x, c.keep, c.c_0)
        return pipelines.rtrl_backward(c.W, traj, c.keep, c.g_c, S_fr)

    ops = {
        "gemm_forward": lambda: x2d @ c.W.T,
        "forward": lambda: forward(c.p, c.W, c.x, c.keep, c.c_0),
        "bptt_segment": bptt_segment,
        "rtrl_segment": lambda: pipelines.rtrl_backward(c.W, c.traj, c.keep, c.g_c, S_rtrl),
        "rtrl_segment_no_input_grad": lambda: pipelines.rtrl_backward(c.W, c.traj, c.keep, c.g_c, S_rtrl,
                                                                      input_grad=False),
        "forward_rtrl_segment": forward_rtrl,
        "step_loop": lambda: pipelines.step_loop(step_numba.trace_step_accumulate, c.traj, c.reset,
                                                 c.g_c, S_loop, G_loop),
    }
    if with_library:
        be = numba_backend.backend()
        rng = np.random.default_rng(2)
        draw = lambda *shape: rng.standard_normal(shape).astype(dtype)
        pass_args = (draw(B, H), (0.5 * np.ones((B, H))).astype(dtype), draw(T, B, H), draw(T, B, H),
                     c.x, c.traj.c_tm1)
        S_pass = c.traces.copy()
        ops.update({
            "library_rtrl_segment_numba": lambda: rtrl.rtrl_segment(c.p, c.traj, c.reset, c.g_c, c.traces,
                                                                    backend="numba"),
            "library_rtrl_segment_numpy": lambda: rtrl.rtrl_segment(c.p, c.traj, c.reset, c.g_c, c.traces,
                                                                    backend="numpy"),
            "carried_pass_numba": lambda: be.segment_carried_pass(S_pass, *pass_args),
            "carried_pass_numpy": lambda: rtrl.segment_carried_pass(c.traces, *pass_args),
        })
    t = interleaved(ops, rounds=rounds)
    ms = {k: _ms(v) for k, v in t.items()}
    out = dict(times_ms=ms, forward_impl=forward_name,
               forward_candidates_ms={k: _ms(v) for k, v in pick.items()},
               gemm_forward_GFLOPs=2 * T * B * I * 2 * H / t["gemm_forward"].median_s / 1e9,
               rtrl_over_bptt=ms["rtrl_segment"] / ms["bptt_segment"],
               forward_rtrl_over_bptt=ms["forward_rtrl_segment"] / ms["bptt_segment"],
               step_loop_over_rtrl=ms["step_loop"] / ms["rtrl_segment"],
               step_loop_over_rtrl_same_outputs=ms["step_loop"] / ms["rtrl_segment_no_input_grad"])
    if with_library:
        out["library_segment_speedup_numba_vs_numpy"] = (ms["library_rtrl_segment_numpy"]
                                                         / ms["library_rtrl_segment_numba"])
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


def torch_ops(sizes: dict, dtypes: list[str], rounds: int, B_list: list[int] | None = None) -> dict:
    """Per-step update: Numba (serial, and parallel when threads > 1) vs the PyTorch-eager
    formulation, in this worker's thread setting, for every B in B_list; speedup = torch time /
    the faster Numba variant's time."""
    from rtrl_ref.bench import torch_eager
    from rtrl_ref.kernels import step_numba

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
            S, cache, keep, g_c, G = torch_eager.to_torch(case)
            S_numba, G_numba = case.traces.copy(), _fresh_grads(case.grads)
            candidates = {
                "step_numba": lambda: step_numba.trace_step_accumulate(S_numba, case.cache, case.reset_t,
                                                                        case.g_c_t, G_numba),
                "step_torch_eager": lambda: torch_eager.step(S, cache, keep, g_c, G),
            }
            if threads > 1:
                S_par, G_par = case.traces.copy(), _fresh_grads(case.grads)
                candidates["step_numba_parallel"] = lambda: step_numba.trace_step_accumulate_parallel(
                    S_par, case.cache, case.reset_t, case.g_c_t, G_par)
            with torch.no_grad():
                t = interleaved(candidates, rounds=STEP_ROUNDS_FACTOR * rounds)
            numba_best = min(t[k].median_s for k in t if k.startswith("step_numba"))
            out[dn][str(B)] = dict(times_ms={k: _ms(v) for k, v in t.items()},
                                   speedup=t["step_torch_eager"].median_s / numba_best)
    return out


# ---------------------------------------------------------------------------------------------
# memory (goal 5): tracemalloc sees every NumPy data buffer


def _peak(fn) -> int:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def rtrl_online(p, W, x_pool, T: int, B: int, dtype):
    """Fully online RTRL over T steps (cell step, immediate gradient, fused trace step); holds only
    the state (c, traces), the gradient accumulators and one step's temporaries."""
    from rtrl_ref.cell import cell_step
    from rtrl_ref.kernels import step_numba

    H, I = p.W_z.shape
    state = rtrl.zero_state(B, H, I, dtype)
    grads = rtrl.zero_grads(H, I, dtype)
    traces, c_t = state.traces, state.c
    reset_t = np.zeros(B, bool)                                       # (B,)
    for t in range(T):
        c_t, cache = cell_step(p, x_pool[t % len(x_pool)], c_t)
        g_c_t = cache.c_t * dtype.type(0.01)                          # (B, H) a stand-in loss gradient
        traces, grads = step_numba.trace_step_accumulate(traces, cache, reset_t, g_c_t, grads)
    return grads


def rtrl_segmented(p, W, x_pool, T: int, B: int, dtype, M: int = 50):
    """Exact RTRL as a learner runs it: unrolls of M steps, segment form, traces carried across
    unrolls; holds the state, the gradient and one unroll's activations (constant in T)."""
    H, I = p.W_z.shape
    traces = rtrl.zero_traces(B, H, I, dtype)
    c_t = np.zeros((B, H), dtype)                                     # (B, H)
    grads = rtrl.zero_grads(H, I, dtype)
    for t0 in range(0, T, M):
        m = min(M, T - t0)
        x = x_pool[np.arange(t0, t0 + m) % len(x_pool)]               # (m, B, I)
        keep = np.ones((m, B))                                        # (m, B)
        traj = pipelines.forward_numba(p, W, x, keep, c_t)
        g_c = traj.c_t * dtype.type(0.01)                             # (m, B, H)
        step_grads, _, traces = pipelines.rtrl_backward(W, traj, keep, g_c, traces)
        grads = ELSTMParams(*(a + b for a, b in zip(grads, step_grads)))
        c_t = traj.c_t[-1]
    return grads


def bptt_full(p, W, x_pool, T: int, B: int, dtype):
    """Full (untruncated) BPTT over T steps: the inputs and activations of all T steps are held."""
    H, I = p.W_z.shape
    reps = -(-T // len(x_pool))
    x = np.concatenate([x_pool] * reps)[:T]                           # (T, B, I)
    keep = np.ones((T, B))                                            # (T, B)
    traj = pipelines.forward_numba(p, W, x, keep, np.zeros((B, H), dtype))
    g_c = traj.c_t * dtype.type(0.01)                                 # (T, B, H)
    return pipelines.bptt_backward(W, traj, keep, g_c)[0]


def memory(H: int, I: int, dtype: str, T_grid: list[int], B_state: int, T_state: list[int],
           T_online_max: int = 10000) -> dict:
    from rtrl_ref.params import init_elstm

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    p = init_elstm(rng, I, H, dtype)
    W = pipelines.stacked_weights(p)
    out = dict(H=H, I=I, dtype=dtype.name, method="tracemalloc peak (NumPy data buffers) during the "
               "run, excluding parameters", T=T_grid, rtrl_bytes=[], bptt_bytes=[], rtrl_seconds=[],
               bptt_seconds=[], T_online=[t for t in T_grid if t <= T_online_max], rtrl_online_bytes=[],
               rtrl_online_seconds=[], rtrl_form="segment form, unrolls of 50 steps, traces carried")
    x_pool = rng.standard_normal((64, 1, I)).astype(dtype)            # (64, 1, I) reused inputs
    rtrl_online(p, W, x_pool, 2, 1, dtype)                            # warm-up (JIT cache load)
    rtrl_segmented(p, W, x_pool, 2, 1, dtype)
    bptt_full(p, W, x_pool, 2, 1, dtype)
    for T in out["T_online"]:
        t0 = time.perf_counter()
        out["rtrl_online_bytes"].append(_peak(lambda: rtrl_online(p, W, x_pool, T, 1, dtype)))
        out["rtrl_online_seconds"].append(time.perf_counter() - t0)
    for T in T_grid:
        t0 = time.perf_counter()
        out["rtrl_bytes"].append(_peak(lambda: rtrl_segmented(p, W, x_pool, T, 1, dtype)))
        out["rtrl_seconds"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out["bptt_bytes"].append(_peak(lambda: bptt_full(p, W, x_pool, T, 1, dtype)))
        out["bptt_seconds"].append(time.perf_counter() - t0)
    # the state a batch element carries, by array sizes and by tracemalloc (B_state elements)
    state = rtrl.zero_state(B_state, H, I, dtype)
    out["state_bytes_per_element"] = sum(a.nbytes for a in (state.c, *state.traces)) / B_state
    out["state_formula_bytes"] = (2 * H * I + 5 * H) * dtype.itemsize
    x_pool_b = rng.standard_normal((64, B_state, I)).astype(dtype)    # (64, B, I)
    out["B_state"] = B_state
    out["T_state"] = T_state
    out["online_peak_per_element"] = [
        _peak(lambda: rtrl_online(p, W, x_pool_b, T, B_state, dtype)) / B_state for T in T_state]
    out["bptt_min_bytes_per_step_model"] = (3 * H + I) * dtype.itemsize
    return out


# ---------------------------------------------------------------------------------------------
# warm start (goal 7)


def warm_start() -> dict:
    """First call of every library kernel, float32 and float64, in this (fresh) process."""
    t_import = time.perf_counter()
    from rtrl_ref.kernels import adjoint_numba, forward_numba, numba_backend, segment_numba, step_numba
    import_s = time.perf_counter() - t_import
    kernels = {
        "step_serial": step_numba.step_serial, "step_parallel": step_numba.step_parallel,
        "carry_serial": segment_numba.carry_serial, "carry_parallel": segment_numba.carry_parallel,
        "forward_recurrence": forward_numba.forward_recurrence,
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
            pipelines.rtrl_backward(s.W, s.traj, s.keep, s.g_c, s.traces.copy(), parallel=parallel)
        pipelines.bptt_backward(s.W, s.traj, s.keep, s.g_c)
    first_calls_s = time.perf_counter() - t0
    stats = {}
    for name, k in kernels.items():
        st = k.stats
        stats[name] = dict(signatures=len(k.signatures), cache_hits=sum(st.cache_hits.values()),
                           cache_misses=sum(st.cache_misses.values()))
    return dict(import_s=import_s, first_calls_s=first_calls_s, kernels=stats,
                all_from_cache=all(v["cache_misses"] == 0 and v["cache_hits"] > 0 for v in stats.values()))
