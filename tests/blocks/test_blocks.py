"""Every registered block, built from the example it declares: contract, shapes, init, schema."""

from __future__ import annotations

import pytest
import torch

from engine.blocks.registry import INFERRED, all_blocks, check_type, inferred_args
from engine.compiler.schema import spec_schema

BLOCKS = all_blocks()


def _inputs(info):
    """The example's inputs: `dtype` (one for all) or `dtypes` (one per input: float32, long,
    bool; a bool mask keeps its first position False so no row is all padding)."""
    example = info.example
    shapes = example["inputs"]
    dtypes = example.get("dtypes") or [example.get("dtype", "float32")] * len(shapes)
    out = []
    for shape, dtype in zip(shapes, dtypes):
        if dtype == "long":
            out.append(torch.randint(0, 3, shape))
        elif dtype == "bool":
            mask = torch.rand(shape) < 0.3
            mask[..., 0] = False
            out.append(mask)
        else:
            out.append(torch.randn(shape))
    return out


def _construct(info, device=None):
    args = {**info.example["args"], **inferred_args(info, [tuple(s) for s in info.example["inputs"]])}
    if device is None:
        return info.cls(**args)
    with torch.device(device):
        return info.cls(**args)


@pytest.mark.parametrize("name", BLOCKS)
def test_block_declares_contract(name):
    info = BLOCKS[name]
    assert info.example, f"{name} declares no example"
    doc = info.doc
    assert doc and "->" in doc, f"{name}'s docstring has no shape contract (X -> Y)"
    for arg in info.args.values():
        assert arg.annotation is not None, f"{name}.{arg.name} is untyped"
        if not arg.required:
            assert check_type(arg.default, arg.annotation) or arg.default is None, \
                f"{name}.{arg.name}'s default does not match its type"


@pytest.mark.parametrize("name", BLOCKS)
def test_block_runs_and_meta_shape_matches_real(name):
    info = BLOCKS[name]
    real = _construct(info).eval()
    xs = _inputs(info)
    out = real(*xs)
    meta = _construct(info, "meta").eval()
    meta_out = meta(*[x.to("meta") for x in xs])
    outs = out if isinstance(out, tuple) else (out,)
    metas = meta_out if isinstance(meta_out, tuple) else (meta_out,)
    assert [o.shape for o in outs] == [m.shape for m in metas]
    if info.same_shape:  # the shape stage trusts this flag instead of running the block
        assert outs[0].shape == xs[0].shape
    assert all(torch.isfinite(o).all() for o in outs if o.is_floating_point())


@pytest.mark.parametrize("name", BLOCKS)
def test_block_materialises_from_meta_with_finite_values(name):
    info = BLOCKS[name]
    module = _construct(info, "meta").to_empty(device="cpu")
    with torch.no_grad():  # what to_empty leaves is arbitrary memory: make that visible
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                tensor.fill_(float("nan"))
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for key, tensor in module.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), f"{name}.{key} is not initialised"
    # buffers (running statistics, tracked averages, fixed tables) come out as constructed;
    # a spectral norm's power-iteration vectors are random by design
    direct = dict(_construct(info).named_buffers())
    for key, tensor in module.named_buffers():
        if tensor.is_floating_point() and ".parametrizations." not in key:
            torch.testing.assert_close(tensor, direct[key], msg=f"{name}.{key} is not reset")


@pytest.mark.parametrize("name", BLOCKS)
def test_block_has_schema_entry_matching_its_arguments(name):
    info = BLOCKS[name]
    schema = spec_schema()["$defs"][f"op_{name}"]
    declared = {a for a in info.args if a not in INFERRED}
    assert declared <= set(schema["properties"])


def test_block_arguments_match_torch_layers():
    # The wrappers are the torch layers themselves: same parameters, same maths.
    conv = BLOCKS["conv"].cls(in_size=3, out=4, k=3, stride=2, pad=1, bias=False)
    ref = torch.nn.Conv2d(3, 4, 3, 2, 1, bias=False)
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(1, 3, 9, 9)
    torch.testing.assert_close(conv(x), ref(x))
    ln = BLOCKS["layernorm2d"].cls(in_size=4, eps=1e-6)
    y = torch.randn(2, 4, 3, 3)
    want = torch.nn.functional.layer_norm(y.permute(0, 2, 3, 1), (4,), ln.weight, ln.bias, 1e-6)
    torch.testing.assert_close(ln(y), want.permute(0, 3, 1, 2))


def test_attention_matches_torch_multihead_attention():
    block = BLOCKS["attention"].cls(in_size=8, heads=2).eval()
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    ref.load_state_dict(block.state_dict())
    q, kv = torch.randn(2, 5, 8), torch.randn(2, 7, 8)
    torch.testing.assert_close(block(q), ref(q, q, q, need_weights=False)[0])
    torch.testing.assert_close(block(q, kv), ref(q, kv, kv, need_weights=False)[0])
