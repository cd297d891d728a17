"""verify: the checking library of rtrl_ref.

Tests, notebooks and the audit CLI call it; none of them re-implements it.

    compare   one relative-error definition and one tolerance table keyed by dtype
    fd        central finite differences (full sweep for tiny sizes, sampled entries otherwise)
    problem   a small, complete eLSTM problem (eLSTM + output gate + non-linear loss) with
              its forward loss and its BPTT gradients, and generators for test regimes
    dense     a deliberately naive dense RTRL reference (full influence matrix, H <= 8)
"""
