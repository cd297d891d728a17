"""The three stems: shapes, registry interface, finite-difference gradients, negative twins."""

import numpy as np
import pytest

import rtrl_ref.r2ac.stems as stems
from rtrl_ref.r2ac.conv import max_pool2d_backward
from rtrl_ref.r2ac.stems import STEMS, get_stem, init_impala, init_mlp, init_nature
from rtrl_ref.r2ac.tree import tree_leaves, tree_map
from verify.compare import assert_all_ok, assert_close, tolerance
from verify.fd import fd_check

# tiny configurations: obs_shape, init options, leading dims of the observations, and a seed
# whose features and parameter gradients are not dead (tiny ReLU nets often are; see tiny_problem)
TINY = {
    "nature": ((2, 36, 36), {}, (2,), 0),
    "impala": ((2, 12, 12), {"channels": (3, 4, 4)}, (2,), 7),
    "mlp": ((5,), {"hidden": (8, 6)}, (2, 2), 7),
}


def make_obs(rng, obs_shape, lead):
    if len(obs_shape) == 3:
        return rng.integers(0, 256, lead + obs_shape, dtype=np.uint8)  # (..., C, Y, X)
    return rng.standard_normal(lead + obs_shape)                       # (..., I)


TRAINABLE = sorted(name for name in STEMS if name != "identity")


def stem_fd(name, params, obs, G, max_entries=6):
    """fd_check of L = sum(features * G) over every parameter leaf, analytic gradients from the
    stem's backward (looked up at call time, so a test can substitute a broken piece)."""
    stem = STEMS[name]

    def loss():
        return float((stem.forward(params, obs)[0] * G).sum())

    grads = stem.backward(G, stem.forward(params, obs)[1], params)
    return fd_check(name, loss, params, grads, max_entries=max_entries)


def tiny_problem(name, out_features=6):
    """Parameters, observations and an upstream gradient G; refuses a dead configuration."""
    obs_shape, options, lead, seed = TINY[name]
    rng = np.random.default_rng(seed)
    params = STEMS[name].init(rng, obs_shape, out_features, np.float64, **options)
    obs = make_obs(rng, obs_shape, lead)
    G = rng.standard_normal(lead + (out_features,))                   # (..., F)
    features, cache = STEMS[name].forward(params, obs)
    grads = STEMS[name].backward(G, cache, params)
    assert np.count_nonzero(features) >= features.size // 3, "mostly dead features: pick another seed"
    assert all(np.any(g != 0) for _, g in tree_leaves(grads)), "a zero gradient leaf: pick another seed"
    return params, obs, G


@pytest.mark.parametrize("name", TRAINABLE)
def test_stem_backward_matches_fd(name):
    params, obs, G = tiny_problem(name)
    assert_all_ok(stem_fd(name, params, obs, G))


@pytest.mark.parametrize("name", TRAINABLE)
def test_stem_backward_negative_twin_relu_mask_forgotten(name, monkeypatch):
    params, obs, G = tiny_problem(name)
    monkeypatch.setattr(stems, "relu_backward", lambda g_y, cache: g_y)
    assert not all(c.ok for c in stem_fd(name, params, obs, G)), "a backward without ReLU masks passed the FD check"


def test_impala_backward_negative_twin_pool_routes_to_wrong_cell(monkeypatch):
    params, obs, G = tiny_problem("impala")

    def shifted_pool_backward(g_y, cache):
        shifted = (cache.argmax.astype(np.int64) + 1) % cache.kernel ** 2
        return max_pool2d_backward(g_y, cache._replace(argmax=shifted.astype(np.uint8)))

    monkeypatch.setattr(stems, "max_pool2d_backward", shifted_pool_backward)
    checks = {c.name: c for c in stem_fd("impala", params, obs, G)}
    assert not checks["impala.stages.0.conv.W"].ok, checks["impala.stages.0.conv.W"].message()


