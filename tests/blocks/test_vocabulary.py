"""The MobileNet / ShuffleNet / Swin vocabulary (relu6, hardtanh, clamp, hardsigmoid, hardswish,
mul_scalar, add_scalar, roll, channel_shuffle), each built from a one-node spec and checked against
the torch (or torchvision) function it stands for; and the errors for arguments that cannot work."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.shufflenetv2 import channel_shuffle as tv_channel_shuffle

from engine.blocks.registry import lookup
from engine.compiler.ir import SpecError

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is fastest

SHAPE = [2, 6, 4, 5]


def one_node(build_text, node: str, shape=None):
    """The model of a spec with one input `x` and the one node `node` (a YAML flow mapping)."""
    return build_text(f"""
        name: vocab
        inputs: {{x: {shape or SHAPE}}}
        graph:
          y: {node}
        """).eval()


def run(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x.clone())  # a clone: the in-place variants may overwrite their input


# (node, the torch reference) for the element-wise ops
ELEMENTWISE = [
    ("relu6", nn.ReLU6()),
    ("{op: relu6, inplace: true}", nn.ReLU6(inplace=True)),
    ("hardtanh", nn.Hardtanh()),
    ("{op: hardtanh, min: -2.5, max: 0.5}", nn.Hardtanh(-2.5, 0.5)),
    ("{op: hardtanh, min: 0, max: 6}", nn.ReLU6()),
    ("{op: clamp, min: -0.5}", lambda x: torch.clamp(x, min=-0.5)),
    ("{op: clamp, max: 0.25}", lambda x: torch.clamp(x, max=0.25)),
    ("{op: clamp, min: -1, max: 2}", lambda x: torch.clamp(x, -1, 2)),
    ("hardsigmoid", nn.Hardsigmoid()),
    ("{op: hardsigmoid, inplace: true}", F.hardsigmoid),
    ("hardswish", nn.Hardswish()),
    ("{op: hardswish, inplace: true}", F.hardswish),
    ("{op: mul_scalar, value: 0.5}", lambda x: x * 0.5),
    ("{op: mul_scalar, value: -3}", lambda x: torch.mul(x, -3)),
    ("{op: add_scalar, value: 3.0}", lambda x: x + 3.0),
    ("{op: add_scalar, value: -1}", lambda x: torch.add(x, -1)),
]


@pytest.mark.parametrize("node,ref", ELEMENTWISE, ids=[n for n, _ in ELEMENTWISE])
def test_elementwise_ops_equal_torch(build_text, node, ref):
    model = one_node(build_text, node)
    x = 4 * torch.randn(SHAPE)  # wide enough to cross every kink (-3, 0, 3, 6)
    out = run(model, x)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref(x.clone()), rtol=0, atol=0)
    assert not list(model.parameters())


@pytest.mark.parametrize("op", ["relu6", "hardsigmoid", "hardswish"])
def test_inplace_variants_overwrite_their_input_like_torch(build_text, op):
    model = one_node(build_text, f"{{op: {op}, inplace: true}}")
    x = 4 * torch.randn(SHAPE)
    y = x.clone()
    with torch.no_grad():
        out = model(y)
    assert out.data_ptr() == y.data_ptr()
    torch.testing.assert_close(y, getattr(F, op)(x), rtol=0, atol=0)


def test_mul_scalar_is_scale_under_the_name_value(build_text):
    x = torch.randn(SHAPE)
    mul = one_node(build_text, "{op: mul_scalar, value: 0.1}")
    scale = one_node(build_text, "{op: scale, factor: 0.1}")
    torch.testing.assert_close(run(mul, x), run(scale, x), rtol=0, atol=0)
    assert issubclass(lookup("mul_scalar").cls, lookup("scale").cls)


ROLLS = [  # (shifts, dims) as YAML writes them
    (1, 1), (-2, 3), (2, -1), ([-1, -1], [2, 3]), ([3, -2], [1, 3]), ([1], [2]),
]


@pytest.mark.parametrize("shifts,dims", ROLLS)
def test_roll_equals_torch_roll(build_text, shifts, dims):
    model = one_node(build_text, f"{{op: roll, shifts: {shifts}, dims: {dims}}}")
    x = torch.randn(SHAPE)
    want = torch.roll(x, tuple(shifts) if isinstance(shifts, list) else shifts,
                      tuple(dims) if isinstance(dims, list) else dims)
    torch.testing.assert_close(run(model, x), want, rtol=0, atol=0)


def test_roll_and_back_is_swins_shifted_window_round_trip(build_text):
    model = build_text("""
        name: swin_shift
        inputs: {x: [2, 8, 8, 3]}
        graph:
          shift: {op: roll, shifts: [-3, -3], dims: [1, 2]}
          back: {op: roll, shifts: [3, 3], dims: [1, 2]}
        """).eval()
    x = torch.randn(2, 8, 8, 3)
    assert torch.equal(run(model, x), x)
    torch.testing.assert_close(run(model.shift, x), torch.roll(x, shifts=(-3, -3), dims=(1, 2)))


@pytest.mark.parametrize("shape,groups", [([2, 6, 4, 5], 2), ([2, 6, 4, 5], 3), ([1, 12, 3, 3], 4),
                                          ([2, 6, 4, 5], 1), ([2, 6, 4, 5], 6)])
def test_channel_shuffle_equals_torchvision_and_torch(build_text, shape, groups):
    model = one_node(build_text, f"{{op: channel_shuffle, groups: {groups}}}", shape)
    x = torch.randn(shape)
    out = run(model, x)
    torch.testing.assert_close(out, tv_channel_shuffle(x, groups), rtol=0, atol=0)
    torch.testing.assert_close(out, nn.ChannelShuffle(groups)(x), rtol=0, atol=0)
    assert out.is_contiguous()


def test_channel_shuffle_interleaves_the_groups(build_text):
    model = one_node(build_text, "{op: channel_shuffle, groups: 2}", [1, 6, 1, 1])
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert run(model, x).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_channel_shuffle_of_a_sequence(build_text):
    model = one_node(build_text, "{op: channel_shuffle, groups: 3}", [2, 6, 7])
    x = torch.randn(2, 6, 7)
    torch.testing.assert_close(run(model, x), nn.ChannelShuffle(3)(x), rtol=0, atol=0)


def test_channel_shuffle_with_indivisible_channels_is_a_located_spec_error(build_text):
    with pytest.raises(SpecError) as err:
        build_text("""
            name: bad_shuffle
            inputs: {x: [B, 6, 4, 4]}
            graph:
              shuffle_me: {op: channel_shuffle, groups: 4}
            """)
    text = str(err.value)
    assert "shuffle_me" in text and "channel_shuffle" in text
    assert "6 channels are not divisible by groups = 4" in text


def test_clamp_needs_a_bound(build_text):
    with pytest.raises(SpecError) as err:
        one_node(build_text, "{op: clamp}")
    text = str(err.value)
    assert "[y]" in text and "clamp needs a bound" in text
    with pytest.raises(SpecError, match="clamp needs a bound"):
        one_node(build_text, "{op: clamp, min: null, max: null}")


@pytest.mark.parametrize("node,message", [
    ("{op: hardtanh, min: 1, max: 1}", "must be greater than min"),
    ("{op: roll, shifts: [1, 2], dims: 1}", "one shift per dim"),
    ("{op: roll, shifts: [], dims: []}", "one shift per dim"),
    ("{op: roll, shifts: 1, dims: 4}", "Dimension out of range"),
    ("{op: channel_shuffle, groups: 0}", "must be positive"),
])
def test_arguments_that_cannot_work_are_spec_errors(build_text, node, message):
    with pytest.raises(SpecError, match=message):
        one_node(build_text, node)


@pytest.mark.parametrize("name,args,label", [
    ("relu6", {}, "ReLU6"), ("hardtanh", {"min": -2.0, "max": 2.0}, "hardtanh [-2, 2]"),
    ("clamp", {"min": 0.0}, "clamp [0, inf]"), ("hardsigmoid", {}, "hard sigmoid"),
    ("hardswish", {}, "hard swish"), ("mul_scalar", {"value": 0.5}, "x 0.5"),
    ("add_scalar", {"value": -1.0}, "+ -1"), ("roll", {"shifts": [-3, -3], "dims": [1, 2]},
                                             "roll [-3, -3] on dims [1, 2]"),
    ("channel_shuffle", {"groups": 2}, "channel shuffle, 2 groups"),
])
def test_diagram_labels(name, args, label):
    assert lookup(name).cls(**args).label() == label
