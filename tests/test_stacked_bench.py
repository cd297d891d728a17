"""The stacked RTRL benchmark (rtrl_ref/bench/stacked.py) at tiny sizes: its rows, the traces the step carries
equal to `trace_bytes`, the largest-H solve, and the files it writes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rtrl_ref.bench import stacked as bench
from rtrl_ref.stacked import trace_bytes


def test_measure_rows_and_trace_bytes():
    rows = bench.measure([1, 2, 3], [2, 4], I=3, B=2, rounds=1)
    assert [(r["L"], r["H"]) for r in rows] == [(L, H) for L in (1, 2, 3) for H in (2, 4)]
    for r in rows:
        where = f"L={r['L']} H={r['H']}"
        assert r["state_trace_bytes"] == r["trace_bytes"] == trace_bytes(2, r["L"], r["H"], 3), where
        assert r["step_peak_bytes"] >= r["trace_bytes"], where      # the step allocates the new traces
        assert r["step_s"] > 0 and r["steps_per_call"] >= 1, where
        assert r["time_over_L1"] > 0 and r["traces_over_L1"] >= 1, where
    by = {(r["L"], r["H"]): r for r in rows}
    assert by[2, 4]["trace_bytes"] > by[1, 4]["trace_bytes"] and by[3, 4]["trace_bytes"] > by[2, 4]["trace_bytes"]


def test_check_exact_passes_the_library_and_fails_a_wrong_gradient(monkeypatch):
    bench.check_exact(2, 3, 2, 1)            # raises AssertionError if stacked RTRL != stacked BPTT
    right = bench.stacked_rtrl_sequence

    def wrong(*args, **kwargs):              # layer 1's gradient 1% off
        result = right(*args, **kwargs)
        grads = (type(result.grads[0])(*(1.01 * a for a in result.grads[0])), *result.grads[1:])
        return result._replace(grads=grads)

    monkeypatch.setattr(bench, "stacked_rtrl_sequence", wrong)
    with pytest.raises(AssertionError, match="layer 1"):
        bench.check_exact(2, 3, 2, 1)


@pytest.mark.parametrize("L", [1, 2, 3])
def test_largest_H_is_the_boundary(L):
    budget = 3 * 2**20
    H = bench.largest_H(L, 5, 1, budget)
    assert H >= 1
    assert trace_bytes(1, L, H, 5) <= budget < trace_bytes(1, L, H + 1, 5), f"L={L} H={H}"
    H_agent = bench.largest_H(L, None, 1, budget)
    assert trace_bytes(1, L, H_agent, H_agent + 1) <= budget < trace_bytes(1, L, H_agent + 1, H_agent + 2)
    assert bench.largest_H(L, 5, 1, 1) == 0


def test_main_writes_json_markdown_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    assert bench.main(["--L", "1", "2", "--H", "2", "3", "--I", "2", "--rounds", "1", "--budget-gib", "0.001",
                       "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "results.json").read_text())
    assert {"command", "rows", "fits", "trace_slopes", "time_slopes", "machine", "threads"} <= set(result)
    assert len(result["rows"]) == 4 and [f["L"] for f in result["fits"]] == [1, 2]
    assert all(r["state_trace_bytes"] == r["trace_bytes"] for r in result["rows"])
    md = (tmp_path / "results.md").read_text()
    assert "python -m rtrl_ref.bench.stacked" in md and "shared" in md and "| NO |" not in md
    assert (tmp_path / "stacked.png").stat().st_size > 0
    slope = result["trace_slopes"]["2"]
    assert np.isfinite(slope) and slope > 1


def test_bad_flags_are_refused():
    with pytest.raises(SystemExit):
        bench.main(["--H", "0"])
