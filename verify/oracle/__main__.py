"""python -m verify.oracle {make,check,list,reference,fuzz}: oracle cases and the checker.

    make       write cases (one from options, --kind model, layer or cell; or the golden sets with --golden)
    check      compare a candidate .npz with a case, or run an adapter (MODULE:CALLABLE, fn(case) ->
               arrays) on cases (golden names may hold wildcards: 'cell-*'); exit 0 pass, 1 mismatch,
               2 malformed input (unknown array names included, unless --lenient)
    list       the golden cases
    reference  write our NumPy reference's own outputs for a case, in the candidate format
               (a template of what a candidate file holds)
    fuzz       MODULE:CALLABLE: search for a layer case the callable fails, shrink it, write it;
               with --case, run the callable on one layer case (the reproduction)
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from pathlib import Path

from verify.cell_checks import CELL_NAMES, CELL_REGIMES, CELL_RESETS
from verify.oracle import schema
from verify.oracle.case import GOLDEN_DIR, load_case
from verify.oracle.cell_case import cell_inputs, cell_outputs
from verify.oracle.check import EXIT_MALFORMED, EXIT_MISMATCH, EXIT_OK, check_callable, check_files
from verify.oracle.io import MalformedInput, write_npz
from verify.oracle.make import (
    CELL_GOLDEN,
    GOLDEN,
    KINDS,
    LAYER_GOLDEN,
    RESETS,
    CaseSpec,
    compute_outputs,
    layer_outputs,
    make_case,
    write_case,
)
from verify.problem import REGIMES

ALL_GOLDEN = GOLDEN + LAYER_GOLDEN + CELL_GOLDEN


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m verify.oracle",
                                 description="eLSTM/RTRL oracle: make cases, check candidates.")
    sub = ap.add_subparsers(dest="command", required=True)

    mk = sub.add_parser("make", help="write oracle cases (NAME.npz + NAME.json)")
    mk.add_argument("--out", default=None, help="output folder (default: . ; "
                    "with --golden: verify/golden)")
    mk.add_argument("--golden", action="store_true", help="write the golden sets (model and layer)")
    mk.add_argument("--kind", choices=KINDS, default="model",
                    help="model: with output gate, readout and loss (schema v1); layer: the "
                         "recurrent layer alone, g_c given (schema v2); cell: one cell of "
                         "rtrl_ref.cells alone, g_s given (schema v3, with --cell)")
    mk.add_argument("--cell", choices=CELL_NAMES, default=None, help="the cell of a cell case")
    mk.add_argument("--name", default="case")
    for k, v in (("T", 16), ("B", 2), ("I", 3), ("H", 4), ("K", 3)):
        mk.add_argument(f"--{k}", type=int, default=v, help=f"size {k} (default {v})")
    mk.add_argument("--dtype", choices=sorted(schema.DEFAULT_TOLERANCE), default="float64")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--regime", choices=tuple(dict.fromkeys(REGIMES + CELL_REGIMES)), default="normal",
                    help="gate regime: saturated, f near 1 (forget_open) or 0 (forget_closed); cell "
                         "cases: normal, saturated, slow (J_t near 1)")
    mk.add_argument("--resets", choices=tuple(dict.fromkeys(RESETS + CELL_RESETS)), default="random",
                    help="reset pattern (rows: cell cases only, resets differ per row)")
    mk.add_argument("--trace-steps", choices=("auto", "all", "sparse"), default="auto",
                    help="store traces at every step, or at stated steps (auto: all when T <= 64)")
    mk.add_argument("--description", default="")

    ck = sub.add_parser("check", help="check a candidate against a case, or an adapter against cases")
    ck.add_argument("case", nargs="+", help="case path (NAME, NAME.npz or NAME.json) or a golden case "
                    "name; with --adapter several, and golden names with wildcards ('cell-lru-*')")
    given = ck.add_mutually_exclusive_group(required=True)
    given.add_argument("--candidate", help="candidate .npz (see docs/oracle.md)")
    given.add_argument("--adapter", help="MODULE:CALLABLE with fn(case) -> {name: array}, run on each "
                       "case (e.g. verify.adapters.cell_numpy:candidate)")
    ck.add_argument("--require", default="", help="extra outputs that must be present "
                    "(comma separated), or 'all'")
    ck.add_argument("--json", default=None, help="also write the report as JSON here")
    ck.add_argument("--lenient", action="store_true",
                    help="list unknown candidate array names as ignored instead of refusing them")

    sub.add_parser("list", help="list the golden cases")

    rf = sub.add_parser("reference", help="write the NumPy reference's outputs as a candidate")
    rf.add_argument("case")
    rf.add_argument("--out", required=True)

    fz = sub.add_parser("fuzz", help="search for a layer case a candidate callable fails")
    fz.add_argument("target", help="MODULE:CALLABLE of the layer protocol, e.g. "
                    "verify.adapters.numpy_layer:layer (see docs/oracle.md)")
    fz.add_argument("--max-examples", type=int, default=200, help="drawn cases (default 200)")
    fz.add_argument("--seed", type=int, default=0, help="Hypothesis seed (default 0)")
    fz.add_argument("--out", default="oracle-fuzz", help="folder for the minimal failing case "
                    "(default: oracle-fuzz)")
    fz.add_argument("--step", action="store_true", help="the callable is of the step form "
                    "step(params, x_t, reset_t, c_tm1, traces_tm1) -> (c_t, traces_t)")
    fz.add_argument("--case", default=None, help="run the callable on this layer case only and "
                    "print the report (the reproduction of a fuzz failure)")
    return ap


def cmd_make(args) -> int:
    if args.golden:
        out = Path(args.out) if args.out else GOLDEN_DIR
        specs = ALL_GOLDEN
    else:
        out = Path(args.out or ".")
        specs = (CaseSpec(args.name, args.T, args.B, args.I, args.H, args.K, args.dtype,
                          args.seed, args.regime, args.resets, args.trace_steps,
                          args.description, args.kind, args.cell or ""),)
    for spec in specs:
        try:
            js, npz = write_case(make_case(spec), out)
        except ValueError as e:
            print(f"make: {e}", file=sys.stderr)
            return EXIT_MALFORMED
        except OSError as e:
            print(f"make: --out {out}: cannot write the case ({e.strerror or e})", file=sys.stderr)
            return EXIT_MALFORMED
        print(f"wrote {js} and {npz}")
    return EXIT_OK


def expand_cases(names: list) -> list:
    """Case arguments with golden-name wildcards expanded (in golden order); ValueError if one
    matches nothing."""
    out = []
    for name in names:
        if any(ch in name for ch in "*?["):
            hits = [s.name for s in ALL_GOLDEN if fnmatch.fnmatchcase(s.name, name)]
            if not hits:
                raise ValueError(f"case {name!r}: no golden case matches (python -m verify.oracle list)")
            out += hits
        else:
            out.append(name)
    return out


def check_reports(args, require) -> list:
    """The reports of `check`: one candidate file, or the adapter run on every case."""
    if args.candidate is not None:
        if len(args.case) != 1:
            raise ValueError(f"--candidate: expected one case, got {len(args.case)}: {args.case}")
        return [check_files(args.case[0], args.candidate, require, args.lenient)]
    from verify.oracle.fuzz import load_target

    fn = load_target(args.adapter)
    return [check_callable(load_case(name), fn, require, args.lenient) for name in expand_cases(args.case)]


def cmd_check(args) -> int:
    require = "all" if args.require == "all" else tuple(n for n in args.require.split(",") if n)
    try:
        reports = check_reports(args, require)
    except (MalformedInput, ValueError) as e:
        print(f"malformed input: {e}", file=sys.stderr)
        return EXIT_MALFORMED
    if args.json:                          # written first: an I/O error is rc 2, never a verdict
        found = [r.to_dict() for r in reports]
        try:
            _write_text(Path(args.json), json.dumps(found[0] if len(found) == 1 else found, indent=1) + "\n")
        except OSError as e:
            print(f"--json {args.json}: cannot write the report ({e.strerror or e})", file=sys.stderr)
            return EXIT_MALFORMED
    print("\n\n".join(r.to_text() for r in reports))
    if len(reports) > 1:
        failed = [r.case for r in reports if not r.ok]
        print(f"\n{len(reports) - len(failed)} of {len(reports)} cases pass"
              + (f"; failing: {', '.join(failed)}" if failed else ""))
    return EXIT_OK if all(r.ok for r in reports) else EXIT_MISMATCH


def _write_text(path: Path, text: str) -> None:
    """Write a file, creating its parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def cmd_list(args) -> int:
    for spec in ALL_GOLDEN:
        print(f"{spec.name:<25} {spec.kind:<5} {spec.dtype}  T={spec.T} B={spec.B} I={spec.I} "
              f"H={spec.H}  {spec.description}")
    print(f"(files in {GOLDEN_DIR})")
    return EXIT_OK


