"""Optimisers against steps computed by hand from their formulas; clipping; LR decay; pytrees."""

import math
from typing import NamedTuple

import numpy as np
import pytest

from rtrl_ref.r2ac.layers import LinearParams
from rtrl_ref.r2ac.optim import (
    adam_init,
    adam_update,
    clip_by_global_norm,
    global_norm,
    linear_decay,
    rmsprop_init,
    rmsprop_update,
)
from rtrl_ref.r2ac.tree import tree_leaves, tree_map, tree_size, tree_unflatten, tree_zeros_like


class Net(NamedTuple):      # a nested tree: NamedTuple of NamedTuple, tuple and dict
    fc: LinearParams
    extra: tuple


def scalar_tree(p0: float, dtype=np.float64):
    """A tree whose every leaf holds the scalar p0, so the hand-computed step applies to all."""
    return Net(fc=LinearParams(np.full((2, 3), p0, dtype), np.full(2, p0, dtype)),
               extra=(np.full(4, p0, dtype), {"w": np.full((), p0, dtype)}))


def assert_tree_equals(tree, value, rtol=1e-12, msg=""):
    for name, a in tree_leaves(tree):
        np.testing.assert_allclose(a, value, rtol=rtol, err_msg=f"{name} {msg}")


# ----------------------------------------------------------------------------- RMSProp

def test_rmsprop_two_steps_by_hand():
    # v_1 = (1 - a) g_1^2;  p_1 = p_0 - lr g_1 / (sqrt(v_1) + eps)
    # v_2 = a v_1 + (1 - a) g_2^2;  p_2 = p_1 - lr g_2 / (sqrt(v_2) + eps)
    # with p_0 = 1, g_1 = 1, g_2 = 2, lr = 0.1, a = 0.99, eps = 0.01:
    #   v_1 = 0.01, sqrt(v_1) = 0.1, p_1 = 1 - 0.1 / 0.11
    #   v_2 = 0.0099 + 0.04 = 0.0499, p_2 = p_1 - 0.2 / (sqrt(0.0499) + 0.01)
    lr, alpha, eps = 0.1, 0.99, 0.01
    p1_hand = 1 - 0.1 / 0.11
    p2_hand = p1_hand - 0.2 / (math.sqrt(0.0499) + 0.01)
    params = scalar_tree(1.0)
    state = rmsprop_init(params)
    params, state = rmsprop_update(params, scalar_tree(1.0), state, lr, alpha, eps)
    assert_tree_equals(params, p1_hand, msg="step 1")
    assert_tree_equals(state.square_avg, 0.01, msg="v_1")
    params, state = rmsprop_update(params, scalar_tree(2.0), state, lr, alpha, eps)
    assert_tree_equals(params, p2_hand, msg="step 2")
    assert_tree_equals(state.square_avg, 0.0499, msg="v_2")
    # the test tells eps outside from eps inside the square root: p_1 would be 1 - 0.1 / sqrt(0.02)
    assert abs(p1_hand - (1 - 0.1 / math.sqrt(0.01 + 0.01))) > 0.1


def test_rmsprop_bias_correction_two_steps_by_hand():
    # with correction, update k divides v_k by 1 - a^k:
    #   v_1 = 0.01, v_1 / (1 - 0.99) = 1, p_1 = 1 - 0.1 / (1 + eps)
    #   v_2 = 0.0499, v_2 / (1 - 0.99^2) = 0.0499 / 0.0199, p_2 = p_1 - 0.2 / (sqrt(0.0499 / 0.0199) + eps)
    lr, alpha, eps = 0.1, 0.99, 1e-5
    p1_hand = 1 - 0.1 / (1 + eps)
    p2_hand = p1_hand - 0.2 / (math.sqrt(0.0499 / 0.0199) + eps)
    params = scalar_tree(1.0)
    state = rmsprop_init(params)
    params, state = rmsprop_update(params, scalar_tree(1.0), state, lr, alpha, eps, step=1)
    assert_tree_equals(params, p1_hand, msg="step 1")
    params, state = rmsprop_update(params, scalar_tree(2.0), state, lr, alpha, eps, step=2)
    assert_tree_equals(params, p2_hand, msg="step 2")
    assert_tree_equals(state.square_avg, 0.0499, msg="v_2 is stored uncorrected")


