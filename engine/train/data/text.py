"""Text helpers for the sequence datasets: Moses tokenizer, vocabulary, an on-disk cache, padding.

- `Tokenizer(lang, lowercase)`: sacremoses' Moses tokenizer and detokenizer (no XML escaping), so
  `detokenize(tokenize(s)) == s` for ordinary sentences. Lowercasing is applied to the tokens.
- `Vocab`: the specials `<pad>`=PAD=0, `<unk>`=UNK=1, `<sos>`=SOS=2, `<eos>`=EOS=3, then the tokens
  by descending frequency, ties alphabetical (so the same data always gives the same ids).
- `cached(kind, key, build, dump, load)`: a JSON file under $ENGINE_CACHE/text (default
  $XDG_CACHE_HOME/engine/text or ~/.cache/engine/text), named by a hash of `key`, plus an
  in-process memo. A file that cannot be read or parsed is rebuilt (and rewritten), never crashed
  on; an unwritable cache folder only costs the rebuild next time.
- `tokenize_lines(lines, tokenizer, key, desc)`: the token lists of many lines, cached as above
  (the Multi30k training side takes about 1-2 s per language with sacremoses; the cache reads
  it back in ~0.1 s), with a tqdm bar on a terminal while tokenising.
- `pad_batch(seqs, pad)`: 1-d long tensors stacked to [B, T_max], padded at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from engine.train.data.datasets import cache_root

PAD, UNK, SOS, EOS = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<sos>", "<eos>"]
CACHE_VERSION = 1  # bump when the cached formats or the tokenisation change

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# tokenizer


class Tokenizer:
    """Moses tokenisation for `lang` (e.g. "en", "de", "fr"); `lowercase` lowers the tokens."""

    def __init__(self, lang: str, lowercase: bool = False):
        from sacremoses import MosesDetokenizer, MosesTokenizer

        self.lang, self.lowercase = lang, bool(lowercase)
        self._tokenizer = MosesTokenizer(lang=lang)
        self._detokenizer = MosesDetokenizer(lang=lang)

    def tokenize(self, text: str) -> list[str]:
        tokens = self._tokenizer.tokenize(text.strip(), escape=False)
        return [t.lower() for t in tokens] if self.lowercase else tokens

    def detokenize(self, tokens: Sequence[str]) -> str:
        return self._detokenizer.detokenize(list(tokens))

    def __repr__(self) -> str:
        return f"Tokenizer({self.lang!r}, lowercase={self.lowercase})"



@lru_cache(maxsize=16)
def get_tokenizer(lang: str, lowercase: bool = False) -> Tokenizer:
    """A shared `Tokenizer` (building one loads Moses' prefix lists: about 0.1-1 s)."""
    return Tokenizer(lang, lowercase)


# ---------------------------------------------------------------------------------------------
# vocabulary


class Vocab:
    """Token <-> id; ids 0-3 are PAD, UNK, SOS, EOS."""

    def __init__(self, itos: Sequence[str]):
        itos = list(itos)
        if itos[: len(SPECIALS)] != SPECIALS or not all(isinstance(t, str) for t in itos):
            raise ValueError(f"a vocabulary starts with {SPECIALS} and holds strings only")
        self.itos = itos
        self.stoi = {t: i for i, t in enumerate(itos)}
        if len(self.stoi) != len(itos):
            raise ValueError("a vocabulary holds each token once")

    @classmethod
    def build(cls, token_lists: Iterable[Sequence[str]], min_freq: int = 2,
              max_size: int | None = None) -> Vocab:
        """Tokens seen at least `min_freq` times, most frequent first (ties alphabetical), at most
        `max_size` of them besides the four specials."""
        counts = Counter(t for tokens in token_lists for t in tokens)
        for special in SPECIALS:
            counts.pop(special, None)
        kept = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size]
        return cls(SPECIALS + kept)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str]) -> list[int]:
        stoi = self.stoi
        return [stoi.get(t, UNK) for t in tokens]

    def decode(self, ids: Sequence[int] | Tensor) -> list[str]:
        """Tokens up to the first EOS (excluded), without PAD and SOS."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i not in (PAD, SOS):
                out.append(self.itos[i] if 0 <= i < len(self.itos) else SPECIALS[UNK])
        return out

    def to_json(self) -> str:
        return json.dumps({"itos": self.itos}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("itos"), list):
            raise ValueError("not a vocabulary: expected {\"itos\": [...]}")
        return cls(data["itos"])

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens)"


# ---------------------------------------------------------------------------------------------
# cache


_MEMO: dict[str, Any] = {}


def cache_dir() -> Path:
    return cache_root() / "text"


def file_key(path: str | os.PathLike) -> list:
    """What identifies a data file's version for the cache: name, size, mtime."""
    st = os.stat(path)
    return [Path(path).name, st.st_size, st.st_mtime_ns]