def cmd_reference(args) -> int:
    try:
        case = load_case(args.case)
    except MalformedInput as e:
        print(f"malformed input: {e}", file=sys.stderr)
        return EXIT_MALFORMED
    try:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        if case.kind.name == "layer":
            a = case.arrays
            outputs = layer_outputs(case.params, a["x"], a["reset"], a["c_0"], a["g_c"], case.trace_steps)
        elif case.kind.cell:
            outputs = cell_outputs(*cell_inputs(case), case.trace_steps)
        else:
            outputs = compute_outputs(case.problem, case.trace_steps)
        write_npz(Path(args.out), outputs)
    except OSError as e:
        print(f"--out {args.out}: cannot write it ({e.strerror or e})", file=sys.stderr)
        return EXIT_MALFORMED
    print(f"wrote {args.out}")
    return EXIT_OK


def cmd_fuzz(args) -> int:
    from verify.oracle.fuzz import case_name, from_step, fuzz, load_target, run_on_case

    try:
        fn = load_target(args.target)
    except ValueError as e:
        print(f"fuzz: {e}", file=sys.stderr)
        return EXIT_MALFORMED
    if args.case is not None:
        try:
            case = load_case(args.case)
        except MalformedInput as e:
            print(f"malformed input: {e}", file=sys.stderr)
            return EXIT_MALFORMED
        if case.kind.name != "layer":
            print(f"fuzz --case: expected a layer case (schema version 2), got a {case.kind.name} "
                  f"case {args.case}", file=sys.stderr)
            return EXIT_MALFORMED
        report, error = run_on_case(from_step(fn) if args.step else fn, case)
        print(report.to_text() if report is not None else f"FAIL: {error}")
        return EXIT_OK if report is not None and report.ok else EXIT_MISMATCH
    if args.max_examples < 1:
        print(f"fuzz: --max-examples: expected an integer >= 1, got {args.max_examples}", file=sys.stderr)
        return EXIT_MALFORMED
    try:
        result = fuzz(fn, args.max_examples, args.seed, Path(args.out), case_name(args.target), args.target,
                      args.step)
    except OSError as e:
        print(f"fuzz: --out {args.out}: cannot write the case ({e.strerror or e})", file=sys.stderr)
        return EXIT_MALFORMED
    except ImportError as e:
        print(f"fuzz: needs Hypothesis (pip install hypothesis), got: {e}", file=sys.stderr)
        return EXIT_MALFORMED
    print(result.to_text())
    return EXIT_OK if result.ok else EXIT_MISMATCH


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    return {"make": cmd_make, "check": cmd_check, "list": cmd_list,
            "reference": cmd_reference, "fuzz": cmd_fuzz}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
