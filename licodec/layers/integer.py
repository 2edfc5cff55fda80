"""Integer convolutions for the part of a network whose output picks coding tables.

Balle, Johnston, Minnen 2019, "Integer networks for data compression with
latent-variable models": if the encoder and the decoder derive a table index from
floating-point arithmetic, a last-bit difference between two machines (another CPU,
BLAS, thread count or torch version) can pick another table and the decoder reads
garbage from there on. Here the whole index path is integer arithmetic:

- weights are integers W = round(w * 2**WEIGHT_BITS) with |W| <= WEIGHT_MAX, biases
  integers in the units of the layer's accumulator;
- activations are integers a in 0 .. ACT_MAX, standing for a / 2**ACT_BITS (a ReLU
  clipped at ACT_MAX / 2**ACT_BITS and quantized to steps of 2**-ACT_BITS);
- a layer accumulates sum(a * W) + b in float64. Every operand is an integer and the
  sum of the magnitudes of all terms of one output stays below 2**53 (checked from the
  actual weights by ``check_exact``), so every partial sum is exactly representable and
  the result is the same integer in any summation order, on any machine;
- the rescaling to the next layer's activations is a division by a power of two and a
  floor, exact in float64.

In training the same arithmetic is simulated in float32 with straight-through rounding
(the gradient of the clipped ReLU, of the identity for the weight rounding).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Fractional bits of the integer weights, and their largest magnitude (|w| < 8).
WEIGHT_BITS = 16
WEIGHT_MAX = (1 << 19) - 1
# Fractional bits and range of the integer activations (16 bits: 0 .. 255.996).
ACT_BITS = 8
ACT_MAX = (1 << 16) - 1
# Largest magnitude a float64 accumulator may reach: below 2**53 every integer is
# exact; one bit is kept spare for the rounding offset added before a shift.
EXACT_LIMIT = 2.0**52


def round_st(x: Tensor) -> Tensor:
    """round(x) in the forward pass, the identity's gradient in the backward pass."""
    return x + (torch.round(x) - x).detach()


def shift_round(acc: Tensor, bits: int) -> Tensor:
    """floor(acc / 2**bits + 1/2) of float64 integers below 2**52: exact (an integer
    sum, a division by a power of two, a floor)."""
    if bits == 0:
        return acc.clone()
    return torch.floor((acc + float(1 << (bits - 1))) / float(1 << bits))


class IntegerConv(nn.Module):
    """A conv (or transposed conv) layer with integer weights and, optionally, an
    integer clipped-ReLU activation.

    ``in_bits``: fractional bits of the integer input (0 for integer symbols,
    ACT_BITS after another IntegerConv with activation). ``in_max``: the largest input
    magnitude the exactness bound must cover.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, *, transpose: bool = False,
                 activation: bool = True, in_bits: int = ACT_BITS, in_max: int = ACT_MAX):
        super().__init__()
        self.cin, self.cout, self.kernel, self.stride = cin, cout, kernel, stride
        self.transpose = transpose
        self.activation = activation
        self.in_bits = int(in_bits)
        self.in_max = int(in_max)
        shape = (cin, cout, kernel, kernel) if transpose else (cout, cin, kernel, kernel)
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(cout))
        fan_in = cin * kernel * kernel / (stride * stride if transpose else 1)
        nn.init.uniform_(self.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    @property
    def acc_bits(self) -> int:
        """Fractional bits of the accumulator: the input's plus the weights'."""
        return self.in_bits + WEIGHT_BITS

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        pad = self.kernel // 2
        if self.transpose:
            return F.conv_transpose2d(x, weight, bias, stride=self.stride, padding=pad,
                                      output_padding=self.stride - 1)
        return F.conv2d(x, weight, bias, stride=self.stride, padding=pad)

    # -- training: float simulation --------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """x and the result in real units (integer value / 2**bits), float32."""
        w_scale = float(1 << WEIGHT_BITS)
        b_scale = float(1 << self.acc_bits)
        w = round_st(self.weight.clamp(-WEIGHT_MAX / w_scale, WEIGHT_MAX / w_scale) * w_scale) / w_scale
        b = round_st(self.bias * b_scale) / b_scale
        v = self._conv(x, w, b)
        if not self.activation:
            return v
        a_scale = float(1 << ACT_BITS)
        v = torch.clamp(v, 0.0, ACT_MAX / a_scale)  # clipped ReLU, its gradient
        return round_st(v * a_scale) / a_scale

    # -- coding: exact integer arithmetic ----------------------------------------------
    def integer_weights(self) -> tuple[Tensor, Tensor]:
        """(W, b) as float64 tensors holding integers; a deterministic function of the
        stored parameters (float -> float64 and scaling by powers of two are exact).
        Kept until the parameters change (their version counters, which every in-place
        update such as load_state_dict or an optimiser step advances)."""
        key = (self.weight.data_ptr(), self.weight._version, self.bias.data_ptr(), self.bias._version,
               self.acc_bits)
        cached = self.__dict__.get("_integer_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        w = torch.round(self.weight.detach().double() * (1 << WEIGHT_BITS)).clamp(-WEIGHT_MAX, WEIGHT_MAX)
        b = torch.round(self.bias.detach().double() * (1 << self.acc_bits))
        self.__dict__["_integer_cache"] = (key, (w, b))
        return w, b

    def accumulator_bound(self) -> float:
        """Largest sum of term magnitudes any output of the layer can reach."""
        w, b = self.integer_weights()
        per_out = w.abs().sum(dim=(0, 2, 3) if self.transpose else (1, 2, 3))
        return float((per_out * self.in_max + b.abs()).max())

    def check_exact(self) -> None:
        bound = self.accumulator_bound()
        if not bound < EXACT_LIMIT:
            raise ValueError(f"integer layer may reach {bound:.3g}, beyond exact float64 range")

    def integer_forward(self, a: Tensor) -> Tensor:
        """a: float64 integers (input units); returns float64 integers: activations in
        0..ACT_MAX, or, without activation, the accumulator (units 2**-acc_bits)."""
        w, b = self.integer_weights()
        acc = self._conv(a.double(), w, b)
        if not self.activation:
            return acc
        return shift_round(acc, self.acc_bits - ACT_BITS).clamp_(0, ACT_MAX)

    def extra_repr(self) -> str:
        kind = "transposed, " if self.transpose else ""
        return (f"{self.cin}, {self.cout}, kernel={self.kernel}, stride={self.stride}, {kind}"
                f"activation={self.activation}, in_bits={self.in_bits}")
