"""Deliberately wrong eLSTM layers: the NumPy layer of verify.adapters.numpy_layer with one bug each.

Every name of `numpy_layer.BUGS` is a callable of the layer protocol here, so the fuzzer can be
pointed at it:

    python -m verify.oracle fuzz verify.adapters.buggy_numpy:jacobian_typo

`BUGGY` maps each name to its callable. tests/test_oracle_v2.py requires the fuzzer to find every
one and to shrink it to a small case.
"""

from __future__ import annotations

from functools import partial

from verify.adapters.numpy_layer import BUGS, layer

BUGGY = {name: partial(layer, bug=name) for name in BUGS}

jacobian_typo = BUGGY["jacobian_typo"]
no_trace_reset = BUGGY["no_trace_reset"]
c_t_for_c_tm1 = BUGGY["c_t_for_c_tm1"]
sign_of_term = BUGGY["sign_of_term"]
outer_transposed = BUGGY["outer_transposed"]
float32_accumulation = BUGGY["float32_accumulation"]
batch_leak = BUGGY["batch_leak"]
off_by_one_time = BUGGY["off_by_one_time"]
mean_not_sum = BUGGY["mean_not_sum"]
bias_ignores_J = BUGGY["bias_ignores_J"]
