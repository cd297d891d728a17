"""Oracle cell cases (schema version 3): the IndRNN, minGRU and LRU of rtrl_ref.cells alone.

The golden cell cases load without pickle and have not drifted; the plain-NumPy adapter (written
without the project's reference) passes every one; each deliberately wrong adapter fails, and the
checker names the parameter's trace and the step where it first diverges.
"""

import json
import zipfile

import numpy as np
import pytest

from rtrl_ref.cells import get_cell
from verify.adapters.cell_buggy import BUGGY
from verify.adapters.cell_numpy import candidate
from verify.adapters.cell_numpy import main as adapter_main
from verify.oracle import MalformedInput, check_callable, check_candidate, load_case, schema
from verify.oracle.__main__ import main as oracle_main
from verify.oracle.case import GOLDEN_DIR
from verify.oracle.cell_case import cell_inputs, cell_outputs
from verify.oracle.io import write_json, write_npz
from verify.oracle.make import CELL_GOLDEN, CaseSpec, make_case

CELLS = ("indrnn", "mingru", "lru")


def run_cli(capsys, *argv):
    status = oracle_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


# --------------------------------------------------------------------------------------------
# the golden cell cases


def test_cell_golden_set_is_small_and_complete():
    files = sorted(GOLDEN_DIR.glob("cell-*"))
    assert len(files) == 2 * len(CELL_GOLDEN)
    assert all(f.stat().st_size < 16_000 for f in files), "cell cases: a few KB per file"
    assert sum(f.stat().st_size for f in files) < 160_000
    names = {s.name for s in CELL_GOLDEN}
    for cell in CELLS:
        assert {f"cell-{cell}-basic-f64", f"cell-{cell}-basic-f32", f"cell-{cell}-long-f64"} <= names
    assert {"cell-indrnn-saturated-f64", "cell-mingru-saturated-f64"} <= names


@pytest.mark.parametrize("spec", CELL_GOLDEN, ids=lambda s: s.name)
def test_cell_case_loads_without_pickle_and_is_not_vacuous(spec):
    with zipfile.ZipFile(GOLDEN_DIR / f"{spec.name}.npz") as zf:
        assert not any(n.endswith(".pkl") for n in zf.namelist())
    with np.load(GOLDEN_DIR / f"{spec.name}.npz", allow_pickle=False) as npz:
        assert all(npz[n].dtype != object for n in npz.files)
    case = load_case(spec.name)
    kind = schema.CELL_KINDS[spec.cell]
    meta = json.loads((GOLDEN_DIR / f"{spec.name}.json").read_text())
    assert (meta["schema_version"], meta["kind"], meta["cell"]) == (3, "cell", spec.cell)
    assert case.kind is kind and set(case.arrays) == set(kind.by_name)
    assert case.arrays["reset"][1:].any(), f"{spec.name}: expected a reset inside the sequence"
    if spec.B > 1:
        assert (case.arrays["reset"] != case.arrays["reset"][:, :1]).any(), "resets differ per row"
    for n in kind.outputs:
        assert np.any(case.arrays[n] != 0), f"{spec.name}: reference {n} is all zero (vacuous)"


@pytest.mark.parametrize("spec", CELL_GOLDEN, ids=lambda s: s.name)
def test_cell_golden_cases_have_not_drifted(spec):
    committed, fresh = load_case(spec.name), make_case(spec)
    kind = committed.kind
    for n in kind.inputs:
        assert fresh.meta["arrays"][n]["sha256"] == committed.meta["arrays"][n]["sha256"], \
            f"{spec.name}: input {n} drifted"
    tol = 1e-12 if spec.dtype == "float64" else 1e-6
    for n in kind.outputs:
        a, b = fresh.arrays[n].astype(np.float64), committed.arrays[n].astype(np.float64)
        err = np.max(np.abs(a - b), initial=0.0) / np.max(np.abs(b))
        assert err <= tol, f"{spec.name}: reference {n} drifted, rel {err:.2e}"


