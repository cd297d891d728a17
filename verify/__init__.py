"""verify: the checking library of rtrl_ref.

Tests, notebooks and the audit CLI call it; none of them re-implements it.

    compare   one relative-error definition, one tolerance table keyed by dtype, one rule for
              structural zeros
    fd        central finite differences over parameter pytrees (fd_check)
    checks    every verification property, written once (tests, audit, benchmark, GPU script)
    problem   a small, complete eLSTM problem (eLSTM + output gate + non-linear loss) with
              its forward loss and its BPTT gradients, and generators for test regimes
    dense     a deliberately naive dense RTRL reference (full influence matrix, H <= 8)
    mutants   deliberately wrong gradients (paper-v1 Jacobian, missing or late trace reset)
    broken    the negative twins of the checks: wrong drivers and wrong kernel backends
    cell_checks, cell_broken   the same for the IndRNN, minGRU and LRU (rtrl_ref.cells): problems,
              BPTT vs finite differences, RTRL (numpy, numba) vs BPTT, and their wrong variants
    vtrace    the slow V-trace reference (the defining sums, written literally)
    strategies  hypothesis strategies (sizes, lengths, resets, gate regimes, seeds)
    audit, audit_checks   `python -m verify audit`: the checks over the whole matrix, as a report
    oracle    versioned case files with reference gradients and a checker for other code
    adapters  JAX and PyTorch implementations that write candidate files for the oracle, and
              plain-NumPy IndRNN, minGRU and LRU candidates for its cell cases (with bugs)
"""
