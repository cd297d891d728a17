"""Conv2d and MaxPool2d: against naive loops, finite differences, the NumPy pool reference."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from rtrl_ref.r2ac.conv import (
    ConvParams,
    PoolCache,
    col2im,
    conv2d,
    conv2d_backward,
    im2col,
    init_conv,
    max_pool2d,
    max_pool2d_backward,
    out_size,
)
from verify.compare import assert_all_ok, assert_close, tolerance
from verify.fd import fd_check
from verify.strategies import weighted

EXACT = tolerance("exact", np.float64)


# ----------------------------------------------------------------------------- naive references

def naive_conv(W, b, x, S, P):
    """y[n, d, i, j] = b[d] + sum_{c,u,v} W[d, c, u, v] xpad[n, c, S i + u, S j + v], by loops."""
    N, C, Y, X = x.shape
    D, _, KY, KX = W.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))               # (N, C, Y+2P, X+2P)
    OY, OX = (Y + 2 * P - KY) // S + 1, (X + 2 * P - KX) // S + 1
    y = np.zeros((N, D, OY, OX))                                      # (N, D, OY, OX)
    for n in range(N):
        for d in range(D):
            for i in range(OY):
                for j in range(OX):
                    patch = xpad[n, :, S * i:S * i + KY, S * j:S * j + KX]  # (C, KY, KX)
                    y[n, d, i, j] = b[d] + (W[d] * patch).sum()
    return y


def naive_pool(x, K, S, P):
    N, C, Y, X = x.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)), constant_values=-np.inf)  # (N, C, Yp, Xp)
    OY, OX = (Y + 2 * P - K) // S + 1, (X + 2 * P - K) // S + 1
    y = np.zeros((N, C, OY, OX))                                      # (N, C, OY, OX)
    for i in range(OY):
        for j in range(OX):
            y[:, :, i, j] = xpad[:, :, S * i:S * i + K, S * j:S * j + K].max(axis=(2, 3))
    return y


conv_geometry = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3),   # N, C, D
                          st.integers(1, 9), st.integers(1, 9),                      # Y, X
                          st.integers(1, 4), st.integers(1, 3), st.integers(0, 2))   # K, S, P

# non-square kernels, strides and padding up to 4 (weighted towards the stems' small values)
rect_geometry = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3),   # N, C, D
                          st.integers(1, 11), st.integers(1, 11),                    # Y, X
                          st.integers(1, 5), st.integers(1, 5),                      # KY, KX
                          weighted(1, 4, 2), weighted(0, 4, 1))                      # S, P


def rect_conv(rng, C, D, KY, KX):
    """Random ConvParams with a KY x KX kernel (init_conv draws square kernels)."""
    return ConvParams(0.3 * rng.standard_normal((D, C, KY, KX)), rng.standard_normal(D))


@given(geometry=rect_geometry, seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float32, np.float64]))
def test_rectangular_conv_forward_col2im_and_backward(geometry, seed, dtype):
    """Non-square kernels, strides and padding >= 3: the forward against loops, the Numba col2im
    against the NumPy reference and as the adjoint of im2col, and the backward as the adjoint
    of the forward (<conv(x) - b, G> = <x, g_x>, <W, g_W>)."""
    N, C, D, Y, X, KY, KX, S, P = geometry
    assume(out_size(Y, KY, S, P) >= 1 and out_size(X, KX, S, P) >= 1)
    rng = np.random.default_rng(seed)
    p = rect_conv(rng, C, D, KY, KX)
    x = rng.standard_normal((N, C, Y, X))                             # (N, C, Y, X)
    y, cache = conv2d(p, x, S, P)
    assert_close(f"conv y {geometry}", y, naive_conv(p.W, p.b, x, S, P), EXACT)
    cols, OY, OX = im2col(x, KY, KX, S, P)
    assert cols.shape == (C * KY * KX, N * OY * OX) and y.shape == (N, D, OY, OX)
    G = rng.standard_normal(cols.shape)                               # (C*KY*KX, N*OY*OX)
    g_x = col2im(G.astype(dtype), x.shape, KY, KX, S, P)
    np.testing.assert_allclose(g_x, col2im(G.astype(dtype), x.shape, KY, KX, S, P, backend="numpy"),
                               rtol=0, atol=8 * np.finfo(dtype).eps * np.abs(G).max() * KY * KX)
    if dtype == np.float64:
        lhs = float((cols * G).sum())
        assert abs(lhs - float((x * g_x).sum())) <= 1e-10 * max(1.0, abs(lhs))
        assert abs(lhs - float((x * col2im(G, x.shape, KY, KX, S, P, backend="numpy")).sum())) <= 1e-10 * max(
            1.0, abs(lhs))
    g_y = rng.standard_normal(y.shape)                                # (N, D, OY, OX)
    g_x, grads = conv2d_backward(g_y, cache, p)
    lhs = float(((y - p.b[None, :, None, None]) * g_y).sum())
    assert abs(lhs - float((x * g_x).sum())) <= 1e-10 * max(1.0, abs(lhs))
    assert abs(lhs - float((p.W * grads.W).sum())) <= 1e-10 * max(1.0, abs(lhs))
    assert_close("g_b", grads.b, g_y.sum(axis=(0, 2, 3)), EXACT)


@pytest.mark.parametrize("case", [(1, 2, 2, 8, 9, 2, 4, 1, 3), (2, 1, 3, 10, 7, 5, 3, 3, 4),
                                  (1, 2, 1, 9, 9, 4, 1, 2, 3)])   # N, C, D, Y, X, KY, KX, S, P
def test_rectangular_conv_backward_matches_fd(case):
    N, C, D, Y, X, KY, KX, S, P = case
    rng = np.random.default_rng(sum(case))
    p = rect_conv(rng, C, D, KY, KX)
    x = rng.standard_normal((N, C, Y, X))                             # (N, C, Y, X)
    G = rng.standard_normal(conv2d(p, x, S, P)[0].shape)              # (N, D, OY, OX)
    assert_all_ok(conv_fd(p, x, G, S, P, conv2d_backward), f"case={case}")
    assert not all(c.ok for c in conv_fd(p, x, G, S, P, flipped_kernel_backward))   # negative twin


# ----------------------------------------------------------------------------- conv forward

@given(geometry=conv_geometry, seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float32, np.float64]))
def test_col2im_numba_matches_numpy_reference_and_is_the_adjoint(geometry, seed, dtype):
    """The Numba scatter == the NumPy reference (same adds, same order per cell), and col2im is
    the adjoint of im2col: <im2col(x), G> = <x, col2im(G)>."""
    N, C, _, Y, X, K, S, P = geometry
    assume(out_size(Y, K, S, P) >= 1 and out_size(X, K, S, P) >= 1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, Y, X))                             # (N, C, Y, X)
    cols, OY, OX = im2col(x, K, K, S, P)
    G = rng.standard_normal(cols.shape)                               # (C*K*K, N*OY*OX)
    g_x = col2im(G.astype(dtype), x.shape, K, K, S, P)
    assert g_x.dtype == dtype and g_x.shape == x.shape
    np.testing.assert_allclose(g_x, col2im(G.astype(dtype), x.shape, K, K, S, P, backend="numpy"),
                               rtol=0, atol=8 * np.finfo(dtype).eps * np.abs(G).max() * K * K)
    if dtype == np.float64:
        lhs, rhs = float((cols * G).sum()), float((x * g_x).sum())
        assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))


def test_col2im_adjoint_check_fails_on_a_scatter_that_skips_a_kernel_cell():
    """Negative twin of the adjoint check: a col2im that drops the patches of cell (u, v) = (0, 0)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6))                             # (N, C, Y, X)
    cols, _, _ = im2col(x, 3, 3, 2, 1)
    G = rng.standard_normal(cols.shape)                               # (C*9, N*OY*OX)
    G_wrong = G.copy()
    G_wrong[::9] = 0                                                  # rows (c, u=0, v=0)
    lhs = float((cols * G).sum())
    assert abs(lhs - float((x * col2im(G, x.shape, 3, 3, 2, 1)).sum())) <= 1e-10 * max(1.0, abs(lhs))
    assert abs(lhs - float((x * col2im(G_wrong, x.shape, 3, 3, 2, 1)).sum())) > 1e-3


