"""The audit CLI: the quick matrix passes, and a wrong gradient makes it fail with exit 1."""

import json

import pytest

from rtrl_ref.kernels import available_backends
from verify import audit, broken, cell_broken
from verify.audit import Options, cell_negative_twins, cell_plan, main, run_audit
from verify.audit_checks import cell_bptt_vs_fd, cell_rtrl_vs_bptt
from verify.cell_checks import CELL_NAMES
from verify.checks import LIBRARY


def rows_of(report: dict) -> list[dict]:
    return [dict(zip(report["columns"], r)) for r in report["rows"]]


def test_quick_audit_passes(tmp_path, capsys):
    status = main(["--quick", "--report", str(tmp_path / "quick")])
    out = capsys.readouterr().out
    failing = [line for line in out.splitlines() if " FAIL" in line]
    assert status == 0, "quick audit failed:\n" + "\n".join(failing)
    report = json.loads((tmp_path / "quick.json").read_text())
    assert report["ok"] and report["counts"]["failed"] == 0
    families = {f["family"] for f in report["families"]}
    assert {"bptt vs finite differences", "rtrl step form vs bptt", "rtrl segment form vs bptt",
            "dense rtrl vs rtrl", "tbptt bias", "oracle golden cases", "negative twins",
            "cells: bptt vs finite differences", "cells: rtrl step form vs bptt"} <= families
    rows = rows_of(report)
    assert {r["dtype"] for r in rows} >= {"float64", "float32"}
    assert any("resets=random" in r["sizes"] for r in rows if r["family"] == "rtrl step form vs bptt")
    md = (tmp_path / "quick.md").read_text()
    assert "| check | sizes | dtype | backend | tensor | max abs | rel | tol | verdict |" in md
    assert any(line.startswith("audit --quick PASS") for line in out.splitlines())


@pytest.fixture(scope="module")
def float64_numpy_audit():
    """A quick float64 audit that asks for numpy and cupy (cupy is skipped without a GPU)."""
    return run_audit(Options("quick", ("numpy", "cupy"), ("float64",)))


def test_every_family_has_a_negative_twin(float64_numpy_audit):
    res = float64_numpy_audit
    twins = {r.check.removeprefix("negative twin: ") for r in res.rows if r.family == "negative twins"}
    assert all(r.verdict == "pass" for r in res.rows if r.family == "negative twins")
    assert {"bptt vs finite differences", "rtrl step form vs bptt", "rtrl segment form vs bptt",
            "dense rtrl vs rtrl", "tbptt bias", "tbptt(k=T) vs bptt", "numpy vs numpy",
            "oracle check"} <= twins
    for name in CELL_NAMES:
        assert {f"{name}: bptt vs finite differences", f"{name}: rtrl step form vs bptt",
                f"oracle check ({name})"} <= twins


@pytest.mark.parametrize("wrong, family", [
    (broken.mutant_drivers("no_trace_reset", None), "rtrl step form vs bptt"),
    (LIBRARY._replace(problem_grads=broken.bptt_grads_no_wz_term), "bptt vs finite differences"),
    (LIBRARY._replace(rtrl_segment=broken.rtrl_segment_drop_carried), "rtrl segment form vs bptt"),
    (LIBRARY._replace(tbptt=broken.tbptt_untruncated), "tbptt bias"),
], ids=["rtrl-no-trace-reset", "bptt-no-wz-term", "segment-drops-carried", "tbptt-untruncated"])
def test_audit_fails_on_a_wrong_gradient(tmp_path, capsys, wrong, family):
    status = main(["--quick", "--dtype", "float64", "--backend", "numpy",
                   "--report", str(tmp_path / "r.json")], impl=wrong)
    out = capsys.readouterr().out
    assert status == 1, f"audit passed with a wrong gradient ({family})"
    report = json.loads((tmp_path / "r.json").read_text())
    failing = {r["family"] for r in rows_of(report) if r["verdict"] == "FAIL"}
    assert family in failing, f"expected {family} to fail, failing: {failing}"
    assert any(line.startswith("audit --quick FAIL") for line in out.splitlines())


def test_a_crashing_check_is_a_failure_not_a_crash(capsys):
    def explode(*args, **kwargs):
        raise RuntimeError("kernel exploded")

    status = main(["--quick", "--dtype", "float32", "--backend", "numpy"],
                  impl=LIBRARY._replace(rtrl_sequence=explode))
    out = capsys.readouterr().out
    assert status == 1 and "raised RuntimeError: kernel exploded" in out


def test_bad_options_exit_2(capsys):
    assert main(["--backend", "tpu"]) == 2
    assert "--backend: expected names from" in capsys.readouterr().err
    assert main(["--dtype", "float16"]) == 2


def test_unavailable_backend_is_skipped_not_failed(float64_numpy_audit):
    res = float64_numpy_audit
    if "cupy" in res.available:
        pytest.skip("cupy runs here")
    cupy_rows = [r for r in res.rows if r.family == "cupy vs numpy"]
    assert cupy_rows and all(r.verdict.startswith("skipped: not available") for r in cupy_rows)
    assert res.ok


