"""N-D RoPE: relative-position property, naive per-axis complex implementation, bands and scales."""

from __future__ import annotations

import math

import pytest
import torch

from avtok.kernels import RopeND, rope_frequencies, rope_nd

CASES = [  # (axes_dims, head dim, start_dim): 1D, 3D video, 4D AToken (t, x, y, z), partial band
    ((32,), 32, 0),
    ((8, 12, 12), 32, 0),
    ((16, 16, 16, 16), 64, 0),
    ((8,), 24, 4),
]


def _naive(x, coords, axes_dims, theta, scales, start):
    """Per-axis complex rotation (interleaved pairs), float64."""
    out = x.double().clone()
    coords = coords if coords.ndim == 3 else coords.unsqueeze(0)
    off = start
    for a, d in enumerate(axes_dims):
        pairs = x[..., off:off + d].double().reshape(*x.shape[:-1], d // 2, 2).contiguous()
        band = torch.view_as_complex(pairs)
        freqs = scales[a] / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
        ang = coords[..., a].double().unsqueeze(-1) * freqs  # (B|1, L, d/2)
        rot = torch.polar(torch.ones_like(ang), ang).unsqueeze(1)  # (B|1, 1, L, d/2)
        out[..., off:off + d] = torch.view_as_real(band * rot).flatten(-2)
        off += d
    return out


def _inputs(axes_dims, dim, length=10, batch=2, seed=0, batched_coords=True):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, length, dim, generator=gen)
    shape = (batch, length, len(axes_dims)) if batched_coords else (length, len(axes_dims))
    coords = torch.randint(0, 40, shape, generator=gen).float() + torch.rand(shape, generator=gen)
    return x, coords


@pytest.mark.parametrize(("axes_dims", "dim", "start"), CASES)
@pytest.mark.parametrize("batched_coords", [True, False])
def test_matches_naive_per_axis_implementation(axes_dims, dim, start, batched_coords):
    x, coords = _inputs(axes_dims, dim, batched_coords=batched_coords)
    scales = [0.5 + 0.25 * a for a in range(len(axes_dims))]
    out = rope_nd(x, coords, axes_dims=axes_dims, theta=500.0, scale_per_axis=scales, start_dim=start)
    expected = _naive(x, coords, axes_dims, 500.0, scales, start)
    torch.testing.assert_close(out, expected.float(), rtol=1e-5, atol=1e-5)
    stop = start + sum(axes_dims)
    assert torch.equal(out[..., :start], x[..., :start]) and torch.equal(out[..., stop:], x[..., stop:])


@pytest.mark.parametrize(("axes_dims", "dim", "start"), CASES)
def test_scores_depend_only_on_coordinate_differences(axes_dims, dim, start):
    q, coords = _inputs(axes_dims, dim, seed=1)
    k, _ = _inputs(axes_dims, dim, seed=2)
    rope = RopeND(axes_dims, start_dim=start)
    coords = coords.double()  # float64 coordinates: an fp32 shift by 1000 would itself round
    shift = torch.tensor([37.0, -5.5, 1000.25, 3.0][: len(axes_dims)], dtype=torch.float64)
    scores = rope(q, coords) @ rope(k, coords).mT  # (B, H, L, L)
    shifted = rope(q, coords + shift) @ rope(k, coords + shift).mT
    torch.testing.assert_close(shifted, scores, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(scores, q @ k.mT, atol=1e-2)  # the rotation did something


def test_one_dim_closed_form_and_norm():
    x = torch.tensor([1.0, 0.0, 1.0, 0.0]).view(1, 1, 1, 4).repeat(1, 1, 3, 1)
    pos = torch.tensor([[0.0], [1.0], [2.0]])
    out = rope_nd(x, pos, axes_dims=(4,), theta=100.0)
    for p in range(3):  # pair 0 turns by p rad, pair 1 by p / 10 rad (100 ** (-2/4))
        expected = [math.cos(p), math.sin(p), math.cos(p / 10), math.sin(p / 10)]
        torch.testing.assert_close(out[0, 0, p], torch.tensor(expected), rtol=1e-6, atol=1e-6)
    x, coords = _inputs((8, 12, 12), 40)
    out = rope_nd(x, coords, axes_dims=(8, 12, 12))
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))


def test_axis_scale_equals_scaled_coordinates():
    # Ovi: audio's temporal frequencies scaled to the video latent rate == stretched positions.
    x, coords = _inputs((16,), 16, batched_coords=False)
    s = 31 / 157
    a = rope_nd(x, coords, axes_dims=(16,), scale_per_axis=[s])
    b = rope_nd(x, coords * s, axes_dims=(16,))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_module_matches_function_and_survives_half():
    x, coords = _inputs((16, 16, 16, 16), 64)
    rope = RopeND((16, 16, 16, 16), theta=10000.0)
    torch.testing.assert_close(rope(x, coords), rope_nd(x, coords, axes_dims=(16, 16, 16, 16)))
    rope.half()
    out = rope(x.half(), coords)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), rope_nd(x, coords, axes_dims=(16,) * 4), rtol=2e-3, atol=2e-3)
    inv_freq, axis = rope_frequencies((4, 2), theta=100.0)
    assert inv_freq.tolist() == [1.0, 0.1, 1.0] and axis.tolist() == [0, 0, 1]


def test_errors_name_the_input():
    x, coords = _inputs((8,), 16)
    with pytest.raises(ValueError, match="even"):
        rope_nd(x, coords, axes_dims=(7,))
    with pytest.raises(ValueError, match="exceeds head dim"):
        rope_nd(x, coords, axes_dims=(8,), start_dim=12)
    with pytest.raises(ValueError, match="A=len"):
        rope_nd(x, coords, axes_dims=(4, 4))
    with pytest.raises(ValueError, match="one value per axis"):
        rope_nd(x, coords, axes_dims=(8,), scale_per_axis=[1.0, 2.0])
