"""Oracle v2: layer-level cases, the exact first divergence, strict names, diagnoses and fuzzing.

Every check has a negative twin here: a deliberately wrong input that the check must catch (or,
for a diagnosis, a wrong input of the same size that it must not name).
"""

import json
import pickle
import zipfile

import numpy as np
import pytest
from test_oracle import _edit_case as edit_case

from verify.adapters.buggy_numpy import BUGGY
from verify.adapters.numpy_layer import BUGS, layer, step
from verify.oracle import MalformedInput, check_candidate, compute_outputs, load_case, schema
from verify.oracle.__main__ import main as oracle_main
from verify.oracle.case import GOLDEN_DIR
from verify.oracle.fuzz import call_candidate, from_step, fuzz, run_on_case
from verify.oracle.io import write_npz
from verify.oracle.make import LAYER_GOLDEN, CaseSpec, layer_outputs, make_case, write_case

LAYER = schema.LAYER


def layer_reference(case, steps=None):
    a = case.arrays
    return layer_outputs(case.params, a["x"], a["reset"], a["c_0"], a["g_c"],
                         case.trace_steps if steps is None else steps)


@pytest.fixture(scope="module")
def basic_layer():
    return load_case("layer-basic-f64")


@pytest.fixture(scope="module")
def basic_layer_reference(basic_layer):
    return layer_reference(basic_layer)


def run_cli(capsys, *argv):
    status = oracle_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def rules(report) -> dict:
    """{rule: [tensor tuples]} of a report's diagnoses."""
    out = {}
    for d in report.diagnoses:
        out.setdefault(d.rule, []).append(d.tensors)
    return out


# --------------------------------------------------------------------------------------------
# 1. layer-level cases: schema version 2, golden set, generation, the reference passes


def test_layer_golden_set_is_small_and_complete():
    files = sorted(GOLDEN_DIR.glob("layer-*"))
    assert len(files) == 2 * len(LAYER_GOLDEN)
    assert sum(f.stat().st_size for f in files) < 350_000, "layer golden set: a few hundred KB"
    cases = [load_case(s.name) for s in LAYER_GOLDEN]
    assert {c.dtype.name for c in cases} == {"float32", "float64"}
    assert max(c.sizes["T"] for c in cases) >= 1000
    assert {s.regime for s in LAYER_GOLDEN} >= {"normal", "saturated", "forget_open"}
    for c in cases:
        assert c.kind is LAYER and c.meta["schema_version"] == 2 and c.meta["kind"] == "layer"
        assert set(c.arrays) == set(LAYER.by_name)
        assert not {"h", "loss", "y", "W_o", "V"} & set(c.arrays), "a layer case has no head"
        assert c.arrays["reset"][1:].any(), f"{c.name}: expected a reset inside the sequence"
        for n in LAYER.outputs:
            assert np.any(c.arrays[n] != 0), f"{c.name}: reference {n} is all zero (vacuous)"


@pytest.mark.parametrize("spec", LAYER_GOLDEN, ids=lambda s: s.name)
def test_layer_golden_cases_have_not_drifted(spec):
    committed, fresh = load_case(spec.name), make_case(spec)
    for n in LAYER.inputs:
        assert fresh.meta["arrays"][n]["sha256"] == committed.meta["arrays"][n]["sha256"], \
            f"{spec.name}: input {n} drifted"
    tol = 1e-12 if spec.dtype == "float64" else 1e-6
    for n in LAYER.outputs:
        a, b = fresh.arrays[n].astype(np.float64), committed.arrays[n].astype(np.float64)
        err = np.max(np.abs(a - b), initial=0.0) / np.max(np.abs(b))
        assert err <= tol, f"{spec.name}: reference {n} drifted, rel {err:.2e}"


@pytest.mark.parametrize("spec", LAYER_GOLDEN, ids=lambda s: s.name)
def test_layer_reference_and_numpy_adapter_pass(spec):
    case = load_case(spec.name)
    rep = check_candidate(case, layer_reference(case), require="all")
    assert rep.ok and len(rep.tensors) == len(LAYER.outputs), rep.to_text()
    rep = check_candidate(case, call_candidate(layer, case))
    assert rep.ok, rep.to_text()
    assert rep.coverage.startswith(f"every step t=0..{spec.T - 1}")


