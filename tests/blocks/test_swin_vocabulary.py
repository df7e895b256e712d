"""The Swin vocabulary (buffer, index, reshape with `batch: true`, matmul, segment_mask, pad, slice,
normalize, exp), each built from a small spec and checked against the torch (or torchvision) code
it stands for; buffers through build, state_dict, codegen and `to()`; and the errors for arguments
that cannot work."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.swin_transformer import ShiftedWindowAttention, ShiftedWindowAttentionV2

from engine.blocks.registry import lookup
from engine.compiler.ir import SpecError
from engine.views import codegen

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest


def one_node(build_text, node: str, shape):
    """The model of a spec with one input `x` and the one node `y` (a YAML flow mapping)."""
    return build_text(f"""
        name: vocab
        inputs: {{x: {shape}}}
        graph:
          y: {node}
        """).eval()


def run(model: nn.Module, *xs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(*xs)


# ---- buffer -----------------------------------------------------------------------------------

BUFFERS = """
    name: buffers
    params: {n: 3}
    inputs: {x: [B, 3]}
    graph:
      index: {op: buffer, value: "${[[i * n + j for j in range(n)] for i in range(2)]}", dtype: long}
      keep:  {op: buffer, value: [1.0, 0.0, 2.0], persistent: false}
      scale: {op: parameter, shape: [3], init: 1.0}
      kept:  {op: mul, in: [x, keep]}
      out:   {op: mul, in: [kept, scale]}
    outputs: {out: out, index: index}
