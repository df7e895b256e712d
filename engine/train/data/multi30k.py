"""Multi30k captions (English / German / French, line-aligned) as three text datasets.

All read `<root>/multi30k/` (`args.folder` overrides): `{train,val,test_2016_flickr}.{en,de,fr}.gz`,
gzip UTF-8, one untokenised sentence per line (29,000 / 1,014 / 1,000 lines); the splits train /
val / test are those three files. Sentences are Moses-tokenised (`engine.train.data.text`); the token
lists and vocabularies are cached on disk (see `engine.train.data.text.cached`) and in the process.
Vocabularies come from the training split only. Image transforms do not apply to these datasets.

- `multi30k` (translation): args `src` ("de"), `tgt` ("en"), `min_freq` (2), `lowercase` (false),
  `max_len` (none: a token count; train pairs with more tokens on either side are dropped, val and
  test are never filtered). Item: `(src [S], tgt [T])` long tensors, src = tokens + EOS,
  tgt = SOS + tokens + EOS; `collate` pads to `(src [B, S_max], tgt [B, T_max])` with PAD.
  The dataset also has `src_vocab`, `tgt_vocab`, `src_tokenizer`, `tgt_tokenizer`, `sources` and
  `references` (the raw sentences of the split, for BLEU), `encode_source(text)` and
  `decode_target(ids)`. spec_params: `src_vocab`, `tgt_vocab`, `pad`.
- `multi30k_langid` (language identification): args `languages` (["en", "de", "fr"]),
  `min_freq` (2), `lowercase` (true). Items: every line of the split in every language,
  `(ids [T] = tokens + EOS, label)` with label = index in `languages`; one vocabulary shared by
  the languages. `collate` -> `(ids [B, T_max], labels [B])`. spec_params: `vocab`, `pad`.
- `multi30k_lm` (word-level language model): args `lang` ("en"), `min_freq` (3), `lowercase`
  (true). Item: `ids [T]` = SOS + tokens + EOS; `collate` -> `ids [B, T_max]`. spec_params:
  `vocab`, `pad`. `unigram_perplexity(train, test)` is the add-one unigram baseline.
"""

from __future__ import annotations

import gzip
import math
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from engine.compiler.ir import located_error
from engine.train.data.datasets import (
    DatasetInfo,
    dataset_arg,
    dataset_folder,
    describe_folder,
    min_freq_arg,
    refuse_transform,
    root_hint,
)
from engine.train.data.text import (
    EOS,
    PAD,
    SOS,
    Sequences,
    Tokenizer,
    Vocab,
    cached_vocab,
    file_key,
    get_tokenizer,
    pad_batch,
    tokenize_lines,
)
from engine.train.registry import DATASETS

LANGS = ("en", "de", "fr")
FILES = {"train": "train", "val": "val", "test": "test_2016_flickr"}
DEFAULT_DIR = "multi30k"


# ---------------------------------------------------------------------------------------------
# files, tokens and vocabularies


def multi30k_folder(root: Path, args: dict, name: str) -> Path:
    folder = dataset_folder(root, args, DEFAULT_DIR, name)
    if not folder.is_dir():
        raise located_error(f"dataset {name!r}: no Multi30k folder at {describe_folder(folder)}",
                            folder, path="data.root",
                            hint=f"put {{train,val,test_2016_flickr}}.{{en,de,fr}}.gz there, "
                            f"{root_hint(DEFAULT_DIR)}")
    return folder


def split_file(folder: Path, split: str, lang: str, name: str) -> Path:
    path = folder / f"{FILES[split]}.{lang}.gz"
    if not path.is_file():
        raise located_error(f"dataset {name!r}: missing file {path.name} in {folder}", path,
                            hint=f"the {split} split reads {path.name}; {root_hint(DEFAULT_DIR)}",
                            path="data.root")
    return path


@lru_cache(maxsize=32)
def _read_lines(path: str, key: tuple) -> tuple[str, ...]:
    try:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            text = f.read()
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise located_error(f"cannot read {Path(path).name}: {e}", path, path="data",
                            hint="expected gzip-compressed UTF-8 text, one sentence per line") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return tuple(line.rstrip("\r") for line in lines)