def test_layer_case_negative_twin(basic_layer, basic_layer_reference):
    """A gradient off by 1e-9 relative fails a float64 layer case; a c off at one step too."""
    cand = dict(basic_layer_reference, grad_w_f=basic_layer_reference["grad_w_f"] * (1 + 1e-9))
    rep = check_candidate(basic_layer, cand)
    assert not rep.ok and rep.first_divergence().name == "grad_w_f", rep.summary()
    c = basic_layer_reference["c"].copy()
    c[5, 1, 2] += 1e-7
    rep = check_candidate(basic_layer, dict(basic_layer_reference, c=c))
    assert "first divergence: c at step t=5, element [b=1, h=2]" in rep.summary()


@pytest.mark.parametrize("eps, ok", [(5e-3, False), (1e-4, True)])
def test_float32_layer_tolerance_boundary(eps, ok):
    """The float32 tolerance (2e-3) and the round-off allowance do not hide a 5e-3 error."""
    case = load_case("layer-basic-f32")
    ref = case.reference()
    rep = check_candidate(case, dict(ref, grad_W_z=ref["grad_W_z"] * np.float32(1 + eps)))
    assert rep.ok is ok, rep.summary()


def test_make_layer_cli_round_trip(tmp_path, capsys):
    args = ["make", "--kind", "layer", "--out", tmp_path, "--name", "l1", "--T", 9, "--B", 2,
            "--dtype", "float32", "--regime", "forget_closed", "--resets", "first"]
    status, out, err = run_cli(capsys, *args)
    assert status == 0, err
    first = (tmp_path / "l1.npz").read_bytes()
    assert run_cli(capsys, *args)[0] == 0 and (tmp_path / "l1.npz").read_bytes() == first, \
        "the same arguments must give a byte-identical case"
    case = load_case(tmp_path / "l1")
    assert case.kind is LAYER and case.meta["generator"]["command"].startswith(
        "python -m verify.oracle make --kind layer")
    assert run_cli(capsys, "reference", tmp_path / "l1", "--out", tmp_path / "r.npz")[0] == 0
    status, out, _ = run_cli(capsys, "check", tmp_path / "l1", "--candidate", tmp_path / "r.npz")
    assert status == 0 and "PASS" in out and "(layer)" in out, out


def test_version_1_cases_are_still_read():
    assert load_case("basic-f64").kind is schema.MODEL
    assert load_case("layer-basic-f64").kind is LAYER
    with pytest.raises(ValueError, match="expected a model case"):
        _ = load_case("layer-basic-f64").problem


def _edited(tmp_path, name, edit_meta=None, edit_arrays=None):
    """A copy of golden case `name` with its metadata and arrays edited (test_oracle's helper)."""
    return edit_case(GOLDEN_DIR / name, tmp_path, edit_meta, edit_arrays)


LAYER_CASE_DEFECTS = {
    "version 2 without kind": (lambda m: m.pop("kind"), None, "got 2 with kind None"),
    "version 3": (lambda m: m.update(schema_version=3), None, "expected schema_version 1, got 3"),
    "missing g_c": (None, lambda a: a.pop("g_c"), "missing arrays ['g_c']"),
    "a head array": (None, lambda a: a.update(h=a["c"]), "unexpected arrays ['h']"),
    "tolerance group": (lambda m: m["tolerance"].pop("traces"), None, "tolerance: expected a positive"),
}


@pytest.mark.parametrize("defect", LAYER_CASE_DEFECTS)
def test_malformed_layer_case(tmp_path, capsys, basic_layer, basic_layer_reference, defect):
    edit_meta, edit_arrays, message = LAYER_CASE_DEFECTS[defect]
    edited = _edited(tmp_path, "layer-basic-f64", edit_meta, edit_arrays)
    write_npz(tmp_path / "cand.npz", basic_layer_reference)
    status, out, err = run_cli(capsys, "check", edited, "--candidate", tmp_path / "cand.npz")
    assert status == 2 and message in err and "Traceback" not in err + out, err


# --------------------------------------------------------------------------------------------
# 2. exact first divergence: traces at any steps, recomputed reference, unchecked gaps


