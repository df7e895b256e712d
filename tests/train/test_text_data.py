"""Text datasets (`multi30k`, `multi30k_langid`, `multi30k_lm`, `imdb`), their helpers and BLEU."""

from __future__ import annotations

import gzip
import json
import math

import pytest
import torch

from engine.compiler.ir import SpecError
from engine.train.data import build_dataset, dataset_info
from engine.train.data import text as text_mod
from engine.train.data.multi30k import LanguageModelDataset, unigram_perplexity
from engine.train.data.text import EOS, PAD, SOS, UNK, Tokenizer, Vocab, clear_memo, pad_batch
from engine.train.evaluation.bleu import bleu_signature, corpus_bleu
from tests.conftest import SHARED_DATA, skip_without

MULTI30K = SHARED_DATA / "multi30k"
needs_multi30k = skip_without("multi30k")


def lines(split: str, lang: str) -> list[str]:
    with gzip.open(MULTI30K / f"{split}.{lang}.gz", "rt", encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh text cache for this module: the first use tokenises, later tests reuse it."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("engine_cache")
        mp.setenv("ENGINE_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def m30k(cache):
    """The three splits of `multi30k` (de -> en)."""
    return {s: build_dataset("multi30k", SHARED_DATA, s, 0, None, {}) for s in ("train", "val", "test")}


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ENGINE_CACHE", str(tmp_path / "cache"))
    clear_memo()
    yield tmp_path / "cache" / "text"
    clear_memo()


def fake_multi30k(folder, n_train=6, skip=()):
    """A tiny line-aligned Multi30k folder."""
    sentences = {
        "en": ["A man is running.", "A dog runs in the park.", "Two men are talking.", "A man sleeps.",
               "The dog is brown.", "A woman is running."],
        "de": ["Ein Mann läuft.", "Ein Hund läuft im Park.", "Zwei Männer reden.", "Ein Mann schläft.",
               "Der Hund ist braun.", "Eine Frau läuft."],
        "fr": ["Un homme court.", "Un chien court dans le parc.", "Deux hommes parlent.",
               "Un homme dort.", "Le chien est brun.", "Une femme court."],
    }
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", 2), ("test_2016_flickr", 2)):
        for lang, lines_ in sentences.items():
            if f"{split}.{lang}.gz" in skip:
                continue
            with gzip.open(folder / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("".join(s + "\n" for s in lines_[:n]))
    return folder


def known(vocab: Vocab, tokens: list[str]) -> list[str]:
    """The tokens as the vocabulary gives them back: unknown ones as <unk>."""
    return [t if t in vocab else "<unk>" for t in tokens]


def spec_error(fn) -> str:
    with pytest.raises(SpecError) as info:
        fn()
    return str(info.value)


# ---- tokenizer, vocabulary, padding -----------------------------------------------------------

@needs_multi30k
@pytest.mark.parametrize("lang", ["en", "de"])
def test_tokenizer_round_trip_on_multi30k(lang):
    tok = Tokenizer(lang)
    sample = lines("test_2016_flickr", lang)[:200]
    same = sum(tok.detokenize(tok.tokenize(s)) == s.strip() for s in sample)
    assert same >= 0.95 * len(sample)
    assert Tokenizer("en").tokenize("A man's hat, isn't it?") == ["A", "man", "'s", "hat", ",", "isn", "'t",
                                                                  "it", "?"]
    assert Tokenizer("en", lowercase=True).tokenize("Two Dogs.") == ["two", "dogs", "."]


def test_vocab_order_specials_min_freq_and_unknowns():
    vocab = Vocab.build([["b", "a", "c"], ["a", "b", "d"], ["a", "e", "e"]], min_freq=2)
    assert vocab.itos == ["<pad>", "<unk>", "<sos>", "<eos>", "a", "b", "e"]  # a:3, then b/e:2 alphabetical
    assert (PAD, UNK, SOS, EOS) == (0, 1, 2, 3) and len(vocab) == 7
    assert vocab.encode(["e", "zzz", "a"]) == [6, UNK, 4]
    assert vocab.decode([SOS, 4, 5, PAD, 6, EOS, 4]) == ["a", "b", "e"]
    assert vocab.decode(torch.tensor([4, 1])) == ["a", "<unk>"]
    assert Vocab.build([["a", "b", "b"]], min_freq=1).itos[4:] == ["b", "a"]
    assert Vocab.build([["a", "b", "b", "c"]], min_freq=1, max_size=2).itos[4:] == ["b", "a"]
    again = Vocab.from_json(vocab.to_json())
    assert again.itos == vocab.itos and again.stoi == vocab.stoi
    with pytest.raises(ValueError):
        Vocab.from_json(json.dumps({"itos": ["a", "b"]}))


def test_pad_batch_pads_at_the_end():
    batch = pad_batch([torch.tensor([5, 6, 7]), torch.tensor([8])])
    assert batch.tolist() == [[5, 6, 7], [8, PAD, PAD]] and batch.dtype == torch.long


# ---- the on-disk cache ------------------------------------------------------------------------

def test_cache_hit_skips_tokenising(tmp_path, fresh_cache, monkeypatch):
    fake_multi30k(tmp_path / "data" / "multi30k")
    first = build_dataset("multi30k", tmp_path / "data", "train", 0, None, {"min_freq": 1})
    files = sorted(p.name for p in fresh_cache.glob("*.json"))
    assert any(f.startswith("vocab-") for f in files) and any(f.startswith("tokens-") for f in files)
    clear_memo()

    def boom(self, text):
        raise AssertionError("tokenised again despite the cache")

    monkeypatch.setattr(Tokenizer, "tokenize", boom)
    second = build_dataset("multi30k", tmp_path / "data", "train", 0, None, {"min_freq": 1})
    assert second.src_vocab.itos == first.src_vocab.itos
    assert [second[i][0].tolist() for i in range(6)] == [first[i][0].tolist() for i in range(6)]


def test_corrupt_cache_is_rebuilt(tmp_path, fresh_cache):
    fake_multi30k(tmp_path / "data" / "multi30k")
    first = build_dataset("multi30k_lm", tmp_path / "data", "train", 0, None, {"min_freq": 1})
    for path in fresh_cache.glob("*.json"):
        path.write_text("{not json" if path.name.startswith("vocab") else '["a"]')
    clear_memo()
    second = build_dataset("multi30k_lm", tmp_path / "data", "train", 0, None, {"min_freq": 1})
    assert second.vocab.itos == first.vocab.itos and len(second) == 6
    for path in fresh_cache.glob("*.json"):
        json.loads(path.read_text())  # rewritten as valid JSON


def test_cache_key_follows_the_file(tmp_path, fresh_cache):
    folder = fake_multi30k(tmp_path / "data" / "multi30k")
    assert len(build_dataset("multi30k_lm", tmp_path / "data", "train", 0, None, {})) == 6
    fake_multi30k(folder, n_train=4)  # the file changed: size and mtime differ
    assert len(build_dataset("multi30k_lm", tmp_path / "data", "train", 0, None, {})) == 4


# ---- multi30k ---------------------------------------------------------------------------------

@needs_multi30k
def test_multi30k_sizes_alignment_and_markers(m30k):
    assert {s: len(d) for s, d in m30k.items()} == {"train": 29000, "val": 1014, "test": 1000}
    train = m30k["train"]
    de, en = lines("train", "de")[0], lines("train", "en")[0]
    assert train.sources[0] == de and train.references[0] == en
    src, tgt = train[0]
    assert src.dtype == tgt.dtype == torch.long
    assert train.src_vocab.decode(src) == known(train.src_vocab, Tokenizer("de").tokenize(de))
    assert train.tgt_vocab.decode(tgt) == known(train.tgt_vocab, Tokenizer("en").tokenize(en))
    assert train.decode_target(tgt) == en  # every word of the first caption is in the vocabulary
    for data in m30k.values():
        for i in range(len(data)):
            src, tgt = data[i]
            assert src[-1] == EOS and not any(int(x) in (PAD, SOS, EOS) for x in src[:-1])
            assert tgt[0] == SOS and tgt[-1] == EOS and not any(int(x) in (PAD, SOS, EOS) for x in tgt[1:-1])
    assert m30k["test"].sources[0] == lines("test_2016_flickr", "de")[0]


@needs_multi30k
def test_multi30k_collate_and_helpers(m30k):
    data = m30k["val"]
    items = [data[i] for i in range(5)]
    src, tgt = data.collate(items)
    assert src.shape == (5, max(len(s) for s, _ in items)) and tgt.shape == (5, max(len(t) for _, t in items))
    for row, (s, t) in enumerate(items):
        assert src[row, :len(s)].tolist() == s.tolist() and (src[row, len(s):] == PAD).all()
        assert tgt[row, :len(t)].tolist() == t.tolist() and (tgt[row, len(t):] == PAD).all()
    assert data.encode_source("").tolist() == [EOS]
    assert data.encode_source(data.sources[0]).tolist() == data[0][0].tolist()
    assert data.src_tokenizer.lang == "de" and data.tgt_tokenizer.lang == "en"


@needs_multi30k
def test_multi30k_max_len_filters_train_only(cache, m30k):
    short = {s: build_dataset("multi30k", SHARED_DATA, s, 0, None, {"max_len": 10}) for s in ("train", "val")}
    assert 0 < len(short["train"]) < 29000 and len(short["val"]) == 1014
    for i in range(len(short["train"])):
        src, tgt = short["train"][i]
        assert len(src) <= 11 and len(tgt) <= 12
    assert len(short["train"].sources) == len(short["train"].references) == len(short["train"])
    assert short["train"].src_vocab.itos == m30k["train"].src_vocab.itos  # vocab from the full train split


@needs_multi30k
def test_spec_params_equal_the_vocab_sizes(cache, m30k):
    info = dataset_info("multi30k", SHARED_DATA, {})
    assert info.spec_params == {"src_vocab": len(m30k["train"].src_vocab),
                                "tgt_vocab": len(m30k["train"].tgt_vocab), "pad": 0}
    assert info.channels == 0 and info.classes == [] and info.default_dir == "multi30k"
    lm = build_dataset("multi30k_lm", SHARED_DATA, "val", 0, None, {})
    assert dataset_info("multi30k_lm", SHARED_DATA, {}).spec_params == {"vocab": len(lm.vocab), "pad": 0}
    langid = build_dataset("multi30k_langid", SHARED_DATA, "test", 0, None, {})
    info = dataset_info("multi30k_langid", SHARED_DATA, {})
    assert info.spec_params == {"vocab": len(langid.vocab), "pad": 0} and info.classes == ["en", "de", "fr"]


@needs_multi30k
def test_langid_sizes_labels_and_collate(cache):
    sizes = {s: len(build_dataset("multi30k_langid", SHARED_DATA, s, 0, None, {})) for s in ("val", "test")}
    assert sizes == {"val": 3 * 1014, "test": 3 * 1000}
    train = build_dataset("multi30k_langid", SHARED_DATA, "train", 0, None, {})
    assert len(train) == 3 * 29000
    assert [train[i][1] for i in (0, 28999, 29000, 57999, 58000, 86999)] == [0, 0, 1, 1, 2, 2]
    ids, label = train[29000]
    german = Tokenizer("de", True).tokenize(lines("train", "de")[0])
    assert train.vocab.decode(ids) == known(train.vocab, german)
    assert ids[-1] == EOS and label == 1
    x, y = train.collate([train[0], train[29000], train[58000]])
    assert x.shape[0] == 3 and y.tolist() == [0, 1, 2] and y.dtype == torch.long
    two = build_dataset("multi30k_langid", SHARED_DATA, "val", 0, None, {"languages": ["fr", "en"]})
    assert len(two) == 2 * 1014 and two[0][1] == 0 and two[1014][1] == 1


@needs_multi30k
def test_lm_items_and_collate(cache):
    data = build_dataset("multi30k_lm", SHARED_DATA, "test", 0, None, {})
    assert len(data) == 1000
    for i in range(len(data)):
        assert data[i][0] == SOS and data[i][-1] == EOS
    first = lines("test_2016_flickr", "en")[0]
    assert data.vocab.decode(data[0]) == known(data.vocab, Tokenizer("en", True).tokenize(first))
    batch = data.collate([data[0], data[1]])
    assert isinstance(batch, torch.Tensor) and batch.shape == (2, max(len(data[0]), len(data[1])))
    train = build_dataset("multi30k_lm", SHARED_DATA, "train", 0, None, {})
    assert 50 < unigram_perplexity(train, data) < 1000


def test_unigram_perplexity_by_hand():
    vocab = Vocab.build([["a", "b"], ["a"]], min_freq=1)  # specials + a, b: V = 6
    train = LanguageModelDataset.from_tokens([["a", "b"], ["a"]], vocab)
    test = LanguageModelDataset.from_tokens([["b", "c"]], vocab)  # b, <unk>, <eos>
    # train positions after SOS: a b <eos> a <eos> -> a:2, b:1, <eos>:2, N = 5; p = (c + 1) / (5 + 6)
    expected = math.exp(-(math.log(2 / 11) + math.log(1 / 11) + math.log(3 / 11)) / 3)
    assert unigram_perplexity(train, test) == pytest.approx(expected)
    assert expected == pytest.approx((11 ** 3 / 6) ** (1 / 3))


# ---- errors -------------------------------------------------------------------------------------

def test_missing_folder_names_the_path(tmp_path):
    message = spec_error(lambda: build_dataset("multi30k", tmp_path, "train", 0, None, {}))
    assert str(tmp_path / "multi30k") in message and "ENGINE_DATA" in message and "data.root" in message
    message = spec_error(lambda: dataset_info("multi30k_lm", tmp_path, {}))
    assert str(tmp_path / "multi30k") in message


def test_missing_file_and_bad_args(tmp_path, fresh_cache):
    fake_multi30k(tmp_path / "multi30k", skip=("val.de.gz",))
    message = spec_error(lambda: build_dataset("multi30k", tmp_path, "val", 0, None, {}))
    assert "val.de.gz" in message
    assert "'es'" in spec_error(lambda: build_dataset("multi30k", tmp_path, "train", 0, None, {"src": "es"}))
    bad = {"languages": ["en", "xx"]}
    assert "'xx'" in spec_error(lambda: dataset_info("multi30k_langid", tmp_path, bad))
    assert "min_freq" in spec_error(lambda: dataset_info("multi30k", tmp_path, {"min_freq": "2"}))
    assert "max_len" in spec_error(lambda: dataset_info("multi30k", tmp_path, {"max_len": 0}))
    assert "both" in spec_error(lambda: dataset_info("multi30k", tmp_path, {"src": "en"}))
    assert "transforms" in spec_error(lambda: build_dataset("multi30k", tmp_path, "train", 0, abs, {}))


# ---- imdb ---------------------------------------------------------------------------------------

def fake_imdb(root):
    reviews = {
        ("train", "pos"): ["A great film.<br /><br />Loved it.", "Wonderful acting, great story.",
                           "Great fun and a great cast."],
        ("train", "neg"): ["A terrible film.", "Boring, boring and terrible.", "Bad acting.<br />Awful."],
        ("test", "pos"): ["Great!", "A wonderful story."],
        ("test", "neg"): ["Terrible.", "Awful and boring film."],
    }
    for (part, cls), texts in reviews.items():
        folder = root / "aclImdb" / part / cls
        folder.mkdir(parents=True)
        for i, review in enumerate(texts):
            (folder / f"{i}_{8 if cls == 'pos' else 2}.txt").write_text(review)


def test_imdb_on_a_fake_folder(tmp_path, fresh_cache):
    fake_imdb(tmp_path)
    args = {"min_freq": 2, "val_fraction": 0.34}
    data = {s: build_dataset("imdb", tmp_path, s, 0, None, args) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in data.items()} == {"train": 4, "val": 2, "test": 4}
    assert sorted(data["val"].labels) == [0, 1] and sorted(data["train"].labels) == [0, 0, 1, 1]
    assert data["test"].labels == [0, 0, 1, 1]  # neg first, files sorted by name
    vocab = data["train"].vocab
    assert "br" not in vocab and "<" not in vocab and "great" in vocab and "Great" not in vocab
    ids, label = data["test"][2]
    assert vocab.decode(ids) == ["great", "<unk>"] and ids[-1] == EOS and label == 1  # "!" seen once
    x, y = data["test"].collate([data["test"][i] for i in range(4)])
    assert x.shape[0] == 4 and y.tolist() == [0, 0, 1, 1]
    info = dataset_info("imdb", tmp_path, args)
    assert info.spec_params == {"vocab": len(vocab), "pad": 0} and info.classes == ["neg", "pos"]
    short = build_dataset("imdb", tmp_path, "test", 0, None, {**args, "max_len": 2})
    assert max(len(short[i][0]) for i in range(4)) == 3  # 2 tokens + EOS
    other = build_dataset("imdb", tmp_path, "val", 1, None, args)
    assert len(other) == 2  # another seed, another (still stratified) val split


def test_imdb_without_data_says_how_to_get_it(tmp_path):
    message = spec_error(lambda: dataset_info("imdb", tmp_path, {}))
    assert "download: true" in message and str(tmp_path / "aclImdb") in message


# ---- BLEU ---------------------------------------------------------------------------------------

def test_bleu_identical_and_sacrebleu():
    from sacrebleu.metrics import BLEU

    refs = ["A man is riding a horse on the beach.", "Two dogs play in the snow."]
    assert corpus_bleu(refs, refs) == pytest.approx(100)
    hyps = ["A man rides a horse on the beach.", "Two dogs are playing in snow."]
    assert corpus_bleu(hyps, refs) == pytest.approx(BLEU().corpus_score(hyps, [refs]).score)
    assert 0 < corpus_bleu(hyps, refs) < 100
    assert "tok:13a" in bleu_signature() and "nrefs:1" in bleu_signature()
    with pytest.raises(ValueError):
        corpus_bleu(hyps, refs[:1])


def test_bleu_by_hand():
    """tokenize="none": tokens are the whitespace-separated words, so the n-gram counts are exact."""
    hyps = ["the cat sat on the mat", "a dog ran"]
    refs = ["the cat sat on a mat", "a dog ran fast"]
    # clipped matches / hypothesis n-grams, summed over both sentences
    # 1-grams: (the, cat, sat, on, mat: 5 of 6; "the" twice but once in the ref) + 3 of 3 = 8 / 9
    # 2-grams: (the cat, cat sat, sat on: 3 of 5) + 2 of 2 = 5 / 7
    # 3-grams: (the cat sat, cat sat on: 2 of 4) + 1 of 1 = 3 / 5
    # 4-grams: (the cat sat on: 1 of 3) + 0 of 0 = 1 / 3
    precisions = [8 / 9, 5 / 7, 3 / 5, 1 / 3]
    brevity = math.exp(1 - 10 / 9)  # hypothesis 9 words, reference 10
    expected = 100 * brevity * math.exp(sum(math.log(p) for p in precisions) / 4)
    assert corpus_bleu(hyps, refs, tokenize="none") == pytest.approx(expected, abs=1e-9)
    assert "tok:none" in bleu_signature("none")


def test_text_module_cache_dir_follows_engine_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("ENGINE_CACHE", str(tmp_path))
    assert text_mod.cache_dir() == tmp_path / "text"
    monkeypatch.delenv("ENGINE_CACHE")
    assert text_mod.cache_dir().parts[-3:] == (".cache", "engine", "text")
