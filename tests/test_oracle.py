"""The oracle: golden cases, deterministic generation, the checker and its malformed-input paths."""

import json
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from verify.oracle import (
    GOLDEN,
    CaseSpec,
    MalformedInput,
    check_callable,
    check_candidate,
    compute_outputs,
    load_case,
    make_case,
    schema,
    write_case,
)
from verify.oracle.__main__ import main as oracle_main
from verify.oracle.case import GOLDEN_DIR
from verify.oracle.io import write_npz

SMALL = CaseSpec("small", T=7, B=2, I=3, H=4, seed=5, resets="middle")


@pytest.fixture(scope="module")
def basic():
    return load_case("basic-f64")


@pytest.fixture(scope="module")
def basic_reference(basic):
    return compute_outputs(basic.problem, basic.trace_steps)


@pytest.fixture(scope="module")
def small_case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cases")
    write_case(make_case(SMALL), folder)
    return folder / "small"


def run_check(capsys, case, candidate, *extra):
    status = oracle_main(["check", str(case), "--candidate", str(candidate), *extra])
    out, err = capsys.readouterr()
    return status, out, err


# --------------------------------------------------------------------------------------------
# golden set and determinism


def test_golden_set_is_small_and_complete():
    files = sorted(f for f in GOLDEN_DIR.glob("*") if not f.name.startswith(("layer-", "cell-")))   # v1 model cases
    total = sum(f.stat().st_size for f in files)
    assert total < 500_000, f"golden set: expected a few hundred KB, got {total} bytes"
    metas = [load_case(s.name).meta for s in GOLDEN]
    assert {m["dtype"] for m in metas} == {"float32", "float64"}, "golden set: both dtypes"
    assert max(m["sizes"]["T"] for m in metas) >= 1000, "golden set: a long sequence (T >= 1000)"
    assert {s.regime for s in GOLDEN} >= {"saturated", "forget_open"}, "golden set: gate regimes"
    for s in GOLDEN:
        case = load_case(s.name)
        assert case.arrays["reset"][1:].any(), f"{s.name}: expected a reset inside the sequence"
        for n in schema.OUTPUTS:
            assert np.any(case.arrays[n] != 0), f"{s.name}: reference {n} is all zero (vacuous)"


@pytest.mark.parametrize("spec", GOLDEN, ids=lambda s: s.name)
def test_golden_cases_have_not_drifted(spec):
    """Regenerate each golden case: inputs must be byte-identical, reference outputs identical
    up to float64 round-off of this machine's libraries."""
    committed = load_case(spec.name)
    fresh = make_case(spec)
    for n in schema.INPUTS:
        assert fresh.meta["arrays"][n]["sha256"] == committed.meta["arrays"][n]["sha256"], \
            f"{spec.name}: input {n} drifted (generator or RNG changed)"
    tol = 1e-12 if spec.dtype == "float64" else 1e-6
    for n in schema.OUTPUTS:
        a, b = fresh.arrays[n].astype(np.float64), committed.arrays[n].astype(np.float64)
        err = np.max(np.abs(a - b), initial=0.0) / np.max(np.abs(b))
        assert err <= tol, f"{spec.name}: reference {n} drifted, rel {err:.2e} > {tol:.0e}"


def test_generation_is_byte_identical(tmp_path):
    first = make_case(SMALL)
    again = make_case(SMALL)
    assert first.meta == again.meta, "same arguments must give the same metadata and checksums"
    write_case(first, tmp_path / "a")
    write_case(again, tmp_path / "b")
    for suffix in (".npz", ".json"):
        a = (tmp_path / "a" / f"small{suffix}").read_bytes()
        b = (tmp_path / "b" / f"small{suffix}").read_bytes()
        assert a == b, f"small{suffix}: two generations with the same arguments differ"


def test_other_seed_gives_other_case():
    assert make_case(SMALL).meta["arrays"]["x"] != make_case(SMALL._replace(seed=6)).meta["arrays"]["x"]


def test_make_cli_writes_a_case_that_checks(tmp_path, capsys):
    status = oracle_main(["make", "--out", str(tmp_path), "--name", "c1", "--T", "9", "--B", "1",
                          "--dtype", "float32", "--resets", "first", "--regime", "forget_closed"])
    assert status == 0, capsys.readouterr().err
    case = load_case(tmp_path / "c1")
    assert case.dtype == np.float32 and case.sizes["T"] == 9 and case.arrays["reset"][0].all()
    assert oracle_main(["reference", str(tmp_path / "c1"), "--out", str(tmp_path / "r.npz")]) == 0
    status, out, _ = run_check(capsys, tmp_path / "c1.json", tmp_path / "r.npz")
    assert status == 0 and "PASS" in out, out


