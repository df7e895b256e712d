"""Diagrams: golden DOT files, every bundled spec through Graphviz, and what a reader must see."""

from __future__ import annotations

import os
import re
import shutil
import struct

import pytest

import engine
from engine.compiler.merge import SPECS_DIR
from engine.views.render import render_dot, write_dot
from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden"
HAS_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed "
                                                   "(scripts/setup.sh installs it)")


def _boxes(dot: str) -> list[str]:
    return re.findall(r'^\s+"(n_[^"]+)" \[', dot, flags=re.M)


@pytest.mark.parametrize("spec, kwargs", [("resnet50", {}), ("vit_b16", {}),
                                          ("resnet50", {"expand": ["layer1.0"]})])
def test_golden_dot(spec, kwargs):
    dot = render_dot(engine.analyze(spec), **kwargs)
    name = spec + "".join(f"_{p}" for p in kwargs.get("expand", [])) + ".dot"
    path = GOLDEN / name
    if os.environ.get("ENGINE_UPDATE_GOLDEN"):
        path.write_text(dot)
    assert dot == path.read_text(), f"{name} changed; rerun with ENGINE_UPDATE_GOLDEN=1 if intended"


def test_resnet50_collapsed_fits_a_page():
    dot = render_dot(engine.analyze("resnet50"))
    boxes = _boxes(dot)
    assert len(boxes) < 30
    assert 'label=<layer3 · bottleneck ×6<BR/><FONT POINT-SIZE="9" COLOR="#666666">7.1 M params' \
        in dot
    assert "7x7 conv, 64, /2" in dot and '[label=" 1024×14×14"]' in dot


def test_expanding_shows_the_residual_as_a_plus_node_with_its_skip_edge():
    dot = render_dot(engine.analyze("resnet50"), expand=["layer1.0"])
    assert 'cluster_n_layer1_0' in dot and 'label="+"' in dot
    assert '"n_layer1_0_downsample" -> "n_layer1_0_add"' in dot  # the shortcut into the sum
    assert '"n_layer1_0_bn3" -> "n_layer1_0_add"' in dot
    assert "layer1.1 · bottleneck" in dot  # the other repetitions stay boxes


def test_legend_lists_only_the_colours_used():
    dot = render_dot(engine.analyze("resnet50"))
    assert "convolution" in dot and "attention" not in dot
    assert "attention" in render_dot(engine.analyze("vit_b16"), expand=["encoder.layers.encoder_layer_0"])


def test_shared_weights_and_several_networks_are_visible(spec_file):
    shaped = engine.analyze(spec_file("""
        networks:
          gen:
            inputs: {x: [B, 4, 8, 8]}
            graph:
              conv: {op: conv, out: 4, k: 3, pad: 1}
              again: {share: conv}
          disc:
            inputs: {y: [B, 4, 8, 8]}
            graph:
              pool: {op: adaptive_avgpool, size: 1}
    """))
    dot = render_dot(shaped)
    assert "same weights" in dot and "rounded,filled,dashed" in dot
    assert 'cluster_net_gen' in dot and 'cluster_net_disc' in dot


@needs_dot
@pytest.mark.parametrize("spec", sorted(p.stem for p in SPECS_DIR.glob("*.yaml")))
def test_every_bundled_spec_renders(spec, tmp_path):
    out = write_dot(render_dot(engine.analyze(spec)), tmp_path / f"{spec}.svg")
    assert out.read_text().lstrip().startswith("<?xml")


@needs_dot
def test_png_is_a_valid_image(tmp_path):
    from engine.cli import main
    out = tmp_path / "resnet50.png"
    assert main(["render", "resnet50", "-o", str(out)]) == 0
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert 100 < width < height  # portrait


def test_unknown_format_is_a_clear_error(tmp_path):
    from engine.compiler.ir import SpecError
    with pytest.raises(SpecError, match="cannot render to '.gif'"):
        write_dot("digraph {}", tmp_path / "x.gif")