def read_lines(path: Path) -> tuple[str, ...]:
    """The lines of a gzip text file (remembered while the file is unchanged)."""
    return _read_lines(str(path), tuple(file_key(path)))


def tokenized(folder: Path, split: str, lang: str, lowercase: bool, name: str) -> list[list[str]]:
    path = split_file(folder, split, lang, name)
    lines = read_lines(path)
    return tokenize_lines(lines, get_tokenizer(lang, lowercase), [DEFAULT_DIR, file_key(path)],
                          desc=f"tokenising {path.name}")


def train_vocab(folder: Path, langs: Sequence[str], lowercase: bool, min_freq: int, name: str) -> Vocab:
    """One vocabulary over the training lines of `langs`."""
    paths = [split_file(folder, "train", lang, name) for lang in langs]
    key = [DEFAULT_DIR, [file_key(p) for p in paths], list(langs), lowercase]

    def token_lists():
        for lang in langs:
            yield from tokenized(folder, "train", lang, lowercase, name)

    return cached_vocab(key, token_lists, min_freq)


def _lang(args: dict, key: str, default: str, name: str) -> str:
    lang = dataset_arg(args, key, str, default, name)
    if lang not in LANGS:
        raise located_error(f"dataset {name!r}: unknown language {lang!r} in data.args.{key}",
                            path=f"data.{key}", hint=f"Multi30k has {', '.join(LANGS)}")
    return lang


def _ids(ids: list[int]) -> Tensor:
    return torch.tensor(ids, dtype=torch.long)


# ---------------------------------------------------------------------------------------------
# multi30k: translation


