"""`seq2seq`: translation with an encoder-decoder spec (RNN Seq2Seq, the Transformer).

Batches are (src [B, S], tgt [B, T]) of token ids, tgt = SOS ... EOS, padded with 0. The
decoder reads tgt[:, :-1] and is scored on tgt[:, 1:] with the recipe's cross-entropy (label
smoothing from `loss: {label_smoothing: 0.1}`), padding ignored. How the two networks connect
is read from their input and output names (engine/train/evaluation/translator.py).

- A step decoder (RNN) runs one token at a time. With probability `teacher_forcing` a step is
  fed the reference token, else its own previous argmax (one coin per step for the whole
  batch, as the seed). 1.0 is plain teacher forcing.
- A sequence decoder (Transformer) reads the whole reference prefix at once (its causal mask
  keeps position t from seeing later tokens), which is teacher forcing by construction.

Validation loss is always teacher-forced and token-averaged (`loss`, `perplexity`,
`accuracy`). `eval.sample_metrics: [bleu]` decodes the split (greedy, or beam search with
`beam` > 1) and scores it with sacrebleu against the untokenised references. Decoding stops at
EOS or after min(`max_len`, 2 x source length + 10) tokens; sources longer than
`max_source_len` tokens are cut there (a note says so), and an empty source is just EOS.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor

from engine.compiler.ir import located_error
from engine.train.evaluation.decoding import beam_decode, greedy_decode
from engine.train.evaluation.translator import Translator, make_translator
from engine.train.procedures.base import Procedure
from engine.train.procedures.sequence import PAD, TokenFigures, ignore_padding, token_figures
from engine.train.registry import PROCEDURES

SOS, EOS = 2, 3  # engine.train.data.text's special ids


@PROCEDURES.register("seq2seq")
class Seq2Seq(TokenFigures, Procedure):
    networks = "several"  # encoder and decoder
    OPTIONS = {"teacher_forcing": 1.0, "beam": 1, "length_penalty": 0.6, "max_len": 100,
               "max_source_len": 100, "examples": 3}
    DEFAULT_LOSS = {"name": "cross_entropy"}

    def setup(self, total_steps: int) -> None:
        super().setup(total_steps)
        self.loss = ignore_padding(self.loss)
        self.translator = make_translator(self.unwrapped, self.recipe.shaped, self.recipe.file)

    def eval_translator(self) -> Translator:
        model = self.eval_model()
        return self.translator if model is self.unwrapped else \
            make_translator(model, self.recipe.shaped, self.recipe.file)

    # ---- training -------------------------------------------------------------------------
    def logits(self, translator: Translator, src: Tensor, inputs: Tensor, ratio: float) -> Tensor:
        """Decoder logits [B, T, V] for the target prefix `inputs` [B, T]."""
        context = translator.encode(src)
        if translator.sequence:
            return translator.teacher_forced(inputs, context)
        state, token, steps = translator.start(context), inputs[:, :1], []
        for t in range(inputs.shape[1]):
            logits, state = translator.step(token, context, state)
            steps.append(logits)
            if t + 1 < inputs.shape[1]:
                teacher = ratio >= 1 or bool(torch.rand(()) < ratio)
                token = inputs[:, t + 1:t + 2] if teacher else logits.argmax(-1, keepdim=True)
        return torch.stack(steps, dim=1)

    def train_step(self, batch) -> dict[str, float]:
        src, tgt = batch
        ratio = self.options["teacher_forcing"]
        return self.next_token_step(lambda: self.logits(self.translator, src, tgt[:, :-1], ratio),
                                    tgt[:, 1:])

    @torch.no_grad()
    def eval_step(self, batch, metrics: list[str]) -> dict[str, Tensor]:
        src, tgt = batch
        with self.autocast():
            logits = self.logits(self.eval_translator(), src, tgt[:, :-1], 1.0)
        return token_figures(logits, tgt[:, 1:])

    # ---- decoding -------------------------------------------------------------------------
    @torch.no_grad()
    def translate(self, src: Tensor, beam: int | None = None) -> list[list[int]]:
        """Output ids (no SOS / EOS) for a padded batch of sources [B, S]."""
        translator, beam = self.eval_translator(), beam or self.options["beam"]
        limit = min(self.options["max_len"], 2 * src.shape[1] + 10)
        with self.autocast():
            banned = (PAD, SOS)  # never a word of the output
            if beam == 1:
                return greedy_decode(translator, src, SOS, EOS, limit, banned)
            return beam_decode(translator, src, SOS, EOS, limit, beam, self.options["length_penalty"],
                               banned)

    def translate_texts(self, dataset, texts: list[str], beam: int | None = None,
                        batch_size: int = 64) -> tuple[list[str], list[str]]:
        """Untokenised sentences in, untokenised translations out, and notes (cut sources)."""
        from engine.train.data.text import pad_batch
        cap, notes, out = self.options["max_source_len"], [], []
        ids = [dataset.encode_source(t) for t in texts]
        for i, seq in enumerate(ids):
            if not texts[i].strip():
                notes.append(f"sentence {i + 1} is empty: its translation is empty too")
            if len(seq) > cap:
                notes.append(f"sentence {i + 1} has {len(seq) - 1} tokens; only the first {cap - 1} "
                             f"were translated (procedure.max_source_len: {cap})")
                ids[i] = torch.cat([seq[:cap - 1], seq.new_tensor([EOS])])
        self.eval_model().eval()
        for start in range(0, len(ids), batch_size):
            src = pad_batch(ids[start:start + batch_size], PAD).to(self.device)
            out += [dataset.decode_target(h) for h in self.translate(src, beam)]
        return ["" if not t.strip() else o for t, o in zip(texts, out)], notes

    def evaluate_samples(self, run, split: str, names: list[str], seed: int = 0):
        """BLEU (sacrebleu, detokenised) of the decoded split against its references."""
        from engine.train.evaluation.bleu import bleu_signature, corpus_bleu
        from engine.train.evaluation.sampling import check_sample_metrics
        check_sample_metrics(run, names, {"bleu"})
        dataset = run.eval_sets[split] if split != "train" else run.train_set
        size = run.recipe["data"].get("eval_batch_size", run.recipe["data"].get("batch_size", 64))
        began = time.perf_counter()
        hyps, notes = self.translate_texts(dataset, list(dataset.sources), batch_size=size)
        seconds = time.perf_counter() - began
        beam = self.options["beam"]
        notes = [f"decoded {len(hyps)} sentences ({'greedy' if beam == 1 else f'beam {beam}'}) "
                 f"in {seconds:.1f} s; sacrebleu {bleu_signature()}", *notes]
        for i in range(min(self.options["examples"], len(hyps))):
            notes += [f"  source    {dataset.sources[i]}", f"  reference {dataset.references[i]}",
                      f"  output    {hyps[i]}"]
        return {"bleu": corpus_bleu(hyps, list(dataset.references)), "sentences": len(hyps)}, notes

    # ---- pictures -------------------------------------------------------------------------
    @torch.no_grad()
    def alignment(self, dataset, text: str) -> tuple[list[str], list[str], Tensor]:
        """Greedy translation of one sentence with the attention weights of every output step:
        (source tokens + <eos>, output tokens + <eos>, weights [T_out, S])."""
        translator = self.eval_translator()
        src = dataset.encode_source(text)[None].to(self.device)
        context = translator.encode(src)
        state, prefix, rows = translator.start(context), src.new_full((1, 1), SOS), []
        for _ in range(min(self.options["max_len"], 2 * src.shape[1] + 10)):
            out = translator.step_outputs(prefix, context, state)
            state = {n: out[n] for n in translator.state_names}
            rows.append(out["weights"][0].float().cpu())
            prefix = torch.cat([prefix, out["logits"].argmax(-1, keepdim=True)], dim=1)
            if int(prefix[0, -1]) == EOS:
                break
        source = [dataset.src_vocab.itos[i] for i in src[0].tolist()]
        output = [dataset.tgt_vocab.itos[i] for i in prefix[0, 1:].tolist()]
        return source, output, torch.stack(rows)

    def sample_figure(self, run, n: int, output: str, seed: int) -> str:
        """`engine sample`: the attention alignments of the first test sentences (a heat map
        per sentence: which source words each output word looked at)."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        if "weights" not in self.eval_translator().decoder_outputs:
            raise located_error("engine sample draws attention alignments, and this decoder returns no "
                                "attention `weights`", run.recipe.file,
                                hint="use an attention model (seq2seq_attn), or engine infer to translate")
        dataset = run.eval_sets["test"]
        count = max(1, min(n, 4))
        fig, axes = plt.subplots(1, count, figsize=(4.2 * count, 4.6), squeeze=False)
        self.eval_model().eval()
        for ax, text in zip(axes[0], dataset.sources[:count]):
            source, out, weights = self.alignment(dataset, text)
            ax.imshow(weights.numpy(), cmap="viridis", vmin=0, aspect="auto")  # brightest: its max
            ax.set_xticks(range(len(source)), source, rotation=70, fontsize=7)
            ax.set_yticks(range(len(out)), out, fontsize=7)
        fig.tight_layout()
        fig.savefig(output, dpi=110)
        plt.close(fig)
        return f"wrote {output}: attention alignments of {count} test sentences (rows: output words)"

    def infer(self, run, args):
        """`engine infer`: translate sentences from the command line and from --file."""
        texts = list(args.inputs)
        if args.file:
            texts += _read_lines(args.file)
        dataset = run.eval_sets["test"]  # its tokenizers and vocabularies are the training ones
        outputs, notes = self.translate_texts(dataset, texts, args.beam)
        yield from notes
        for text, out in zip(texts, outputs):
            yield f"{text}\n  -> {out}"


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except (OSError, UnicodeDecodeError) as err:
        raise located_error(f"cannot read {path}: {err}", path,
                            hint="give a UTF-8 text file, one sentence per line") from None