def test_cell_schema_names_the_cells_parameters():
    """schema.CELL_PARAMS is the params NamedTuple of each cell of rtrl_ref.cells, with its shapes."""
    for name, fields in schema.CELL_PARAMS.items():
        cell = get_cell(name)
        p = cell.init(np.random.default_rng(0), 2, 3)
        assert p._fields == tuple(f for f, _ in fields)
        assert [a.shape for a in p] == [tuple({"H": 3, "I": 2}[d] for d in dims) for _, dims in fields]
        assert (name in schema.COMPLEX_STATE) == np.iscomplexobj(cell.zero_state(p, 1))


# --------------------------------------------------------------------------------------------
# the reference adapter passes, the buggy ones fail where they go wrong


@pytest.mark.parametrize("spec", CELL_GOLDEN, ids=lambda s: s.name)
def test_numpy_reference_and_adapter_pass_every_cell_case(spec):
    case = load_case(spec.name)
    rep = check_candidate(case, cell_outputs(*cell_inputs(case), case.trace_steps), require="all")
    assert rep.ok, rep.to_text()
    rep = check_callable(case, candidate, require="all")
    assert rep.ok and len(rep.tensors) == len(case.kind.outputs), rep.to_text()
    stored = "the case's stored reference" if spec.trace_steps == "all" else \
        "a reference recomputed from the case inputs"
    assert rep.coverage == f"every step t=0..{spec.T - 1}, against {stored}", rep.coverage


def first_reset(case) -> tuple[int, int]:
    """(t, b) of the first reset after step 0 (C order): where traces that are not reset go wrong."""
    t, b = np.argwhere(case.arrays["reset"][1:])[0]
    return int(t) + 1, int(b)


EXPECTED = {    # bug: (the diverging tensor, its step) on the cell's basic and long cases
    "indrnn_J_is_u": ("indrnn", "trace_W", 1),
    "mingru_J_is_z": ("mingru", "trace_W_z", 1),
    "lru_gamma_constant": ("lru", "trace_nu_re", 0),
}


@pytest.mark.parametrize("regime", ("basic-f64", "basic-f32", "long-f64"))
@pytest.mark.parametrize("bug", EXPECTED)
def test_buggy_adapter_fails_at_the_parameter_and_step(bug, regime):
    cell, tensor, step = EXPECTED[bug]
    case = load_case(f"cell-{cell}-{regime}")
    rep = check_callable(case, BUGGY[bug])
    first = rep.first_divergence()
    assert not rep.ok and first.name == tensor and first.first.step == step, rep.summary()
    assert f"first divergence: {tensor} at step t={step}," in rep.summary()
    assert not any(t.name.startswith("s") and not t.ok for t in rep.tensors), "the forward pass is right"
    assert not check_callable(case, candidate).failed, "the right adapter passes the same case"


@pytest.mark.parametrize("name", [f"cell-{c}-{r}" for c in CELLS for r in ("basic-f64", "basic-f32", "long-f64")])
def test_no_trace_reset_fails_at_the_first_reset(name):
    case = load_case(name)
    t, b = first_reset(case)
    rep = check_callable(case, BUGGY["no_trace_reset"])
    first = rep.first_divergence()
    assert not rep.ok and first.name.startswith("trace_"), rep.summary()
    assert (first.first.step, first.first.index[1]) == (t, b), rep.summary()


# --------------------------------------------------------------------------------------------
# the command line


def test_check_runs_an_adapter_on_every_cell_case(capsys):
    status, out, err = run_cli(capsys, "check", "cell-*", "--adapter", "verify.adapters.cell_numpy:candidate",
                               "--require", "all")
    assert status == 0, out + err
    assert f"{len(CELL_GOLDEN)} of {len(CELL_GOLDEN)} cases pass" in out
    status, out, _ = run_cli(capsys, "check", "cell-lru-*", "--adapter",
                             "verify.adapters.cell_buggy:lru_gamma_constant")
    assert status == 1 and "first divergence: trace_nu_re at step t=0" in out and "failing: cell-lru-basic-f64" in out