def test_col2im_rejects_unknown_backend():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="backend"):
        col2im(np.zeros((4, 9)), x.shape, 2, 2, 1, 0, backend="torch")


@given(geometry=conv_geometry, seed=st.integers(0, 2**16))
def test_conv_forward_matches_loops(geometry, seed):
    N, C, D, Y, X, K, S, P = geometry
    assume(out_size(Y, K, S, P) >= 1 and out_size(X, K, S, P) >= 1)
    rng = np.random.default_rng(seed)
    p = init_conv(rng, C, D, K, np.float64)
    x = rng.standard_normal((N, C, Y, X))                             # (N, C, Y, X)
    y, _ = conv2d(p, x, S, P)
    assert_close(f"conv y {geometry}", y, naive_conv(p.W, p.b, x, S, P), EXACT)


def test_conv_defaults_are_stride_1_and_no_padding():
    rng = np.random.default_rng(3)
    p = init_conv(rng, 2, 3, 3, np.float64)
    x = rng.standard_normal((1, 2, 6, 5))                             # (N, C, Y, X)
    y, cache = conv2d(p, x)
    assert (cache.stride, cache.padding) == (1, 0) and y.shape == (1, 3, 4, 3)
    assert_close("conv y with defaults", y, naive_conv(p.W, p.b, x, 1, 0), EXACT)


