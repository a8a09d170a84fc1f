"""Attention dispatch: SDPA and FlexAttention against an explicit-softmax oracle on CPU."""

from __future__ import annotations

import pytest
import torch

from avtok.kernels import attention, attention_reference, build_attention_mask

BACKENDS = ["torch", "flex"]
TOL = {"rtol": 1e-5, "atol": 2e-6}


def _qkv(b=2, h=3, lq=11, lk=11, d=16, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, n, d, generator=gen, dtype=dtype) for n in (lq, lk, lk))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("lq", [11, 4, 1])  # 4 / 1: KV-cache decoding (queries at the end of the keys)
def test_dense_matches_reference(backend, causal, lq):
    q, k, v = _qkv(lq=lq, lk=11)
    out = attention(q, k, v, causal=causal, backend=backend)
    torch.testing.assert_close(out, attention_reference(q, k, v, causal=causal), **TOL)


@pytest.mark.parametrize("backend", BACKENDS)
def test_kv_cache_causal_equals_last_rows_of_full_causal(backend):
    q, k, v = _qkv(lq=13, lk=13)
    full = attention(q, k, v, causal=True, backend=backend)
    tail = attention(q[:, :, -5:], k, v, causal=True, backend=backend)
    torch.testing.assert_close(tail, full[:, :, -5:], **TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("causal", [False, True])
def test_padding_mask_matches_reference(backend, causal):
    q, k, v = _qkv()
    keep = torch.ones(2, 1, 1, 11, dtype=torch.bool)
    keep[1, ..., 7:] = False  # second item padded after 7 keys
    out = attention(q, k, v, mask=keep, causal=causal, backend=backend)
    torch.testing.assert_close(out, attention_reference(q, k, v, mask=keep, causal=causal), **TOL)
    # padded keys have no influence at all
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 7:], v2[1, :, 7:] = 100.0, -100.0
    torch.testing.assert_close(attention(q, k2, v2, mask=keep, causal=causal, backend=backend), out, **TOL)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("causal", [False, True])
def test_packed_varlen_equals_separate_sequences(backend, causal):
    lengths = [5, 1, 9, 3]
    cu = torch.tensor([0, 5, 6, 15, 18], dtype=torch.int32)
    q, k, v = _qkv(b=1, lq=18, lk=18, seed=3)
    out = attention(q, k, v, cu_seqlens=cu, causal=causal, backend=backend)
    start = 0
    for n in lengths:
        sl = slice(start, start + n)
        alone = attention_reference(q[:, :, sl], k[:, :, sl], v[:, :, sl], causal=causal)
        torch.testing.assert_close(out[:, :, sl], alone, **TOL)
        start += n


def test_reference_is_plain_softmax():
    q, k, v = _qkv(b=1, h=1, lq=2, lk=3, d=4)
    scores = (q[0, 0] @ k[0, 0].T) / 2.0
    expected = torch.softmax(scores, -1) @ v[0, 0]
    torch.testing.assert_close(attention_reference(q, k, v)[0, 0], expected)


def test_mask_builder_bottom_right_causal():
    m = build_attention_mask(2, 4, causal=True)
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]


def test_bf16_inputs_keep_dtype():
    q, k, v = _qkv(dtype=torch.bfloat16)
    out = attention(q, k, v, causal=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), attention_reference(q, k, v, causal=True).float(),
                               rtol=2e-2, atol=2e-2)


def test_errors_name_the_input():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"\(B, H, L, D\)"):
        attention(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="Lq=11 > Lk=4"):
        attention(q, k[:, :, :4], v[:, :, :4], causal=True)
    with pytest.raises(ValueError, match="B=1"):
        attention(q, k, v, cu_seqlens=torch.tensor([0, 11], dtype=torch.int32))
    with pytest.raises(TypeError, match="bool"):
        attention(q, k, v, mask=torch.zeros(11, 11))
    with pytest.raises(ValueError, match="unknown backend"):
        attention(q, k, v, backend="xformers")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("backend", ["torch", "flex", "flash"])
def test_gpu_packed_paths_agree(backend):
    if backend == "flash":
        pytest.importorskip("flash_attn")
    cu = torch.tensor([0, 64, 70, 200], dtype=torch.int32, device="cuda")
    q, k, v = (t.cuda().to(torch.bfloat16) for t in _qkv(b=1, lq=200, lk=200, d=64))
    out = attention(q, k, v, cu_seqlens=cu, causal=True, backend=backend)
    ref = attention_reference(q, k, v, cu_seqlens=cu, causal=True)
    torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)


def test_packed_attention_compiles_without_graph_breaks():
    # _check's host-side cu_seqlens validation is skipped while compiling, segment_ids gets its size
    # from the shape: fullgraph=True fails on any data-dependent break (the old int(cu_seqlens[-1])).
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 10, 16) for _ in range(3))
    cu_seqlens = torch.tensor([0, 6, 10], dtype=torch.int32)
    def packed(q, k, v, cu):
        return attention(q, k, v, cu_seqlens=cu, causal=True, backend="torch")

    compiled = torch.compile(packed, fullgraph=True, backend="eager")
    out = compiled(q, k, v, cu_seqlens)
    ref = attention_reference(q, k, v, cu_seqlens=cu_seqlens, causal=True)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_softcap_caps_logits_before_the_softmax() -> None:
    """softcap s: scores -> s * tanh(scores / s) (flash-attn's option; AToken's Gaussian decoder uses 30)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 5, 8) * 4 for _ in range(3))  # large logits: the cap matters
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / 8**0.5
    want = torch.einsum("bhqk,bhkd->bhqd", torch.softmax(3.0 * torch.tanh(scores / 3.0), -1), v)
    got = attention(q, k, v, softcap=3.0)
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, attention(q, k, v), atol=1e-2)
    mask = torch.tensor([True, True, False, True, False])[None, None, None]  # (1, 1, 1, Lk)
    assert torch.allclose(attention(q, k, v, mask=mask, softcap=3.0),
                          attention_reference(q, k, v, mask=mask, softcap=3.0), atol=1e-6)