def test_first_rmsprop_step_is_lr_with_correction_and_10_lr_without():
    # the reason for the option: with a small eps the uncorrected first step is lr / sqrt(1 - alpha)
    g = scalar_tree(1e-3)
    corrected, _ = rmsprop_update(scalar_tree(0.0), g, rmsprop_init(g), 6e-4, 0.99, 1e-8, step=1)
    plain, _ = rmsprop_update(scalar_tree(0.0), g, rmsprop_init(g), 6e-4, 0.99, 1e-8)
    # corrected: sqrt(v_1 / (1 - a)) = |g|; plain: sqrt(v_1) = 0.1 |g|
    assert_tree_equals(corrected, -6e-4 * 1e-3 / (1e-3 + 1e-8), msg="corrected first step")
    assert_tree_equals(plain, -6e-4 * 1e-3 / (1e-4 + 1e-8), msg="uncorrected first step")
    with pytest.raises(ValueError, match="step"):
        rmsprop_update(scalar_tree(0.0), g, rmsprop_init(g), 6e-4, 0.99, 0.01, step=-1)


def test_rmsprop_is_pure_and_keeps_dtype():
    params = scalar_tree(1.0, np.float32)
    state = rmsprop_init(params)
    new_params, new_state = rmsprop_update(params, scalar_tree(1.0, np.float32), state, 6e-4, 0.99, 0.01)
    assert_tree_equals(params, 1.0, msg="input params changed")
    assert_tree_equals(state.square_avg, 0.0, msg="input state changed")
    assert all(a.dtype == np.float32 for _, a in tree_leaves((new_params, new_state)))


# ----------------------------------------------------------------------------- Adam

def test_adam_two_steps_by_hand():
    # m_k = b1 m_{k-1} + (1 - b1) g_k,  v_k = b2 v_{k-1} + (1 - b2) g_k^2,
    # p_k = p_{k-1} - lr (m_k / (1 - b1^k)) / (sqrt(v_k / (1 - b2^k)) + eps)
    # p_0 = 0, g_1 = 2, g_2 = -1, lr = 0.5, b1 = 0.9, b2 = 0.99, eps = 0.1:
    #   m_1 = 0.2, v_1 = 0.04; m_hat = 2, v_hat = 4: p_1 = -0.5 * 2 / (2 + 0.1)
    #   m_2 = 0.18 - 0.1 = 0.08, v_2 = 0.0396 + 0.01 = 0.0496
    #   m_hat = 0.08 / 0.19, v_hat = 0.0496 / 0.0199: p_2 = p_1 - 0.5 m_hat / (sqrt(v_hat) + 0.1)
    lr, b1, b2, eps = 0.5, 0.9, 0.99, 0.1
    p1_hand = -0.5 * 2 / (2 + 0.1)
    p2_hand = p1_hand - 0.5 * (0.08 / 0.19) / (math.sqrt(0.0496 / 0.0199) + 0.1)
    params = scalar_tree(0.0)
    state = adam_init(params)
    params, state = adam_update(params, scalar_tree(2.0), state, lr, b1, b2, eps)
    assert_tree_equals(params, p1_hand, msg="step 1")
    assert int(state.step) == 1
    params, state = adam_update(params, scalar_tree(-1.0), state, lr, b1, b2, eps)
    assert_tree_equals(params, p2_hand, msg="step 2")
    assert_tree_equals(state.m, 0.08, msg="m_2")
    assert_tree_equals(state.v, 0.0496, msg="v_2")
    assert int(state.step) == 2


def test_adam_without_bias_correction_would_differ():
    # negative twin of the hand computation: without correction p_1 = -0.5 * 0.2 / (0.2 + 0.1)
    params, _ = adam_update(scalar_tree(0.0), scalar_tree(2.0), adam_init(scalar_tree(0.0)), 0.5, 0.9, 0.99, 0.1)
    assert abs(tree_leaves(params)[0][1].flat[0] - (-0.5 * 0.2 / 0.3)) > 0.1


def test_adam_defaults_are_the_published_ones():
    """Without beta1, beta2, eps, Adam runs with Kingma & Ba's recommended settings (ICLR 2015,
    Algorithm 1: 0.9, 0.999, 1e-8), which the copy task relies on: two steps, exactly equal."""
    runs = []
    for explicit in ((), (0.9, 0.999, 1e-8)):
        params, state = scalar_tree(0.0), adam_init(scalar_tree(0.0))
        for g in (2.0, -1.0):
            params, state = adam_update(params, scalar_tree(g), state, 0.5, *explicit)
        runs.append(params)
    assert_tree_equals(runs[0], tree_leaves(runs[1])[0][1].flat[0], msg="defaults")


# ----------------------------------------------------------------------------- clipping, decay

