"""The data registry: datasets (splits, values, errors) and transforms."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.compiler.ir import SpecError
from engine.train.data import build_dataset, build_transform, data_root, dataset_info, transform_names
from engine.train.data import datasets as D
from engine.train.data.digits import _load_usps
from engine.train.data.mnist import read_idx
from engine.train.data.transforms import check_transforms
from engine.train.registry import DATASETS, TRANSFORMS
from tests.conftest import REPO, SHARED_DATA, skip_without

MNIST_DIR = SHARED_DATA / "mnist"
USPS_FILE = SHARED_DATA / "usps" / "usps.h5"
needs_mnist = skip_without("mnist/t10k-images-idx3-ubyte.gz")
needs_usps = skip_without("usps/usps.h5")
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
USPS_TRAIN_COUNTS = [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]


def splits(name, root=None, seed=0, args=None, transform=None):
    return {s: build_dataset(name, root, s, seed, transform, args or {}) for s in ("train", "val", "test")}


def message(err: pytest.ExceptionInfo) -> str:
    d = err.value.diagnostics[0]
    return f"{d.loc}: {d.message} (hint: {d.hint})"


# ---------------------------------------------------------------------------------------------
# registry and root


def test_registered_names():
    assert {"digits", "mnist", "usps", "cifar10", "image_folder"} <= set(DATASETS.names())
    names = set(transform_names())
    assert {"resize", "random_crop", "normalize", "horizontal_flip", "random_affine", "center_crop", "pad",
            "grayscale", "random_resized_crop"} <= names  # fmt: skip
    for name in names:  # every entry builds from its main argument or defaults where it can
        assert TRANSFORMS.get(name).usage().startswith(name + "(")


def test_data_root(monkeypatch, tmp_path):
    assert data_root(str(tmp_path)) == tmp_path
    monkeypatch.setenv("ENGINE_DATA", str(tmp_path / "env"))
    assert data_root(None) == tmp_path / "env"
    monkeypatch.delenv("ENGINE_DATA")
    assert D.CHECKOUT == REPO
    if (REPO.parent / "shared" / "data").is_dir():  # a checkout with the shared data beside it
        assert data_root(None) == REPO.parent / "shared" / "data"


def test_data_root_outside_a_checkout_is_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("ENGINE_DATA", raising=False)
    site = tmp_path / "site-packages"  # an installed engine: shared/data beside it is not ours
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.setattr(D, "CHECKOUT", site)
    monkeypatch.setenv("ENGINE_CACHE", str(tmp_path / "cache"))
    assert data_root(None) == tmp_path / "cache" / "data"
    monkeypatch.delenv("ENGINE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root(None) == tmp_path / "xdg" / "engine" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_root(None) == Path.home() / ".cache" / "engine" / "data"
    (site / ".git").mkdir(parents=True)  # a checkout: its ../shared/data wins
    assert data_root(None) == tmp_path / "shared" / "data"


def test_unknown_dataset_and_split():
    with pytest.raises(SpecError, match="did you mean 'mnist'"):
        build_dataset("minst", None, "train", 0, None, {})
    with pytest.raises(SpecError, match="unknown split 'training'"):
        build_dataset("digits", None, "training", 0, None, {})
    with pytest.raises(SpecError, match="val_fraction must be float"):
        build_dataset("digits", None, "train", 0, None, {"val_fraction": "big"})


def test_info():
    assert dataset_info("digits", None, {}) == D.DatasetInfo(1, 8, [str(i) for i in range(10)], False, None)
    mnist = dataset_info("mnist", None, {})
    assert (mnist.channels, mnist.size, mnist.default_dir, mnist.needs_root) == (1, 28, "mnist", True)
    assert (dataset_info("usps", None, {}).size, dataset_info("usps", None, {}).channels) == (16, 1)
    cifar = dataset_info("cifar10", None, {})
    assert (cifar.channels, cifar.size, cifar.classes[0], len(cifar.classes)) == (3, 32, "airplane", 10)


# ---------------------------------------------------------------------------------------------
# splitting


def test_stratified_holdout_exact_and_stratified():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    rest, held = D.stratified_holdout(labels, 10, seed=1)
    assert len(held) == 10 and len(rest) == 90
    assert not set(rest) & set(held)
    assert np.bincount(labels[held]).tolist() == [5, 3, 2]
    again = D.stratified_holdout(labels, 10, seed=1)[1]
    other = D.stratified_holdout(labels, 10, seed=2)[1]
    assert held.tolist() == again.tolist() and held.tolist() != other.tolist()


def test_digits_splits():
    parts = splits("digits", seed=0)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sizes == {"train": 1258, "val": 180, "test": 359}
    ids = {k: set(v.indices.tolist()) for k, v in parts.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    assert ids["train"] | ids["val"] | ids["test"] == set(range(1797))
    same = build_dataset("digits", None, "val", 0, None, {})
    other = build_dataset("digits", None, "val", 1, None, {})
    assert same.indices.tolist() == parts["val"].indices.tolist()
    assert other.indices.tolist() != parts["val"].indices.tolist()
    image, label = parts["train"][0]
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32 and isinstance(label, int)
    stack = torch.stack([parts["test"][i][0] for i in range(len(parts["test"]))])
    assert stack.min() >= 0 and stack.max() <= 1 and stack.max() > 0.9
    assert parts["test"].targets.bincount().tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]


def test_items_are_copies():
    ds = build_dataset("digits", None, "train", 0, None, {})
    image, _ = ds[0]
    image.fill_(7)
    assert ds[0][0].max() <= 1


# ---------------------------------------------------------------------------------------------
# MNIST and USPS from ../shared/data


@needs_mnist
def test_mnist_test_set_split():
    parts = splits("mnist", SHARED_DATA, seed=0)
    assert {k: len(v) for k, v in parts.items()} == {"train": 7000, "val": 1000, "test": 2000}
    counts = {k: v.targets.bincount(minlength=10) for k, v in parts.items()}
    assert (counts["train"] + counts["val"] + counts["test"]).tolist() == MNIST_TEST_COUNTS
    for k, frac in (("test", 0.2), ("val", 0.1)):  # stratified: each class gives its share
        expected = torch.tensor(MNIST_TEST_COUNTS) * frac
        assert (counts[k] - expected).abs().max() <= 1, (k, counts[k].tolist())
    ids = [set(v.indices.tolist()) for v in parts.values()]
    assert sum(map(len, ids)) == len(set().union(*ids)) == 10000
    image, label = parts["test"][5]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and 0 <= label <= 9
    assert image.min() >= 0 and image.max() == 1
    assert build_dataset("mnist", SHARED_DATA, "test", 0, None, {}).indices.tolist() == (
        parts["test"].indices.tolist()
    )
    assert build_dataset("mnist", SHARED_DATA, "test", 3, None, {}).indices.tolist() != (
        parts["test"].indices.tolist()
    )


@needs_mnist
def test_mnist_env_root(monkeypatch):
    monkeypatch.setenv("ENGINE_DATA", str(SHARED_DATA))
    assert len(build_dataset("mnist", None, "val", 0, None, {})) == 1000


@needs_usps
def test_usps_counts_and_split():
    raw = _load_usps(str(USPS_FILE))
    assert len(raw["train"][1]) == 7291 and len(raw["test"][1]) == 2007
    assert raw["train"][1].bincount().tolist() == USPS_TRAIN_COUNTS
    parts = splits("usps", SHARED_DATA, seed=0)
    assert {k: len(v) for k, v in parts.items()} == {"train": 6562, "val": 729, "test": 2007}
    assert not set(parts["train"].indices.tolist()) & set(parts["val"].indices.tolist())
    total = parts["train"].targets.bincount() + parts["val"].targets.bincount()
    assert total.tolist() == USPS_TRAIN_COUNTS
    image, _ = parts["val"][0]
    assert image.shape == (1, 16, 16) and 0 <= image.min() and image.max() <= 1
    other = build_dataset("usps", SHARED_DATA, "val", 1, None, {})
    assert other.indices.tolist() != parts["val"].indices.tolist()


# ---------------------------------------------------------------------------------------------
# MNIST with the full official layout (small generated IDX files)


def write_idx(path: Path, array: np.ndarray, gz: bool = True, magic: int | None = None) -> None:
    magic = (0x0800 | array.ndim) if magic is None else magic
    data = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(data)


def fake_mnist(folder: Path, n_train: int = 100, n_test: int = 30, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", np.arange(n, dtype=np.uint8) % 10, gz)


def test_mnist_official_layout(tmp_path):
    fake_mnist(tmp_path / "mnist")
    parts = splits("mnist", tmp_path, seed=0)
    assert {k: len(v) for k, v in parts.items()} == {"train": 90, "val": 10, "test": 30}
    assert parts["val"].targets.bincount().tolist() == [1] * 10
    assert parts["train"].images.shape == (100, 1, 28, 28)  # the official train set
    # torchvision's own layout (MNIST/raw, uncompressed) and args.folder
    fake_mnist(tmp_path / "elsewhere" / "MNIST" / "raw", n_train=40, n_test=20, gz=False)
    assert len(build_dataset("mnist", tmp_path, "train", 0, None, {"folder": "elsewhere"})) == 36


def test_mnist_bad_magic(tmp_path):
    folder = tmp_path / "mnist"
    fake_mnist(folder, gz=True)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((30, 28, 28), np.uint8), magic=0x0000_0903)
    with pytest.raises(SpecError, match="magic 0x00000903, expected 0x00000803"):
        build_dataset("mnist", tmp_path, "test", 0, None, {})
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"PK\x03\x04 not idx"))
    with pytest.raises(SpecError, match="not an IDX file"):
        read_idx(folder / "t10k-labels-idx1-ubyte.gz")


# ---------------------------------------------------------------------------------------------
# errors for missing files


def test_missing_root_errors(tmp_path):
    root = tmp_path / "nothing"
    with pytest.raises(SpecError) as err:
        build_dataset("mnist", root, "train", 0, None, {})
    text = message(err)
    assert str(root / "mnist") in text and "no such folder" in text
    assert "ENGINE_DATA" in text and "data.args.download: true" in text
    assert "t10k-images-idx3-ubyte.gz" in text
    assert err.value.diagnostics[0].loc.file == str(root / "mnist")
    with pytest.raises(SpecError) as err:
        build_dataset("usps", root, "test", 0, None, {})
    assert str(root / "usps") in message(err) and "usps.h5" in message(err) and "ENGINE_DATA" in message(err)
    with pytest.raises(SpecError) as err:
        build_dataset("cifar10", tmp_path, "train", 0, None, {})
    text = message(err)
    assert str(tmp_path / "cifar10") in text and "cifar-10-batches-py" in text
    assert "data.args.download: true (needs internet)" in text
    with pytest.raises(SpecError, match="data.download must be bool"):
        build_dataset("cifar10", tmp_path, "train", 0, None, {"download": "yes"})


def test_mnist_incomplete(tmp_path):
    folder = tmp_path / "mnist"
    fake_mnist(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(SpecError, match="found only"):
        build_dataset("mnist", tmp_path, "train", 0, None, {})


# ---------------------------------------------------------------------------------------------
# image folders


def make_images(root: Path, splits_counts: dict[str, int], classes=("cat", "dog", "eel")) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in splits_counts.items():
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (6, 5, 3), np.uint8)
                pixels[0, 0] = (255, 0, 0)
                Image.fromarray(pixels).save(root / split / c / f"{i}.png")


def test_image_folder(tmp_path):
    make_images(tmp_path / "imgs", {"train": 4, "val": 2, "test": 1})
    info = dataset_info("image_folder", tmp_path, {"folder": "imgs"})
    assert info.classes == ["cat", "dog", "eel"] and info.channels == 3 and info.size is None
    parts = splits("image_folder", tmp_path / "imgs")
    assert {k: len(v) for k, v in parts.items()} == {"train": 12, "val": 6, "test": 3}
    image, label = parts["test"][2]
    assert image.shape == (3, 6, 5) and image.dtype == torch.float32 and label == 2
    assert image.min() >= 0 and image.max() <= 1 and image[:, 0, 0].tolist() == [1.0, 0.0, 0.0]
    grey = build_dataset("image_folder", tmp_path, "val", 0, None, {"folder": "imgs", "channels": 1})
    assert grey[0][0].shape == (1, 6, 5)
    resize = build_transform([{"resize": [8, 8]}], "t")
    resized = build_dataset("image_folder", tmp_path / "imgs", "train", 0, resize, {})
    assert resized[0][0].shape == (3, 8, 8)


def test_image_folder_without_val(tmp_path):
    make_images(tmp_path, {"train": 10})
    train = build_dataset("image_folder", tmp_path, "train", 0, None, {})
    val = build_dataset("image_folder", tmp_path, "val", 0, None, {})
    assert (len(train), len(val)) == (27, 3)
    assert not {s[0] for s in train.samples} & {s[0] for s in val.samples}
    assert val.targets.tolist() == [0, 1, 2]
    with pytest.raises(SpecError, match="no test/"):
        build_dataset("image_folder", tmp_path, "test", 0, None, {})


def test_image_folder_errors(tmp_path):
    with pytest.raises(SpecError, match="no train/") as err:
        build_dataset("image_folder", tmp_path, "train", 0, None, {})
    assert "data.folder" in message(err)
    make_images(tmp_path, {"train": 1})
    with pytest.raises(SpecError, match="channels must be 1 or 3"):
        build_dataset("image_folder", tmp_path, "train", 0, None, {"channels": 2})
    make_images(tmp_path, {"val": 1}, classes=("cat", "fox"))
    with pytest.raises(SpecError, match="classes not in train/: fox"):
        build_dataset("image_folder", tmp_path, "val", 0, None, {})


# ---------------------------------------------------------------------------------------------
# transforms


def test_transform_shapes():
    x = torch.rand(1, 16, 16)
    assert build_transform([{"resize": 32}], "t")(x).shape == (1, 32, 32)
    assert build_transform([{"resize": [20, 30]}], "t")(x).shape == (1, 20, 30)
    assert build_transform([{"center_crop": 12}], "t")(x).shape == (1, 12, 12)
    assert build_transform([{"pad": 2}], "t")(x).shape == (1, 20, 20)
    assert build_transform([{"random_crop": {"size": 16, "padding": 2}}], "t")(x).shape == (1, 16, 16)
    rrc = build_transform([{"random_resized_crop": {"size": 32, "scale": [0.8, 1.0]}}], "t")
    assert rrc(x).shape == (1, 32, 32)
    affine = build_transform([{"random_affine": {"degrees": 10, "translate": [0.1, 0.1]}}], "t")
    assert affine(x).shape == (1, 16, 16)
    assert build_transform(["grayscale"], "t")(torch.rand(3, 8, 8)).shape == (1, 8, 8)
    assert build_transform(["rgb"], "t")(torch.rand(1, 8, 8)).shape == (3, 8, 8)
    assert build_transform([], "t") is None and build_transform(None, "t") is None


def test_transform_values():
    x = torch.rand(1, 8, 8)
    assert torch.equal(build_transform([{"horizontal_flip": 1.0}], "t")(x), x.flip(-1))
    assert torch.equal(build_transform([{"horizontal_flip": {"p": 0.0}}], "t")(x), x)
    norm = build_transform([{"normalize": {"mean": [0.5], "std": [0.5]}}], "t")
    assert torch.allclose(norm(x), (x - 0.5) / 0.5)
    rgb = torch.rand(3, 4, 4)
    norm3 = build_transform([{"normalize": {"mean": [0.1, 0.2, 0.3], "std": [0.5, 0.25, 2.0]}}], "t")
    mean, std = torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1), torch.tensor([0.5, 0.25, 2.0]).view(3, 1, 1)
    expected = (rgb - mean) / std
    assert torch.allclose(norm3(rgb), expected)
    padded = build_transform([{"pad": {"padding": 1, "fill": 0.5}}], "t")(x)
    assert padded[0, 0, 0] == 0.5 and torch.equal(padded[:, 1:-1, 1:-1], x)


def test_transform_in_dataset():
    t = build_transform([{"resize": 16}, {"normalize": {"mean": [0.5], "std": [0.5]}}], "recipe.yaml")
    image, _ = build_dataset("digits", None, "train", 0, t, {})[0]
    assert image.shape == (1, 16, 16) and image.min() >= -1 and image.max() <= 1 and image.min() < 0


def test_transform_errors():
    with pytest.raises(SpecError, match="unknown transform 'horizntal_flip'") as err:
        build_transform(["horizntal_flip"], "recipe.yaml")
    d = err.value.diagnostics[0]
    assert "did you mean 'horizontal_flip'" in d.hint and d.loc.file == "recipe.yaml"
    with pytest.raises(SpecError, match="no argument 'pading'") as err:
        build_transform([{"random_crop": {"size": 28, "pading": 2}}], "r")
    assert "padding" in err.value.diagnostics[0].hint
    with pytest.raises(SpecError, match="size must be a positive int"):
        build_transform([{"resize": "big"}], "r")
    with pytest.raises(SpecError, match="needs mean, std"):
        build_transform(["normalize"], "r")
    with pytest.raises(SpecError, match="std must be > 0"):
        build_transform([{"normalize": {"mean": 0.5, "std": 0}}], "r")
    with pytest.raises(SpecError, match="takes its arguments as a mapping"):
        build_transform([{"normalize": 0.5}], "r")
    with pytest.raises(SpecError, match="one-key mapping"):
        build_transform([{"resize": 32, "pad": 2}], "r")
    with pytest.raises(SpecError, match="interpolation must be one of"):
        build_transform([{"resize": {"size": 8, "interpolation": "cubic"}}], "r")
    diags = check_transforms(["flip", {"pad": -1}, "horizontal_flip"], "r")
    assert [d.path for d in diags] == ["transforms[0]", "transforms[1]"]