def test_make_rejects_bad_arguments(tmp_path, capsys):
    assert oracle_main(["make", "--out", str(tmp_path), "--T", "0"]) == 2
    assert "T: expected an integer >= 1, got 0" in capsys.readouterr().err


def test_sparse_trace_steps_for_long_cases():
    case = load_case("long-f64")
    steps = case.trace_steps
    assert steps.size < 40 and steps[0] == 0 and steps[-1] == case.sizes["T"] - 1
    for t in np.flatnonzero(case.arrays["reset"].any(1)):
        assert {t - 1, t, t + 1} <= set(steps.tolist()), f"steps around the reset at {t}"


# --------------------------------------------------------------------------------------------
# the checker: passes, mismatches and where they start


@pytest.mark.parametrize("spec", GOLDEN, ids=lambda s: s.name)
def test_numpy_reference_in_case_dtype_passes(spec):
    rep = check_callable(spec.name, lambda c: compute_outputs(c.problem, c.trace_steps), "all")
    assert rep.ok, rep.to_text()
    assert len(rep.tensors) == len(schema.OUTPUTS)


def test_round_trip_cli(small_case, tmp_path, capsys):
    case = load_case(small_case)
    write_npz(tmp_path / "cand.npz", compute_outputs(case.problem, case.trace_steps))
    status, out, _ = run_check(capsys, small_case, tmp_path / "cand.npz", "--json", str(tmp_path / "r.json"))
    assert status == 0, out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] and len(report["tensors"]) == len(schema.OUTPUTS)


PER_STEP = [s.name for s in schema.SPECS if s.role == "output" and s.per_step]


@given(name=st.sampled_from(PER_STEP), data=st.data())
def test_first_divergence_is_located_exactly(basic, basic_reference, name, data):
    cand = dict(basic_reference)
    a = cand[name].copy()
    index = tuple(data.draw(st.integers(0, n - 1), label=f"axis {k}") for k, n in enumerate(a.shape))
    a[index] += 1e-6 * (1 + abs(a[index]))
    cand[name] = a
    rep = check_candidate(basic, cand)
    first = rep.first_divergence()
    assert not rep.ok and first.name == name, rep.summary()
    want_step = int(basic.trace_steps[index[0]]) if schema.BY_NAME[name].dims[0] == "N" else index[0]
    assert first.first.step == want_step and first.first.index == index, first.first.describe()
    assert first.first.candidate == a[index] and first.first.reference == basic.arrays[name][index]


def test_earliest_step_wins_across_tensors(basic, basic_reference):
    cand = dict(basic_reference)
    cand["h"] = cand["h"].copy()
    cand["h"][9, 0, 0] += 1.0
    cand["trace_b_f"] = cand["trace_b_f"].copy()
    cand["trace_b_f"][4, 1, 2] += 1.0
    cand["grad_W_z"] = cand["grad_W_z"] * 1.5
    rep = check_candidate(basic, cand)
    assert [t.name for t in rep.failed] == ["h", "trace_b_f", "grad_W_z"]
    assert rep.first_divergence().name == "trace_b_f"
    assert "first divergence: trace_b_f at step t=4, element [b=1, h=2]" in rep.summary()


@pytest.mark.parametrize("eps, ok", [(1e-9, False), (1e-13, True)])
def test_gradient_tolerance_boundary(basic, basic_reference, eps, ok):
    """Negative twin: a gradient off by 1e-9 relative fails a float64 case; round-off passes."""
    cand = dict(basic_reference, grad_w_f=basic_reference["grad_w_f"] * (1 + eps))
    rep = check_candidate(basic, cand)
    assert rep.ok is ok, rep.summary()
    if not ok:
        assert rep.first_divergence().name == "grad_w_f" and rep.first_divergence().first.step is None


def test_nan_is_a_mismatch_not_malformed(basic, basic_reference, tmp_path, capsys):
    cand = dict(basic_reference, c=basic_reference["c"].copy())
    cand["c"][3, 0, 1] = np.nan
    write_npz(tmp_path / "nan.npz", cand)
    status, out, _ = run_check(capsys, "basic-f64", tmp_path / "nan.npz")
    assert status == 1, out
    assert "first divergence: c at step t=3, element [b=0, h=1]: candidate nan" in out


