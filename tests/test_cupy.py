"""CuPy backend: device-specific behaviour (the NumPy-equality properties for every backend,
cupy included, are in test_kernels.py). Skips cleanly without cupy or without a usable GPU."""

import numpy as np
import pytest

from rtrl_ref.traces import segment_carried_pass, trace_step_accumulate
from verify.checks import carried_inputs, copy_tree, step_inputs
from verify.compare import assert_fields_close, compare_fields, tolerance


def _cupy_or_none():
    try:
        import cupy
    except ImportError:
        return None
    try:
        return cupy if cupy.is_available() else None
    except Exception:  # a broken CUDA install counts as unavailable
        return None


cp = _cupy_or_none()
needs_gpu = pytest.mark.skipif(cp is None, reason="cupy not importable or no CUDA GPU (cupy.is_available() False)")


@pytest.mark.skipif(cp is not None, reason="cupy and a GPU are available")
def test_cupy_backend_unavailable_raises_clear_error():
    from rtrl_ref.kernels import available_backends, get_backend

    with pytest.raises((ImportError, RuntimeError), match="cupy backend: "):
        get_backend("cupy")
    assert "cupy" not in available_backends()


def _same_buffer(a, b) -> bool:
    def ptr(x):
        return getattr(getattr(x, "data", None), "ptr", None)

    return a is b or (ptr(a) is not None and ptr(a) == ptr(b))


def _dev(tree):
    return type(tree)(*(cp.asarray(a) for a in tree))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_updates_device_arrays_in_place(dtype):
    from rtrl_ref.kernels import get_backend

    be = get_backend("cupy")
    traces, cache, reset_t, g_c_t, grads = step_inputs(0, 5, 33, 130, dtype)
    want_S, want_G = trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, copy_tree(grads))
    S_d, G_d = _dev(traces), _dev(grads)
    got_S, got_G = be.trace_step_accumulate(S_d, _dev(cache), cp.asarray(reset_t), cp.asarray(g_c_t), G_d)
    assert _same_buffer(got_S.W_z, S_d.W_z) and _same_buffer(got_G.W_f, G_d.W_f), \
        "device arrays were copied instead of updated in place"
    assert isinstance(got_S.W_z, cp.ndarray)
    assert_fields_close(f"cupy step traces {np.dtype(dtype).name}", got_S, want_S, tolerance("kernel", dtype))
    assert_fields_close(f"cupy step grads {np.dtype(dtype).name}", got_G, want_G, tolerance("kernel", dtype))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_carried_pass_in_several_chunks(dtype, monkeypatch):
    """A small chunk budget forces several GEMM chunks; the result must not change."""
    from rtrl_ref.kernels import get_backend, segment_cupy

    T, B, H, I = 7, 5, 9, 17
    monkeypatch.setattr(segment_cupy, "MAX_CHUNK_BYTES", 2 * 2 * H * I * np.dtype(dtype).itemsize)
    traces, *args = carried_inputs(1, T, B, H, I, dtype)
    want_G, want_S = segment_carried_pass(traces.copy(), *args)
    carried_in = traces.copy()
    got_G, got_S = get_backend("cupy").segment_carried_pass(_dev(traces), *(cp.asarray(a) for a in args))
    tol = tolerance("kernel", dtype)
    assert_fields_close("cupy carried grads (chunked)", got_G, want_G, tol)
    assert_fields_close("cupy carried traces (chunked)", got_S, want_S, tol)
    # negative twin: a chunk boundary bug (here: a chunk skipped) must be caught
    bad_S = got_S._replace(W_z=cp.asarray(want_S.W_z).copy())
    bad_S.W_z[2:4] = cp.asarray(carried_in.W_z[2:4])
    assert not all(c.ok for c in compare_fields("t", bad_S, want_S, tol))


@pytest.mark.gpu
@needs_gpu
def test_cupy_rejects_bad_shapes():
    from rtrl_ref.kernels import get_backend

    be = get_backend("cupy")
    traces, cache, reset_t, g_c_t, grads = step_inputs(2, 3, 4, 5, np.float64)
    with pytest.raises(ValueError, match=r"cache\.x_t: expected shape \(B=3, I=5\), got \(3, 6\)"):
        be.trace_step_accumulate(_dev(traces), _dev(cache._replace(x_t=np.zeros((3, 6)))),
                                 cp.asarray(reset_t), cp.asarray(g_c_t), _dev(grads))
    with pytest.raises(ValueError, match=r"reset_t: expected a bool array"):
        be.trace_step_accumulate(_dev(traces), _dev(cache), cp.zeros(3, cp.int32), cp.asarray(g_c_t), _dev(grads))


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B, min_chunk", [(2, 1), (7, 3), (33, 8), (64, 8)])
def test_step_kernel_sliced_over_the_batch(dtype, B, min_chunk, monkeypatch):
    """Slicing b (partial sums added in a second kernel), ragged last slice included, changes nothing;
    dropping one slice's partial sum must be caught."""
    from rtrl_ref.kernels import get_backend, step_cupy

    monkeypatch.setattr(step_cupy, "TARGET_THREADS", 2**40)
    monkeypatch.setattr(step_cupy, "MIN_CHUNK", min_chunk)
    assert step_cupy.n_slices(B, 5 * 130) == max(1, B // min_chunk)
    traces, cache, reset_t, g_c_t, grads = step_inputs(3, B, 5, 130, dtype, "random")
    want_S, want_G = trace_step_accumulate(traces.copy(), cache, reset_t, g_c_t, copy_tree(grads))
    got_S, got_G = get_backend("cupy").trace_step_accumulate(
        _dev(traces), _dev(cache), cp.asarray(reset_t), cp.asarray(g_c_t), _dev(grads))
    tol = tolerance("kernel", dtype)
    assert_fields_close("sliced step traces", got_S, want_S, tol)
    assert_fields_close("sliced step grads", got_G, want_G, tol)
    if B > 1:   # negative twin: the first row's contribution to W_z's gradient left out
        S_0 = want_S.W_z[0] * g_c_t[0][:, None]                                  # (H, I)
        bad_G = got_G._replace(W_z=got_G.W_z - cp.asarray(S_0))
        assert not all(c.ok for c in compare_fields("g", bad_G, want_G, tol))
