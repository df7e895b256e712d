"""Latent-variable blocks (blocks/latent.py) against plain-torch oracles: vector quantizer,
reparameterize; and a spec that reads the quantizer's three outputs."""

from __future__ import annotations

import math

import torch

import engine
from engine.blocks.latent import Reparameterize, VectorQuantizer
from engine.blocks.registry import lookup


def test_vq_picks_nearest_code_and_quantized_is_the_code():
    vq = VectorQuantizer(in_size=8, codes=16)
    torch.nn.init.normal_(vq.codebook.weight)
    x = torch.randn(2, 8, 4, 4)
    quantized, indices, loss = vq(x)
    flat = x.permute(0, 2, 3, 1).reshape(-1, 8)
    want = torch.cdist(flat, vq.codebook.weight).argmin(1).reshape(2, 4, 4)
    assert indices.dtype == torch.long and indices.shape == (2, 4, 4)
    torch.testing.assert_close(indices, want)
    q = vq.codebook.weight[indices].permute(0, 3, 1, 2)
    torch.testing.assert_close(quantized, q)
    assert loss.dim() == 0


def test_vq_codebook_init_is_uniform_in_range():
    vq = VectorQuantizer(in_size=4, codes=10)
    assert vq.codebook.weight.abs().max() <= 1 / 10
    vq.codebook.weight.data.normal_()
    vq.reset_parameters()
    assert vq.codebook.weight.abs().max() <= 1 / 10


def test_vq_loss_formula_and_straight_through_gradient():
    vq = VectorQuantizer(in_size=8, codes=16, beta=0.3)
    torch.nn.init.normal_(vq.codebook.weight)
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    quantized, indices, loss = vq(x)
    q = vq.codebook.weight[indices].permute(0, 3, 1, 2)
    want = ((x.detach() - q) ** 2).mean() + 0.3 * ((x - q.detach()) ** 2).mean()
    torch.testing.assert_close(loss, want)
    # straight-through: d(sum quantized)/dx is the identity
    (grad,) = torch.autograd.grad(quantized.sum(), x)
    torch.testing.assert_close(grad, torch.ones_like(x))
    # the loss's gradients: codebook term to the codebook, commitment term to the encoder
    x.grad = None
    loss.backward()
    torch.testing.assert_close(x.grad, 0.3 * 2 * (x - q).detach() / x.numel())
    assert vq.codebook.weight.grad is not None and vq.codebook.weight.grad.abs().sum() > 0


def test_vq_without_straight_through_returns_q_itself():
    vq = VectorQuantizer(in_size=8, codes=16, straight_through=False)
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    quantized, indices, _ = vq(x)
    torch.testing.assert_close(quantized, vq.codebook.weight[indices].permute(0, 3, 1, 2))
    quantized.sum().backward()
    assert x.grad is None  # no path from the output to the encoder
    assert vq.codebook.weight.grad.abs().sum() > 0


def test_reparameterize_eval_returns_mean():
    r = Reparameterize().eval()
    mean, logvar = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(r(mean, logvar), mean)


def test_reparameterize_train_sample_statistics():
    r = Reparameterize().train()
    mean = torch.tensor([[1.0, -2.0, 0.5]])
    logvar = torch.tensor([[0.0, math.log(4.0), math.log(0.25)]])
    n = 200_000
    z = r(mean.expand(n, 3), logvar.expand(n, 3))
    torch.testing.assert_close(z.mean(0), mean[0], atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), logvar.exp()[0], atol=0.05, rtol=0.02)


def test_registry_entries():
    assert lookup("vector_quantizer").outputs == ("quantized", "indices", "loss")
    assert lookup("vector_quantizer").in_dim == 1
    assert lookup("reparameterize").inputs == 2
    for name in ("vector_quantizer", "reparameterize", "time_embedding", "one_hot"):
        assert lookup(name).cls.label is not None


def test_spec_with_vq_outputs(spec_file):
    path = spec_file("""
        inputs: {x: [B, 8, 4, 4]}
        graph:
          enc: {op: conv, out: 8, k: 1}
          vq: {op: vector_quantizer, codes: 16, beta: 0.25}
          dec: {op: conv, out: 8, k: 1, in: vq.quantized}
        outputs: {recon: dec, codes: vq.indices, vq_loss: vq.loss}
    """)
    m = engine.build(path)
    assert m.vq.codebook.weight.shape == (16, 8)
    assert m.vq.codebook.weight.abs().max() <= 1 / 16  # the engine's init keeps the uniform codebook
    x = torch.randn(2, 8, 4, 4)
    out = m(x)
    assert set(out) == {"recon", "codes", "vq_loss"}
    assert out["recon"].shape == (2, 8, 4, 4)
    assert out["codes"].shape == (2, 4, 4) and out["codes"].dtype == torch.long
    assert out["vq_loss"].dim() == 0
    quantized, indices, loss = m.vq(m.enc(x))
    torch.testing.assert_close(out["codes"], indices)
    torch.testing.assert_close(out["vq_loss"], loss)
    torch.testing.assert_close(out["recon"], m.dec(quantized))
    (out["recon"].sum() + out["vq_loss"]).backward()
    assert m.enc.weight.grad is not None
