"""Linear, ReLU, log-softmax and the policy/value heads: formulas, FD gradients, negative twins."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtrl_ref.r2ac.heads import (
    action_log_probs,
    heads_backward,
    heads_forward,
    init_heads,
    sample_actions,
)
from rtrl_ref.r2ac.layers import (
    LinearParams,
    init_linear,
    linear,
    linear_backward,
    log_softmax,
    relu,
    relu_backward,
)
from verify.compare import assert_all_ok, assert_close, tolerance
from verify.fd import fd_check

lead_shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


def linear_fd(p, x, G, backward):
    """fd_check of L = sum(linear(p, x) * G) over p and x, analytic gradients from `backward`."""
    def loss():
        return float((linear(p, x)[0] * G).sum())

    g_x, grads = backward(G, linear(p, x)[1], p)
    return fd_check("linear", loss, dict(p=p, x=x), dict(p=grads, x=g_x))


def backward_without_batch_sum(g_y, cache, p):
    """Mistake: the parameter gradients use only the first sample instead of summing."""
    g_x, grads = linear_backward(g_y, cache, p)
    F_out, F_in = p.W.shape
    g_first = g_y.reshape(-1, F_out)[:1]                              # (1, F_out)
    x_first = cache.x.reshape(-1, F_in)[:1]                           # (1, F_in)
    return g_x, LinearParams(g_first.T @ x_first, g_first.sum(0))


@given(lead=lead_shapes, F_in=st.integers(1, 4), F_out=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_linear_forward_is_the_formula(lead, F_in, F_out, seed):
    rng = np.random.default_rng(seed)
    p = init_linear(rng, F_in, F_out, np.float64)
    x = rng.standard_normal(lead + (F_in,))                           # (..., F_in)
    y, _ = linear(p, x)
    expected = np.einsum("oi,...i->...o", p.W, x) + p.b              # (..., F_out)
    assert y.shape == lead + (F_out,)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@given(lead=lead_shapes, F_in=st.integers(1, 4), F_out=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_linear_backward_matches_fd(lead, F_in, F_out, seed):
    rng = np.random.default_rng(seed)
    p = init_linear(rng, F_in, F_out, np.float64)
    x = rng.standard_normal(lead + (F_in,))                           # (..., F_in)
    G = rng.standard_normal(lead + (F_out,))                          # (..., F_out)
    assert_all_ok(linear_fd(p, x, G, linear_backward), f"lead={lead}")


def test_linear_backward_negative_twin():
    rng = np.random.default_rng(0)
    p = init_linear(rng, 3, 2, np.float64)
    x = rng.standard_normal((4, 3))                                   # (N, F_in)
    G = rng.standard_normal((4, 2))                                   # (N, F_out)
    checks = {c.name: c for c in linear_fd(p, x, G, backward_without_batch_sum)}
    assert not checks["linear.p.W"].ok and not checks["linear.p.b"].ok


def test_linear_need_g_x_false_skips_input_gradient():
    rng = np.random.default_rng(1)
    p = init_linear(rng, 3, 2, np.float64)
    x = rng.standard_normal((5, 3))                                   # (N, F_in)
    _, cache = linear(p, x)
    g_x, grads = linear_backward(np.ones((5, 2)), cache, p, need_g_x=False)
    assert g_x is None and grads.W.shape == (2, 3)


def relu_fd(x, G, backward):
    """fd_check of L = sum(relu(x) * G) over x, analytic gradient from `backward`."""
    def loss():
        return float((relu(x)[0] * G).sum())

    return fd_check("relu.x", loss, x, backward(G, relu(x)[1]))


@given(seed=st.integers(0, 2**16), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_relu_backward_matches_fd(seed, shape):
    rng = np.random.default_rng(seed)
    magnitude = rng.uniform(0.1, 1.0, shape)                          # (*shape) away from the kink
    x = magnitude * rng.choice([-1.0, 1.0], shape)                    # (*shape)
    x.flat[0] = 0.5                                                   # not a vacuous check
    G = rng.standard_normal(shape)                                    # (*shape)
    assert_all_ok(relu_fd(x, G, relu_backward))


def test_relu_backward_negative_twin():
    x = np.array([-0.7, 0.3, -0.2, 0.9])                              # (4,)
    G = np.array([1.0, -2.0, 3.0, 0.5])                               # (4,)
    c = relu_fd(x, G, lambda g_y, cache: g_y)[0]                      # forgot the mask
    assert not c.ok, c.message()


def test_relu_keeps_dtype_and_layout():
    x = np.random.default_rng(2).standard_normal((2, 3, 4, 5)).astype(np.float32).transpose(0, 3, 1, 2)
    y, cache = relu(x)
    g = relu_backward(np.ones_like(x), cache)
    assert y.dtype == g.dtype == np.float32
    assert y.strides == x.strides and g.strides == x.strides


def test_log_softmax_stable_and_normalised():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.1, 0.2, 0.3]])      # (2, A)
    log_pi = log_softmax(logits)
    assert np.all(np.isfinite(log_pi))
    np.testing.assert_allclose(np.exp(log_pi).sum(-1), 1.0, rtol=1e-12)
    naive = np.log(np.exp(logits[1]) / np.exp(logits[1]).sum())       # (A,)
    assert_close("log_softmax", log_pi[1], naive, tolerance("exact", np.float64))


def test_init_linear_is_fan_in_uniform():
    rng = np.random.default_rng(3)
    p = init_linear(rng, 64, 300, np.float32)
    bound = 1 / np.sqrt(64)
    assert p.W.dtype == p.b.dtype == np.float32 and p.W.shape == (300, 64) and p.b.shape == (300,)
    assert np.abs(p.W).max() <= bound and np.abs(p.b).max() <= bound
    assert np.abs(p.W).max() > 0.95 * bound and abs(p.W.mean()) < 0.05 * bound


def test_he_init_preserves_the_second_moment_through_relu_layers():
    """Var W = 2 / fan_in and zero biases: E[relu(W a)^2] = E[a^2] for any input (He et al.), so
    after 6 ReLU layers the mean square stays within ~10%; the PyTorch default loses ~3x a layer."""
    rng = np.random.default_rng(4)
    p = init_linear(rng, 400, 300, np.float64, scheme="he")
    assert np.all(p.b == 0)
    np.testing.assert_allclose(p.W.var(), 2 / 400, rtol=0.03)
    a = rng.standard_normal((2000, 256))                              # (N, F)
    ms = {}
    for scheme in ("he", "pytorch"):
        h = a
        for _ in range(6):
            h, _ = relu(linear(init_linear(rng, 256, 256, np.float64, scheme=scheme), h)[0])
        ms[scheme] = float((h ** 2).mean())
    assert 0.7 < ms["he"] / float((a ** 2).mean()) < 1.4
    assert ms["pytorch"] / float((a ** 2).mean()) < 0.01               # (1/3)^6 ~ 0.0014, plus bias terms


def test_init_rejects_unknown_scheme():
    with pytest.raises(ValueError, match="scheme"):
        init_linear(np.random.default_rng(0), 3, 2, scheme="xavier")


def test_init_linear_rejects_empty_sizes():
    with pytest.raises(ValueError, match="F_in"):
        init_linear(np.random.default_rng(0), 0, 3)


def test_linear_rejects_bad_input():
    p = init_linear(np.random.default_rng(0), 3, 2, np.float64)
    with pytest.raises(ValueError, match=r"x: expected shape \(\*, F_in=3\)"):
        linear(p, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="x: expected dtype float64"):
        linear(p, np.zeros((4, 3), np.float32))


# ----------------------------------------------------------------------------- heads

def heads_fd(p, h, G_logits, G_value, backward):
    """fd_check of L = sum(logits * G_logits) + sum(value * G_value) over h and p."""
    def loss():
        logits, value, _ = heads_forward(p, h)
        return float((logits * G_logits).sum() + (value * G_value).sum())

    g_h, grads = backward(G_logits, G_value, heads_forward(p, h)[2], p)
    return fd_check("heads", loss, dict(h=h, p=p), dict(h=g_h, p=grads))


@given(lead=st.sampled_from([(3,), (2, 3)]), H=st.integers(1, 4), A=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_heads_backward_matches_fd(lead, H, A, seed):
    rng = np.random.default_rng(seed)
    p = init_heads(rng, H, A, np.float64)
    h = rng.standard_normal(lead + (H,))                              # (..., H)
    G_logits = rng.standard_normal(lead + (A,))                       # (..., A)
    G_value = rng.standard_normal(lead)                               # (...,)
    logits, value, _ = heads_forward(p, h)
    assert logits.shape == lead + (A,) and value.shape == lead
    assert_all_ok(heads_fd(p, h, G_logits, G_value, heads_backward))


def test_heads_backward_negative_twin_value_path_dropped():
    rng = np.random.default_rng(0)
    p = init_heads(rng, 3, 2, np.float64)
    h = rng.standard_normal((4, 3))                                   # (N, H)
    G_logits, G_value = rng.standard_normal((4, 2)), rng.standard_normal(4)

    def policy_only_g_h(g_logits, g_value, cache, p):
        g_h, grads = heads_backward(g_logits, g_value, cache, p)
        return g_h - g_value[:, None] * p.value.W, grads              # forgot the value head in g_h

    checks = {c.name: c for c in heads_fd(p, h, G_logits, G_value, policy_only_g_h)}
    assert not checks["heads.h"].ok


def test_action_log_probs_and_sampling():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]))     # (N, A)
    log_p = action_log_probs(logits, np.array([0, 2]))
    np.testing.assert_allclose(log_p, np.log([0.7, 0.8]))
    rng = np.random.default_rng(0)
    draws = sample_actions(rng, np.broadcast_to(logits[0], (20000, 3)))  # (20000,)
    freq = np.bincount(draws, minlength=3) / draws.size
    np.testing.assert_allclose(freq, [0.7, 0.2, 0.1], atol=0.015)      # ~5 standard errors
    with pytest.raises(ValueError, match="actions: expected values in"):
        action_log_probs(logits, np.array([0, 3]))


def test_heads_reject_bad_h():
    p = init_heads(np.random.default_rng(0), 4, 2)
    with pytest.raises(ValueError, match=r"h: expected shape \(\*, H=4\)"):
        heads_forward(p, np.zeros((3, 5), np.float32))
