"""python -m verify {audit,oracle,mutate}: the verification command line.

    python -m verify audit [--quick|--full] [--backend ...] [--dtype ...] [--seed N] [--report PATH]
    python -m verify mutate [--quick|--full] [--seed N] [--sample N] [--files ...] [--report PATH]
    python -m verify oracle {make,check,list,reference} ...   (same as python -m verify.oracle)
"""

import sys


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = "usage: python -m verify {audit,oracle,mutate} [options]   (-h after a command for help)"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "audit":
        from verify.audit import main as audit_main

        return audit_main(rest)
    if command == "oracle":
        from verify.oracle.__main__ import main as oracle_main

        return oracle_main(rest)
    if command == "mutate":
        from verify.mutate import main as mutate_main

        return mutate_main(rest)
    print(f"unknown command {command!r}\n{usage}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