def test_verify_entry_point_dispatches(capsys):
    from verify.__main__ import main as verify_main

    assert verify_main([]) == 2
    assert verify_main(["oracle", "list"]) == 0
    assert "long-f64" in capsys.readouterr().out
    assert verify_main(["nonsense"]) == 2


# ---------------------------------------------------------------------------------------------
# the IndRNN, minGRU and LRU rows (rtrl_ref.cells)


@pytest.fixture(scope="module")
def cell_rows():
    """The cells' quick rows, every dtype and the backends that run here."""
    opt = Options("quick", ("numpy", "numba"), ("float64", "float32"))
    available = available_backends()
    return [r for fam in cell_plan(opt, available) for r in fam.run()], available


def test_cell_rows_pass_over_regimes_dtypes_and_backends(cell_rows):
    rows, available = cell_rows
    bad = [f"{r.check} {r.sizes} {r.dtype} {r.backend} {r.tensor}: rel {r.rel}" for r in rows if not r.ok]
    assert not bad, "\n".join(bad)
    for name in CELL_NAMES:
        mine = [r for r in rows if r.check.startswith(f"{name}: ")]
        fd = [r for r in mine if "finite differences" in r.check]
        step = [r for r in mine if "rtrl step form" in r.check]
        assert {r.tensor.split(".")[1] for r in fd} == {"p", "x", "s_0"}, "every parameter, x and s_0"
        assert any("s_0.im" in r.tensor for r in fd) == (name == "lru"), "both parts of a complex s_0"
        assert {r.dtype for r in step} == {"float64", "float32"}
        assert {r.backend for r in step} == {"numpy", "numba"} & set(available)
        for regime in ("normal", "saturated", "slow"):
            assert any(f"regime={regime}" in r.sizes for r in fd) and any(f"regime={regime}" in r.sizes for r in step)
        assert any("T=200" in r.sizes for r in step) and any("resets=rows" in r.sizes for r in step)
        assert all("cut at" in r.check for r in step), "carried state and traces across calls"


def test_cell_rows_have_negative_twins_on_every_backend():
    opt = Options("quick", ("numpy", "numba"), ("float64", "float32"))
    available = available_backends()
    twins = cell_negative_twins(opt, available)
    assert all(r.verdict == "pass" for r in twins), "\n".join(f"{r.check} {r.tensor}: {r.note}" for r in twins
                                                                if r.verdict != "pass")
    for name in CELL_NAMES:
        mine = [r for r in twins if f" {name}: " in r.check or f"({name})" in r.check]
        step = [r for r in mine if "rtrl step form" in r.check]
        assert {r.dtype for r in step} == {"float64", "float32"}
        assert {r.tensor.rsplit("(", 1)[1].split()[0] for r in step} == {"numpy", "numba"} & set(available)
        assert {r.tensor.split(" (")[0] for r in step} == {cell_broken.DROPPED[name], "traces not reset at a reset",
                                                           "carried-in traces ignored"}
        assert any("finite differences" in r.check for r in mine) and any("oracle" in r.check for r in mine)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_cell_twins_fail_the_rows_the_right_code_passes(name):
    s = audit.cell_setup(name, 3, 8, 2, 3, 4, resets="rows")
    assert all(r.ok for r in cell_bptt_vs_fd(s) + cell_rtrl_vs_bptt(s, "numpy", cuts=(4,)))
    assert any(not r.ok for r in cell_bptt_vs_fd(s, cell=cell_broken.wrong_backward(name)))
    for wrong in (cell_broken.rtrl_dropped_term, cell_broken.rtrl_no_trace_reset, cell_broken.rtrl_traces_not_carried):
        assert any(not r.ok for r in cell_rtrl_vs_bptt(s, "numpy", wrong("numpy"), cuts=(4,))), wrong.__name__


def wrong_cell_rtrl(s, backend="numpy", rtrl=None, cuts=()):
    return cell_rtrl_vs_bptt(s, backend, cell_broken.rtrl_dropped_term(backend), cuts)


def wrong_cell_fd(s, cell=None, max_entries=None, seed=0):
    return cell_bptt_vs_fd(s, cell_broken.wrong_backward(s.prob.cell.name), max_entries, seed)


@pytest.mark.parametrize("name, wrong, family", [
    ("cell_rtrl_vs_bptt", wrong_cell_rtrl, "cells: rtrl step form vs bptt"),
    ("cell_bptt_vs_fd", wrong_cell_fd, "cells: bptt vs finite differences"),
], ids=["cell-rtrl-dropped-term", "cell-bptt-dropped-term"])
def test_audit_fails_on_a_wrong_cell_gradient(tmp_path, capsys, monkeypatch, name, wrong, family):
    monkeypatch.setattr(audit, name, wrong)
    status = main(["--quick", "--dtype", "float64", "--backend", "numpy", "--report", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert status == 1, f"audit passed with a wrong cell gradient ({family})"
    failing = {r["family"] for r in rows_of(json.loads((tmp_path / "r.json").read_text())) if r["verdict"] == "FAIL"}
    assert failing == {family}, f"expected only {family} to fail, failing: {failing}"
    assert any(line.startswith("audit --quick FAIL") for line in out.splitlines())
