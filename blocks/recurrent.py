"""Recurrent blocks: readable step-by-step cells (RNN, LSTM, GRU), a Python loop over time
built from them, torch's fused multi-layer RNN/LSTM/GRU (optionally packed by a padding mask),
and the final-state picker a sequence classifier reads its sentence vector from."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from engine.blocks.registry import register


class _Cell(nn.Module):
    """Shared parameters of the readable cells, laid out exactly as torch's `nn.*Cell`:
    `weight_ih` [G*H, D], `weight_hh` [G*H, H], `bias_ih`, `bias_hh` [G*H], so a torch cell's
    state_dict loads directly."""

    gates = 1
    kind = ""

    def __init__(self, in_size: int, hidden: int, bias: bool = True):
        super().__init__()
        self.input_size, self.hidden_size = in_size, hidden
        g = self.gates * hidden
        self.weight_ih = nn.Parameter(torch.empty(g, in_size))
        self.weight_hh = nn.Parameter(torch.empty(g, hidden))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(g))
            self.bias_hh = nn.Parameter(torch.empty(g))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch's own scheme for every RNN weight and bias
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters(recurse=False):
            nn.init.uniform_(p, -bound, bound)

    def label(self) -> str:
        return f"{self.kind} cell, {self.hidden_size}"

    def _zeros(self, x: Tensor) -> Tensor:
        return x.new_zeros(x.shape[0], self.hidden_size)

    def _project(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        # input and hidden projections kept apart: the GRU needs them separately
        return F.linear(x, self.weight_ih, self.bias_ih), F.linear(h, self.weight_hh, self.bias_hh)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"


@register("rnn_cell", category="recurrent", in_dim=-1, inputs=(1, 2), outputs=("h",),
          example={"args": {"hidden": 6}, "inputs": [[2, 4], [2, 6]]})
class RNNCell(_Cell):
    """One step of an Elman RNN (tanh), written out; parameters as `nn.RNNCell`'s.

    [B, D] (x) [, [B, H] (h)] -> h' [B, H] = tanh(W_ih x + b_ih + W_hh h + b_hh).
    A missing `h` is zeros.
    """

    gates, kind = 1, "RNN"

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        h = self._zeros(x) if h is None else h
        gx, gh = self._project(x, h)
        return torch.tanh(gx + gh)


@register("lstm_cell", category="recurrent", in_dim=-1, inputs=(1, 3), outputs=("h", "c"),
          example={"args": {"hidden": 6}, "inputs": [[2, 4], [2, 6], [2, 6]]})
class LSTMCell(_Cell):
    """One step of an LSTM (Hochreiter & Schmidhuber, 1997), written out; parameters as
    `nn.LSTMCell`'s, gates stacked in torch's order i, f, g, o.

    [B, D] (x) [, [B, H] (h) [, [B, H] (c)]] -> h' [B, H], c' [B, H]:
    c' = f * c + i * g, h' = o * tanh(c'), with i, f, o sigmoids and g a tanh of
    W_ih x + b_ih + W_hh h + b_hh. Missing state is zeros.
    """

    gates, kind = 4, "LSTM"

    def forward(self, x: Tensor, h: Tensor | None = None,
                c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        h = self._zeros(x) if h is None else h
        c = self._zeros(x) if c is None else c
        gx, gh = self._project(x, h)
        i, f, g, o = (gx + gh).chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g  # forget part of the old memory, write the gated candidate
        h = o * torch.tanh(c)
        return h, c


@register("gru_cell", category="recurrent", in_dim=-1, inputs=(1, 2), outputs=("h",),
          example={"args": {"hidden": 6}, "inputs": [[2, 4], [2, 6]]})
class GRUCell(_Cell):
    """One step of a GRU (Cho et al., 2014), written out; parameters as `nn.GRUCell`'s, gates
    stacked in torch's order r, z, n.

    [B, D] (x) [, [B, H] (h)] -> h' [B, H] = (1 - z) * n + z * h, with
    r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r * h_n), where x_* and h_*
    are the slices of W_ih x + b_ih and W_hh h + b_hh. A missing `h` is zeros.
    """

    gates, kind = 3, "GRU"

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        h = self._zeros(x) if h is None else h
        gx, gh = self._project(x, h)
        x_r, x_z, x_n = gx.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        # the reset gate scales the hidden projection *including* its bias, as torch (and
        # cuDNN) do; the paper's variant applies it before the projection
        n = torch.tanh(x_n + r * h_n)
        return (1 - z) * n + z * h


def _cells() -> dict[str, type]:
    # a function, not a module constant: generated code copies functions and classes only
    return {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


@register("recurrent", category="recurrent",
          in_dim=-1, inputs=(1, 4), outputs=("out", "h", "c"), layout=False,
          example={"args": {"hidden": 6, "cell": "lstm"}, "inputs": [[2, 5, 4], [2, 5]],
                   "dtypes": ["float32", "bool"]})
class Recurrent(nn.Module):
    """A readable cell (`rnn`, `lstm` or `gru`) run over time in a plain Python loop: the
    recurrent layer for reading, not for speed (the fused `lstm`/`gru`/`rnn` are fast).

    [B, T, D] (x) [, [B, T] (bool mask, True = padding)] [, [B, H] (h) [, [B, H] (c)]] ->
    out [B, T, H], h [B, H] (and c [B, H] for lstm; a gru or rnn cell gives out, h only).
    A second input of dtype bool is the mask, any other is the initial `h`. Through a padded
    step the state is carried unchanged and `out` is zero, so `h` is the state after each
    sequence's last valid step, wherever the padding is. Missing state is zeros.
    """

    def __init__(self, in_size: int, hidden: int, cell: str = "lstm", bias: bool = True):
        super().__init__()
        cells = _cells()
        if cell not in cells:
            raise ValueError(f"recurrent cell must be one of {', '.join(map(repr, cells))}, "
                             f"got {cell!r}")
        self.kind = cell
        self.cell = cells[cell](in_size, hidden, bias)

    def label(self) -> str:
        return f"{self.kind.upper()} loop, {self.cell.hidden_size}"

    def forward(self, x: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        mask = None
        if rest and rest[0].dtype == torch.bool:
            mask, rest = rest[0], rest[1:]
        lstm = self.kind == "lstm"
        h = rest[0] if rest else self.cell._zeros(x)
        c = rest[1] if len(rest) > 1 else self.cell._zeros(x)
        outs = []
        for t in range(x.shape[1]):  # the time length is a shape: fine on the meta device
            if lstm:
                h_new, c_new = self.cell(x[:, t], h, c)
            else:
                h_new = self.cell(x[:, t], h)
            if mask is None:
                h = h_new
                c = c_new if lstm else c
                outs.append(h)
                continue
            pad = mask[:, t, None]  # [B, 1]: padded rows keep their state
            h = torch.where(pad, h, h_new)
            if lstm:
                c = torch.where(pad, c, c_new)
            outs.append(h_new.masked_fill(pad, 0.0))
        out = torch.stack(outs, dim=1)
        return (out, h, c) if lstm else (out, h)

    def extra_repr(self) -> str:
        return f"cell={self.kind!r}"


class _Fused:
    """The fused layers' shared forward: split off the mask and initial state, pack by
    lengths, run torch's layer (the next class in the MRO), unpack."""

    packed: bool

    def forward(self, x: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        mask = None
        if self.packed:
            if not rest:
                raise ValueError(f"'{self.op}' with packed: true takes a [B, T] bool mask "
                                 f"as its second input")
            mask, rest = rest[0], rest[1:]
        lstm = isinstance(self, nn.LSTM)
        if lstm and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN's bf16 LSTM needs CPU support many machines lack ("could not create a
            # primitive descriptor"): under CPU autocast the LSTM runs in fp32, as the GRU does
            inputs = ((mask,) if mask is not None else ()) + tuple(rest)
            with torch.autocast("cpu", enabled=False):
                return self.forward(x.float(), *(t if t.dtype == torch.bool else t.float() for t in inputs))
        hx = None
        if rest:
            if lstm and len(rest) != 2:
                raise ValueError("'lstm' takes its initial state as both h0 and c0")
            hx = (rest[0], rest[1]) if lstm else rest[0]
        if mask is None or x.is_meta:
            # On the meta device lengths cannot be read; packing changes no shape, so skip it.
            out, state = super().forward(x, hx)
        else:
            # lengths = valid steps per row (padding at the end); pack wants them on the CPU
            lengths = (~mask).sum(dim=1).cpu()
            seq = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, state = super().forward(seq, hx)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return (out, *state) if lstm else (out, state)

    def label(self) -> str:
        dirs = "bi" if self.bidirectional else ""
        layers = f"{self.num_layers} x " if self.num_layers > 1 else ""
        return f"{dirs}{self.op.upper()}, {layers}{self.hidden_size}"


_FUSED_DOC = """

    [B, T, D] (x) [, [B, T] (bool mask, True = padding; only with `packed: true`)]
    [, [L*dirs, B, H] (h0){c0}] -> out [B, T, dirs*H], h [L*dirs, B, H]{c}.
    With `packed: true` each row runs through `pack_padded_sequence` with its length (the
    count of non-padding steps; padding is at the end), so padding never enters the state:
    `h` is each sequence's state after its last token and `out` is zero at padded steps.
    Parameters are torch's (`weight_ih_l0`, `weight_hh_l0_reverse`, ...): an `nn.{cls}`'s
    state_dict loads directly. Missing state is zeros.
    """


@register("lstm", category="recurrent", in_dim=-1, inputs=(1, 4), outputs=("out", "h", "c"), layout=False,
          example={"args": {"hidden": 6, "layers": 2, "bidirectional": True, "packed": True},
                   "inputs": [[2, 5, 4], [2, 5]], "dtypes": ["float32", "bool"]})
class LSTM(_Fused, nn.LSTM):
    op = "lstm"

    def __init__(self, in_size: int, hidden: int, layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, bias: bool = True, packed: bool = False):
        super().__init__(in_size, hidden, num_layers=layers, bias=bias, batch_first=True,
                         dropout=dropout, bidirectional=bidirectional)
        self.packed = packed


LSTM.__doc__ = ("Torch's fused multi-layer LSTM, batch first." + _FUSED_DOC.format(
    c0=" [, [L*dirs, B, H] (c0)]", c=", c [L*dirs, B, H]", cls="LSTM"))


@register("gru", category="recurrent", in_dim=-1, inputs=(1, 3), outputs=("out", "h"), layout=False,
          example={"args": {"hidden": 6, "packed": True},
                   "inputs": [[2, 5, 4], [2, 5], [1, 2, 6]], "dtypes": ["float32", "bool", "float32"]})
class GRU(_Fused, nn.GRU):
    op = "gru"

    def __init__(self, in_size: int, hidden: int, layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, bias: bool = True, packed: bool = False):
        super().__init__(in_size, hidden, num_layers=layers, bias=bias, batch_first=True,
                         dropout=dropout, bidirectional=bidirectional)
        self.packed = packed


GRU.__doc__ = "Torch's fused multi-layer GRU, batch first." + _FUSED_DOC.format(c0="", c="", cls="GRU")


@register("rnn", category="recurrent", in_dim=-1, inputs=(1, 3), outputs=("out", "h"), layout=False,
          example={"args": {"hidden": 6, "layers": 2, "nonlinearity": "relu"}, "inputs": [[2, 5, 4]]})
class RNN(_Fused, nn.RNN):
    op = "rnn"

    def __init__(self, in_size: int, hidden: int, layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, bias: bool = True, packed: bool = False,
                 nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"rnn nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(in_size, hidden, num_layers=layers, nonlinearity=nonlinearity, bias=bias,
                         batch_first=True, dropout=dropout, bidirectional=bidirectional)
        self.packed = packed


RNN.__doc__ = ("Torch's fused multi-layer Elman RNN (tanh or relu), batch first."
               + _FUSED_DOC.format(c0="", c="", cls="RNN"))


@register("last_state", category="recurrent",
          example={"args": {"bidirectional": True}, "inputs": [[4, 2, 6]]})
class LastState(nn.Module):
    """The top layer's final state of a fused `rnn`/`lstm`/`gru`: a sequence classifier's
    sentence vector.

    [L*dirs, B, H] (h) -> [B, dirs*H]: h[-1], or cat(h[-2], h[-1]) when bidirectional (torch
    stacks states layer by layer, forward direction first, so the last two rows are the top
    layer's forward and backward states).
    """

    def __init__(self, bidirectional: bool = False):
        super().__init__()
        self.bidirectional = bidirectional

    def label(self) -> str:
        return "last state" + (" (both directions)" if self.bidirectional else "")

    def forward(self, h: Tensor) -> Tensor:
        return torch.cat([h[-2], h[-1]], dim=-1) if self.bidirectional else h[-1]

    def extra_repr(self) -> str:
        return f"bidirectional={self.bidirectional}"
