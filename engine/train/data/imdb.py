"""The `imdb` dataset: binary sentiment of movie reviews (Maas et al. 2011), neg = 0, pos = 1.

Reads the standard `aclImdb/` folder (`<root>/aclImdb/{train,test}/{pos,neg}/*.txt`; `args.folder`
overrides); `download: true` fetches and unpacks aclImdb_v1.tar.gz (84 MB) into the folder's parent
first. Reviews are stripped of `<br />`, Moses-tokenised (English) and, by default, lowercased.

- train / val: the official 25,000 training reviews, val a seeded, stratified `val_fraction` (0.1)
  of them; test: the official 25,000 test reviews.
- the vocabulary: tokens seen at least `min_freq` (6) times in the official training reviews (val
  included, so that `info` gives the same size without knowing the seed).
- item: `(ids [T], label)` with ids = the first `max_len` (300) tokens + EOS; `collate` pads to
  `(ids [B, T_max], labels [B])`. spec_params: `vocab`, `pad` (0).

Token lists and the vocabulary are cached on disk (`engine.train.data.text.cached`): tokenising the
50,000 reviews takes minutes the first time.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import Dataset

from engine.compiler.ir import located_error
from engine.train.data.datasets import (
    DatasetInfo,
    dataset_arg,
    dataset_folder,
    dataset_fraction,
    describe_folder,
    min_freq_arg,
    refuse_transform,
    root_hint,
    train_val_split,
)
from engine.train.data.multi30k import LabelledTextDataset
from engine.train.data.text import EOS, PAD, Sequences, Vocab, cached_vocab, get_tokenizer, tokenize_lines
from engine.train.registry import DATASETS

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
CLASSES = ["neg", "pos"]
DEFAULT_DIR = "aclImdb"


def _reviews(folder: Path, part: str) -> tuple[list[Path], list[int], list]:
    """The review files of `part` ("train" or "test"), neg then pos, sorted by name; their labels;
    and a cache key (names, sizes, mtimes)."""
    paths, labels, key = [], [], []
    for label, cls in enumerate(CLASSES):
        directory = folder / part / cls
        if not directory.is_dir():
            raise located_error(f"dataset 'imdb': no {part}/{cls}/ in {describe_folder(folder)}", directory,
                                hint="expected the aclImdb layout {train,test}/{pos,neg}/*.txt", path="data")
        with os.scandir(directory) as entries:
            found = sorted((e for e in entries if e.name.endswith(".txt")), key=lambda e: e.name)
        for entry in found:
            st = entry.stat()
            paths.append(Path(entry.path))
            labels.append(label)
            key.append([cls, entry.name, st.st_size, st.st_mtime_ns])
    return paths, labels, key


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace").replace("<br />", " ").replace("<br/>", " ")


class Imdb:
    ARGS = ("folder", "download", "max_len", "min_freq", "lowercase", "val_fraction")  # its data.args keys
    name = "imdb"

    def _args(self, args: dict) -> tuple[int, int, bool, float]:
        max_len = dataset_arg(args, "max_len", int, 300, self.name)
        if max_len < 1:
            raise located_error(f"dataset 'imdb': data.max_len must be at least 1, got {max_len}",
                                path="data.max_len", hint="e.g. `max_len: 300`")
        return (max_len, min_freq_arg(args, 6, self.name),
                dataset_arg(args, "lowercase", bool, True, self.name),
                dataset_fraction(args, "val_fraction", 0.1, self.name))

    def folder(self, root: Path, args: dict) -> Path:
        folder = dataset_folder(root, args, DEFAULT_DIR, self.name)
        if not (folder / "train").is_dir() and dataset_arg(args, "download", bool, False, self.name):
            from torchvision.datasets.utils import download_and_extract_archive

            try:
                download_and_extract_archive(URL, download_root=str(folder.parent), md5=MD5)
            except OSError as err:  # no network (URLError is an OSError): say so, with the way out
                raise located_error(f"dataset 'imdb': cannot download {URL}: {err}", folder,
                                    hint=f"fetch it on a machine with internet and unpack it into "
                                    f"{describe_folder(folder)}", path="data.root") from None
        if not (folder / "train").is_dir():
            raise located_error(f"dataset 'imdb': no aclImdb data at {describe_folder(folder)}", folder,
                                hint=f"set `download: true` under data.args to fetch it ({URL}), or unpack "
                                f"aclImdb_v1.tar.gz there, {root_hint(DEFAULT_DIR)}", path="data.root")
        return folder

    def tokens(self, folder: Path, part: str, lowercase: bool) -> tuple[list[list[str]], list[int]]:
        paths, labels, key = _reviews(folder, part)
        lines = _Lazy(paths)
        tokens = tokenize_lines(lines, get_tokenizer("en", lowercase), ["imdb", part, key],
                                desc=f"tokenising aclImdb/{part}")
        return tokens, labels

    def vocab(self, root: Path, args: dict) -> tuple[Path, Vocab]:
        _, min_freq, lowercase, _ = self._args(args)
        folder = self.folder(root, args)
        _, _, key = _reviews(folder, "train")
        vocab = cached_vocab(["imdb", key, lowercase], lambda: self.tokens(folder, "train", lowercase)[0],
                             min_freq)
        return folder, vocab

    def info(self, root: Path, args: dict) -> DatasetInfo:
        _, vocab = self.vocab(root, args)
        return DatasetInfo(channels=0, size=None, classes=CLASSES, needs_root=True, default_dir=DEFAULT_DIR,
                           spec_params={"vocab": len(vocab), "pad": PAD})

    def build(self, root: Path, split: str, seed: int, transform, args: dict) -> Dataset:
        refuse_transform(transform, self.name)
        max_len, _, lowercase, val_fraction = self._args(args)
        folder, vocab = self.vocab(root, args)
        tokens, labels = self.tokens(folder, "test" if split == "test" else "train", lowercase)
        if split == "test":
            keep = range(len(labels))
        else:
            keep = train_val_split(labels, seed, val_fraction)[split].tolist()
        return LabelledTextDataset(Sequences(vocab.encode(tokens[i][:max_len]) + [EOS] for i in keep),
                                   [labels[i] for i in keep], vocab, CLASSES)


class _Lazy(list):
    """The review texts, read only if the tokens are not cached (a list of paths that reads on access)."""

    def __init__(self, paths: list[Path]):
        super().__init__(paths)

    def __getitem__(self, i):
        return _text(super().__getitem__(i))

    def __iter__(self):
        return (_text(p) for p in super().__iter__())


DATASETS.add("imdb", Imdb())
