"""Parameters of the eLSTM and of its output gate, and the paper's initialisation.

eLSTM (docs/derivation.md, Eqs. 1-3):
    z_t = tanh(W_z x_t + w_z * c_tm1 + b_z)
    f_t = sigmoid(W_f x_t + w_f * c_tm1 + b_f)
    c_t = f_t * c_tm1 + (1 - f_t) * z_t
Output gate (outside the recurrence, Eq. 4):
    o_t = sigmoid(W_o [x_t ; c_t] + b_o),   h_t = o_t * c_t

Initialisation (`init_elstm`): every eLSTM tensor ~ N(0, 0.1^2) (the paper's), and the forget
bias b_f either
    constant   b_f ~ N(forget_bias, 0.1^2)   (the paper's code: forget_bias = 0, so f ~ 0.5 and
               a cell forgets half of itself per step), or
    chrono     b_f = log(u), u ~ U(1, chrono_T_max - 1)   (Tallec & Ollivier, "Can recurrent neural
               networks warp time?", ICLR 2018).
With small input and recurrent weights f_t ~ sigmoid(b_f), so a cell keeps a share f of itself
per step and its characteristic time is 1 / (1 - f) = 1 + u: chrono spreads the cells' memory
times uniformly over [2, chrono_T_max] instead of giving them all the same. The eLSTM's input
gate is 1 - f (Eq. 3), so this one bias sets both gates, as chrono does for the LSTM's pair.
The output gate uses the usual fan-in uniform rule.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rtrl_ref.validate import check_array, check_float_dtype


class ELSTMParams(NamedTuple):
    """Trainable eLSTM parameters. Gradients and RTRL traces use the same field names."""

    W_z: np.ndarray  # (H, I) input weights of the candidate z
    W_f: np.ndarray  # (H, I) input weights of the forget gate f
    w_z: np.ndarray  # (H,)   element-wise recurrent weights of z
    w_f: np.ndarray  # (H,)   element-wise recurrent weights of f
    b_z: np.ndarray  # (H,)
    b_f: np.ndarray  # (H,)

    @property
    def sizes(self) -> tuple[int, int]:
        """(H, I)."""
        return self.W_z.shape

    def astype(self, dtype) -> ELSTMParams:
        return ELSTMParams(*(a.astype(dtype) for a in self))

    def validate(self, name: str = "params") -> ELSTMParams:
        check_array(f"{name}.W_z", self.W_z, (None, None))
        H, I = self.W_z.shape
        dtype = check_float_dtype(f"{name}.W_z", self.W_z)
        check_array(f"{name}.W_f", self.W_f, (("H", H), ("I", I)), dtype)
        for field in ("w_z", "w_f", "b_z", "b_f"):
            check_array(f"{name}.{field}", getattr(self, field), (("H", H),), dtype)
        return self


class OutGateParams(NamedTuple):
    W_o: np.ndarray  # (H, I + H) reads [x_t ; c_t]
    b_o: np.ndarray  # (H,)

    def astype(self, dtype) -> OutGateParams:
        return OutGateParams(*(a.astype(dtype) for a in self))

    def validate(self, H: int, I: int, dtype, name: str = "out_params") -> OutGateParams:
        check_array(f"{name}.W_o", self.W_o, (("H", H), ("I+H", I + H)), dtype)
        check_array(f"{name}.b_o", self.b_o, (("H", H),), dtype)
        return self


FORGET_INITS = ("constant", "chrono")


def init_elstm(rng: np.random.Generator, I: int, H: int, dtype=np.float32, std: float = 0.1,
               forget_bias: float = 0.0, forget_init: str = "constant",
               chrono_T_max: float = 100.0) -> ELSTMParams:
    """The paper's initialisation (each tensor ~ N(0, std^2)); b_f by `forget_init` (module doc):
    "constant" adds forget_bias to b_f, "chrono" draws b_f = log(U(1, chrono_T_max - 1))."""
    if I < 1 or H < 1:
        raise ValueError(f"init_elstm: expected I >= 1 and H >= 1, got I={I}, H={H}")
    if np.dtype(dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype: expected float32 or float64, got {np.dtype(dtype)}")
    if forget_init not in FORGET_INITS:
        raise ValueError(f"forget_init: expected one of {FORGET_INITS}, got {forget_init!r}")
    if forget_init == "chrono" and not chrono_T_max > 2:
        raise ValueError(f"chrono_T_max: expected a number > 2, got {chrono_T_max!r}")

    def draw(*shape):
        return (std * rng.standard_normal(shape)).astype(dtype)

    W_z = draw(H, I)                                 # (H, I)
    W_f = draw(H, I)                                 # (H, I)
    w_z = draw(H)                                    # (H,)
    w_f = draw(H)                                    # (H,)
    b_z = draw(H)                                    # (H,)
    b_f = (draw(H) + forget_bias).astype(dtype)      # (H,) drawn for both options: same other tensors
    if forget_init == "chrono":
        b_f = np.log(rng.uniform(1.0, chrono_T_max - 1.0, H)).astype(dtype)   # (H,)
    return ELSTMParams(W_z, W_f, w_z, w_f, b_z, b_f)


def init_out_gate(rng: np.random.Generator, I: int, H: int, dtype=np.float32) -> OutGateParams:
    """Fan-in uniform initialisation U(+-1/sqrt(I + H)), as for a default linear layer."""
    bound = 1.0 / np.sqrt(I + H)
    W_o = rng.uniform(-bound, bound, (H, I + H)).astype(dtype)   # (H, I + H)
    b_o = rng.uniform(-bound, bound, H).astype(dtype)            # (H,)
    return OutGateParams(W_o, b_o)
