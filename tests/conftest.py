"""Shared test helpers: write a spec into a temporary folder and compile it."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
import torch

import engine

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("ENGINE_DATA", REPO.parent / "shared" / "data"))


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
    """Caches (the digit-FD judges) go to a temporary folder, never to the user's home."""
    old = os.environ.get("ENGINE_CACHE")
    os.environ["ENGINE_CACHE"] = str(tmp_path_factory.mktemp("engine_cache"))
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