def test_optional_outputs_and_every_step_traces(tmp_path):
    case = load_case("long-f64")
    ref = compute_outputs(case.problem, np.arange(case.sizes["T"]))     # traces at every step
    minimal = {n: ref[n] for n in schema.REQUIRED}
    minimal["trace_W_z"] = ref["trace_W_z"]                             # (T, ...) is accepted
    minimal["extra_thing"] = np.zeros(3)
    rep = check_candidate(case, minimal, lenient=True)     # strict by default (test_oracle_v2.py)
    assert rep.ok, rep.to_text()
    assert "trace_W_z" in [t.name for t in rep.tensors] and rep.ignored == ["extra_thing"]
    assert "grad_x" in rep.not_provided


# --------------------------------------------------------------------------------------------
# malformed input: exit 2, a message, never a traceback


def _reference_npz(case_path, path, mutate):
    case = load_case(case_path)
    arrays = compute_outputs(case.problem, case.trace_steps)
    mutate(arrays)
    write_npz(path, arrays)


CANDIDATE_DEFECTS = {
    "missing required": (lambda a: a.pop("grad_W_f"), "missing required arrays ['grad_W_f']"),
    "wrong shape": (lambda a: a.update(c=a["c"][:-1]), "candidate c: expected shape (T=7, B=2, H=4)"),
    "integer dtype": (lambda a: a.update(h=a["h"].astype(np.int32)), "candidate h: expected dtype float64"),
    "float32 for f64": (lambda a: a.update(grad_V=a["grad_V"].astype(np.float32)),
                        "expected dtype float64 for a float64 case, got float32"),
    "loss not scalar": (lambda a: a.update(loss=np.atleast_1d(a["loss"])), "candidate loss: expected shape ()"),
}


@pytest.mark.parametrize("defect", CANDIDATE_DEFECTS)
def test_malformed_candidate_arrays(small_case, tmp_path, capsys, defect):
    mutate, message = CANDIDATE_DEFECTS[defect]
    _reference_npz(small_case, tmp_path / "cand.npz", mutate)
    status, out, err = run_check(capsys, small_case, tmp_path / "cand.npz")
    assert status == 2, out
    assert message in err and "Traceback" not in err + out, err


def test_malformed_candidate_files(small_case, tmp_path, capsys):
    good = tmp_path / "good.npz"
    _reference_npz(small_case, good, lambda a: None)
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "text.npz").write_text("c,h\n1,2\n")
    np.savez(tmp_path / "pickled.npz", c=np.array([{"a": 1}], dtype=object))
    np.save(tmp_path / "single.npy", np.zeros(3))
    cases = {"truncated.npz": "truncated or corrupt", "empty.npz": "is empty",
             "text.npz": "no zip signature", "pickled.npz": "pickled object",
             "single.npy": "single .npy array", "absent.npz": "file not found"}
    for name, message in cases.items():
        status, out, err = run_check(capsys, small_case, tmp_path / name)
        assert status == 2, f"{name}: expected exit 2, got {status}: {out}"
        assert message in err and "Traceback" not in err + out, f"{name}: {err}"


def _edit_case(small_case, tmp_path, edit_meta=None, edit_arrays=None):
    meta = json.loads(small_case.with_suffix(".json").read_text())
    with np.load(small_case.with_suffix(".npz")) as npz:
        arrays = {n: npz[n] for n in npz.files}
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    out = tmp_path / "edited"
    out.with_suffix(".json").write_text(json.dumps(meta))
    write_npz(out.with_suffix(".npz"), arrays)
    return out


CASE_DEFECTS = {
    "schema version": (lambda m: m.update(schema_version=2), None, "expected schema_version 1, got 2"),
    "schema name": (lambda m: m.update(schema="other"), None, "expected schema 'rtrl_ref-oracle-case'"),
    "edited array": (None, lambda a: a["x"].__setitem__((0, 0, 0), 9.0), "x: checksum does not match"),
    "missing array": (None, lambda a: a.pop("reset"), "missing arrays ['reset']"),
    "wrong size": (lambda m: m["sizes"].update(T=8), None, "expected shape (T=8"),
    "bad tolerance": (lambda m: m["tolerance"].pop("grads"), None, "tolerance: expected a positive number"),
}