def test_conv_accepts_any_memory_layout():
    rng = np.random.default_rng(0)
    p = init_conv(rng, 3, 4, 3, np.float64)
    x = rng.standard_normal((2, 3, 7, 7))                             # (N, C, Y, X)
    x_channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    y_a, _ = conv2d(p, x, 2, 1)
    y_b, _ = conv2d(p, x_channels_last, 2, 1)
    np.testing.assert_array_equal(y_a, y_b)


# ----------------------------------------------------------------------------- conv backward

def conv_fd(p, x, G, S, P, backward):
    """fd_check of L = sum(conv2d(p, x) * G) over p and x, analytic gradients from `backward`."""
    def loss():
        return float((conv2d(p, x, S, P)[0] * G).sum())

    g_x, grads = backward(G, conv2d(p, x, S, P)[1], p)
    return fd_check("conv", loss, dict(p=p, x=x), dict(p=grads, x=g_x), max_entries=40)


def flipped_kernel_backward(g_y, cache, p):
    """Mistake: the spatially flipped kernel (a convolution taken for a cross-correlation)."""
    g_x, grads = conv2d_backward(g_y, cache, p._replace(W=p.W[:, :, ::-1, ::-1]))
    return g_x, grads._replace(W=grads.W[:, :, ::-1, ::-1])


CONV_CASES = [  # (N, C, D, Y, X, K, S, P): the shapes of the stems, shrunk
    (2, 3, 2, 7, 7, 3, 1, 1),
    (1, 2, 3, 7, 6, 3, 2, 0),
    (2, 2, 2, 9, 9, 4, 2, 1),
    (1, 3, 2, 11, 11, 8, 4, 0),
]


def conv_case(case):
    """(p, x, G, S, P) of one CONV_CASES entry, float64, seeded by the case."""
    N, C, D, Y, X, K, S, P = case
    rng = np.random.default_rng(sum(case))
    p = init_conv(rng, C, D, K, np.float64)
    x = rng.standard_normal((N, C, Y, X))                             # (N, C, Y, X)
    G = rng.standard_normal(conv2d(p, x, S, P)[0].shape)              # (N, D, OY, OX)
    return p, x, G, S, P


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_matches_fd(case):
    assert_all_ok(conv_fd(*conv_case(case), conv2d_backward), f"case={case}")


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_backward_negative_twin(case):
    checks = {c.name: c for c in conv_fd(*conv_case(case), flipped_kernel_backward)}
    assert not checks["conv.p.W"].ok, checks["conv.p.W"].message()
    assert not checks["conv.x"].ok, checks["conv.x"].message()


def test_conv_float32_matches_float64():
    rng = np.random.default_rng(5)
    p64 = init_conv(rng, 4, 8, 3, np.float64)
    p32 = ConvParams(*(a.astype(np.float32) for a in p64))
    x64 = rng.standard_normal((3, 4, 12, 12))                          # (N, C, Y, X)
    G64 = rng.standard_normal((3, 8, 6, 6))                            # (N, D, OY, OX)
    results = []
    for p, x, G in ((p64, x64, G64), (p32, x64.astype(np.float32), G64.astype(np.float32))):
        y, cache = conv2d(p, x, 2, 1)
        g_x, grads = conv2d_backward(G, cache, p)
        results.append((y, g_x, grads.W, grads.b))
    assert all(a.dtype == np.float32 for a in results[1])
    tol = tolerance("kernel", np.float32)
    for name, a32, a64 in zip(("y", "g_x", "g_W", "g_b"), results[1], results[0]):
        assert_close(f"conv float32 {name}", a32, a64, tol)


@pytest.mark.parametrize("keep_cols", [True, False])
def test_conv_backward_same_with_and_without_kept_patches(keep_cols):
    rng = np.random.default_rng(7)
    p = init_conv(rng, 3, 2, 3, np.float64)
    x = rng.standard_normal((2, 3, 6, 6))                             # (N, C, Y, X)
    y, cache = conv2d(p, x, 1, 1, keep_cols=keep_cols)
    assert (cache.cols is not None) == keep_cols
    G = rng.standard_normal(y.shape)                                  # (N, D, OY, OX)
    g_x, grads = conv2d_backward(G, cache, p)
    g_x_ref, grads_ref = conv2d_backward(G, conv2d(p, x, 1, 1)[1], p)
    np.testing.assert_array_equal(g_x, g_x_ref)
    np.testing.assert_array_equal(grads.W, grads_ref.W)