@pytest.fixture(scope="module")
def long_model():
    case = load_case("long-f64")
    return case, compute_outputs(case.problem, np.arange(case.sizes["T"]))   # traces at every step


def _perturbed(ref, name, step):
    a = ref[name].copy()
    a[step] += 1e-6 * (1 + np.abs(a[step]))
    return a


def test_traces_at_every_step_are_compared_at_every_step(long_model):
    case, ref = long_model
    cand = {n: ref[n] for n in schema.REQUIRED}
    cand["trace_W_z"] = _perturbed(ref, "trace_W_z", 16)                # step 16 is not stored
    rep = check_candidate(case, cand)
    first = rep.first_divergence()
    assert not rep.ok and first.name == "trace_W_z" and first.first.step == 16, rep.summary()
    assert rep.coverage.startswith("every step t=0..999") and "recomputed" in rep.coverage
    assert rep.gap == "", "no step was skipped"
    # negative twin: the same candidate without the perturbation passes at every step
    assert check_candidate(case, dict(cand, trace_W_z=ref["trace_W_z"])).ok


def test_stored_steps_report_the_unchecked_gap(long_model):
    case, ref = long_model
    steps = case.trace_steps
    assert steps[:4].tolist() == [0, 1, 2, 99]
    cand = {n: ref[n] for n in schema.REQUIRED}
    cand["trace_W_z"] = _perturbed(ref, "trace_W_z", 99)[steps]          # stored steps only
    rep = check_candidate(case, cand)
    assert rep.first_divergence().first.step == 99
    assert "steps 3..98 were not compared (the last passing compared step is t=2)" in rep.gap
    assert rep.gap in rep.summary() and "stored reference" in rep.coverage


def test_candidate_named_trace_steps(long_model, tmp_path, capsys):
    case, ref = long_model
    mine = np.array([5, 16, 300])
    cand = {n: ref[n] for n in schema.REQUIRED}
    cand["trace_steps"] = mine
    cand["trace_b_f"] = _perturbed(ref, "trace_b_f", 16)[mine]
    rep = check_candidate(case, cand)
    assert rep.first_divergence().first.step == 16 and "3 of 1000 steps (5, 16, 300)" in rep.coverage
    assert "steps 6..15 were not compared (the last passing compared step is t=5)" in rep.gap
    # negative twins: steps that are not increasing, and traces that do not match the steps
    write_npz(tmp_path / "bad.npz", dict(cand, trace_steps=np.array([16, 5, 300])))
    status, _, err = run_cli(capsys, "check", "long-f64", "--candidate", tmp_path / "bad.npz")
    assert status == 2 and "candidate trace_steps: expected increasing steps in [0, T=1000)" in err
    write_npz(tmp_path / "bad2.npz", dict(cand, trace_steps=np.array([5, 16])))
    status, _, err = run_cli(capsys, "check", "long-f64", "--candidate", tmp_path / "bad2.npz")
    assert status == 2 and "expected shape (M=2, B=1, H=3) for the 2 steps" in err, err


def test_jacobian_bug_is_located_at_its_first_step_on_the_long_layer_case():
    """The issue's example: a Jacobian bug reported at the first stored step after its start;
    with traces at every step, at the step where it starts."""
    case = load_case("layer-long-f64")
    out = call_candidate(BUGGY["jacobian_typo"], case)
    exact = check_candidate(case, out)
    assert exact.first_divergence().first.step == 1 and exact.gap == "", exact.summary()
    stored = dict(out, **{f"trace_{f}": out[f"trace_{f}"][case.trace_steps] for f in schema.ELSTM_FIELDS})
    sparse = check_candidate(case, stored)
    assert sparse.first_divergence().first.step == 1     # steps 0, 1, 2 are stored: same answer
    late = {k: v for k, v in stored.items() if not k.startswith("trace_")}
    late["trace_steps"] = case.trace_steps[3:]
    late.update({f"trace_{f}": out[f"trace_{f}"][case.trace_steps[3:]] for f in schema.ELSTM_FIELDS})
    rep = check_candidate(case, late)
    assert rep.first_divergence().first.step == 99
    assert "steps 0..98 were not compared (no earlier step was compared)" in rep.gap


# --------------------------------------------------------------------------------------------
# 3a. strict names


