"""The spec language's required properties, each checked by building a spec and comparing the
module against the same computation written in plain torch (the oracle)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import engine
from engine.compiler.ir import SpecError


def test_sequential_default_input_and_explicit_in(build_text):
    m = build_text("""
        inputs: {x: [B, 3, 8, 8]}
        graph:
          conv: {op: conv, out: 4, k: 3, pad: 1}
          relu: relu
          skip: {op: conv, out: 4, k: 1, in: x}
          add: {op: add, in: [relu, skip]}
    """)
    x = torch.randn(2, 3, 8, 8)
    want = F.relu(F.conv2d(x, m.conv.weight, m.conv.bias, padding=1)) + \
        F.conv2d(x, m.skip.weight, m.skip.bias)
    torch.testing.assert_close(m(x), want)


def test_in_channels_are_inferred(build_text):
    m = build_text("""
        inputs: {x: [B, 5, 6, 6]}
        graph:
          a: {op: conv, out: 7, k: 3}
          b: {op: conv, out: 2, k: 1}
          flat: flatten
          fc: {op: linear, out: 3}
    """)
    assert m.a.weight.shape == (7, 5, 3, 3)
    assert m.b.weight.shape == (2, 7, 1, 1)
    assert m.fc.weight.shape == (3, 2 * 4 * 4)


def test_several_named_inputs_and_outputs_give_a_dict(build_text):
    m = build_text("""
        inputs: {a: [B, 4], b: [B, 4]}
        graph:
          fa: {op: linear, out: 3, in: a}
          fb: {op: linear, out: 3, in: b}
          s:  {op: add, in: [fa, fb]}
        outputs: {sum: s, left: fa}
    """)
    a, b = torch.randn(2, 4), torch.randn(2, 4)
    out = m(a, b)
    assert set(out) == {"sum", "left"}
    torch.testing.assert_close(out["sum"], m.fa(a) + m.fb(b))
    torch.testing.assert_close(out["left"], m.fa(a))


def test_multi_output_block_with_output_selection(build_text):
    m = build_text("""
        inputs: {x: [B, 6]}
        blocks:
          encoder:
            params: {latent: int}
            nodes:
              hidden: {op: linear, out: 8}
              mean: {op: linear, out: $latent, in: hidden}
              logvar: {op: linear, out: $latent, in: hidden}
            outputs: {mean: mean, logvar: logvar}
        graph:
          enc: {op: encoder, latent: 2}
          std: {op: linear, out: 2, in: enc.logvar}
          both: {op: add, in: [enc.mean, std]}
    """)
    x = torch.randn(3, 6)
    h = m.enc.hidden(x)
    torch.testing.assert_close(m(x), m.enc.mean(h) + m.std(m.enc.logvar(h)))


def test_output_selection_by_index_of_a_primitive(build_text):
    m = build_text("""
        inputs: {x: [B, 6]}
        graph:
          halves: {op: chunk, chunks: 2, dim: 1}
          prod: {op: mul, in: [halves.0, halves.1]}
    """)
    x = torch.randn(2, 6)
    torch.testing.assert_close(m(x), x[:, :3] * x[:, 3:])


def test_parametric_blocks_nest_with_typed_params_and_defaults(build_text):
    m = build_text("""
        inputs: {x: [B, 4]}
        blocks:
          mlp:
            params: {hidden: int, act: relu}
            nodes:
              fc1: {op: linear, out: $hidden}
              act: {op: $act}
              fc2: {op: linear, out: "${hidden // 2}"}
          tower:
            params: {width: 8}
            nodes:
              first: {op: mlp, hidden: $width}
              second: {op: mlp, hidden: "${width * 2}", act: tanh}
        graph:
          t: {op: tower}
    """)
    assert m.t.first.fc1.weight.shape == (8, 4)
    assert m.t.second.fc1.weight.shape == (16, 4)
    x = torch.randn(2, 4)
    h = m.t.first.fc2(F.relu(m.t.first.fc1(x)))
    want = m.t.second.fc2(torch.tanh(m.t.second.fc1(h)))
    torch.testing.assert_close(m(x), want)


def test_repeat_with_index_dependent_args_first_and_last(build_text):
    m = build_text("""
        inputs: {x: [B, 3, 16, 16]}
        graph:
          stack:
            op: conv
            repeat: 3
            args: {out: "${4 * (i + 1)}", k: 3, pad: 1}
            first: {stride: 2}
            last: {k: 1, pad: 0}
    """)
    convs = [getattr(m.stack, str(i)) for i in range(3)]
    assert [c.out_channels for c in convs] == [4, 8, 12]
    assert convs[0].stride == (2, 2) and convs[1].stride == (1, 1)
    assert convs[2].kernel_size == (1, 1)
    assert m(torch.randn(1, 3, 16, 16)).shape == (1, 12, 8, 8)
    assert "stack.0.weight" in m.state_dict()


def test_repeat_names_pattern(build_text):
    m = build_text("""
        inputs: {x: [B, 4]}
        graph:
          layers: {op: linear, out: 4, repeat: 2, names: "layer_${i + 1}"}
    """)
    assert set(m.state_dict()) == {"layers.layer_1.weight", "layers.layer_1.bias",
                                   "layers.layer_2.weight", "layers.layer_2.bias"}


def test_weight_sharing_applies_one_module_several_times(build_text):
    # DRCN-style recursion: the same conv applied three times, one set of weights.
    m = build_text("""
        inputs: {x: [B, 4, 8, 8]}
        graph:
          conv: {op: conv, out: 4, k: 3, pad: 1}
          again: {share: conv}
          third: {op: conv, share: conv}
    """)
    assert sum(p.numel() for p in m.parameters()) == 4 * 4 * 9 + 4
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(m(x), m.conv(m.conv(m.conv(x))))


def test_tied_embedding_and_output_projection(build_text):
    m = build_text("""
        inputs: {tokens: {shape: [B, T], dtype: long}}
        dims: {T: 5}
        graph:
          embed: {op: embedding, num: 11, dim: 6}
          proj: {op: linear, out: 11, bias: false, tie: {weight: embed.weight}}
    """)
    assert m.proj.weight is m.embed.weight
    assert sum(p.numel() for p in m.parameters()) == 11 * 6
    tokens = torch.randint(0, 11, (2, 5))
    torch.testing.assert_close(m(tokens), m.embed(tokens) @ m.embed.weight.T)


def test_tie_with_mismatched_shapes_is_an_error(spec_file):
    path = spec_file("""
        inputs: {x: [B, 4]}
        graph:
          a: {op: linear, out: 3}
          b: {op: linear, out: 5, tie: {weight: a.weight}}
    """)
    with pytest.raises(SpecError, match="shapes differ"):
        engine.analyze(path)


def test_when_false_passes_input_through(build_text):
    m = build_text("""
        params: {use_norm: false}
        inputs: {x: [B, 3, 4, 4]}
        graph:
          conv: {op: conv, out: 3, k: 1}
          norm: {op: batchnorm, when: $use_norm}
          relu: relu
    """)
    assert not hasattr(m, "norm")
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(m(x), F.relu(m.conv(x)))


def test_when_reads_upstream_shape(build_text):
    text = """
        params: {out: 3}
        inputs: {x: [B, 3, 4, 4]}
        graph:
          proj: {op: conv, out: $out, k: 1, when: "${input.channels != out}"}
    """
    assert not hasattr(build_text(text), "proj")
    assert build_text(text, out=5).proj.out_channels == 5


def test_seq_numbers_children_and_each_splices(build_text):
    m = build_text("""
        params: {cfg: [4, M, 8], bn: true}
        inputs: {x: [B, 3, 8, 8]}
        graph:
          features:
            seq:
              - each: $cfg
                as: v
                seq:
                  - {op: maxpool, k: 2, when: "${v == 'M'}"}
                  - {op: conv, out: $v, k: 3, pad: 1, when: "${v != 'M'}"}
                  - {op: batchnorm, when: "${bn and v != 'M'}"}
                  - {op: relu, when: "${v != 'M'}"}
    """)
    kinds = [type(c).__name__ for c in m.features.children()]
    assert kinds == ["Conv", "BatchNorm", "ReLU", "MaxPool", "Conv", "BatchNorm", "ReLU"]
    assert "features.4.weight" in m.state_dict()


def test_expressions_over_params_index_and_conditionals(build_text):
    m = build_text("""
        params: {widths: [4, 6], scale: 2, big: false}
        inputs: {x: [B, 3]}
        graph:
          a: {op: linear, out: "${widths[1] * scale if not big else 100}"}
          b: {op: linear, out: "${max(widths) - len(widths)}"}
    """)
    assert m.a.out_features == 12 and m.b.out_features == 4


def test_several_networks_per_file_build_a_module_dict(build_text):
    m = build_text("""
        name: tiny_gan
        params: {z: 4}
        networks:
          generator:
            inputs: {z: [B, $z]}
            graph:
              fc: {op: linear, out: 6}
          discriminator:
            inputs: {x: [B, 6]}
            graph:
              fc: {op: linear, out: 1}
    """)
    assert isinstance(m, nn.ModuleDict) and set(m) == {"generator", "discriminator"}
    assert m["discriminator"](m["generator"](torch.randn(2, 4))).shape == (2, 1)


def test_parameter_nodes_register_on_the_enclosing_module(build_text):
    m = build_text("""
        inputs: {x: [B, 3, 4]}
        graph:
          token: {op: parameter, shape: [1, 1, 4], init: 0.5}
          cat: {op: concat, in: [token, x], dim: 1, broadcast_batch: true}
    """)
    assert set(m.state_dict()) == {"token"}
    out = m(torch.zeros(2, 3, 4))
    assert out.shape == (2, 4, 4) and torch.all(out[:, 0] == 0.5)


def test_set_overrides_a_param_and_a_dotted_path(spec_file):
    path = spec_file("""
        params: {n: 3}
        inputs: {x: [B, 4]}
        graph:
          fc: {op: linear, out: $n}
          out: {op: linear, out: 2}
    """)
    assert engine.build(path, n=7).fc.out_features == 7
    shaped = engine.analyze(path, ["graph.out.out=9"])
    assert shaped.nodes["out"].outputs[0].shape == (1, 9)


def test_rename_map_translates_reference_keys(spec_file):
    path = spec_file("""
        inputs: {x: [B, 4]}
        rename: {"encoder.fc": "body.0"}
        graph:
          body: {seq: [{op: linear, out: 3}]}
    """)
    model = engine.build(path)
    reference = nn.Module()
    reference.encoder = nn.Module()
    reference.encoder.fc = nn.Linear(4, 3)
    engine.load_reference_state_dict(model, reference.state_dict(), path)
    x = torch.randn(2, 4)
    torch.testing.assert_close(model(x), reference.encoder.fc(x))
    assert engine.rename_state_dict({"encoder.fc.weight": 1, "other": 2},
                                    {"encoder.fc": "body.0"}) == {"body.0.weight": 1, "other": 2}


def test_generated_forward_is_readable_python(build_text):
    m = build_text("""
        inputs: {image: [B, 3, 8, 8]}
        graph:
          conv1: {op: conv, out: 4, k: 3}
          relu: relu
    """)
    assert m.code.splitlines() == ["def forward(self, image):", "    conv1 = self.conv1(image)",
                                   "    relu = self.relu(conv1)", "    return relu"]


def test_compiled_module_works_with_torch_export(build_text):
    m = build_text("""
        inputs: {x: [B, 3, 8, 8]}
        graph:
          conv: {op: conv, out: 4, k: 3, pad: 1}
          bn: batchnorm
          relu: relu
          pool: {op: adaptive_avgpool, size: 1}
          flat: flatten
          fc: {op: linear, out: 2}
    """).eval()
    x = torch.randn(2, 3, 8, 8)
    exported = torch.export.export(m, (x,))
    torch.testing.assert_close(exported.module()(x), m(x))


def test_compiled_module_traces_with_torch_compile(build_text):
    m = build_text("""
        inputs: {x: [B, 4]}
        graph:
          fc: {op: linear, out: 3}
          act: gelu
          halves: {op: chunk, chunks: 3, dim: 1}
          out: {op: add, in: [halves.0, halves.2]}
    """)
    x = torch.randn(2, 4)
    compiled = torch.compile(m, backend="eager", fullgraph=True)  # dynamo must trace it whole
    torch.testing.assert_close(compiled(x), m(x))


def test_a_multi_output_node_used_whole_gives_its_first_output(build_text):
    m = build_text("""
        inputs: {x: [B, 6]}
        graph:
          halves: {op: chunk, chunks: 2, dim: -1}
          fc: {op: linear, out: 2}
    """)
    x = torch.randn(2, 6)
    torch.testing.assert_close(m(x), m.fc(x[:, :3]))
