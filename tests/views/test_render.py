"""Diagrams: golden DOT files, every bundled spec through Graphviz, and what a reader must see."""

from __future__ import annotations

import html
import os
import re
import shutil
import struct

import pytest

import engine
from engine.blocks.registry import CATEGORIES, all_blocks, lookup
from engine.views.render import PALETTE, render_dot, write_dot
from tests.conftest import FAMILY_SPECS, REPO

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


def _legend(dot: str) -> dict[str, tuple[str, str]]:
    """The legend's rows: text -> (fill, border)."""
    rows = re.findall(r'<TD BGCOLOR="(#[0-9a-f]+)" COLOR="(#[0-9a-f]+)"[^>]*></TD>'
                      r'<TD ALIGN="LEFT">([^<]*)</TD>', dot)
    return {html.unescape(text): (fill, border) for fill, border, text in rows}


def _box_colours(dot: str, node: str) -> tuple[str, str]:
    fill, border = re.search(rf'^\s+"n_{node}" \[.*?fillcolor="(#[0-9a-f]+)", '
                             r'color="(#[0-9a-f]+)"', dot, flags=re.M).groups()
    return fill, border


def test_every_block_family_has_a_colour():
    # CATEGORIES is what @register accepts (a plugin's block too): each needs a colour
    assert {info.category for info in all_blocks().values()} <= set(CATEGORIES) <= set(PALETTE)


def test_boxes_take_their_family_colour_and_the_legend_lists_it(spec_file):
    shaped = engine.analyze(spec_file("""
        name: families
        inputs: {x: [B, 4, 8, 8], w: [B, 6], tokens: [B, 5, 3]}
        graph:
          norm: {op: group_norm, groups: 2, in: x}
          up: {op: conv_transpose, out: 4, k: 4, stride: 2, pad: 1}
          style: {op: adain, in: [up, w], style: 6}
          attend: {op: self_attention2d, heads: 2}
          resize: {op: upsample, scale: 2}
          rnn: {op: lstm, hidden: 4, in: tokens}
        outputs: {image: resize, states: rnn.out}
    """))
    dot = render_dot(shaped)
    legend = _legend(dot)
    for node, op in [("norm", "group_norm"), ("up", "conv_transpose"), ("style", "adain"),
                     ("attend", "self_attention2d"), ("resize", "upsample"), ("rnn", "lstm")]:
        fill, border, text = PALETTE[lookup(op).category]
        assert _box_colours(dot, node) == (fill, border), op
        assert legend[text] == (fill, border), op
    assert set(legend) == {"normalisation", "convolution", "style / conditioning", "attention",
                           "resampling (upsample, pixel shuffle)", "recurrent (RNN, LSTM, GRU)"}


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
@pytest.mark.parametrize("spec", FAMILY_SPECS)  # a family's larger members draw the same boxes
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


# a residual unit of 5 layers repeated; `--expand body --depth 3` opens every unit as a cluster
MANY_BLOCKS = """# a chain of {n} residual units, for the renderer's cluster limit
name: chain{n}
inputs: {{x: [B, 8, 8, 8]}}
blocks:
  unit:
    nodes:
      conv1: {{op: conv, out: 8, k: 3, pad: 1}}
      relu:  {{op: relu}}
      conv2: {{op: conv, out: 8, k: 3, pad: 1}}
      add:   {{op: add, in: [conv2, input]}}
graph:
  body: {{op: unit, repeat: {n}}}
"""


def _chain(tmp_path, n: int):
    path = tmp_path / f"chain{n}.yaml"
    path.write_text(MANY_BLOCKS.format(n=n))
    return engine.analyze(path)


def _clusters(dot: str) -> int:
    return len(re.findall(r'subgraph "cluster_', dot))


def test_few_blocks_stay_clusters_without_a_note(tmp_path):
    notes = []
    dot = render_dot(_chain(tmp_path, 20), depth=3, expand=["body"], notes=notes)
    assert notes == [] and _clusters(dot) == 21 and not dot.startswith("//")


def test_too_many_clusters_fall_back_to_collapsed_boxes_and_say_so(tmp_path, capsys):
    from engine.cli import main
    from engine.views.render import MAX_CLUSTERS
    shaped, notes = _chain(tmp_path, MAX_CLUSTERS + 50), []
    dot = render_dot(shaped, depth=3, expand=["body"], notes=notes)
    assert len(notes) == 1 and f"{MAX_CLUSTERS + 51} blocks would be drawn open" in notes[0]
    assert "--expand PATH" in notes[0] and dot.startswith(f"// {notes[0]}\n")
    assert _clusters(dot) <= MAX_CLUSTERS
    units = [b for b in _boxes(dot) if re.fullmatch(r"n_body_\d+", b)]
    assert len(units) == MAX_CLUSTERS + 50  # every unit still there, as one box
    out = tmp_path / "chain.dot"
    assert main(["render", str(tmp_path / f"chain{MAX_CLUSTERS + 50}.yaml"), "-o", str(out),
                 "--depth", "3", "--expand", "body"]) == 0
    assert "note: " in capsys.readouterr().err and out.read_text() == dot


@needs_dot
def test_the_fallback_is_drawable(tmp_path):
    from engine.views.render import MAX_CLUSTERS
    dot = render_dot(_chain(tmp_path, 2 * MAX_CLUSTERS), depth=3, expand=["body"])
    assert write_dot(dot, tmp_path / "chain.svg").read_text().lstrip().startswith("<?xml")
