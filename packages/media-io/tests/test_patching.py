"""patchify / unpatchify identity, AToken coordinates, padding masks, packing and padded batches."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avtok.media_io import MediaError, pack, pad_batch, patchify, unpack, unpad_batch, unpatchify

dims = st.integers(min_value=1, max_value=23)
patches = st.tuples(st.integers(1, 4), st.integers(1, 8), st.integers(1, 8))


@settings(max_examples=150, deadline=None)
@given(t=dims, h=dims, w=dims, c=st.sampled_from([1, 3]), patch=patches)
def test_video_identity(t, h, w, c, patch):
    x = torch.randn(t, h, w, c)
    p = patchify(x, patch=patch)
    gt, gh, gw = p.grid
    assert p.features.shape == (gt * gh * gw, patch[0] * patch[1] * patch[2] * c)
    assert (gt - 1) * patch[0] < t <= gt * patch[0]  # padded up, never cropped
    assert int(p.valid.sum()) == t * h * w
    assert torch.equal(unpatchify(p), x)
    # padding is zeros: the features sum to the input's sum
    assert torch.allclose(p.features.sum(), x.sum(), atol=1e-3)


@settings(max_examples=60, deadline=None)
@given(h=dims, w=dims, patch=patches)
def test_image_and_mel_identity(h, w, patch):
    img = torch.randint(0, 256, (h, w, 3), dtype=torch.uint8)
    p = patchify(img, patch=patch)
    assert p.modality == "image" and p.grid[0] == 1 and torch.equal(unpatchify(p), img)
    assert int(p.valid.sum()) == h * w  # the t-1 zero frames are marked invalid
    mel = torch.randn(h, w)
    q = patchify(mel, patch=patch)
    assert q.modality == "audio" and q.channels == 1 and torch.equal(unpatchify(q), mel)


def test_layout_coords_and_values():
    x = torch.arange(2 * 4 * 6 * 1, dtype=torch.float32).reshape(2, 4, 6, 1)  # (T, H, W, C)
    p = patchify(x, patch=(2, 2, 3))
    assert p.grid == (1, 2, 2)
    # token order: t, then row y, then column x; coords are (t, x, y, z) with z = 0
    assert p.coords.tolist() == [[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0]]
    # token 1 = rows 0-1, columns 3-5, both frames, in (dt, dh, dw, c) order
    expected = torch.stack([x[dt, dh, 3 + dw, 0] for dt in range(2) for dh in range(2) for dw in range(3)])
    assert torch.equal(p.features[1], expected)
    assert p.valid.all()


def test_image_is_zero_padded_to_t_frames():
    img = torch.rand(32, 32, 3)
    p = patchify(img, patch=(4, 16, 16))
    assert p.grid == (1, 2, 2) and p.features.shape == (4, 4 * 16 * 16 * 3)
    blocks = p.features.reshape(4, 4, 16, 16, 3)
    assert torch.equal(blocks[:, 1:], torch.zeros_like(blocks[:, 1:]))
    assert p.valid.reshape(4, 4, 16, 16)[:, 0].all() and not p.valid.reshape(4, 4, 16, 16)[:, 1:].any()
    assert (p.coords[:, 0] == 0).all() and (p.coords[:, 3] == 0).all()


def test_odd_size_valid_mask_marks_border():
    p = patchify(torch.ones(4, 17, 33, 3), patch=(4, 16, 16))
    assert p.grid == (1, 2, 3)
    valid = p.valid.reshape(2, 3, 4, 16, 16)  # (gh, gw, t, ph, pw)
    assert valid[0, 0].all()
    assert valid[1, 0, :, 0].all() and not valid[1, 0, :, 1:].any()  # row 16 real, rows 17..31 padding
    assert valid[0, 2, :, :, 0].all() and not valid[0, 2, :, :, 1:].any()  # column 32 real


def test_unpatchify_model_output_and_errors():
    x = torch.rand(5, 20, 12, 3)
    p = patchify(x, patch=(2, 8, 8))
    doubled = unpatchify(p, p.features * 2)
    assert torch.allclose(doubled, 2 * x)
    with pytest.raises(MediaError, match="features must be"):
        unpatchify(p, p.features[:-1])
    with pytest.raises(MediaError, match="patch must be"):
        patchify(x, patch=(0, 8, 8))
    with pytest.raises(MediaError, match="modality"):
        patchify(torch.rand(2, 2, 2, 2, 2))


def _samples():
    return [
        patchify(torch.rand(8, 32, 48, 3), patch=(4, 16, 16)),
        patchify(torch.rand(20, 17, 3), patch=(4, 16, 16)),
        patchify(torch.rand(1, 16, 16, 3), patch=(4, 16, 16)),
    ]


def test_pack_unpack():
    items = _samples()
    packed = pack(items)
    lengths = [p.num_tokens for p in items]
    assert packed.cu_seqlens.tolist() == [0, lengths[0], lengths[0] + lengths[1], sum(lengths)]
    assert packed.cu_seqlens.dtype == torch.int32 and packed.max_seqlen == max(lengths)
    assert packed.sample_ids.tolist() == sum(([i] * n for i, n in enumerate(lengths)), [])
    assert packed.features.shape == (sum(lengths), 4 * 16 * 16 * 3) and packed.coords.shape == (
        sum(lengths),
        4,
    )
    for orig, back in zip(items, unpack(packed), strict=True):
        assert torch.equal(unpatchify(back), unpatchify(orig))
        assert torch.equal(back.coords, orig.coords) and torch.equal(back.valid, orig.valid)
    halves = unpack(packed, packed.features * 0.5)
    assert torch.allclose(unpatchify(halves[1]), unpatchify(items[1]) * 0.5)


def test_pad_batch_and_unpad():
    items = _samples()
    padded = pad_batch(items)
    lengths = [p.num_tokens for p in items]
    assert padded.features.shape == (3, max(lengths), 4 * 16 * 16 * 3)
    assert padded.mask.sum(1).tolist() == lengths
    for i, n in enumerate(lengths):
        assert torch.equal(padded.features[i, :n], items[i].features)
        assert not padded.features[i, n:].any() and not padded.mask[i, n:].any()
    for orig, back in zip(items, unpad_batch(padded), strict=True):
        assert torch.equal(unpatchify(back), unpatchify(orig))
    with pytest.raises(MediaError, match="different token sizes"):
        pad_batch([items[0], patchify(torch.rand(16, 16), patch=(4, 16, 16))])
    with pytest.raises(MediaError, match="no samples"):
        pack([])