def test_unknown_names_are_refused_with_the_closest_name(basic_layer, basic_layer_reference, tmp_path, capsys):
    cand = dict(basic_layer_reference)
    cand["trace_Wz"] = cand.pop("trace_W_z")
    write_npz(tmp_path / "typo.npz", cand)
    status, out, err = run_cli(capsys, "check", "layer-basic-f64", "--candidate", tmp_path / "typo.npz")
    assert status == 2 and "unknown array 'trace_Wz'" in err and "did you mean 'trace_W_z'?" in err
    assert len(err.strip().splitlines()) == 1 and "--lenient" in err
    status, out, err = run_cli(capsys, "check", "layer-basic-f64", "--candidate", tmp_path / "typo.npz",
                               "--lenient")
    assert status == 0 and "ignored (not in schema v2, --lenient): trace_Wz" in out, out
    # negative twin: the correct names pass strictly
    write_npz(tmp_path / "good.npz", basic_layer_reference)
    assert run_cli(capsys, "check", "layer-basic-f64", "--candidate", tmp_path / "good.npz")[0] == 0


@pytest.mark.parametrize("name, message", [
    ("h", "'h' is an output of model cases, not of schema v2 (layer case) (a layer case has no "
          "output gate, readout or loss)"),
    ("x", "'x' is an input of the case, not an output"),
    ("grad_Wf", "did you mean 'grad_W_f'?"),
    ("something", "expected one of c, trace_W_z"),
])
def test_unknown_name_messages(basic_layer, basic_layer_reference, name, message):
    with pytest.raises(MalformedInput, match=None) as e:
        check_candidate(basic_layer, dict(basic_layer_reference, **{name: np.zeros(3)}))
    assert message in str(e.value), str(e.value)


# --------------------------------------------------------------------------------------------
# 3b. diagnoses, each with a twin of the same size that must not be named


@pytest.mark.parametrize("factor, label", [(1 / 3, "= 1/B (B=3): a mean over the batch where the oracle sums"),
                                           (1 / 16, "= 1/T (T=16): a mean over time"),
                                           (1 / 48, "= 1/T*B (T*B=48): a mean over time and batch"),
                                           (0.7, "times 0.7 (one shared factor")])
def test_diagnosis_shared_scale(basic_layer, basic_layer_reference, factor, label):
    grads = {f"grad_{f}": basic_layer_reference[f"grad_{f}"] * factor for f in schema.ELSTM_FIELDS}
    rep = check_candidate(basic_layer, dict(basic_layer_reference, **grads))
    assert len(rules(rep)["scale"][0]) == 6, rep.to_text()
    assert any(label in d.message for d in rep.diagnoses), [d.message for d in rep.diagnoses]


def test_diagnosis_loss_averaged_over_the_batch_in_a_model_case(tmp_path, capsys):
    """The issue's case: a model-case loss averaged over the batch scales the loss, g_c and every
    gradient by 1/B, with cosine 1; the report says "scale" and suggests the sum."""
    case = load_case("basic-f64")
    ref = compute_outputs(case.problem, case.trace_steps)
    B = case.sizes["B"]
    scaled = {n: ref[n] / B for n in ref if n.startswith("grad_") or n in ("loss", "g_c")}
    write_npz(tmp_path / "mean.npz", dict(ref, **scaled))
    status, out, _ = run_cli(capsys, "check", "basic-f64", "--candidate", tmp_path / "mean.npz",
                             "--json", tmp_path / "r.json")
    assert status == 1 and "diagnosis: scale: 13 tensors" in out and "= 1/B (B=3)" in out, out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["diagnoses"][0]["rule"] == "scale" and len(report["diagnoses"][0]["tensors"]) == 13


def test_diagnosis_shared_scale_negative_twin(basic_layer, basic_layer_reference):
    rng = np.random.default_rng(0)
    grads = {f"grad_{f}": basic_layer_reference[f"grad_{f}"] * (0.7 + 0.3 * rng.random(
        basic_layer_reference[f"grad_{f}"].shape)) for f in schema.ELSTM_FIELDS}
    rep = check_candidate(basic_layer, dict(basic_layer_reference, **grads))
    assert not rep.ok and rep.diagnoses == [], [d.message for d in rep.diagnoses]