@pytest.mark.parametrize("defect", CASE_DEFECTS)
def test_malformed_case(small_case, tmp_path, capsys, defect):
    edit_meta, edit_arrays, message = CASE_DEFECTS[defect]
    edited = _edit_case(small_case, tmp_path, edit_meta, edit_arrays)
    _reference_npz(small_case, tmp_path / "cand.npz", lambda a: None)
    status, out, err = run_check(capsys, edited, tmp_path / "cand.npz")
    assert status == 2, out
    assert message in err and "Traceback" not in err + out, err


def test_garbage_member_is_refused(small_case, tmp_path):
    meta = small_case.with_suffix(".json").read_text()
    (tmp_path / "p.json").write_text(meta)
    with zipfile.ZipFile(tmp_path / "p.npz", "w") as zf:
        zf.writestr("x.npy", b"not an npy header")
    with pytest.raises(MalformedInput, match=r"members \['x'\] are not .npy arrays"):
        load_case(tmp_path / "p")


def test_check_callable_rejects_non_mapping(basic):
    with pytest.raises(MalformedInput, match="expected a mapping"):
        check_callable(basic, lambda c: [1, 2, 3])


def test_a_bare_pickle_is_refused(small_case, tmp_path, capsys):
    import pickle

    (tmp_path / "p.npz").write_bytes(pickle.dumps({"c": [1.0]}))
    status, out, err = run_check(capsys, small_case, tmp_path / "p.npz")
    assert status == 2 and "pickled object" in err and "Traceback" not in err + out, err


def test_a_zip_member_of_unknown_version_is_malformed_input(small_case, tmp_path, capsys):
    """A flipped byte that raises the 'version needed to extract' of a member (zipfile raises
    NotImplementedError, not BadZipFile): a one-line error and status 2, no traceback."""
    good = tmp_path / "good.npz"
    _reference_npz(small_case, good, lambda a: None)
    raw = bytearray(good.read_bytes())
    central = raw.index(b"PK\x01\x02")                    # the first central directory entry
    raw[central + 6] = 64                                   # version needed to extract: 6.4
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(raw))
    status, out, err = run_check(capsys, small_case, bad)
    assert status == 2 and "Traceback" not in err + out, err
    assert "not a readable .npz archive" in err and "NotImplementedError" in err


@given(data=st.data())
def test_corrupted_candidate_never_crashes(small_case, tmp_path_factory, data):
    """Flip bytes anywhere in a valid candidate: the CLI answers 0, 1 or 2, never a traceback."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("fuzz")
    good = folder / "good.npz"
    _reference_npz(small_case, good, lambda a: None)
    raw = bytearray(good.read_bytes())
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        k = data.draw(st.integers(0, len(raw) - 1), label="offset")
        raw[k] = data.draw(st.integers(0, 255), label="byte")
    bad = folder / "bad.npz"
    bad.write_bytes(bytes(raw))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = oracle_main(["check", str(small_case), "--candidate", str(bad)])
    assert status in (0, 1, 2) and "Traceback" not in err.getvalue()


def test_io_errors_writing_reports_are_rc2_never_a_verdict(small_case, tmp_path, capsys):
    case = load_case(small_case)
    write_npz(tmp_path / "cand.npz", compute_outputs(case.problem, case.trace_steps))
    blocker = tmp_path / "file"
    blocker.write_text("")
    status, out, err = run_check(capsys, small_case, tmp_path / "cand.npz", "--json", str(blocker / "r.json"))
    assert status == 2 and "PASS" not in out
    assert len(err.strip().splitlines()) == 1 and "--json" in err
    # parent folders are created
    status, _, _ = run_check(capsys, small_case, tmp_path / "cand.npz", "--json", str(tmp_path / "a" / "r.json"))
    assert status == 0 and (tmp_path / "a" / "r.json").exists()
    assert oracle_main(["reference", str(small_case), "--out", str(tmp_path / "b" / "c" / "r.npz")]) == 0
    assert (tmp_path / "b" / "c" / "r.npz").exists()
    capsys.readouterr()
    assert oracle_main(["reference", str(small_case), "--out", str(blocker / "r.npz")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--out" in err
    assert oracle_main(["make", "--out", str(blocker / "x"), "--T", "3"]) == 2
    assert "cannot write the case" in capsys.readouterr().err
