"""The one registry class and its did-you-mean, each block's family, and the README's table."""

from __future__ import annotations

import pytest

from engine.blocks.readme import README, with_table
from engine.blocks.registry import Registry, all_blocks, register, suggest


def test_readme_table_matches_the_registry():
    text = README.read_text(encoding="utf-8")
    assert with_table(text) == text, "blocks/README.md's table is out of date: run `python -m engine.blocks`"


@pytest.mark.parametrize("name", sorted(all_blocks()))
def test_block_lives_in_the_file_of_its_family(name):
    info = all_blocks()[name]
    assert info.cls.__module__ == f"engine.blocks.{info.category}"


def test_duplicate_name_is_an_error():
    losses = Registry("loss")
    losses.add("l1", abs)
    with pytest.raises(ValueError, match="loss 'l1' is registered twice"):
        losses.register("l1")(max)


def test_duplicate_block_names_both_classes():
    with pytest.raises(ValueError, match=r"block 'conv' is registered twice \(Conv and .*Mine\)"):
        @register("conv", category="conv")
        class Mine:
            pass


def test_registry_lookup_and_hint():
    metrics = Registry("metric")
    for name in ("psnr", "ssim", "accuracy"):
        metrics.add(name, name.upper())
    assert "ssim" in metrics and "mse" not in metrics and metrics.get("psnr") == "PSNR"
    assert metrics.names() == ["accuracy", "psnr", "ssim"]
    assert metrics.hint("ssmi") == "did you mean 'ssim'?"
    assert metrics.hint("zzz") == "known metrics: accuracy, psnr, ssim"


def test_suggest_lists_up_to_n_close_names():
    assert suggest("conv", ["conv2", "conv", "relu"]) == "did you mean 'conv' or 'conv2'?"
    assert suggest("conv", ["conv2", "conv"], n=1) == "did you mean 'conv'?"
    assert suggest("xyz", ["conv"]) == ""
