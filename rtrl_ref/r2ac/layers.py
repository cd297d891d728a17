"""Dense building blocks of the agent: Linear, ReLU, log-softmax, and the default initialisation.

Shapes: `...` is any number of leading dims (N, or T, B); F_in, F_out are feature sizes.

    linear:   y = x @ W.T + b            W (F_out, F_in), b (F_out,)
              g_x = g_y @ W,  g_W = sum over leading dims of g_y^T x,  g_b = sum of g_y
    relu:     y = max(x, 0),  g_x = g_y * [y > 0]     (the subgradient 0 at x = 0, as PyTorch)

Initialisation (PyTorch's default rule for Linear and Conv2d, as in the paper's code): weights and
biases ~ U(-1/sqrt(fan_in), +1/sqrt(fan_in)), fan_in = inputs per output unit.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.validate import check_array, check_float_dtype


class LinearParams(NamedTuple):
    W: np.ndarray  # (F_out, F_in)
    b: np.ndarray  # (F_out,)


class LinearCache(NamedTuple):
    x: np.ndarray  # (..., F_in)


class ReLUCache(NamedTuple):
    y: np.ndarray  # (...,) the output; its sign pattern is the mask


def fan_in_uniform(rng: np.random.Generator, shape: tuple, fan_in: int, dtype) -> np.ndarray:
    """U(+-1/sqrt(fan_in)) samples of `shape`."""
    if fan_in < 1:
        raise ValueError(f"fan_in: expected >= 1, got {fan_in}")
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, shape).astype(dtype)            # (*shape)


INIT_SCHEMES = ("pytorch", "he")


def init_weight_bias(rng: np.random.Generator, W_shape: tuple, b_shape: tuple, fan_in: int, dtype,
                     scheme: str = "pytorch") -> tuple[np.ndarray, np.ndarray]:
    """Weights and biases of one layer.

    "pytorch": W and b ~ U(+-1/sqrt(fan_in)) (PyTorch's Linear/Conv2d default, the paper's code).
        Each ReLU layer then shrinks the activations' second moment by about 3x (Var W = 1/(3 fan_in)).
    "he": W ~ U(+-sqrt(6/fan_in)) (Var W = 2/fan_in, which keeps the second moment through ReLU
        layers), b = 0.
    """
    if scheme == "pytorch":
        return fan_in_uniform(rng, W_shape, fan_in, dtype), fan_in_uniform(rng, b_shape, fan_in, dtype)
    if scheme == "he":
        return (np.sqrt(6.0) * fan_in_uniform(rng, W_shape, fan_in, dtype)).astype(dtype), np.zeros(b_shape, dtype)
    raise ValueError(f"scheme: expected one of {INIT_SCHEMES}, got {scheme!r}")


def init_linear(rng: np.random.Generator, F_in: int, F_out: int, dtype=np.float32,
                scheme: str = "pytorch") -> LinearParams:
    """Linear(F_in -> F_out), initialised by `scheme` (see init_weight_bias)."""
    if F_in < 1 or F_out < 1:
        raise ValueError(f"init_linear: expected F_in >= 1 and F_out >= 1, got F_in={F_in}, F_out={F_out}")
    W, b = init_weight_bias(rng, (F_out, F_in), (F_out,), F_in, dtype, scheme)  # (F_out, F_in), (F_out,)
    return LinearParams(W, b)


def check_linear(name: str, p: LinearParams, dtype=None) -> tuple[int, int]:
    """Validate a LinearParams; returns (F_in, F_out)."""
    check_array(f"{name}.W", p.W, (None, None), dtype)
    F_out, F_in = p.W.shape
    check_float_dtype(f"{name}.W", p.W)
    check_array(f"{name}.b", p.b, (("F_out", F_out),), p.W.dtype)
    return F_in, F_out


def linear(p: LinearParams, x, validate: bool = True):
    """y = x @ W.T + b over any leading dims: returns (y (..., F_out), cache)."""
    if validate:
        F_in, _ = check_linear("linear", p)
        ndim = getattr(x, "ndim", 0)
        check_array("x", x, (None,) * max(ndim - 1, 0) + (("F_in", F_in),), p.W.dtype, finite=False)
    y = x @ p.W.T + p.b                                              # (..., F_out)
    return y, LinearCache(x)


def linear_backward(g_y, cache: LinearCache, p: LinearParams, need_g_x: bool = True):
    """Returns (g_x (..., F_in) or None, grads: LinearParams summed over leading dims)."""
    F_out, F_in = p.W.shape
    g_y_2d = g_y.reshape(-1, F_out)                                  # (N, F_out)
    x_2d = cache.x.reshape(-1, F_in)                                 # (N, F_in)
    grads = LinearParams(W=g_y_2d.T @ x_2d,                          # (F_out, F_in)
                         b=g_y_2d.sum(0))                            # (F_out,)
    g_x = g_y @ p.W if need_g_x else None                            # (..., F_in)
    return g_x, grads


def relu(x):
    """y = max(x, 0): returns (y, cache). Keeps the memory layout of x."""
    y = np.maximum(x, 0)                                             # (...,)
    return y, ReLUCache(y)


def relu_backward(g_y, cache: ReLUCache):
    """g_x = g_y where the output was positive, else 0."""
    return g_y * (cache.y > 0)                                       # (...,)


def log_softmax(logits):
    """Numerically stable log-softmax over the last axis (..., A) -> (..., A)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)           # (..., A)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))  # (..., A)


def ce_grad(logits, y, weight=None):
    """Cross-entropy of logits (B, A) against class indices y (B,), summed over the rows, each row
    weighted by weight (B,) (bool or float; None: every row counts): (loss, g_logits (B, A) the
    gradient of that loss, predictions (B,) the argmax)."""
    log_p = log_softmax(logits)                                            # (B, A)
    onehot = np.eye(logits.shape[-1], dtype=logits.dtype)[y]               # (B, A)
    g_logits = np.exp(log_p) - onehot                                      # (B, A)
    if weight is None:
        return float(-(onehot * log_p).sum()), g_logits, log_p.argmax(-1)
    w = np.asarray(weight, logits.dtype)[:, None]                          # (B, 1)
    return float(-(w * onehot * log_p).sum()), g_logits * w, log_p.argmax(-1)