@pytest.fixture(scope="module")
def square_model(tmp_path_factory):
    """A model case with H = K = I, so grad_V and the W traces are square."""
    folder = tmp_path_factory.mktemp("square")
    write_case(make_case(CaseSpec("square", T=6, B=2, I=3, H=3, K=3, seed=3, resets="middle")), folder)
    case = load_case(folder / "square")
    return case, compute_outputs(case.problem, case.trace_steps)


def test_diagnosis_transpose(square_model):
    case, ref = square_model
    rep = check_candidate(case, dict(ref, grad_V=ref["grad_V"].T.copy(),
                                     trace_W_f=ref["trace_W_f"].swapaxes(-1, -2).copy()))
    assert sorted(rules(rep)["transpose"]) == [("grad_V",), ("trace_W_f",)], rep.to_text()
    assert "grad_V equals the reference with axes H and K swapped" in rep.to_text()
    # negative twin: the same entries in a scrambled order
    perm = np.random.default_rng(1).permutation(9)
    rep = check_candidate(case, dict(ref, grad_V=ref["grad_V"].reshape(-1)[perm].reshape(3, 3)))
    assert not rep.ok and "transpose" not in rules(rep)


def test_transposed_shape_is_named_in_the_shape_error(basic_layer, basic_layer_reference):
    with pytest.raises(MalformedInput, match=r"grad_W_z: expected shape \(H=5, I=4\) \(the transpose of "
                                             r"the expected shape: store the array untransposed\), got \(4, 5\)"):
        check_candidate(basic_layer, dict(basic_layer_reference, grad_W_z=basic_layer_reference["grad_W_z"].T))


@pytest.mark.parametrize("u, v", [("grad_W_z", "grad_W_f"), ("grad_w_z", "grad_b_z"),
                                  ("trace_w_f", "trace_b_f")])
def test_diagnosis_swapped_fields(basic_layer, basic_layer_reference, u, v):
    ref = basic_layer_reference
    rep = check_candidate(basic_layer, dict(ref, **{u: ref[v], v: ref[u]}))
    assert rules(rep)["swap"] == [(u, v)], rep.to_text()
    assert f"swap: {u} and {v} hold each other's values" in rep.to_text()
    one_way = check_candidate(basic_layer, dict(ref, **{u: ref[v]}))
    assert f"swap: {u} holds the values of {v}" in one_way.to_text()
    # negative twin: a wrong tensor of the same shape that is not the other field
    rep = check_candidate(basic_layer, dict(ref, **{u: ref[v] * 1.5 + 0.1}))
    assert not rep.ok and "swap" not in rules(rep)


def test_diagnosis_flipped_sign(basic_layer, basic_layer_reference):
    ref = basic_layer_reference
    rep = check_candidate(basic_layer, dict(ref, grad_b_f=-ref["grad_b_f"], trace_W_z=-ref["trace_W_z"]))
    assert rules(rep)["sign"] == [("trace_W_z", "grad_b_f")], rep.to_text()
    rep = check_candidate(basic_layer, dict(ref, grad_b_f=-0.9 * ref["grad_b_f"]))   # twin
    assert not rep.ok and rep.diagnoses == []


@pytest.mark.parametrize("shift, word", [(1, "t-1 (one step late"), (-1, "t+1 (one step early")])
def test_diagnosis_time_shift(basic_layer, basic_layer_reference, shift, word):
    ref = basic_layer_reference
    c = np.roll(ref["c"], shift, axis=0)
    trace = np.roll(ref["trace_w_z"], shift, axis=0)
    if shift == 1:
        trace[0] = 0                                 # a trace one step late is zero at step 0
    rep = check_candidate(basic_layer, dict(ref, c=c, trace_w_z=trace))
    assert rules(rep)["time shift"] == [("c", "trace_w_z")], rep.to_text()
    assert word in rep.to_text()
    perm = np.random.default_rng(2).permutation(ref["c"].shape[0])   # twin: scrambled steps
    rep = check_candidate(basic_layer, dict(ref, c=ref["c"][perm]))
    assert not rep.ok and "time shift" not in rules(rep)