def test_conv_need_g_x_false():
    rng = np.random.default_rng(6)
    p = init_conv(rng, 2, 2, 3, np.float64)
    x = rng.standard_normal((1, 2, 5, 5))                             # (N, C, Y, X)
    y, cache = conv2d(p, x, 1, 1)
    g_x, grads = conv2d_backward(np.ones_like(y), cache, p, need_g_x=False)
    assert g_x is None
    np.testing.assert_array_equal(grads.W, conv2d_backward(np.ones_like(y), cache, p)[1].W)


@pytest.mark.parametrize("kwargs, match", [
    (dict(x_shape=(1, 3, 7, 7)), "x: expected shape"),       # channels do not match W
    (dict(stride=0), "stride"),
    (dict(padding=-1), "padding"),
    (dict(x_shape=(1, 2, 2, 2)), "smaller than the kernel"),
    (dict(x_shape=(1, 2, 7, 2)), "smaller than the kernel"),   # too narrow only
    (dict(x_shape=(1, 2, 2, 7)), "smaller than the kernel"),   # too short only
    (dict(x_dtype=np.float32), "dtype"),
])
def test_conv_rejects_bad_input(kwargs, match):
    p = init_conv(np.random.default_rng(0), 2, 2, 3, np.float64)
    x = np.zeros(kwargs.get("x_shape", (1, 2, 7, 7)), kwargs.get("x_dtype", np.float64))
    with pytest.raises(ValueError, match=match):
        conv2d(p, x, kwargs.get("stride", 1), kwargs.get("padding", 0))


# ----------------------------------------------------------------------------- max pooling

pool_geometry = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9),
                          st.integers(1, 4), st.integers(1, 3), st.integers(0, 2))   # N, C, Y, X, K, S, P


