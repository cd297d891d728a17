"""The paper-style PyTorch online step (rtrl_ref.bench.torch_online) == `online_step`, and its benchmark flag.

From the same CopyParams and data, k = 5 fully online steps (cell, output gate, readout, cross-entropy,
immediate g_c, RTRL traces, clip, Adam) of `rtrl_ref.r2ac.copy_online.online_step` (numpy and numba
backends) and of `TorchOnlineStep` leave the same parameters after every step, at B = 1 (global norm
below the clip) and B = 3 (the clip active), H = 5, with a reset of row 0 before step 3.

Tolerances. float64: both run the same formulas in float64 and agree to ~1e-17 (observed); atol 1e-12
leaves four orders of magnitude for summation-order round-off. float32: observed ~2e-8; atol 2e-6
(~16 ulps at 1, the parameters are below 1) for five steps of float32 round-off in the gradient, which
Adam's normalisation can amplify where a gradient entry is near eps. The negative twin (traces not
decayed by the Jacobian J_t, Eq. 7-8) moves the parameters by ~1e-3 from step 2 on (Adam steps are
of size ~lr = 3e-3), far outside both tolerances, and must fail the same comparison.

Needs torch (skipped without it, except the flag's error message when torch is missing).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rtrl_ref.kernels import get_backend
from rtrl_ref.r2ac.copy_online import CopyParams, init_copy, online_step
from rtrl_ref.r2ac.optim import adam_init
from rtrl_ref.r2ac.tree import tree_leaves
from rtrl_ref.traces import zero_traces

H, K, LR, CLIP = 5, 5, 3e-3, 1.0
ATOL = {np.float64: 1e-12, np.float32: 2e-6}
LOSS_RTOL = {np.float64: 1e-12, np.float32: 1e-5}


@pytest.fixture
def torch_online():
    pytest.importorskip("torch")
    from rtrl_ref.bench import torch_online

    return torch_online


def _backend(name: str):
    try:
        return get_backend(name)
    except (ImportError, RuntimeError) as err:
        pytest.skip(f"backend {name} not available here: {err}")


def _data(B: int, dtype, seed: int = 1):
    rng = np.random.default_rng(seed)
    params = init_copy(rng, H, dtype)
    x = np.eye(3, dtype=dtype)[rng.integers(0, 3, (K, B))]                        # (K, B, 3)
    y = rng.integers(0, 3, (K, B))                                                 # (K, B)
    resets = [np.arange(B) == 0 if t == 3 else None for t in range(K)]            # row 0 restarts at step 3
    return params, x, y, resets


def _max_diff(a: CopyParams, b: CopyParams) -> tuple[float, str]:
    """The largest absolute difference over every parameter leaf, and the leaf's name."""
    worst = (0.0, "")
    for (name, u), (_, v) in zip(tree_leaves(a), tree_leaves(b)):
        assert u.shape == v.shape and u.dtype == v.dtype, (name, u.shape, v.shape, u.dtype, v.dtype)
        d = float(np.max(np.abs(u.astype(np.float64) - v.astype(np.float64))))
        worst = max(worst, (d, str(name)))
    return worst


def _compare(torch_online, B: int, dtype, backend: str, **variant) -> list[str]:
    """Run both for K steps; the list of mismatches (empty: they agree at every step)."""
    params, x, y, resets = _data(B, dtype)
    be = _backend(backend)
    step = torch_online.TorchOnlineStep(params, B, LR, CLIP, threads=1, **variant)
    opt, c, traces = adam_init(params), np.zeros((B, H), dtype), zero_traces(B, H, 3, dtype)
    bad = []
    for t in range(K):
        r = online_step(params, opt, c, traces, x[t], y[t], LR, CLIP, be, reset_t=resets[t])
        params, opt, c, traces = r.params, r.opt, r.c, r.traces
        loss = step.step(x[t], y[t], resets[t])
        d, where = _max_diff(params, step.params())
        if d > ATOL[dtype]:
            bad.append(f"step {t}: parameters differ by {d:.2e} (in {where}) > {ATOL[dtype]:g}")
        if not np.isclose(loss, r.loss, rtol=LOSS_RTOL[dtype], atol=0):
            bad.append(f"step {t}: loss {loss!r} != {r.loss!r}")
    return bad


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_torch_step_matches_online_step(torch_online, backend, B, dtype):
    assert _compare(torch_online, B, dtype, backend) == []


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_negative_twin_without_jacobian_decay_fails(torch_online, backend, B, dtype):
    bad = _compare(torch_online, B, dtype, backend, jacobian_decay=False)
    assert bad, "the trace update without the Jacobian decay passed the comparison"
    assert not any(line.startswith("step 0:") for line in bad), bad      # from zero traces, step 0 agrees
    assert any(line.startswith("step 1: parameters") for line in bad), bad


def test_params_round_trip_and_dtype(torch_online):
    params, *_ = _data(2, np.float32)
    got = torch_online.TorchOnlineStep(params, 2).params()
    assert _max_diff(params, got)[0] == 0.0
    assert all(v.dtype == np.float32 for _, v in tree_leaves(got))
    assert isinstance(torch_online.torch_version(), str) and torch_online.available()


def test_modules_do_not_import_torch():
    """torch is never imported when the bench modules are (only inside their functions)."""
    code = ("import sys, rtrl_ref.bench.torch_online, rtrl_ref.bench.online_step; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


# ---------------------------------------------------------------------------------------------
# python -m rtrl_ref.bench.online_step --torch


def test_benchmark_torch_flag_smoke(torch_online, tmp_path, capsys):
    from rtrl_ref.bench.online_step import main as bench_main

    out = tmp_path / "online.json"
    argv = ["--B", "1", "2", "--H", "4", "--steps", "3", "--rounds", "1", "--torch", "--torch-threads", "1",
            "--out", str(out)]
    assert bench_main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["B"], r["H"]) for r in rows] == [(1, 4), (2, 4)]
    for r in rows:
        assert r["torch_us"] > 0 and r["fused_us"] > 0 and r["torch_threads"] == 1
        assert r["torch_over_fused"] == pytest.approx(r["torch_us"] / r["fused_us"])
        assert r["torch_version"] == torch_online.torch_version()
    printed = capsys.readouterr().out
    assert "torch us" in printed and "torch / fused" in printed


def test_benchmark_without_torch_flag_has_no_torch_columns(tmp_path):
    from rtrl_ref.bench.online_step import main as bench_main

    out = tmp_path / "online.json"
    assert bench_main(["--B", "1", "--H", "4", "--steps", "2", "--rounds", "1", "--out", str(out)]) == 0
    (row,) = json.loads(out.read_text())["rows"]
    assert not any(k.startswith("torch") for k in row)


def test_benchmark_torch_flag_without_torch_is_a_one_line_error(monkeypatch, capsys):
    from rtrl_ref.bench import online_step, torch_online

    monkeypatch.setattr(torch_online, "available", lambda: False)
    with pytest.raises(SystemExit) as exit:
        online_step.main(["--B", "1", "--H", "4", "--torch"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--torch" in err and "pip install torch" in err


def test_benchmark_torch_threads_needs_torch_flag(capsys):
    from rtrl_ref.bench.online_step import main as bench_main

    with pytest.raises(SystemExit) as exit:
        bench_main(["--torch-threads", "2"])
    assert exit.value.code == 2
    assert "--torch-threads 2: only with --torch" in capsys.readouterr().err