def test_clip_by_global_norm():
    grads = {"a": np.array([3.0]), "b": np.array([[4.0]])}             # global norm 5
    clipped, norm = clip_by_global_norm(grads, 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(clipped["a"], [3.0 / (5.0 + 1e-6)])
    np.testing.assert_allclose(clipped["b"], [[4.0 / (5.0 + 1e-6)]])
    np.testing.assert_allclose(global_norm(clipped), 5.0 / (5.0 + 1e-6))
    same, norm = clip_by_global_norm(grads, 40.0)                     # below the threshold: unchanged
    assert norm == pytest.approx(5.0) and same["a"] is grads["a"]


def test_clip_norm_accumulates_in_float64():
    grads = [np.full(10**6, 1e-3, np.float32), np.full(3, 1e3, np.float32)]
    expected = math.sqrt(10**6 * 1e-6 + 3 * 1e6)
    assert global_norm(grads) == pytest.approx(expected, rel=1e-7)
    clipped, _ = clip_by_global_norm(grads, 1.0)
    assert clipped[0].dtype == np.float32


def test_clip_rejects_bad_input():
    with pytest.raises(ValueError, match="max_norm"):
        clip_by_global_norm([np.ones(2)], 0.0)
    with pytest.raises(ValueError, match="finite global norm"):
        clip_by_global_norm([np.array([np.inf])], 1.0)


def test_linear_decay():
    assert linear_decay(6e-4, 0, 100) == 6e-4
    assert linear_decay(6e-4, 25, 100) == pytest.approx(4.5e-4)
    assert linear_decay(6e-4, 100, 100) == 0.0
    assert linear_decay(6e-4, 250, 100) == 0.0
    assert linear_decay(6e-4, 0, 1) == 6e-4 and linear_decay(6e-4, 1, 1) == 0.0   # the shortest schedule
    with pytest.raises(ValueError, match="total"):
        linear_decay(6e-4, 0, 0)
    with pytest.raises(ValueError, match="frames >= 0"):
        linear_decay(6e-4, -1, 100)


@pytest.mark.parametrize("update, kwargs, match", [
    (rmsprop_update, dict(lr=-1.0, alpha=0.99, eps=0.01), "lr"),
    (rmsprop_update, dict(lr=1e-3, alpha=1.0, eps=0.01), "alpha"),
    (rmsprop_update, dict(lr=1e-3, alpha=0.99, eps=-1.0), "eps"),
    (adam_update, dict(lr=1e-3, beta2=1.5), "beta2"),
])
def test_optimisers_reject_bad_hyperparameters(update, kwargs, match):
    params = scalar_tree(0.0)
    state = rmsprop_init(params) if update is rmsprop_update else adam_init(params)
    with pytest.raises(ValueError, match=match):
        update(params, params, state, **kwargs)


# ----------------------------------------------------------------------------- pytrees

def test_tree_leaves_names_and_roundtrip():
    tree = scalar_tree(1.0)
    names = [name for name, _ in tree_leaves(tree)]
    assert names == ["fc.W", "fc.b", "extra.0", "extra.1.w"]
    assert tree_size(tree) == 6 + 2 + 4 + 1
    rebuilt = tree_unflatten(tree, [a * 2 for _, a in tree_leaves(tree)])
    assert isinstance(rebuilt, Net) and isinstance(rebuilt.fc, LinearParams)
    assert isinstance(rebuilt.extra, tuple) and isinstance(rebuilt.extra[1], dict)
    assert_tree_equals(rebuilt, 2.0)
    named = tree_unflatten(tree, tree_leaves(tree))
    assert_tree_equals(named, 1.0)


def test_tree_map_and_zeros_like():
    a, b = scalar_tree(1.0), scalar_tree(2.0)
    assert_tree_equals(tree_map(lambda x, y: x + 10 * y, a, b), 21.0)
    zeros = tree_zeros_like(a)
    assert_tree_equals(zeros, 0.0)
    assert [z.shape for _, z in tree_leaves(zeros)] == [x.shape for _, x in tree_leaves(a)]


def test_tree_errors_name_the_place():
    a = scalar_tree(1.0)
    b = a._replace(extra=(np.ones(4), {"v": np.ones(())}))
    with pytest.raises(ValueError, match=r"tree_map extra\.1: expected dict with keys \['w'\]"):
        tree_map(lambda x, y: x + y, a, b)
    with pytest.raises(ValueError, match="expected an array, NamedTuple"):
        tree_leaves({"x": "not an array"})
    with pytest.raises(ValueError, match="expected 4 arrays, got 3"):
        tree_unflatten(a, [np.ones(1)] * 3)
    with pytest.raises(ValueError, match="leaf names"):
        tree_unflatten(a, [("fc.W", np.ones(1)), ("fc.b", np.ones(1)), ("x", np.ones(1)), ("y", np.ones(1))])
