"""The audit CLI: the quick matrix passes, and a wrong gradient makes it fail with exit 1."""

import json

import pytest

from verify import broken
from verify.audit import Options, main, run_audit
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
            "dense rtrl vs rtrl", "tbptt bias", "oracle golden cases", "negative twins"} <= families
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