def spaced_values(rng, shape):
    """Distinct values at least 0.01 apart: no ties, and no argmax change under an FD step."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.01 - 0.005 * n).reshape(shape)    # (*shape)


@given(geometry=pool_geometry, seed=st.integers(0, 2**16), backend=st.sampled_from(["numpy", "numba"]))
def test_pool_forward_matches_loops(geometry, seed, backend):
    N, C, Y, X, K, S, P = geometry
    assume(P <= K // 2 and out_size(Y, K, S, P) >= 1 and out_size(X, K, S, P) >= 1)
    x = np.random.default_rng(seed).standard_normal((N, C, Y, X))    # (N, C, Y, X)
    y, _ = max_pool2d(x, K, S, P, backend=backend)
    np.testing.assert_array_equal(y, naive_pool(x, K, S, P))


@given(geometry=pool_geometry, seed=st.integers(0, 2**16), dtype=st.sampled_from([np.float32, np.float64]))
def test_pool_numba_matches_numpy_reference(geometry, seed, dtype):
    N, C, Y, X, K, S, P = geometry
    assume(P <= K // 2 and out_size(Y, K, S, P) >= 1 and out_size(X, K, S, P) >= 1)
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 3, (N, C, Y, X)).astype(dtype)               # (N, C, Y, X) many ties
    y_ref, cache_ref = max_pool2d(x, K, S, P, backend="numpy")
    y, cache = max_pool2d(x, K, S, P, backend="numba")
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache.argmax, cache_ref.argmax)
    g_y = rng.standard_normal(y.shape).astype(dtype)                  # (N, C, OY, OX)
    g_x_ref = max_pool2d_backward(g_y, cache_ref, backend="numpy")
    g_x = max_pool2d_backward(g_y, cache, backend="numba")
    assert g_x.dtype == dtype
    np.testing.assert_allclose(g_x, g_x_ref, rtol=0, atol=10 * np.finfo(dtype).eps * np.abs(g_y).max() * K * K)


def pool_fd(x, G, K, S, P, backward):
    """fd_check of L = sum(max_pool2d(x) * G) over x, analytic gradient from `backward`."""
    def loss():
        return float((max_pool2d(x, K, S, P)[0] * G).sum())

    return fd_check("pool.x", loss, x, backward(G, max_pool2d(x, K, S, P)[1]))


def off_by_one_backward(g_y, cache):
    """Mistake: the gradient goes to the cell after the winner (argmax + 1)."""
    shifted = (cache.argmax.astype(np.int64) + 1) % (cache.kernel ** 2)
    return max_pool2d_backward(g_y, cache._replace(argmax=shifted.astype(np.uint8)))


POOL_CASES = [(2, 2, 7, 7, 3, 2, 1), (1, 3, 8, 6, 2, 2, 0), (1, 2, 9, 9, 3, 1, 1)]


@pytest.mark.parametrize("case", POOL_CASES)
def test_pool_backward_matches_fd(case):
    N, C, Y, X, K, S, P = case
    rng = np.random.default_rng(sum(case))
    x = spaced_values(rng, (N, C, Y, X))                              # (N, C, Y, X)
    G = rng.standard_normal(max_pool2d(x, K, S, P)[0].shape)          # (N, C, OY, OX)
    assert_all_ok(pool_fd(x, G, K, S, P, max_pool2d_backward), f"case={case}")
    assert not pool_fd(x, G, K, S, P, off_by_one_backward)[0].ok      # negative twin


def test_pool_padding_never_wins_and_ties_go_to_first_cell():
    x = -1.0 - np.random.default_rng(0).uniform(size=(1, 1, 4, 4))   # (1, 1, 4, 4) all negative
    y, _ = max_pool2d(x, 3, 2, 1)
    assert np.all(y < 0)                                              # zero padding would give 0
    flat = np.ones((1, 2, 5, 5))                                      # (1, 2, 5, 5) all tied
    y, cache = max_pool2d(flat, 3, 2, 1)
    assert isinstance(cache, PoolCache) and np.all(cache.argmax[:, :, 1:, 1:] == 0)
    g_x = max_pool2d_backward(np.ones_like(y), cache)
    assert g_x.sum() == y.size and np.all(g_x >= 0)                   # one cell per window


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_pool_passes_non_finite_pixels_through(backend):
    """No finiteness scan on the input (a pass over every frame): an +inf pixel pools as the
    loops do, winning each of its windows, and takes their gradients."""
    x = np.random.default_rng(1).standard_normal((1, 2, 6, 6))        # (N, C, Y, X)
    x[0, 0, 2, 3] = np.inf
    y, cache = max_pool2d(x, 3, 2, 1, backend=backend)
    np.testing.assert_array_equal(y, naive_pool(x, 3, 2, 1))
    assert np.isposinf(y).sum() == 2                                  # windows (1, 1) and (1, 2)
    g_x = max_pool2d_backward(np.ones_like(y), cache, backend=backend)
    assert g_x[0, 0, 2, 3] == 2


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_pool_defaults_are_3x3_stride_2_padding_1(backend):
    """max_pool2d(x) is the IMPALA stem's pool: kernel 3, stride 2, padding 1."""
    x = np.random.default_rng(2).standard_normal((1, 2, 9, 8))       # (N, C, Y, X)
    y, cache = max_pool2d(x, backend=backend)
    assert (cache.kernel, cache.stride, cache.padding) == (3, 2, 1) and y.shape == (1, 2, 5, 4)
    np.testing.assert_array_equal(y, naive_pool(x, 3, 2, 1))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_pool_without_validation_equals_the_validated_pool(backend):
    x = np.random.default_rng(4).standard_normal((2, 3, 9, 7))       # (N, C, Y, X)
    y, cache = max_pool2d(x, 3, 2, 1, backend=backend)
    y_fast, cache_fast = max_pool2d(x, 3, 2, 1, validate=False, backend=backend)
    np.testing.assert_array_equal(y_fast, y)
    np.testing.assert_array_equal(cache_fast.argmax, cache.argmax)


def test_impala_pool_shapes():
    for Y, OY in ((84, 42), (42, 21), (21, 11), (64, 32), (8, 4)):
        assert out_size(Y, 3, 2, 1) == OY


@pytest.mark.parametrize("kernel, stride, padding, match", [
    (3, 2, 2, "padding: expected at most"),
    (0, 1, 0, "kernel"),
    (3, 0, 1, "stride"),
])
def test_pool_rejects_bad_geometry(kernel, stride, padding, match):
    with pytest.raises(ValueError, match=match):
        max_pool2d(np.zeros((1, 1, 6, 6)), kernel, stride, padding)


def test_pool_rejects_integer_input_and_unknown_backend():
    with pytest.raises(ValueError, match="x: expected dtype float32 or float64"):
        max_pool2d(np.zeros((1, 1, 6, 6), np.int32))
    with pytest.raises(ValueError, match="backend"):
        max_pool2d(np.zeros((1, 1, 6, 6)), backend="cuda")