def cache_path(kind: str, key: Any) -> Path:
    digest = hashlib.sha256(json.dumps([CACHE_VERSION, kind, key], sort_keys=True,
                                       default=str).encode()).hexdigest()[:20]
    return cache_dir() / f"{kind}-{digest}.json"


def cached(kind: str, key: Any, build: Callable[[], T], dump: Callable[[T], str],
           load: Callable[[str], T]) -> T:
    """`build()`, remembered in this process and as a JSON file named by a hash of (kind, key)."""
    path = cache_path(kind, key)
    memo = str(path)
    if memo in _MEMO:
        return _MEMO[memo]
    value = None
    try:
        value = load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        pass  # corrupt or foreign: rebuild and overwrite below
    if value is None:
        value = build()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(dump(value), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            pass  # read-only cache: the next process rebuilds
    _MEMO[memo] = value
    return value


def clear_memo() -> None:
    """Forget the in-process copies (the files stay); tests use it to force a read from disk."""
    _MEMO.clear()


def _dump_token_lists(token_lists: list[list[str]]) -> str:
    # Moses tokens never hold whitespace, so a line of space-joined tokens is lossless and compact
    return json.dumps([" ".join(tokens) for tokens in token_lists], ensure_ascii=False)


def _load_token_lists(text: str) -> list[list[str]]:
    lines = json.loads(text)
    if not isinstance(lines, list) or not all(isinstance(s, str) for s in lines):
        raise ValueError("not a list of tokenised lines")
    return [s.split(" ") if s else [] for s in lines]


def tokenize_lines(lines: Sequence[str], tokenizer: Tokenizer, key: Any, desc: str = "tokenising"
                   ) -> list[list[str]]:
    """The token lists of `lines`, cached under `key` (which must identify the lines' source)."""

    def build() -> list[list[str]]:
        return [tokenizer.tokenize(s) for s in _progress(lines, desc)]

    def load(text: str) -> list[list[str]]:
        token_lists = _load_token_lists(text)
        if len(token_lists) != len(lines):
            raise ValueError("cached token lists do not match the lines")
        return token_lists

    full_key = [key, tokenizer.lang, tokenizer.lowercase, _sacremoses_version()]
    return cached("tokens", full_key, build, _dump_token_lists, load)


def cached_vocab(key: Any, token_lists: Callable[[], Iterable[Sequence[str]]], min_freq: int,
                 max_size: int | None = None) -> Vocab:
    """`Vocab.build(token_lists(), min_freq, max_size)`, cached under (key, min_freq, max_size)."""
    return cached("vocab", [key, min_freq, max_size, _sacremoses_version()],
                  lambda: Vocab.build(token_lists(), min_freq, max_size), Vocab.to_json, Vocab.from_json)


def _sacremoses_version() -> str:
    try:
        from importlib.metadata import version

        return version("sacremoses")
    except Exception:  # pragma: no cover - metadata missing
        return "?"


def _progress(items: Sequence[T], desc: str) -> Iterable[T]:
    if len(items) < 2000 or not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="line", leave=False, dynamic_ncols=True)


# ---------------------------------------------------------------------------------------------
# packed id sequences and padding


class Sequences:
    """Many id sequences in one flat long tensor: `seqs[i]` is a 1-d view, built in one go (fast)."""

    def __init__(self, seqs: Iterable[Sequence[int]]):
        lengths, flat = [], []
        for seq in seqs:
            lengths.append(len(seq))
            flat.extend(seq)
        self.flat = torch.tensor(flat, dtype=torch.long)
        self.offsets = [0]
        for n in lengths:
            self.offsets.append(self.offsets[-1] + n)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Tensor:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.flat[self.offsets[i]:self.offsets[i + 1]]

    def lengths(self) -> list[int]:
        return [b - a for a, b in zip(self.offsets, self.offsets[1:])]



def pad_batch(seqs: Sequence[Tensor], pad: int = PAD) -> Tensor:
    """1-d tensors as one [B, T_max] tensor, each padded at the end with `pad`."""
    if not seqs:
        return torch.zeros(0, 0, dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True, padding_value=pad)
