"""Observation encoders ("stems"): observations (..., *obs_shape) -> features (..., F).

Each stem is three functions with one interface, collected in `STEMS`:

    init(rng, obs_shape, out_features=256, dtype=np.float32, init_scheme="pytorch", **options) -> params
    forward(params, obs) -> (features (..., F), cache)
    backward(g_features (..., F), cache, params) -> grads (the structure of params)

Any leading dims (N, or T, B) are flattened to N inside. Pixel observations are (C, Y, X):
uint8 is scaled by 1/255, a float array of the parameters' dtype is taken as already scaled.
No gradient flows into the observations.

    nature  Nature-DQN CNN (Mnih et al. 2015): conv 8x8/4 32ch, conv 4x4/2 64ch, conv 3x3/1 64ch,
            ReLU after each, flatten, FC(F), ReLU. The CPU default for pixels.
            Flatten size: 64*7*7 = 3136 for (4, 84, 84); 64*4*4 = 1024 for (3, 64, 64).
    impala  The deep ResNet of IMPALA as used by the paper (torchbeast's variant): per stage
            conv 3x3/1 pad 1, max-pool 3x3/2 pad 1, two residual blocks
            x + conv(relu(conv(relu(x)))); channels (16, 32, 32); then ReLU, flatten, FC(F), ReLU.
            Flatten size: 32*11*11 = 3872 for (4, 84, 84); 32*8*8 = 2048 for (3, 64, 64).
    mlp     For vector observations (I,): Linear + ReLU per layer, widths hidden + (F,)
            (default hidden = (256,), i.e. two layers).
    identity  For vector observations (I,): no parameters, features = obs (F = I), so every
            trained weight on the recurrent path gets the exact RTRL gradient.

Flattening follows the logical NCHW order (c, y, x), as PyTorch's `flatten` does.
Initialisation (`init_scheme`, layers.init_weight_bias): "pytorch" (fan-in uniform for every weight
and bias, the paper's code) or "he" (variance-preserving through ReLU layers, zero biases). With
"pytorch" the Nature stem's features on Atari frames are about 0.006 +- 0.009 and vary by 2e-4
over time at initialisation: the core sees an almost constant input (measured; see
docs/results/atari-breakout/results.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from rtrl_ref.r2ac.conv import (
    ConvCache,
    ConvParams,
    PoolCache,
    check_conv,
    conv2d,
    conv2d_backward,
    init_conv,
    max_pool2d,
    max_pool2d_backward,
    out_size,
)
from rtrl_ref.r2ac.layers import (
    LinearCache,
    LinearParams,
    ReLUCache,
    check_linear,
    init_linear,
    linear,
    linear_backward,
    relu,
    relu_backward,
)
from rtrl_ref.validate import check_array


class ConvReLUCache(NamedTuple):
    conv: ConvCache
    relu: ReLUCache


class LinearReLUCache(NamedTuple):
    linear: LinearCache
    relu: ReLUCache


# ----------------------------------------------------------------------------- observations

def _check_obs_shape(obs_shape, ndim: int) -> tuple[int, ...]:
    obs_shape = tuple(int(s) for s in obs_shape)
    if len(obs_shape) != ndim or min(obs_shape) < 1:
        raise ValueError(f"obs_shape: expected {ndim} positive sizes, got {obs_shape}")
    return obs_shape


def _flatten_obs(obs, item_shape: tuple, dtype, pixels: bool):
    """obs (..., *item_shape) -> (float (N, *item_shape), leading shape)."""
    if not hasattr(obs, "shape") or tuple(obs.shape[obs.ndim - len(item_shape):]) != item_shape \
            or obs.ndim < len(item_shape) + 1:
        got = tuple(obs.shape) if hasattr(obs, "shape") else type(obs).__name__
        raise ValueError(f"obs: expected shape (..., {', '.join(map(str, item_shape))}) with at "
                         f"least one leading dim, got {got}")
    lead = tuple(obs.shape[:obs.ndim - len(item_shape)])
    obs = obs.reshape((-1,) + item_shape)                            # (N, *item_shape)
    if pixels and obs.dtype == np.uint8:
        return obs.astype(dtype) * dtype.type(1 / 255), lead         # (N, C, Y, X)
    check_array("obs", obs, obs.shape, dtype)
    return obs, lead


def _check_flat_size(fc: LinearParams, flat_size: int, item_shape: tuple) -> None:
    """The FC layer must fit the spatial size of these observations."""
    if flat_size != fc.W.shape[1]:
        raise ValueError(f"obs: spatial shape {item_shape} gives {flat_size} features after the "
                         f"convolutions, but params.fc expects {fc.W.shape[1]}; initialise the stem "
                         f"with this obs_shape")


# ----------------------------------------------------------------------------- nature

NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))   # (channels, kernel, stride), no padding


class NatureParams(NamedTuple):
    conv1: ConvParams
    conv2: ConvParams
    conv3: ConvParams
    fc: LinearParams


class NatureCache(NamedTuple):
    convs: tuple         # of ConvReLUCache, one per conv layer
    flat_shape: tuple    # (N, D, OY, OX) of the last conv output
    fc: LinearReLUCache
    lead: tuple          # leading dims of obs


def nature_flat_size(obs_shape) -> int:
    """Features after the three convolutions (0 if the image is smaller than 36 x 36)."""
    _, Y, X = obs_shape
    for _, K, S in NATURE_CONVS:
        Y, X = out_size(Y, K, S, 0), out_size(X, K, S, 0)
    return NATURE_CONVS[-1][0] * Y * X if min(Y, X) >= 1 else 0


def init_nature(rng: np.random.Generator, obs_shape, out_features: int = 256,
                dtype=np.float32, init_scheme: str = "pytorch") -> NatureParams:
    C, Y, X = _check_obs_shape(obs_shape, 3)
    flat_size = nature_flat_size((C, Y, X))
    if flat_size == 0:
        raise ValueError(f"obs_shape: expected a spatial size the Nature CNN can reduce "
                         f"(>= 36 x 36), got {(C, Y, X)}")
    convs = []
    for D, K, _ in NATURE_CONVS:
        convs.append(init_conv(rng, C, D, K, dtype, init_scheme))
        C = D
    fc = init_linear(rng, flat_size, out_features, dtype, init_scheme)
    return NatureParams(*convs, fc)


def nature_forward(params: NatureParams, obs):
    """Nature-DQN CNN: obs (..., C, Y, X) -> (features (..., F), cache)."""
    dtype = params.fc.W.dtype
    check_linear("params.fc", params.fc)
    item_shape = (params.conv1.W.shape[1],) + tuple(obs.shape[-2:])
    a, lead = _flatten_obs(obs, item_shape, dtype, pixels=True)      # (N, C, Y, X)
    _check_flat_size(params.fc, nature_flat_size(item_shape), item_shape)
    conv_caches = []
    for name, conv_p, (_, _, S) in zip(("conv1", "conv2", "conv3"), params[:3], NATURE_CONVS):
        check_conv(conv_p, a, S, 0, f"params.{name}")
        a, conv_cache = conv2d(conv_p, a, S, 0, validate=False)      # (N, D, OY, OX)
        a, relu_cache = relu(a)                                      # (N, D, OY, OX)
        conv_caches.append(ConvReLUCache(conv_cache, relu_cache))
    flat = a.reshape(a.shape[0], -1)                                 # (N, D*OY*OX)
    pre, fc_cache = linear(params.fc, flat)                          # (N, F)
    features, out_cache = relu(pre)                                  # (N, F)
    cache = NatureCache(tuple(conv_caches), a.shape, LinearReLUCache(fc_cache, out_cache), lead)
    return features.reshape(lead + (-1,)), cache                     # (..., F)


def nature_backward(g_features, cache: NatureCache, params: NatureParams) -> NatureParams:
    g_pre = relu_backward(g_features.reshape(-1, params.fc.W.shape[0]), cache.fc.relu)  # (N, F)
    g_flat, g_fc = linear_backward(g_pre, cache.fc.linear, params.fc)  # (N, D*OY*OX)
    g_a = g_flat.reshape(cache.flat_shape)                           # (N, D, OY, OX)
    g_convs = [None] * 3
    for k in (2, 1, 0):
        g_a = relu_backward(g_a, cache.convs[k].relu)                # (N, D, OY, OX)
        g_a, g_convs[k] = conv2d_backward(g_a, cache.convs[k].conv, params[k], need_g_x=k > 0)
    return NatureParams(*g_convs, g_fc)


# ----------------------------------------------------------------------------- impala

IMPALA_CHANNELS = (16, 32, 32)


class ResBlockParams(NamedTuple):
    conv1: ConvParams
    conv2: ConvParams


class ImpalaStageParams(NamedTuple):
    conv: ConvParams
    res1: ResBlockParams
    res2: ResBlockParams


class ImpalaParams(NamedTuple):
    stages: tuple        # of ImpalaStageParams
    fc: LinearParams


class ResBlockCache(NamedTuple):
    relu1: ReLUCache
    conv1: ConvCache
    relu2: ReLUCache
    conv2: ConvCache


class ImpalaStageCache(NamedTuple):
    conv: ConvCache
    pool: PoolCache
    res1: ResBlockCache
    res2: ResBlockCache


class ImpalaCache(NamedTuple):
    stages: tuple        # of ImpalaStageCache
    relu: ReLUCache      # the final ReLU before flattening
    flat_shape: tuple    # (N, D, OY, OX)
    fc: LinearReLUCache
    lead: tuple


def impala_flat_size(obs_shape, channels: tuple[int, ...] = IMPALA_CHANNELS) -> int:
    """Features after the stages: each halves the spatial size (rounding up)."""
    _, Y, X = obs_shape
    for _ in channels:
        Y, X = out_size(Y, 3, 2, 1), out_size(X, 3, 2, 1)
    return channels[-1] * Y * X


def init_impala(rng: np.random.Generator, obs_shape, out_features: int = 256, dtype=np.float32,
                channels: tuple[int, ...] = IMPALA_CHANNELS, init_scheme: str = "pytorch") -> ImpalaParams:
    C, Y, X = _check_obs_shape(obs_shape, 3)
    if len(channels) < 1 or min(channels) < 1:
        raise ValueError(f"channels: expected positive channel counts, got {channels}")
    stages = []
    for D in channels:
        conv = init_conv(rng, C, D, 3, dtype, init_scheme)
        res = [ResBlockParams(init_conv(rng, D, D, 3, dtype, init_scheme), init_conv(rng, D, D, 3, dtype, init_scheme))
               for _ in range(2)]
        stages.append(ImpalaStageParams(conv, *res))
        C = D
    fc = init_linear(rng, impala_flat_size(obs_shape, channels), out_features, dtype, init_scheme)
    return ImpalaParams(tuple(stages), fc)


def res_block(p: ResBlockParams, x, name: str = "res"):
    """y = x + conv2(relu(conv1(relu(x)))), 3x3 convs, stride 1, pad 1, D -> D channels."""
    D = x.shape[1]
    for field, conv_p in zip(p._fields, p):
        check_conv(conv_p, x, 1, 1, f"{name}.{field}")
        check_array(f"{name}.{field}.W", conv_p.W, (("D", D), ("D", D), 3, 3))
    r, relu1 = relu(x)                                               # (N, D, Y, X)
    r, conv1 = conv2d(p.conv1, r, 1, 1, validate=False)              # (N, D, Y, X)
    r, relu2 = relu(r)                                               # (N, D, Y, X)
    r, conv2 = conv2d(p.conv2, r, 1, 1, validate=False)              # (N, D, Y, X)
    return x + r, ResBlockCache(relu1, conv1, relu2, conv2)          # (N, D, Y, X)


def res_block_backward(g_y, cache: ResBlockCache, p: ResBlockParams):
    g_r, g_conv2 = conv2d_backward(g_y, cache.conv2, p.conv2)        # (N, D, Y, X)
    g_r = relu_backward(g_r, cache.relu2)                            # (N, D, Y, X)
    g_r, g_conv1 = conv2d_backward(g_r, cache.conv1, p.conv1)        # (N, D, Y, X)
    g_x = g_y + relu_backward(g_r, cache.relu1)                      # (N, D, Y, X) skip + branch
    return g_x, ResBlockParams(g_conv1, g_conv2)


def impala_stage(p: ImpalaStageParams, x, name: str = "stage"):
    """conv 3x3/1 pad 1, max-pool 3x3/2 pad 1, two residual blocks."""
    check_conv(p.conv, x, 1, 1, f"{name}.conv")
    a, conv = conv2d(p.conv, x, 1, 1, validate=False)                # (N, D, Y, X)
    a, pool = max_pool2d(a, 3, 2, 1)                                 # (N, D, OY, OX)
    a, res1 = res_block(p.res1, a, f"{name}.res1")                   # (N, D, OY, OX)
    a, res2 = res_block(p.res2, a, f"{name}.res2")                   # (N, D, OY, OX)
    return a, ImpalaStageCache(conv, pool, res1, res2)


def impala_stage_backward(g_y, cache: ImpalaStageCache, p: ImpalaStageParams, need_g_x: bool = True):
    g_a, g_res2 = res_block_backward(g_y, cache.res2, p.res2)        # (N, D, OY, OX)
    g_a, g_res1 = res_block_backward(g_a, cache.res1, p.res1)        # (N, D, OY, OX)
    g_a = max_pool2d_backward(g_a, cache.pool)                       # (N, D, Y, X)
    g_x, g_conv = conv2d_backward(g_a, cache.conv, p.conv, need_g_x)  # (N, C, Y, X)
    return g_x, ImpalaStageParams(g_conv, g_res1, g_res2)


def impala_forward(params: ImpalaParams, obs):
    """IMPALA deep ResNet: obs (..., C, Y, X) -> (features (..., F), cache)."""
    dtype = params.fc.W.dtype
    check_linear("params.fc", params.fc)
    item_shape = (params.stages[0].conv.W.shape[1],) + tuple(obs.shape[-2:])
    a, lead = _flatten_obs(obs, item_shape, dtype, pixels=True)      # (N, C, Y, X)
    channels = tuple(stage.conv.W.shape[0] for stage in params.stages)
    _check_flat_size(params.fc, impala_flat_size(item_shape, channels), item_shape)
    stage_caches = []
    for k, stage in enumerate(params.stages):
        a, stage_cache = impala_stage(stage, a, f"params.stages[{k}]")  # (N, D, OY, OX)
        stage_caches.append(stage_cache)
    a, relu_cache = relu(a)                                          # (N, D, OY, OX)
    flat = a.reshape(a.shape[0], -1)                                 # (N, D*OY*OX)
    pre, fc_cache = linear(params.fc, flat)                          # (N, F)
    features, out_cache = relu(pre)                                  # (N, F)
    cache = ImpalaCache(tuple(stage_caches), relu_cache, a.shape, LinearReLUCache(fc_cache, out_cache), lead)
    return features.reshape(lead + (-1,)), cache                     # (..., F)


def impala_backward(g_features, cache: ImpalaCache, params: ImpalaParams) -> ImpalaParams:
    g_pre = relu_backward(g_features.reshape(-1, params.fc.W.shape[0]), cache.fc.relu)  # (N, F)
    g_flat, g_fc = linear_backward(g_pre, cache.fc.linear, params.fc)  # (N, D*OY*OX)
    g_a = relu_backward(g_flat.reshape(cache.flat_shape), cache.relu)  # (N, D, OY, OX)
    g_stages = [None] * len(params.stages)
    for k in reversed(range(len(params.stages))):
        g_a, g_stages[k] = impala_stage_backward(g_a, cache.stages[k], params.stages[k],
                                                 need_g_x=k > 0)
    return ImpalaParams(tuple(g_stages), g_fc)


# ----------------------------------------------------------------------------- mlp

class MLPParams(NamedTuple):
    layers: tuple        # of LinearParams


class MLPCache(NamedTuple):
    layers: tuple        # of LinearReLUCache, one per layer
    lead: tuple


def init_mlp(rng: np.random.Generator, obs_shape, out_features: int = 256, dtype=np.float32,
             hidden: tuple[int, ...] = (256,), init_scheme: str = "pytorch") -> MLPParams:
    (F_in,) = _check_obs_shape(obs_shape, 1)
    widths = tuple(hidden) + (out_features,)
    if min(widths) < 1:
        raise ValueError(f"hidden: expected positive widths, got {tuple(hidden)}")
    layers = []
    for F_out in widths:
        layers.append(init_linear(rng, F_in, F_out, dtype, init_scheme))
        F_in = F_out
    return MLPParams(tuple(layers))


def mlp_forward(params: MLPParams, obs):
    """obs (..., I) float -> (features (..., F), cache)."""
    for k, layer in enumerate(params.layers):
        check_linear(f"params.layers[{k}]", layer, params.layers[0].W.dtype)
    dtype = params.layers[0].W.dtype
    a, lead = _flatten_obs(obs, (params.layers[0].W.shape[1],), dtype, pixels=False)  # (N, I)
    caches = []
    for layer in params.layers:
        a, lin = linear(layer, a)                                    # (N, F_out)
        a, act = relu(a)                                             # (N, F_out)
        caches.append(LinearReLUCache(lin, act))
    return a.reshape(lead + (-1,)), MLPCache(tuple(caches), lead)    # (..., F)


def mlp_backward(g_features, cache: MLPCache, params: MLPParams) -> MLPParams:
    g_a = g_features.reshape(-1, params.layers[-1].W.shape[0])       # (N, F)
    grads = [None] * len(params.layers)
    for k in reversed(range(len(params.layers))):
        g_a = relu_backward(g_a, cache.layers[k].relu)               # (N, F_out)
        g_a, grads[k] = linear_backward(g_a, cache.layers[k].linear, params.layers[k], need_g_x=k > 0)
    return MLPParams(tuple(grads))


# ----------------------------------------------------------------------------- identity

class IdentityParams(NamedTuple):
    """No parameters: vector observations go straight into the core."""


def init_identity(rng: np.random.Generator, obs_shape, out_features: int | None = None,
                  dtype=np.float32, init_scheme: str = "pytorch") -> IdentityParams:
    (I,) = _check_obs_shape(obs_shape, 1)
    if out_features is not None and out_features != I:
        raise ValueError(f"out_features: the identity stem outputs the observation itself, "
                         f"expected {I} (the observation size), got {out_features}")
    return IdentityParams()


def identity_forward(params: IdentityParams, obs):
    """features = obs as float32 (..., I); the cache is nothing."""
    if not hasattr(obs, "ndim") or obs.ndim < 2:
        raise ValueError(f"obs: expected shape (..., I) with at least one leading dim, got "
                         f"{getattr(obs, 'shape', type(obs).__name__)}")
    return np.asarray(obs, dtype=obs.dtype if obs.dtype.kind == "f" else np.float32), None


def identity_backward(g_features, cache, params: IdentityParams) -> IdentityParams:
    return IdentityParams()


# ----------------------------------------------------------------------------- joining caches
# The forward pass over N = N_1 + ... + N_k observations, assembled from k forward passes over
# N_j observations each (with the same parameters): the acting pass runs the stem one step at a
# time, and the learner reuses those steps instead of running the stem again over the unroll.
# Every cached array is row-separable: its rows (axis 0) belong to one observation each.

def _cat(arrays, axis: int = 0):
    return np.concatenate(list(arrays), axis=axis)


def _join_linear_relu(caches: list) -> LinearReLUCache:
    return LinearReLUCache(LinearCache(_cat(c.linear.x for c in caches)),
                           ReLUCache(_cat(c.relu.y for c in caches)))


def _join_conv_relu(caches: list) -> ConvReLUCache:
    """The im2col patches are dropped (the backward gathers them again from x): copying them costs
    more than gathering them (measured at Breakout's sizes: 109 ms against 13 ms for the rest of
    the join, and 19 ms more in the backward)."""
    convs = [c.conv for c in caches]
    conv = ConvCache(_cat(c.x for c in convs), None, convs[0].stride, convs[0].padding)
    return ConvReLUCache(conv, ReLUCache(_cat(c.relu.y for c in caches)))


def nature_join(caches: list, lead: tuple) -> NatureCache:
    """One NatureCache for the observations of `caches` in order, with leading dims `lead`."""
    convs = tuple(_join_conv_relu([c.convs[k] for c in caches]) for k in range(len(NATURE_CONVS)))
    N = sum(c.flat_shape[0] for c in caches)
    return NatureCache(convs, (N,) + tuple(caches[0].flat_shape[1:]),
                       _join_linear_relu([c.fc for c in caches]), tuple(lead))


def mlp_join(caches: list, lead: tuple) -> MLPCache:
    layers = tuple(_join_linear_relu([c.layers[k] for c in caches]) for k in range(len(caches[0].layers)))
    return MLPCache(layers, tuple(lead))


def identity_join(caches: list, lead: tuple) -> None:
    return None


# ----------------------------------------------------------------------------- registry

class Stem(NamedTuple):
    init: Callable       # (rng, obs_shape, out_features=256, dtype=np.float32, **options) -> params
    forward: Callable    # (params, obs) -> (features (..., F), cache)
    backward: Callable   # (g_features, cache, params) -> grads
    join: Callable | None = None  # (caches of forward passes, lead) -> the cache of one pass over all; None: n/a


STEMS = {
    "nature": Stem(init_nature, nature_forward, nature_backward, nature_join),
    "impala": Stem(init_impala, impala_forward, impala_backward),
    "mlp": Stem(init_mlp, mlp_forward, mlp_backward, mlp_join),
    "identity": Stem(init_identity, identity_forward, identity_backward, identity_join),
}


def get_stem(name: str) -> Stem:
    if name not in STEMS:
        raise ValueError(f"stem: expected one of {sorted(STEMS)}, got {name!r}")
    return STEMS[name]
