"""Example adapters: eLSTM implementations in other frameworks that write oracle candidates.

They are independent of the NumPy reference: the forward pass is the framework's own code, the
BPTT gradients come from the framework's autograd, and the RTRL recursion is re-written in that
framework's tensor form. Each can inject a known bug (`BUGS`) to show what the checker reports.

    jax_elstm     JAX (jax.grad, lax.scan)          optional extra: oracle-jax
    torch_elstm   PyTorch (torch.autograd)          optional: torch (CPU wheel is enough)

Cell cases (schema version 3): `cell_numpy` (plain NumPy IndRNN, minGRU and LRU with RTRL traces,
`candidate(case)`) and `cell_buggy` (the same with one mistake each):

    python -m verify.oracle check 'cell-*' --adapter verify.adapters.cell_numpy:candidate

    python -m verify.adapters.jax_elstm CASE --out RESULT.npz [--method rtrl|bptt] [--bug NAME]
"""

BUGS = ("none", "no_wz_term", "no_trace_reset")
METHODS = ("rtrl", "bptt")


def adapter_main(argv, module: str, framework: str, candidate) -> int:
    """The command line shared by the adapters: write a candidate file for one oracle case."""
    import argparse
    import sys

    from verify.oracle.case import load_case
    from verify.oracle.io import MalformedInput, write_npz

    ap = argparse.ArgumentParser(prog=f"python -m {module}",
                                 description=f"Write a {framework} eLSTM candidate for an oracle case.")
    ap.add_argument("case", help="oracle case (path or golden name)")
    ap.add_argument("--out", required=True, help="candidate .npz to write")
    ap.add_argument("--method", choices=METHODS, default="rtrl", help="how gradients are computed")
    ap.add_argument("--bug", choices=BUGS, default="none", help="inject a known mistake")
    args = ap.parse_args(argv)
    try:
        case = load_case(args.case)
    except MalformedInput as e:
        print(f"malformed input: {e}", file=sys.stderr)
        return 2
    write_npz(args.out, candidate(case, args.method, args.bug))
    print(f"wrote {args.out}")
    return 0
