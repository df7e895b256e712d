"""An encoder-decoder spec seen as a translator: encode a source once, then decode token by token.

The spec declares two networks, `encoder` and `decoder`, and the names of their inputs and
outputs say how they connect; nothing about a particular model is coded here.

- The encoder takes `src` [B, S] (token ids, padded) and returns named outputs, e.g. `memory`.
- A *step* decoder (an RNN) takes `token` [B], the id fed at this step; a *sequence* decoder
  (the Transformer) takes `tokens` [B, T], the whole prefix, and its logits at the last
  position are the next-token scores. Either returns `logits`.
- Every other decoder input is looked up by name: `src`, or an encoder output (`memory`), or
  carried state. State is a decoder input that is also a decoder output (`hidden`, `cell`):
  the first step takes it from the encoder output of the same name, each later step from the
  previous step's output. A decoder output `weights` (attention over the source) is kept for
  pictures.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from engine.compiler.ir import located_error

Context = dict[str, Tensor]


@dataclass
class Translator:
    encoder: nn.Module
    decoder: nn.Module
    encoder_inputs: list[str]
    encoder_outputs: list[str]
    decoder_inputs: list[str]
    decoder_outputs: list[str]
    batch_dims: dict[str, int]  # where the batch is in each named tensor ([L, B, H] state: 1)

    @property
    def sequence(self) -> bool:
        """Whether the decoder takes the whole prefix (`tokens`) rather than one `token`."""
        return "tokens" in self.decoder_inputs

    @property
    def state_names(self) -> list[str]:
        return [n for n in self.decoder_inputs if n in self.decoder_outputs]

    # ---- running the networks -------------------------------------------------------------
    def encode(self, src: Tensor) -> Context:
        """The source and every encoder output, by name: what each decoder step may read."""
        out = _named(self.encoder(*[{"src": src}[n] for n in self.encoder_inputs]),
                     self.encoder_outputs)
        return {"src": src, **out}

    def start(self, context: Context) -> Context:
        """The carried state before the first step, from the encoder outputs of the same names."""
        return {n: context[n] for n in self.state_names}

    def step(self, prefix: Tensor, context: Context, state: Context) -> tuple[Tensor, Context]:
        """Logits [N, V] for the token after `prefix` [N, t], and the state after it."""
        out = self.step_outputs(prefix, context, state)
        return out["logits"], {n: out[n] for n in self.state_names}

    def step_outputs(self, prefix: Tensor, context: Context, state: Context) -> Context:
        """Every decoder output for the token after `prefix`; a sequence decoder's at the last
        position (attention `weights` [N, S] too, where the decoder returns them)."""
        given = {**context, **state, "tokens": prefix, "token": prefix[:, -1]}
        out = _named(self.decoder(*[given[n] for n in self.decoder_inputs]), self.decoder_outputs)
        if self.sequence:
            out["logits"] = out["logits"][:, -1]
        return out

    def teacher_forced(self, inputs: Tensor, context: Context) -> Tensor:
        """Logits [B, T, V] of a sequence decoder reading the whole target prefix at once."""
        given = {**context, "tokens": inputs}
        out = _named(self.decoder(*[given[n] for n in self.decoder_inputs]), self.decoder_outputs)
        return out["logits"]

    def select(self, tensors: Context, index: Tensor) -> Context:
        """The rows `index` of every tensor, along its batch dim (beams reordered or expanded)."""
        return {k: v.index_select(self.batch_dims.get(k, 0), index) for k, v in tensors.items()}


def _named(out, names: list[str]) -> dict[str, Tensor]:
    """A network's result as a dict: one output is a bare tensor, several a dict already."""
    return dict(out) if isinstance(out, dict) else {names[0]: out}


def make_translator(model: nn.Module, shaped, file: str) -> Translator:
    """The translator of a spec with `encoder` and `decoder` networks, checked for its contract."""
    networks = shaped.spec.networks
    missing = [n for n in ("encoder", "decoder") if n not in networks]
    if missing or not isinstance(model, nn.ModuleDict):
        raise located_error(f"a translation spec needs networks `encoder` and `decoder`; this one has "
                            f"{', '.join(networks) or 'none'}", file, "spec",
                            "declare networks: {encoder: ..., decoder: ...} (see specs/seq2seq.yaml)")
    enc, dec = networks["encoder"], networks["decoder"]
    if "src" not in enc.inputs:
        raise located_error("the encoder needs an input named `src` (token ids [B, S])", file, "spec",
                            "write inputs: {src: {shape: [B, S], dtype: long}}")
    if not ({"token", "tokens"} & set(dec.inputs)) or "logits" not in dec.outputs:
        raise located_error("the decoder needs an input `token` [B] (step by step) or `tokens` [B, T] "
                            "(the whole prefix), and an output `logits`", file, "spec",
                            "see specs/seq2seq.yaml (token) and specs/transformer.yaml (tokens)")
    known = {"src", "token", "tokens", *enc.outputs}
    unknown = [n for n in dec.inputs if n not in known]
    if unknown:
        raise located_error(f"decoder input(s) {', '.join(unknown)} come from nowhere: each must be "
                            f"src, token/tokens, or an encoder output ({', '.join(enc.outputs)})",
                            file, "spec", f"add {unknown[0]} to the encoder's outputs")
    return Translator(model["encoder"], model["decoder"], list(enc.inputs), list(enc.outputs),
                      list(dec.inputs), list(dec.outputs), _batch_dims(enc, dec))


def _batch_dims(*graphs) -> dict[str, int]:
    """Where `B` stands in each declared input shape ([L, B, H] state: 1)."""
    dims = {}
    for graph in graphs:
        for name, decl in graph.inputs.items():
            shape = decl.get("shape") if isinstance(decl, dict) else decl
            if isinstance(shape, list) and "B" in shape:
                dims[name] = shape.index("B")
    return dims
