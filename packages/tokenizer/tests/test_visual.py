from __future__ import annotations

import dataclasses

import pytest
import torch

from avtok.kernels import FSQ
from avtok.media_io import AVClip, unpack, unpatchify
from avtok.tokenizer import TokenizerOutput, kl_divergence

ODD_SIZES = [(33, 50, 3), (1, 17, 31, 3), (5, 40, 70, 3), (9, 16, 16, 3)]


@pytest.mark.parametrize("shape", ODD_SIZES)
def test_patching_round_trip_odd_sizes(model, shape) -> None:
    x = torch.rand(shape) * 2 - 1
    (patches,) = unpack(model.patchify(x))
    assert torch.equal(unpatchify(patches), x)  # lossless patching
    out = model.encode(x)
    (layout,) = out.layouts
    (rec,) = model.decode(out)
    assert rec.shape == x.shape and rec.dtype == torch.float32
    t, h, w = layout.grid
    assert out.latents.shape == (t * h * w, 48) and out.coords.shape == (t * h * w, 4)
    if x.ndim == 3:  # images: one latent frame (zero-padded to 4 frames), t = z = 0
        assert t == 1 and out.coords[:, 0].eq(0).all()
    assert out.coords[:, 3].eq(0).all()  # z is off for images and video


def test_packed_batch_equals_each_sample_alone(model, concert, bunny_frame) -> None:
    small = concert[:5, :40, :70]
    items = [concert, bunny_frame, small]
    packed = model.encode(items)
    assert packed.num_samples == 3 and packed.semantic.shape == (3, 32)
    assert packed.latents.shape[0] == int(packed.cu_seqlens[-1])  # no padding to the largest sample
    recs = model.decode(packed)
    for i, x in enumerate(items):
        alone = model.encode(x)
        assert torch.allclose(packed.split(packed.latents)[i], alone.latents, atol=1e-5)
        assert torch.allclose(packed.semantic[i], alone.semantic[0], atol=1e-5)
        assert torch.allclose(recs[i], model.decode(alone)[0], atol=1e-5)


def test_attention_stays_inside_each_sample(model, concert, bunny_frame) -> None:
    a = model.encode([concert, bunny_frame])
    b = model.encode([concert, -bunny_frame])  # change sample 1 only
    assert torch.allclose(a.split(a.latents)[0], b.split(b.latents)[0], atol=1e-5)
    assert not torch.allclose(a.split(a.latents)[1], b.split(b.latents)[1], atol=1e-3)


def test_model_is_relative_position_invariant_without_abs_embedding(tiny, concert) -> None:
    model = tiny(pos_embed_grid=None)  # RoPE only: a global shift of (t, x, y, z) changes nothing
    packed = model.patchify(concert)
    ref = model.encode_packed(packed)
    packed.coords = packed.coords + torch.tensor([2, 3, 1, 4])
    shifted = model.encode_packed(packed)
    assert torch.allclose(shifted.latents, ref.latents, atol=5e-5)
    assert torch.allclose(shifted.semantic, ref.semantic, atol=5e-5)
    with_pos = tiny()  # the learnable 2D table is over (x, y): shifts in t and z stay invisible
    packed = with_pos.patchify(concert)
    ref = with_pos.encode_packed(packed)
    packed.coords = packed.coords + torch.tensor([5, 0, 0, 3])
    assert torch.allclose(with_pos.encode_packed(packed).latents, ref.latents, atol=5e-5)


def test_fsq_path_indices_and_decode_from_indices_alone(tiny, concert, bunny_frame) -> None:
    model = tiny(use_fsq=True)
    out = model.encode([concert, bunny_frame])
    assert out.indices.dtype == torch.int32 and out.indices.shape == (out.latents.shape[0], 8)
    assert int(out.indices.min()) >= 0 and int(out.indices.max()) < 4**6
    assert len(out.indices.unique()) > 10  # not collapsed to one code
    # FSQ quantizes the posterior mean (AToken): same indices as FSQ applied to out.mean.
    assert torch.equal(FSQ(levels=(4,) * 6, num_groups=8)(out.mean).indices, out.indices)
    only_indices = TokenizerOutput(latents=None, indices=out.indices, coords=out.coords,
                                   cu_seqlens=out.cu_seqlens, layouts=out.layouts, valid=out.valid)
    for a, b in zip(model.decode(only_indices), model.decode(out), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


@torch.no_grad()
def test_posterior_sampling_and_kl(model, concert) -> None:
    mean_out = model.encode(concert)
    torch.manual_seed(1)
    sampled = model.encode(concert, sample=True)
    assert torch.equal(sampled.mean, mean_out.mean) and torch.equal(mean_out.latents, mean_out.mean)
    eps = (sampled.latents - sampled.mean) / torch.exp(0.5 * sampled.logvar)  # must look like N(0, 1)
    assert abs(float(eps.mean())) < 0.1 and abs(float(eps.std()) - 1) < 0.1
    dist = torch.distributions
    p = dist.Normal(mean_out.mean, torch.exp(0.5 * mean_out.logvar))
    ref = dist.kl_divergence(p, dist.Normal(0.0, 1.0)).sum(-1).mean()
    assert torch.allclose(kl_divergence(mean_out.mean, mean_out.logvar), ref, rtol=1e-5)


def test_accepts_avclip_and_gradients_reach_the_encoder(model, concert) -> None:
    video = ((concert + 1) * 127.5).round().to(torch.uint8)
    clip = AVClip(video=video, fps=24.0, audio=torch.zeros(1, 1000), sample_rate=3000)
    assert torch.allclose(model.encode(clip).latents, model.encode(clip.video_float()).latents)
    out, recs = model.train()(concert[:4, :32, :32])
    (recs[0].square().mean() + out.semantic.square().mean()).backward()
    assert model.patch_embed.weight.grad.abs().sum() > 0 and model.semantic.pool.probe.grad is not None


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        (torch.zeros(4, 16, 16, 3, dtype=torch.uint8), TypeError, "video_float"),
        (torch.zeros(4, 16, 16, 4), ValueError, "channels last"),
        (torch.zeros(16, 3), ValueError, "expected an image"),
        ([], ValueError, "inputs is empty"),
    ],
)
def test_bad_inputs_name_the_fix(model, bad, error, match) -> None:
    with pytest.raises(error, match=match):
        model.encode(bad)


def test_decode_needs_latents_or_fsq_indices(model, concert) -> None:
    out = model.encode(concert[:4, :32, :32])
    with pytest.raises(ValueError, match="neither latents nor indices"):
        model.decode(dataclasses.replace(out, latents=None))
    with pytest.raises(ValueError, match="use_fsq=True"):
        model.decode(dataclasses.replace(out, latents=None, indices=torch.zeros(4, 8, dtype=torch.int32)))


@torch.no_grad()
def test_latent_dim_32_stage1_setting(tiny, bunny_frame) -> None:
    model = tiny(latent_dim=32)  # AToken stage 1 (images) uses 32 latent dims, 48 from stage 2 on
    out = model.encode(bunny_frame)
    assert out.latents.shape == (5 * 7, 32) and out.indices is None  # 72×100 → 5×7 patches
    assert model.decode(out)[0].shape == bunny_frame.shape