def test_impala_full_width_backward_matches_fd_on_sampled_entries():
    rng = np.random.default_rng(1)
    params = init_impala(rng, (3, 8, 8), 4, np.float64)               # channels 16, 32, 32
    obs = rng.integers(0, 256, (2, 3, 8, 8), dtype=np.uint8)          # (N, C, Y, X)
    G = rng.standard_normal((2, 4))                                   # (N, F)
    assert_all_ok(stem_fd("impala", params, obs, G, max_entries=3))


@pytest.mark.parametrize("name, obs_shape, flat", [
    ("nature", (4, 84, 84), 3136), ("nature", (3, 64, 64), 1024),
    ("impala", (4, 84, 84), 3872), ("impala", (3, 64, 64), 2048), ("impala", (3, 72, 96), 3456),
])
def test_flatten_sizes_of_the_paper(name, obs_shape, flat):
    params = STEMS[name].init(np.random.default_rng(0), obs_shape)
    assert params.fc.W.shape == (256, flat)


@pytest.mark.parametrize("name", ["nature", "impala"])
def test_pixel_stem_on_atari_frames(name):
    rng = np.random.default_rng(2)
    params = STEMS[name].init(rng, (4, 84, 84), 256, np.float32)
    obs = rng.integers(0, 256, (2, 4, 84, 84), dtype=np.uint8)        # (N, C, Y, X)
    features, cache = STEMS[name].forward(params, obs)
    assert features.shape == (2, 256) and features.dtype == np.float32 and np.all(features >= 0)
    grads = STEMS[name].backward(np.ones_like(features), cache, params)
    for (leaf, a), (_, g) in zip(tree_leaves(params), tree_leaves(grads)):
        assert g.shape == a.shape and g.dtype == a.dtype, leaf


def test_nature_structure_and_fan_in_init():
    params = init_nature(np.random.default_rng(3), (4, 84, 84))
    shapes = [(leaf, a.shape) for leaf, a in tree_leaves(params)]
    assert shapes == [("conv1.W", (32, 4, 8, 8)), ("conv1.b", (32,)), ("conv2.W", (64, 32, 4, 4)),
                      ("conv2.b", (64,)), ("conv3.W", (64, 64, 3, 3)), ("conv3.b", (64,)),
                      ("fc.W", (256, 3136)), ("fc.b", (256,))]
    for conv, fan_in in ((params.conv1, 4 * 64), (params.conv2, 32 * 16), (params.conv3, 64 * 9)):
        bound = 1 / np.sqrt(fan_in)
        assert np.abs(conv.W).max() <= bound and np.abs(conv.W).max() > 0.9 * bound
        assert np.abs(conv.b).max() <= bound


def test_impala_structure():
    params = init_impala(np.random.default_rng(4), (3, 64, 64))
    names = [leaf for leaf, _ in tree_leaves(params)]
    assert len(names) == 3 * 5 * 2 + 2
    assert names[:4] == ["stages.0.conv.W", "stages.0.conv.b", "stages.0.res1.conv1.W", "stages.0.res1.conv1.b"]
    assert [s.conv.W.shape[0] for s in params.stages] == [16, 32, 32]


def test_mlp_widths_are_configurable():
    params = init_mlp(np.random.default_rng(5), (7,), 16, np.float32, hidden=(32, 8))
    assert [layer.W.shape for layer in params.layers] == [(32, 7), (8, 32), (16, 8)]


@pytest.mark.parametrize("name", TRAINABLE)
def test_leading_dims_are_flattened(name):
    obs_shape, options, _, seed = TINY[name]
    rng = np.random.default_rng(seed)
    params = STEMS[name].init(rng, obs_shape, 3, np.float64, **options)
    obs = make_obs(rng, obs_shape, (3, 2))                            # (T, B, ...)
    f_tb, _ = STEMS[name].forward(params, obs)
    f_n, _ = STEMS[name].forward(params, obs.reshape((6,) + obs_shape))
    assert f_tb.shape == (3, 2, 3)
    np.testing.assert_array_equal(f_tb.reshape(6, 3), f_n)