def test_candidate_file_round_trip(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    assert adapter_main(["cell-indrnn-long-f64", "--out", str(bad), "--bug", "indrnn_J_is_u"]) == 0
    status, out, _ = run_cli(capsys, "check", "cell-indrnn-long-f64", "--candidate", bad, "--json", tmp_path / "r.json")
    assert status == 1 and "first divergence: trace_W at step t=1" in out, out
    assert json.loads((tmp_path / "r.json").read_text())["kind"] == "cell-indrnn"
    assert run_cli(capsys, "reference", "cell-lru-basic-f32", "--out", tmp_path / "ref.npz")[0] == 0
    status, out, _ = run_cli(capsys, "check", "cell-lru-basic-f32", "--candidate", tmp_path / "ref.npz")
    assert status == 0 and "(cell-lru)" in out, out


def test_make_cell_cli_round_trip(tmp_path, capsys):
    args = ["make", "--kind", "cell", "--cell", "mingru", "--out", tmp_path, "--name", "m1", "--T", 7,
            "--B", 2, "--dtype", "float32", "--regime", "slow", "--resets", "rows"]
    status, _, err = run_cli(capsys, *args)
    assert status == 0, err
    first = (tmp_path / "m1.npz").read_bytes()
    assert run_cli(capsys, *args)[0] == 0 and (tmp_path / "m1.npz").read_bytes() == first
    case = load_case(tmp_path / "m1")
    assert case.kind is schema.CELL_KINDS["mingru"]
    assert case.meta["generator"]["command"].startswith("python -m verify.oracle make --kind cell --cell mingru")
    assert check_callable(case, candidate, require="all").ok


@pytest.mark.parametrize("argv, message", [
    (["make", "--kind", "cell", "--name", "x"], "cell: expected one of"),
    (["make", "--kind", "layer", "--cell", "lru", "--name", "x"], "cell: expected one of"),
    (["make", "--kind", "cell", "--cell", "lru", "--regime", "forget_open", "--name", "x"], "regime: expected"),
    (["check", "cell-nothing-*", "--adapter", "verify.adapters.cell_numpy:candidate"], "no golden case matches"),
    (["check", "cell-lru-basic-f64", "cell-lru-long-f64", "--candidate", "r.npz"], "expected one case"),
    (["check", "cell-lru-basic-f64", "--adapter", "verify.adapters.cell_numpy:nothing"], "found no 'nothing'"),
], ids=["no-cell", "cell-for-layer", "elstm-regime", "no-match", "two-cases-one-file", "no-callable"])
def test_cli_errors_exit_2(tmp_path, capsys, argv, message):
    status, _, err = run_cli(capsys, *[a.replace("r.npz", str(tmp_path / "r.npz")) for a in argv])
    assert status == 2 and message in err, err


def test_cell_candidate_names_are_strict():
    case = load_case("cell-lru-basic-f64")
    out = candidate(case)
    with pytest.raises(MalformedInput, match="did you mean 'trace_nu_re'"):
        check_candidate(case, dict(out, trace_nu=out["trace_nu_re"]))
    with pytest.raises(MalformedInput, match="'c' is an output of"):
        check_candidate(case, dict(out, c=out["s_re"]))


def test_unknown_cell_is_malformed(tmp_path):
    spec = CaseSpec("u1", 4, 1, 1, 1, kind="cell", cell="indrnn")
    case = make_case(spec)
    meta = dict(case.meta, cell="gru")
    write_npz(tmp_path / "u1.npz", case.arrays)
    write_json(tmp_path / "u1.json", meta)
    with pytest.raises(MalformedInput, match="version 3 with kind 'cell'"):
        load_case(tmp_path / "u1")