def test_diagnosis_time_shift_of_the_off_by_one_bug(basic_layer):
    rep = check_candidate(basic_layer, call_candidate(BUGGY["off_by_one_time"], basic_layer))
    assert rules(rep)["time shift"][0][0] == "trace_W_z", rep.to_text()
    rep = check_candidate(basic_layer, call_candidate(BUGGY["bias_ignores_J"], basic_layer))   # twin
    assert "time shift" not in rules(rep)


def test_diagnosis_zero(basic_layer, basic_layer_reference):
    rep = check_candidate(basic_layer, dict(basic_layer_reference, trace_b_z=0 * basic_layer_reference["trace_b_z"]))
    assert rules(rep)["zero"] == [("trace_b_z",)]


def test_no_diagnosis_when_all_pass(basic_layer, basic_layer_reference):
    assert check_candidate(basic_layer, basic_layer_reference).diagnoses == []


def test_torch_save_and_pickle_files_are_named_with_the_fix(tmp_path, capsys):
    with zipfile.ZipFile(tmp_path / "torch.pt", "w") as zf:               # torch.save's layout
        zf.writestr("archive/data.pkl", pickle.dumps({"c": [1.0]}))
        zf.writestr("archive/version", "3\n")
        zf.writestr("archive/data/0", b"\0" * 16)
    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"c": [1.0]}))
    for name, what in (("torch.pt", "was written by torch.save"), ("p.pkl", "holds a pickled object")):
        status, out, err = run_cli(capsys, "check", "layer-basic-f64", "--candidate", tmp_path / name)
        assert status == 2 and what in err and "Fix: numpy.savez(PATH, **{k: v.detach().cpu().numpy()" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err + out
    # negative twin: a zip without data.pkl is not called a torch file
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as zf:
        zf.writestr("c.txt", "1")
    status, _, err = run_cli(capsys, "check", "layer-basic-f64", "--candidate", tmp_path / "other.npz")
    assert status == 2 and "torch.save" not in err


# --------------------------------------------------------------------------------------------
# 4. live fuzzing and the bug library


def test_bug_library_covers_the_issue():
    assert len(BUGS) >= 10 and set(BUGGY) == set(BUGS)
    assert {"jacobian_typo", "no_trace_reset", "c_t_for_c_tm1", "sign_of_term", "outer_transposed",
            "float32_accumulation", "batch_leak", "off_by_one_time", "mean_not_sum",
            "bias_ignores_J"} <= set(BUGS)


def test_fuzz_passes_the_correct_numpy_layer():
    result = fuzz(layer, max_examples=150, seed=0)
    assert result.ok and result.examples == 150, result.to_text()


# the smallest case that can show each bug (Hypothesis shrinks to it)
NEEDS = {"batch_leak": {"B": 2}, "mean_not_sum": {"B": 2}, "outer_transposed": {"H": 2, "I": 2},
         "no_trace_reset": {"T": 2}, "jacobian_typo": {"T": 2}, "bias_ignores_J": {"T": 2}}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_fuzz_finds_and_shrinks_every_bug(bug, tmp_path, capsys):
    result = fuzz(BUGGY[bug], max_examples=60, seed=0, out_dir=tmp_path, name=f"fuzz-{bug}",
                  target=f"verify.adapters.buggy_numpy:{bug}")
    assert not result.ok, f"{bug}: the fuzzer did not find the bug"
    sizes = result.case.sizes
    assert sizes["T"] <= 3 and sizes["H"] <= 2, f"{bug}: not shrunk: {sizes}"
    for k, n in NEEDS.get(bug, {}).items():
        assert sizes[k] == n, f"{bug}: expected the minimal {k}={n}, got {sizes}"
    assert result.command == (f"python -m verify.oracle fuzz verify.adapters.buggy_numpy:{bug} "
                              f"--case {tmp_path / f'fuzz-{bug}'}")
    # the written case reproduces the failure, and separates the bug from the correct layer
    assert run_cli(capsys, "fuzz", f"verify.adapters.buggy_numpy:{bug}", "--case", result.path)[0] == 1
    status, out, _ = run_cli(capsys, "fuzz", "verify.adapters.numpy_layer:layer", "--case", result.path)
    assert status == 0 and "PASS" in out, out