@pytest.mark.parametrize("name", ["nature", "impala"])
def test_uint8_is_scaled_by_255(name):
    params, obs, _ = tiny_problem(name)
    f_uint8, _ = STEMS[name].forward(params, obs)
    f_float, _ = STEMS[name].forward(params, obs / 255.0)
    assert_close(f"{name} uint8 vs float", f_uint8, f_float, tolerance("exact", np.float64))


@pytest.mark.parametrize("name", TRAINABLE)
def test_float32_matches_float64(name):
    params, obs, G = tiny_problem(name)
    params32 = tree_map(lambda a: a.astype(np.float32), params)
    obs32 = obs if obs.dtype == np.uint8 else obs.astype(np.float32)
    f64, c64 = STEMS[name].forward(params, obs)
    f32, c32 = STEMS[name].forward(params32, obs32)
    g64 = STEMS[name].backward(G, c64, params)
    g32 = STEMS[name].backward(G.astype(np.float32), c32, params32)
    assert_close(f"{name} features", f32, f64, 1e-5)
    for (leaf, a32), (_, a64) in zip(tree_leaves(g32), tree_leaves(g64)):
        assert a32.dtype == np.float32, leaf
        assert_close(f"{name} grad {leaf}", a32, a64, 1e-4)


@pytest.mark.parametrize("name, obs, match", [
    ("nature", np.zeros((2, 3, 36, 36), np.uint8), "obs: expected shape"),
    ("nature", np.zeros((2, 2, 44, 44), np.uint8), "obs: spatial shape"),
    ("impala", np.zeros((2, 2, 12, 12), np.int16), "obs: expected dtype"),
    ("impala", np.zeros((2, 12, 12), np.uint8), "obs: expected shape"),
    ("mlp", np.zeros((2, 4)), "obs: expected shape"),
    ("mlp", np.zeros((2, 5), np.float32), "obs: expected dtype"),
])
def test_stems_reject_bad_observations(name, obs, match):
    obs_shape, options, _, seed = TINY[name]
    params = STEMS[name].init(np.random.default_rng(seed), obs_shape, 3, np.float64, **options)
    with pytest.raises(ValueError, match=match):
        STEMS[name].forward(params, obs)


def test_registry_and_init_errors():
    assert set(STEMS) == {"nature", "impala", "mlp", "identity"}
    with pytest.raises(ValueError, match="stem: expected one of"):
        get_stem("resnet50")
    with pytest.raises(ValueError, match="obs_shape"):
        init_nature(np.random.default_rng(0), (4, 20, 20))
    with pytest.raises(ValueError, match="obs_shape"):
        init_mlp(np.random.default_rng(0), (4, 4))


def test_too_small_images_are_refused_before_computing():
    params = init_nature(np.random.default_rng(0), (2, 36, 36), 3, np.float64)
    with pytest.raises(ValueError, match=r"obs: spatial shape \(2, 20, 20\) gives 0 features"):
        STEMS["nature"].forward(params, np.zeros((1, 2, 20, 20), np.uint8))


def test_identity_stem_passes_vectors_through():
    stem = STEMS["identity"]
    params = stem.init(np.random.default_rng(0), (5,))
    obs = np.arange(10, dtype=np.float32).reshape(2, 5)
    features, cache = stem.forward(params, obs)
    assert features is obs or np.array_equal(features, obs)
    assert stem.backward(np.ones((2, 5)), cache, params) == params == ()
    with pytest.raises(ValueError, match="out_features: the identity stem outputs the observation itself, expected 5"):
        stem.init(np.random.default_rng(0), (5,), 6)
    with pytest.raises(ValueError, match="obs_shape"):
        stem.init(np.random.default_rng(0), (3, 4, 4))
