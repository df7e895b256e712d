"""Tiny stand-ins for the shared datasets, in the files and formats their loaders read
(engine/train/data/*.py), so that a recipe's validation and a two-step training run on a fresh
clone without ../shared/data. A few samples each: they test that the pipeline runs, never what
it learns. `tests/conftest.py` builds them once per session (`tiny_data`) and points
$ENGINE_DATA at them only where the real folder is missing (`data_root_for`).

- `mnist/t10k-{images-idx3,labels-idx1}-ubyte.gz`: 200 digits, 28x28 IDX (scikit-learn's 8x8
  digits, enlarged), so the engine cuts its 7/1/2 split from them as from the real test set.
- `usps/usps.h5`: 120 train + 40 test digits, 16x16 floats in [0, 1] (same source).
- `multi30k/{train,val,test_2016_flickr}.{en,de,fr}.gz`: 40 / 12 / 12 line-aligned captions
  from a few templates (every word occurs often enough for `min_freq` up to 3).
- `isbi2012_membrane/train/{image,label}/0..29.png`: 30 sections, 512x512 (the loader's fixed
  side), smooth images and their {0, 255} masks.
- `sr_benchmarks/{Set5,Set14,CBSD68}/*.png`: 5 / 6 / 12 colour images of about 128x128.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

FOLDERS = ("mnist", "usps", "multi30k", "isbi2012_membrane", "sr_benchmarks")


def _digits(n: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """n digit images [n, side, side] as uint8 (ink 255 on 0) and their labels, cycling classes."""
    from sklearn.datasets import load_digits

    d = load_digits()
    picks = np.array([np.flatnonzero(d.target == i % 10)[i // 10] for i in range(n)])  # classes in turn
    scale = side // 8
    images = np.kron(d.images[picks], np.ones((scale, scale))) * (255 / 16)
    pad = (side - 8 * scale) // 2
    images = np.pad(images, ((0, 0), (pad, side - 8 * scale - pad), (pad, side - 8 * scale - pad)))
    return images.round().astype(np.uint8), d.target[picks].astype(np.uint8)


def write_mnist(folder: Path) -> None:
    images, labels = _digits(200, 28)
    folder.mkdir(parents=True, exist_ok=True)
    header = (0x803).to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in images.shape)
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(header + images.tobytes())
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write((0x801).to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.tobytes())


def write_usps(folder: Path) -> None:
    import h5py

    images, labels = _digits(160, 16)
    data = images.reshape(len(images), 256).astype(np.float32) / 255
    folder.mkdir(parents=True, exist_ok=True)
    with h5py.File(folder / "usps.h5", "w") as f:
        for part, rows in (("train", slice(0, 120)), ("test", slice(120, 160))):
            f.create_dataset(f"{part}/data", data=data[rows])
            f.create_dataset(f"{part}/target", data=labels[rows].astype(np.int32))


SUBJECTS = [("A man", "Ein Mann", "Un homme"), ("A woman", "Eine Frau", "Une femme"),
            ("Two dogs", "Zwei Hunde", "Deux chiens"), ("A child", "Ein Kind", "Un enfant"),
            ("A girl", "Ein Mädchen", "Une fille")]
ACTIONS = [("is running in the park", "läuft im Park", "court dans le parc"),
           ("is playing in the snow", "spielt im Schnee", "joue dans la neige"),
           ("is riding a bike", "fährt Fahrrad", "fait du vélo"),
           ("is sitting on a bench", "sitzt auf einer Bank", "est assis sur un banc")]


def write_multi30k(folder: Path) -> None:
    pairs = [(s, a) for s in range(len(SUBJECTS)) for a in range(len(ACTIONS))]  # 20 sentences
    splits = {"train": pairs * 2, "val": pairs[3:15], "test_2016_flickr": pairs[5:17]}
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        for k, lang in enumerate(("en", "de", "fr")):
            lines = [f"{SUBJECTS[s][k]} {ACTIONS[a][k]}." for s, a in rows]
            with gzip.open(folder / f"{split}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")


def write_isbi(folder: Path) -> None:
    from PIL import Image

    yy, xx = np.mgrid[0:512, 0:512] / 512.0
    for kind in ("image", "label"):
        (folder / "train" / kind).mkdir(parents=True, exist_ok=True)
    for i in range(30):
        wave = np.sin(2 * np.pi * (3 + i % 4) * xx + i) * np.cos(2 * np.pi * (2 + i % 3) * yy)
        image = ((wave + 1) * 127.5).astype(np.uint8)
        Image.fromarray(image).save(folder / "train" / "image" / f"{i}.png", compress_level=1)
        Image.fromarray(np.where(np.abs(wave) < 0.2, 0, 255).astype(np.uint8)).save(
            folder / "train" / "label" / f"{i}.png", compress_level=1)


def write_sr(folder: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in (("Set5", 5), ("Set14", 6), ("CBSD68", 12)):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            h, w = 128 + 4 * (i % 3), 128 + 8 * (i % 2)
            yy, xx = np.mgrid[0:h, 0:w] / 32.0
            channels = [np.sin(xx * (1 + c) + i) * np.cos(yy * (2 - c / 2)) for c in range(3)]
            image = (np.stack(channels, -1) + 1) * 110 + rng.integers(0, 30, (h, w, 3))
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(folder / name / f"img_{i:03d}.png")


WRITERS = {"mnist": write_mnist, "usps": write_usps, "multi30k": write_multi30k,
           "isbi2012_membrane": write_isbi, "sr_benchmarks": write_sr}


def write_tiny_data(root: Path, real: Path | None = None) -> Path:
    """A data root with every folder of FOLDERS: a link to `real/<folder>` where that exists,
    else the tiny stand-in. Returns `root`."""
    root.mkdir(parents=True, exist_ok=True)
    for folder, write in WRITERS.items():
        if (root / folder).exists():
            continue
        if real is not None and (real / folder).is_dir():
            (root / folder).symlink_to(real / folder, target_is_directory=True)
        else:
            write(root / folder)
    return root