def test_fuzz_step_form(tmp_path, capsys):
    assert fuzz(step, max_examples=60, step_form=True).ok
    assert check_candidate(load_case("layer-long-f32"), call_candidate(from_step(step), load_case("layer-long-f32"))).ok

    def forgets_trace_resets(params, x_t, reset_t, c_tm1, traces_tm1):    # negative twin
        c_t, traces = step(params, x_t, np.zeros_like(reset_t), c_tm1 * ~reset_t[:, None], traces_tm1)
        return c_t, traces

    result = fuzz(forgets_trace_resets, max_examples=60, step_form=True, out_dir=tmp_path, target="m:f")
    assert not result.ok and result.case.sizes["T"] == 2 and result.command.endswith(" --step")
    status, out, _ = run_cli(capsys, "fuzz", "verify.adapters.numpy_layer:step", "--step", "--case", result.path)
    assert status == 0 and "PASS" in out


def test_fuzz_is_deterministic():
    a = fuzz(BUGGY["no_trace_reset"], max_examples=40, seed=3)
    b = fuzz(BUGGY["no_trace_reset"], max_examples=40, seed=3)
    assert a.case.meta["arrays"] == b.case.meta["arrays"] and a.examples == b.examples


def test_fuzz_reports_a_raising_or_malformed_candidate():
    def breaks_on_batches(params, x, reset, c_0, g_c):
        if x.shape[1] > 1:
            raise RuntimeError("batch > 1 not supported")
        return layer(params, x, reset, c_0, g_c)

    result = fuzz(breaks_on_batches, max_examples=60)
    assert not result.ok and result.case.sizes["B"] == 2 and result.report is None
    assert result.error == "candidate raised RuntimeError: batch > 1 not supported"
    result = fuzz(lambda *a: dict(layer(*a), h=np.zeros(1)), max_examples=10)
    assert not result.ok and "malformed output" in result.error and "'h'" in result.error


def test_fuzz_cli(tmp_path, capsys):
    status, out, err = run_cli(capsys, "fuzz", "verify.adapters.buggy_numpy:mean_not_sum",
                               "--out", tmp_path, "--max-examples", 30)
    assert status == 1, err
    assert "diagnosis: scale: 6 tensors" in out and "= 1/B (B=2)" in out
    case_path = tmp_path / "fuzz-verify.adapters.buggy_numpy-mean_not_sum"
    assert f"reproduce: python -m verify.oracle fuzz verify.adapters.buggy_numpy:mean_not_sum --case {case_path}" in out
    assert load_case(case_path).kind is LAYER
    status, out, _ = run_cli(capsys, "fuzz", "verify.adapters.numpy_layer:layer", "--max-examples", 20)
    assert status == 0 and out.startswith("PASS: no failing case in 20 drawn layer cases")


@pytest.mark.parametrize("argv, message", [
    (["nocolon"], "target: expected MODULE:CALLABLE"),
    (["verify.adapters.no_such:layer"], "cannot import module 'verify.adapters.no_such'"),
    (["verify.adapters.numpy_layer:nope"], "expected a callable 'nope' in verify.adapters.numpy_layer"),
    (["verify.adapters.numpy_layer:FIELDS"], "expected a callable, got tuple"),
    (["verify.adapters.numpy_layer:layer", "--max-examples", "0"], "--max-examples: expected an integer >= 1"),
    (["verify.adapters.numpy_layer:layer", "--case", "basic-f64"], "expected a layer case"),
])
def test_fuzz_cli_bad_arguments(capsys, argv, message):
    status, out, err = run_cli(capsys, "fuzz", *argv)
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err


ADAPTERS = {"jax_layer": "jax", "torch_layer": "torch"}


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_framework_layer_adapters_pass_layer_cases(adapter):
    pytest.importorskip(ADAPTERS[adapter])
    import importlib

    fn = importlib.import_module(f"verify.adapters.{adapter}").layer
    for name in ("layer-basic-f32", "layer-long-f64"):
        report, error = run_on_case(fn, load_case(name))
        assert report is not None and report.ok, error or report.to_text()


@pytest.mark.slow
@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_fuzz_framework_layer_adapters(adapter):
    pytest.importorskip(ADAPTERS[adapter])
    import importlib

    result = fuzz(importlib.import_module(f"verify.adapters.{adapter}").layer, max_examples=15)
    assert result.ok, result.to_text()
