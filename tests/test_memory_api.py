"""The API refuses what it cannot do: non-float parameters, allocations beyond available memory."""

import numpy as np
import pytest

import rtrl_ref.validate as validate
from rtrl_ref import elstm_forward, init_elstm
from rtrl_ref.traces import zero_traces
from rtrl_ref.validate import InsufficientMemory, check_memory


@pytest.mark.parametrize("dtype", [np.int64, np.int32, bool, np.float16, np.complex64])
def test_init_elstm_refuses_non_float_dtypes(dtype):
    with pytest.raises(ValueError, match=f"dtype: expected float32 or float64, got {np.dtype(dtype)}"):
        init_elstm(np.random.default_rng(0), 3, 4, dtype=dtype)


def test_the_issues_forward_is_refused_before_allocating(monkeypatch):
    """T=20000, B=64, H=512 needs 7 x 2 arrays of 2.6 GB: refused naming the bytes, not an OOM."""
    monkeypatch.setattr(validate, "available_memory", lambda xp=np: 8 * 2**30)   # an 8 GiB machine
    p = init_elstm(np.random.default_rng(0), 1, 512)
    x = np.zeros((20000, 64, 1), np.float32)                               # (T, B, I): 5 MB
    reset = np.zeros((20000, 64), bool)                                    # (T, B)
    nbytes = 14 * 20000 * 64 * 512 * 4
    with pytest.raises(MemoryError, match=f"elstm_forward: needs {nbytes:,} bytes") as err:
        elstm_forward(p, x, reset)
    assert isinstance(err.value, ValueError) and "(T, B, H) = (20000, 64, 512) float32" in str(err.value)
    with pytest.raises(InsufficientMemory, match=f"zero_traces: needs {2 * 64 * 512 * 100_000 * 4:,} bytes"):
        zero_traces(64, 512, 100_000)


def test_small_allocations_are_not_checked_and_real_ones_pass(monkeypatch):
    check_memory("x", 2**30, "a test", np)                                 # 1 GiB fits this machine's check
    monkeypatch.setattr(validate, "available_memory", lambda xp=np: 0)
    check_memory("x", 1000, "below the threshold", np)
    p = init_elstm(np.random.default_rng(0), 2, 3)
    c, _ = elstm_forward(p, np.zeros((4, 2, 2), np.float32), np.zeros((4, 2), bool))
    assert c.shape == (4, 2, 3)