"""


def test_buffer_registers_its_value_under_the_node_name(build_text):
    model = build_text(BUFFERS)
    assert torch.equal(model.index, torch.tensor([[0, 1, 2], [3, 4, 5]]))
    assert model.index.dtype == torch.long and not model.index.requires_grad
    assert torch.equal(model.keep, torch.tensor([1.0, 0.0, 2.0]))
    # persistent buffers are in the state_dict, non-persistent ones are not; neither is a parameter
    assert list(model.state_dict()) == ["scale", "index"]
    assert [n for n, _ in model.named_parameters()] == ["scale"]
    assert {n for n, _ in model.named_buffers()} == {"index", "keep"}
    x = torch.randn(2, 3)
    out = run(model, x)
    torch.testing.assert_close(out["out"], x * torch.tensor([1.0, 0.0, 2.0]), rtol=0, atol=0)
    assert out["index"] is model.index


def test_buffer_follows_the_model_and_survives_reinitialisation(build_text):
    model = build_text(BUFFERS).to(torch.float64)
    assert model.keep.dtype == torch.float64 and model.index.dtype == torch.long  # as any buffer
    with torch.no_grad():
        model.index.zero_()
    model.reset_parameters()  # what the engine calls after materialising: the value comes back
    assert torch.equal(model.index, torch.tensor([[0, 1, 2], [3, 4, 5]]))


def test_buffer_on_the_meta_device_and_strict_loading(spec_file):
    import engine
    path = spec_file(BUFFERS)
    meta = engine.build(path, device="meta")
    assert meta.index.is_meta and meta.index.shape == (2, 3)
    model = engine.build(path)
    fresh = engine.build(path)
    fresh.load_state_dict(model.state_dict(), strict=True)
    with pytest.raises(RuntimeError, match="Missing key"):
        fresh.load_state_dict({"scale": torch.ones(3)}, strict=True)


def test_buffer_block_alone():
    block = lookup("buffer").cls([[1, 2], [3, 4]], "int32", persistent=False)
    assert torch.equal(block(), torch.tensor([[1, 2], [3, 4]], dtype=torch.int32))
    assert list(block.state_dict()) == []
    assert lookup("buffer").cls(2.5)().item() == 2.5
    assert block.label() == "buffer 2x2 (int32)"


@pytest.mark.parametrize("node,message", [
    ("{op: buffer, value: [[1, 2], [3]]}", "rectangular nested list"),
    ("{op: buffer, value: [1, 2], dtype: int8x}", "unknown dtype 'int8x'"),
])
def test_buffer_arguments_that_cannot_work_are_spec_errors(build_text, node, message):
    with pytest.raises(SpecError, match=message):
        one_node(build_text, node, [2, 3])


def test_frozen_buffer_is_no_error(build_text):
    model = build_text("""
        name: frozen_buffer
        inputs: {x: [B, 2]}
        graph:
          table: {op: buffer, value: [1.0, 2.0], freeze: true}
          out: {op: add, in: [x, table]}
        """)
    assert list(model.parameters()) == []


def test_codegen_writes_buffers_and_the_new_ops(spec_file):
    import engine
    path = spec_file(BUFFERS)
    text = codegen.codegen_source(engine.analyze(path), "model.py")
    assert 'self.register_buffer("index", torch.tensor([[0, 1, 2], [3, 4, 5]], dtype=torch.int64))' \
        in text
    assert 'self.register_buffer("keep", torch.tensor([1.0, 0.0, 2.0]), persistent=False)' in text
    namespace: dict = {}
    exec(compile(text, "model.py", "exec"), namespace)
    generated = namespace["build"]()
    model = engine.build(path)
    generated.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(2, 3)
    torch.testing.assert_close(run(generated, x)["out"], run(model, x)["out"], rtol=0, atol=0)
    assert torch.equal(generated.keep, model.keep)


# ---- index, reshape with batch, matmul --------------------------------------------------------

def test_index_gathers_a_table_like_torchvisions_relative_position_bias(build_text):
    model = build_text("""
        name: gather
        inputs: {table: [5, 3], index: {shape: [4, 6], dtype: long}}
        graph:
          rows: {op: index, in: [table, index]}
          cols: {op: index, dim: 1, in: [table, index]}
        outputs: {rows: rows, cols: cols}
        """)
    table, index = torch.randn(5, 3), torch.randint(0, 3, (4, 6))
    out = run(model, table, index)
    assert torch.equal(out["rows"], table[index])
    assert torch.equal(out["cols"], table[:, index])
    assert out["rows"].shape == (4, 6, 3) and out["cols"].shape == (5, 4, 6)


@pytest.mark.parametrize("shape,batch,want", [
    ([-1, 4], False, (2, 6, 4)),
    ([-1, 4], True, (12, 4)),
    ([4, 3, 4], True, (4, 3, 4)),       # unfold 2 samples into 4
    ([1, 48], True, (1, 48)),           # the whole batch into one sample
])
def test_reshape_may_fold_the_batch(build_text, shape, batch, want):
    model = one_node(build_text, f"{{op: reshape, shape: {shape}, batch: {str(batch).lower()}}}",
                     [2, 3, 8])
    x = torch.randn(2, 3, 8)
    out = run(model, x)
    assert out.shape == want
    assert torch.equal(out, x.reshape(want))


def test_reshape_with_batch_is_checked_by_the_shape_stage(build_text):
    with pytest.raises(SpecError, match="reshape"):
        one_node(build_text, "{op: reshape, shape: [5, -1], batch: true}", [2, 3, 8])


def test_matmul_equals_torch(build_text):
    model = build_text("""
        name: mm
        inputs: {a: [2, 3, 5, 4], b: [2, 3, 6, 4], c: [4, 7]}
        graph:
          qk: {op: matmul, in: [a, b], transpose_b: true}
          ac: {op: matmul, in: [a, c]}
        outputs: {qk: qk, ac: ac}
        """)
    a, b, c = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 6, 4), torch.randn(4, 7)
    out = run(model, a, b, c)
    assert torch.equal(out["qk"], a.matmul(b.transpose(-2, -1)))
    assert torch.equal(out["ac"], a @ c)


# ---- masks, pads, slices, normalize, exp ------------------------------------------------------

def _torchvision_mask(pad_h: int, pad_w: int, window: int, shift: int) -> torch.Tensor:
    """torchvision's shifted-window attention mask, as shifted_window_attention builds it."""
    attn_mask = torch.zeros((pad_h, pad_w))
    h_slices = ((0, -window), (-window, -shift), (-shift, None))
    w_slices = ((0, -window), (-window, -shift), (-shift, None))
    count = 0
    for h in h_slices:
        for w in w_slices:
            attn_mask[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    attn_mask = attn_mask.view(pad_h // window, window, pad_w // window, window)
    attn_mask = attn_mask.permute(0, 2, 1, 3).reshape(-1, window * window)
    attn_mask = attn_mask.unsqueeze(1) - attn_mask.unsqueeze(2)
    return attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)


@pytest.mark.parametrize("size,window,shift", [(14, 7, 3), (8, 4, 2), (21, 7, 3), (16, 8, 4), (7, 7, 3)])
def test_segment_mask_of_swins_window_regions_equals_torchvisions_mask(spec_file, size, window, shift):
    """swin_t.yaml's `window_regions` helper, through `segment_mask`, is torchvision's mask."""
    import engine
    from engine.compiler.merge import SPECS_DIR
    path = spec_file(f"""
        name: regions
        extends: {SPECS_DIR / "swin_t.yaml"}
        inputs: !replace {{x: [1]}}
        graph: !replace
          regions: {{op: buffer, value: "${{window_regions({size}, {window}, {shift})}}", persistent: false}}
          mask: {{op: segment_mask, value: -100.0}}
        outputs: !replace {{mask: mask}}
        """)
    want = _torchvision_mask(size, size, window, shift)
    got = run(engine.build(path), torch.zeros(1))
    assert got.dtype == want.dtype
    assert torch.equal(got, want)


def test_segment_mask_defaults_to_minus_infinity_and_keeps_float_dtypes(build_text):
    model = one_node(build_text, "segment_mask", "{shape: [2, 4], dtype: long}")
    labels = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 5]])
    out = run(model, labels)
    same = labels[:, :, None] == labels[:, None, :]
    assert out.dtype == torch.float32
    assert torch.equal(out, torch.where(same, 0.0, float("-inf")))
    softmax = torch.softmax(torch.randn(2, 4, 4) + out, -1)
    assert torch.all((softmax > 0) == same)
    halves = lookup("segment_mask").cls(-1.0)(labels.to(torch.float16))
    assert halves.dtype == torch.float16