class TranslationDataset(Dataset):
    """Pairs `(src [S], tgt [T])`: src = tokens + EOS, tgt = SOS + tokens + EOS."""

    def __init__(self, src: Sequences, tgt: Sequences, sources: list[str], references: list[str],
                 src_vocab: Vocab, tgt_vocab: Vocab, src_tokenizer: Tokenizer, tgt_tokenizer: Tokenizer):
        self.src, self.tgt = src, tgt
        self.sources, self.references = sources, references
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.src[i], self.tgt[i]

    def collate(self, items: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        return pad_batch([s for s, _ in items], PAD), pad_batch([t for _, t in items], PAD)

    def encode_source(self, text: str) -> Tensor:
        tokens = self.src_tokenizer.tokenize(text) if text.strip() else []
        return _ids(self.src_vocab.encode(tokens) + [EOS])

    def decode_target(self, ids: Sequence[int] | Tensor) -> str:
        return self.tgt_tokenizer.detokenize(self.tgt_vocab.decode(ids))


class Multi30k:
    ARGS = ("folder", "src", "tgt", "min_freq", "lowercase", "max_len")  # its data.args keys
    name = "multi30k"

    def _args(self, args: dict) -> tuple[str, str, int, bool, int | None]:
        src = _lang(args, "src", "de", self.name)
        tgt = _lang(args, "tgt", "en", self.name)
        if src == tgt:
            raise located_error(f"dataset 'multi30k': src and tgt are both {src!r}", path="data.tgt",
                                hint="translate between two languages, e.g. `src: de`, `tgt: en`")
        min_freq = min_freq_arg(args, 2, self.name)
        lowercase = dataset_arg(args, "lowercase", bool, False, self.name)
        max_len = dataset_arg(args, "max_len", int, None, self.name)
        if max_len is not None and max_len < 1:
            raise located_error(f"dataset 'multi30k': data.max_len must be at least 1, got {max_len}",
                                path="data.max_len", hint="e.g. `max_len: 50`, or leave it out")
        return src, tgt, min_freq, lowercase, max_len

    def vocabs(self, root: Path, args: dict) -> tuple[Path, Vocab, Vocab]:
        src, tgt, min_freq, lowercase, _ = self._args(args)
        folder = multi30k_folder(root, args, self.name)
        return (folder, train_vocab(folder, [src], lowercase, min_freq, self.name),
                train_vocab(folder, [tgt], lowercase, min_freq, self.name))

    def info(self, root: Path, args: dict) -> DatasetInfo:
        _, src_vocab, tgt_vocab = self.vocabs(root, args)
        return DatasetInfo(channels=0, size=None, classes=[], needs_root=True, default_dir=DEFAULT_DIR,
                           spec_params={"src_vocab": len(src_vocab), "tgt_vocab": len(tgt_vocab),
                                        "pad": PAD})

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        refuse_transform(transform, self.name)
        src, tgt, min_freq, lowercase, max_len = self._args(args)
        folder, src_vocab, tgt_vocab = self.vocabs(root, args)
        return _translation(str(folder), split, src, tgt, lowercase, max_len if split == "train" else None,
                            src_vocab, tgt_vocab)


def _translation(folder: str, split: str, src: str, tgt: str, lowercase: bool, max_len: int | None,
                 src_vocab: Vocab, tgt_vocab: Vocab) -> TranslationDataset:
    name = "multi30k"
    path = Path(folder)
    sources = read_lines(split_file(path, split, src, name))
    references = read_lines(split_file(path, split, tgt, name))
    if len(sources) != len(references):
        raise located_error(f"dataset 'multi30k': {FILES[split]}.{src}.gz has {len(sources)} lines but "
                            f"{FILES[split]}.{tgt}.gz has {len(references)}", path,
                            hint="the files of a split must be line-aligned", path="data")
    src_tokens = tokenized(path, split, src, lowercase, name)
    tgt_tokens = tokenized(path, split, tgt, lowercase, name)
    keep = [i for i in range(len(sources))
            if max_len is None or (len(src_tokens[i]) <= max_len and len(tgt_tokens[i]) <= max_len)]
    return TranslationDataset(
        Sequences(src_vocab.encode(src_tokens[i]) + [EOS] for i in keep),
        Sequences([SOS] + tgt_vocab.encode(tgt_tokens[i]) + [EOS] for i in keep),
        [sources[i] for i in keep], [references[i] for i in keep],
        src_vocab, tgt_vocab, get_tokenizer(src, lowercase), get_tokenizer(tgt, lowercase))


# ---------------------------------------------------------------------------------------------
# multi30k_langid: language identification


class LabelledTextDataset(Dataset):
    """Items `(ids [T], label)`; `collate` pads to `(ids [B, T_max], labels [B])`."""

    def __init__(self, ids: Sequences | list[Tensor], labels: list[int], vocab: Vocab, classes: list[str]):
        self.ids, self.labels, self.vocab, self.classes = ids, labels, vocab, classes

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        return self.ids[i], self.labels[i]

    def collate(self, items: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
        return (pad_batch([x for x, _ in items], PAD),
                torch.tensor([y for _, y in items], dtype=torch.long))


class Multi30kLangId:
    ARGS = ("folder", "languages", "min_freq", "lowercase")  # its data.args keys
    name = "multi30k_langid"

    def _args(self, args: dict) -> tuple[list[str], int, bool]:
        languages = dataset_arg(args, "languages", list, list(LANGS), self.name)
        if not languages or len(set(languages)) != len(languages):
            raise located_error(f"dataset {self.name!r}: data.languages must list distinct languages, "
                                f"got {languages!r}", path="data.languages",
                                hint="e.g. `languages: [en, de, fr]`")
        for lang in languages:
            if lang not in LANGS:
                raise located_error(f"dataset {self.name!r}: unknown language {lang!r} in data.languages",
                                    path="data.languages", hint=f"Multi30k has {', '.join(LANGS)}")
        return (list(languages), min_freq_arg(args, 2, self.name),
                dataset_arg(args, "lowercase", bool, True, self.name))

    def vocab(self, root: Path, args: dict) -> tuple[Path, Vocab]:
        languages, min_freq, lowercase = self._args(args)
        folder = multi30k_folder(root, args, self.name)
        return folder, train_vocab(folder, languages, lowercase, min_freq, self.name)

    def info(self, root: Path, args: dict) -> DatasetInfo:
        languages, _, _ = self._args(args)
        _, vocab = self.vocab(root, args)
        return DatasetInfo(channels=0, size=None, classes=languages, needs_root=True,
                           default_dir=DEFAULT_DIR, spec_params={"vocab": len(vocab), "pad": PAD})

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        refuse_transform(transform, self.name)
        languages, _, lowercase = self._args(args)
        folder, vocab = self.vocab(root, args)
        ids, labels = [], []
        for label, lang in enumerate(languages):
            for tokens in tokenized(folder, split, lang, lowercase, self.name):
                ids.append(vocab.encode(tokens) + [EOS])
                labels.append(label)
        return LabelledTextDataset(Sequences(ids), labels, vocab, languages)


# ---------------------------------------------------------------------------------------------
# multi30k_lm: word-level language model


class LanguageModelDataset(Dataset):
    """Items `ids [T]` = SOS + tokens + EOS; `collate` pads to one [B, T_max] tensor."""

    def __init__(self, ids: Sequences | list[Tensor], vocab: Vocab, tokenizer: Tokenizer | None = None,
                 sentences: list[str] | None = None):
        self.ids, self.vocab, self.tokenizer, self.sentences = ids, vocab, tokenizer, sentences

    @classmethod
    def from_tokens(cls, token_lists: Sequence[Sequence[str]], vocab: Vocab, **kw) -> LanguageModelDataset:
        return cls(Sequences([SOS] + vocab.encode(t) + [EOS] for t in token_lists), vocab, **kw)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> Tensor:
        return self.ids[i]

    def collate(self, items: list[Tensor]) -> Tensor:
        return pad_batch(items, PAD)

    def decode(self, ids: Sequence[int] | Tensor) -> str:
        tokens = self.vocab.decode(ids)
        return self.tokenizer.detokenize(tokens) if self.tokenizer else " ".join(tokens)


class Multi30kLM:
    ARGS = ("folder", "lang", "min_freq", "lowercase")  # its data.args keys
    name = "multi30k_lm"

    def _args(self, args: dict) -> tuple[str, int, bool]:
        return (_lang(args, "lang", "en", self.name), min_freq_arg(args, 3, self.name),
                dataset_arg(args, "lowercase", bool, True, self.name))

    def vocab(self, root: Path, args: dict) -> tuple[Path, Vocab]:
        lang, min_freq, lowercase = self._args(args)
        folder = multi30k_folder(root, args, self.name)
        return folder, train_vocab(folder, [lang], lowercase, min_freq, self.name)

    def info(self, root: Path, args: dict) -> DatasetInfo:
        _, vocab = self.vocab(root, args)
        return DatasetInfo(channels=0, size=None, classes=[], needs_root=True, default_dir=DEFAULT_DIR,
                           spec_params={"vocab": len(vocab), "pad": PAD})

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        refuse_transform(transform, self.name)
        lang, _, lowercase = self._args(args)
        folder, vocab = self.vocab(root, args)
        sentences = list(read_lines(split_file(folder, split, lang, self.name)))
        return LanguageModelDataset.from_tokens(tokenized(folder, split, lang, lowercase, self.name), vocab,
                                                tokenizer=get_tokenizer(lang, lowercase), sentences=sentences)


def unigram_perplexity(train: Dataset, test: Dataset) -> float:
    """Perplexity on `test` of the add-one-smoothed unigram distribution of `train`.

    Both are language-model datasets (items SOS + tokens + EOS). Every id after the leading SOS is
    predicted, EOS included, as the language model does; counts come from the same positions of
    the training items. p(w) = (count(w) + 1) / (N + V), with V = len(vocab), the model's output
    size (the specials included), N the number of training positions."""
    vocab_size = len(train.vocab)
    counts = Counter()
    for i in range(len(train)):
        counts.update(train[i][1:].tolist())
    total = sum(counts.values())
    log_norm = math.log(total + vocab_size)
    nll, n = 0.0, 0
    for i in range(len(test)):
        for w in test[i][1:].tolist():
            nll += log_norm - math.log(counts.get(w, 0) + 1)
            n += 1
    return math.exp(nll / max(n, 1))


DATASETS.add("multi30k", Multi30k())
DATASETS.add("multi30k_langid", Multi30kLangId())
DATASETS.add("multi30k_lm", Multi30kLM())
