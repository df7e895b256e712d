"""Shared test helpers: write a spec into a temporary folder and compile it."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
import torch

import engine

if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    # pytest-xdist (scripts/test.sh): the workers split the cores rather than each claiming all
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ENGINE_DATA", REPO.parent / "shared" / "data"))

# The bundled specs whole, and without the larger members of a family (the same blocks deeper or
# wider, no new kind of argument): for the checks that build or run PyTorch on every spec, where
# ResNet-152, ViT-H/14 or RegNetY-128GF would add minutes and no new code path.
BUNDLED_SPECS = sorted(p.stem for p in (REPO / "specs").glob("*.yaml"))
_LARGER = re.compile(
    r"convnext_(base|large|small|xlarge)|densenet(161|169|201|264)|efficientnet_(b[1-7]|v2_[ml])"
    r"|mnasnet(0_75|1_0|1_3)|regnet_[xy]_(?!400mf).*|resnet(34|101|152)|resnext101.*"
    r"|shufflenet_v2_x(1_0|1_5|2_0)|swin_v2_[bs]|swin_[bs]|vgg1[369].*|vit_(b32|h14|l16|l32)"
    r"|wide_resnet.*|(deeplabv3|fcn)_resnet101|edsr_large")
FAMILY_SPECS = [name for name in BUNDLED_SPECS if not _LARGER.fullmatch(name)]

# Every skip for a missing dataset gives a reason that starts with NO_DATA (see `needs_data`),
# so that the run's summary can count them (`pytest_terminal_summary`).
NO_DATA = "no data folder"
WHERE = "set ENGINE_DATA or clone with ../shared beside"
DATASETS = {  # folder under the data root -> what the tests need from it
    "mnist": "the MNIST test set (t10k-*-ubyte.gz)",
    "usps": "the USPS digits (usps.h5)",
    "multi30k": "the Multi30k captions ({train,val,test_2016_flickr}.{en,de,fr}.gz)",
    "isbi2012_membrane": "the ISBI 2012 membrane sections (train/image, train/label)",
    "sr_benchmarks": "the super-resolution benchmarks (Set5, Set14, CBSD68)",
}


def missing_data(*folders: str) -> str | None:
    """The skip reason when a folder under SHARED_DATA is missing (e.g. "mnist",
    "sr_benchmarks/CBSD68"), else None."""
    for folder in folders:
        if not (SHARED_DATA / folder).exists():
            what = DATASETS.get(folder.split("/")[0], folder)
            return (f"{NO_DATA}: needs {what} in {SHARED_DATA / folder} "
                    f"({WHERE}; see README.md, Training)")
    return None


def needs_data(*folders: str) -> None:
    """Skip the running test, with the NO_DATA reason, unless SHARED_DATA holds every folder."""
    reason = missing_data(*folders)
    if reason:
        pytest.skip(reason)


def skip_without(*folders: str) -> pytest.MarkDecorator:
    """`@skip_without("mnist")`: a mark that skips (NO_DATA reason) when a folder is missing."""
    reason = missing_data(*folders)
    return pytest.mark.skipif(reason is not None, reason=reason or "")


# dataset (a recipe's data.dataset) -> the folders it reads under the data root
DATASET_FOLDERS = {"mnist": ("mnist",), "usps": ("usps",), "multi30k": ("multi30k",),
                   "multi30k_langid": ("multi30k",), "multi30k_lm": ("multi30k",),
                   "isbi_membrane": ("isbi2012_membrane",), "sr_patches": ("sr_benchmarks",),
                   "sr_benchmark": ("sr_benchmarks",)}


def recipe_folders(recipe: str | Path) -> tuple[str, ...]:
    """The data folders a recipe (a path or a bundled name) reads, e.g. ("mnist", "usps")."""
    from engine.train.recipe import find_recipe, load_merged
    data = load_merged(find_recipe(str(recipe)), {}, recipe=True).get("data") or {}
    names = [data.get("dataset")]
    if names[0] == "unpaired":
        names = [(data.get("args") or {}).get(k) for k in ("a", "b")]
    return tuple(f for name in names for f in DATASET_FOLDERS.get(name, ()))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A data root with every dataset of tests/tiny_data.py: the real folder (linked) where
    SHARED_DATA has it, else a tiny stand-in written for this session."""
    from tests.tiny_data import write_tiny_data
    return write_tiny_data(tmp_path_factory.mktemp("tiny_data") / "data", SHARED_DATA)


@pytest.fixture
def data_root_for(monkeypatch, request):
    """data_root_for(*folders) -> the data root the engine reads for this test: SHARED_DATA when
    it holds every folder (nothing changes), else the `tiny_data` root, which $ENGINE_DATA then
    points at, so a recipe validates and trains a few steps on a fresh clone too."""

    def use(*folders: str) -> Path:
        if not folders or missing_data(*folders) is None:
            return SHARED_DATA
        root = request.getfixturevalue("tiny_data")
        monkeypatch.setenv("ENGINE_DATA", str(root))
        return root

    return use


@pytest.fixture
def spec_file(tmp_path):
    """spec_file(text, name="spec.yaml") -> Path of a dedented YAML spec in a temp folder."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    return write


@pytest.fixture
def build_text(spec_file):
    """build_text(text, **params) -> nn.Module built from YAML text."""

    def build(text: str, **params):
        return engine.build(spec_file(text), **params)

    return build


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _engine_cache(tmp_path_factory):
    """Caches (the digit-FD judges) go to a temporary folder, never to the user's home; one
    folder for all of pytest-xdist's workers, so each judge is trained once."""
    old = os.environ.get("ENGINE_CACHE")
    if os.environ.get("PYTEST_XDIST_WORKER"):  # pytest-xdist: the workers share one cache
        cache = tmp_path_factory.getbasetemp().parent / "engine_cache"  # (their bases are siblings)
        cache.mkdir(exist_ok=True)
    else:
        cache = tmp_path_factory.mktemp("engine_cache")
    os.environ["ENGINE_CACHE"] = str(cache)
    yield
    if old is None:
        os.environ.pop("ENGINE_CACHE")
    else:
        os.environ["ENGINE_CACHE"] = old


@pytest.fixture(scope="session")
def digits_judge():
    """The bundled digits judge, trained once (about 30 s) for the whole session."""
    from engine.train.runner import digit_judge
    return digit_judge("digits")


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny tensors (`pytestmark = pytest.mark.usefixtures("one_thread")`): one
    thread is faster than several contending for a busy CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """One line counting the tests skipped for a missing dataset, written after pytest's short
    summary (so just above its closing line, which stays the last)."""
    result = yield
    count = 0
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        count += reason.removeprefix("Skipped: ").startswith(NO_DATA)
    if count:
        terminalreporter.write_line(f"{count} test{'s' * (count != 1)} skipped: {NO_DATA} ({WHERE})")
    return result
