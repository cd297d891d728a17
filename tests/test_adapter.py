"""The oracle on implementations we did not derive by hand: the JAX and PyTorch adapters.

Each adapter computes BPTT gradients with its framework's autograd and runs its own tensor-form
RTRL recursion. It must pass every golden case; with an injected bug it must fail, and the
checker must name the tensor and the first diverging step.
"""

import importlib
import re

import numpy as np
import pytest

from verify.oracle import GOLDEN, check_callable, check_files, load_case
from verify.oracle.__main__ import main as oracle_main
from verify.oracle.case import GOLDEN_DIR
from verify.oracle.io import write_npz

ADAPTERS = {"jax_elstm": "jax", "torch_elstm": "torch"}
F64 = [s for s in GOLDEN if s.dtype == "float64"]


@pytest.fixture(scope="module", params=list(ADAPTERS))
def adapter(request):
    pytest.importorskip(ADAPTERS[request.param])
    return importlib.import_module(f"verify.adapters.{request.param}")


@pytest.mark.parametrize("spec", GOLDEN, ids=lambda s: s.name)
def test_adapter_rtrl_passes_golden_case(adapter, spec):
    rep = check_callable(spec.name, lambda c: adapter.candidate(c, "rtrl"), require="all")
    assert rep.ok, rep.to_text()


def test_adapter_bptt_passes_golden_case(adapter):
    rep = check_callable("long-f64", lambda c: adapter.candidate(c, "bptt"))
    assert rep.ok, rep.to_text()
    assert "trace_W_z" in rep.not_provided


def first_step_with_memory(case) -> int:
    """First step t >= 1 at which some row carries its trace over (no reset at t)."""
    return int(np.flatnonzero(~case.arrays["reset"][1:].all(1))[0]) + 1


def first_reset_after_start(case) -> int:
    return int(np.flatnonzero(case.arrays["reset"][1:].any(1))[0]) + 1


@pytest.mark.parametrize("spec", F64 + [GOLDEN[1]], ids=lambda s: s.name)
def test_bug_jacobian_without_gz_wz_is_located(adapter, spec):
    case = load_case(spec.name)
    rep = check_callable(case, lambda c: adapter.candidate(c, "rtrl", "no_wz_term"))
    first = rep.first_divergence()
    assert not rep.ok, "the dropped gz * w_z term went unnoticed"
    assert first.name.startswith("trace_"), rep.summary()
    assert first.first.step == first_step_with_memory(case), rep.summary()
    assert {"grad_W_z", "grad_w_z", "grad_b_f"} <= {t.name for t in rep.failed}


@pytest.mark.parametrize("spec", GOLDEN, ids=lambda s: s.name)
def test_bug_traces_not_reset_is_located(adapter, spec):
    case = load_case(spec.name)
    rep = check_callable(case, lambda c: adapter.candidate(c, "rtrl", "no_trace_reset"))
    first = rep.first_divergence()
    step = first_reset_after_start(case)
    assert not rep.ok and first.name.startswith("trace_"), rep.summary()
    assert first.first.step == step, rep.summary()
    b = first.first.index[1]
    assert case.arrays["reset"][step, b], f"row b={b} does not reset at t={step}: {rep.summary()}"
    assert not any(t.name in ("c", "h", "g_c") for t in rep.failed), "the cell itself is still reset"


def test_adapter_cli_and_checker_report(adapter, tmp_path, capsys):
    out = tmp_path / "bad.npz"
    assert adapter.main(["long-f64", "--out", str(out), "--bug", "no_trace_reset"]) == 0
    capsys.readouterr()
    status = oracle_main(["check", "long-f64", "--candidate", str(out)])
    text = capsys.readouterr().out
    assert status == 1, text
    assert "first divergence: trace_W_z at step t=400, element [b=0, h=0, i=0]" in text, text


def doc_example() -> str:
    """The PyTorch example of docs/oracle.md (the python block after its marker)."""
    doc = (GOLDEN_DIR.parent.parent / "docs" / "oracle.md").read_text()
    after = doc.split("<!-- example: pytorch -->", 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


def test_doc_example_is_about_20_lines():
    lines = [line for line in doc_example().splitlines() if line.strip()]
    assert len(lines) <= 22, f"docs/oracle.md PyTorch example has {len(lines)} lines"


def test_doc_pytorch_example_passes(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    code = doc_example().replace("verify/golden/", f"{GOLDEN_DIR}/")
    exec(compile(code, "docs/oracle.md", "exec"), {})
    rep = check_files("basic-f64", tmp_path / "result.npz")
    assert rep.ok, rep.to_text()
    assert {"grad_x", "grad_c_0", "grad_V"} <= {t.name for t in rep.tensors}


def test_doc_example_negative_twin(tmp_path):
    """The documented candidate format rejects a wrong gradient (without needing torch)."""
    case = load_case("basic-f64")
    from verify.oracle import compute_outputs

    out = compute_outputs(case.problem, case.trace_steps)
    out = {k: out[k] for k in ("c", "h", "loss", "grad_W_z", "grad_W_f", "grad_w_z", "grad_w_f",
                               "grad_b_z", "grad_b_f")}
    out["grad_b_z"] = out["grad_b_z"] + 1e-6
    write_npz(tmp_path / "result.npz", out)
    rep = check_files("basic-f64", tmp_path / "result.npz")
    assert not rep.ok and [t.name for t in rep.failed] == ["grad_b_z"]