@pytest.mark.parametrize("pad,value,mode", [
    ([0, 0, 0, 2, 0, 1], 0.0, "constant"), ([1, 2], -1.5, "constant"), ([0, 0, 1, 1, 2, 0], 0.0, "replicate"),
])
def test_pad_equals_torch(build_text, pad, value, mode):
    model = one_node(build_text, f"{{op: pad, pad: {pad}, value: {value}, mode: {mode}}}", [2, 5, 5, 3])
    x = torch.randn(2, 5, 5, 3)
    want = F.pad(x, pad, value=value) if mode == "constant" else F.pad(x, pad, mode=mode)
    assert torch.equal(run(model, x), want)


@pytest.mark.parametrize("dim,start,end,step", [(1, 0, 3, 1), (2, 1, None, 2), (-1, -2, None, 1),
                                                (1, 0, 99, 1)])
def test_slice_equals_python_slicing(build_text, dim, start, end, step):
    end_yaml = "null" if end is None else end
    model = one_node(build_text, f"{{op: slice, dim: {dim}, start: {start}, end: {end_yaml}, step: {step}}}",
                     [2, 5, 4])
    x = torch.randn(2, 5, 4)
    index = [slice(None)] * 3
    index[dim] = slice(start, end, step)
    assert torch.equal(run(model, x), x[tuple(index)])


def test_normalize_and_exp_equal_torch(build_text):
    model = build_text("""
        name: cosine
        inputs: {x: [2, 3, 5]}
        graph:
          unit: {op: normalize, dim: -1}
          ones: {op: normalize, dim: 1, p: 1, in: x}
          e: {op: exp, in: x}
        outputs: {unit: unit, ones: ones, e: e}
        """)
    x = torch.randn(2, 3, 5)
    out = run(model, x)
    assert torch.equal(out["unit"], F.normalize(x, dim=-1))
    assert torch.equal(out["ones"], F.normalize(x, p=1.0, dim=1))
    assert torch.equal(out["e"], torch.exp(x))


@pytest.mark.parametrize("node,message", [
    ("{op: pad, pad: [1, 2, 3]}", "pairs"),
    ("{op: pad, pad: [1, 1], mode: mirror}", "mode must be"),
    ("{op: slice, dim: 1, step: 0}", "step must be a positive integer"),
    ("{op: index, in: [x, x]}", r"in 'index': inputs x \[2, 5, 4\], x \[2, 5, 4\]"),  # a float index
])
def test_arguments_that_cannot_work_are_spec_errors(build_text, node, message):
    with pytest.raises(SpecError, match=message):
        one_node(build_text, node, [2, 5, 4])


@pytest.mark.parametrize("name,args,label", [
    ("index", {}, "table[index]"), ("index", {"dim": 1}, "index along dim 1"),
    ("matmul", {"transpose_b": True}, "a @ b^T"), ("segment_mask", {"value": -100.0}, "segment mask (-100)"),
    ("pad", {"pad": [0, 1]}, "pad [0, 1]"), ("slice", {"dim": 1, "end": 7}, "slice [0:7] of dim 1"),
    ("normalize", {}, "L2 normalize"), ("exp", {}, "exp"),
])
def test_diagram_labels(name, args, label):
    assert lookup(name).cls(**args).label() == label


# ---- the composition: one Swin attention block against torchvision's -------------------------

ATTENTION = """
    name: swin_attention
    extends: {base}
    inputs: !replace {{x: [B, {size}, {size}, 16]}}
    graph: !replace
      attn: {{op: shifted_window_attention, dim: 16, heads: 2, window: 4, shift: {shift}, size: {size}}}
    outputs: !replace {{out: attn}}
"""


@pytest.mark.parametrize("v2", [False, True], ids=["v1", "v2"])
@pytest.mark.parametrize("size,shift", [(8, 2), (8, 0), (10, 2), (3, 0)])
def test_spec_attention_block_equals_torchvision(spec_file, v2, size, shift):
    """A spec's shifted_window_attention block (swin_t.yaml, swin_v2_t.yaml) with torchvision's
    weights gives torchvision's outputs: windows, padding, shift, mask and bias all composed."""
    import engine
    from engine.compiler.merge import SPECS_DIR
    base = SPECS_DIR / ("swin_v2_t.yaml" if v2 else "swin_t.yaml")
    path = spec_file(ATTENTION.format(base=base, size=size, shift=shift))
    model = engine.build(path).eval()
    cls = ShiftedWindowAttentionV2 if v2 else ShiftedWindowAttention
    ref = cls(16, [4, 4], [shift, shift], 2).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.uniform_(-0.5, 0.5)
    state = {f"attn.{k}": v for k, v in ref.state_dict().items()}
    model.load_state_dict(state, strict=True)
    x = torch.randn(2, size, size, 16)
    torch.testing.assert_close(run(model, x), run(ref, x), rtol=0, atol=1e-6)
