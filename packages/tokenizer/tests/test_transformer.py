from __future__ import annotations

import pytest
import torch

from avtok.tokenizer import KVCache, LayerKV, Transformer, TransformerConfig

CFG = TransformerConfig(dim=64, depth=2, heads=4, mlp_hidden=96)


def _tokens(n: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, CFG.dim, generator=g)  # (B, L, D)
    coords = torch.randint(0, 6, (n, 4), generator=g)  # (L, 4) (t, x, y, z)
    return x, coords


def test_rope_relative_position_invariance() -> None:
    torch.manual_seed(0)
    net = Transformer(CFG).eval()
    x, coords = _tokens()
    shift = torch.tensor([3, 5, 7, 2])  # a shift on every axis, z included
    ref = net(x, coords)
    assert torch.allclose(net(x, coords + shift), ref, atol=2e-5)
    # ...but positions matter: moving some tokens relative to the others changes the output.
    moved = coords.clone()
    moved[:5, 1] += 3
    assert (net(x, moved) - ref).abs().max() > 1e-2


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_every_axis_is_rotated(axis: int) -> None:
    torch.manual_seed(0)
    net = Transformer(CFG).eval()
    x, coords = _tokens()
    moved = coords.clone()
    moved[:8, axis] += 1
    assert (net(x, moved) - net(x, coords)).abs().max() > 1e-3


def test_packed_cu_seqlens_is_block_diagonal() -> None:
    torch.manual_seed(0)
    net = Transformer(CFG).eval()
    xa, ca = _tokens(10, seed=1)
    xb, cb = _tokens(14, seed=2)
    cu = torch.tensor([0, 10, 24], dtype=torch.int32)
    packed = net(torch.cat([xa, xb], 1), torch.cat([ca, cb]), cu_seqlens=cu)
    assert torch.allclose(packed[:, :10], net(xa, ca), atol=1e-5)
    assert torch.allclose(packed[:, 10:], net(xb, cb), atol=1e-5)


def test_layer_kv_keeps_a_window_of_tiles() -> None:
    kv = LayerKV(max_tiles=2)
    for i in range(4):
        k = torch.full((1, 1, 3, 2), float(i))
        k_all, _ = kv.extend(k, k)
        assert k_all.shape[2] == 3 * min(i + 1, 3)  # own tile + at most 2 cached
    assert [int(k[0, 0, 0, 0]) for k in kv.keys] == [2, 3] and kv.num_tokens == 6
    with pytest.raises(ValueError, match="KVCache.for_depth"):
        Transformer(CFG)(torch.zeros(1, 2, CFG.dim), torch.zeros(2, 4, dtype=torch.long),
                         cache=KVCache.for_depth(CFG.depth + 1))


def test_torch_compile_fullgraph_matches_eager() -> None:
    torch.manual_seed(0)
    net = Transformer(CFG).eval()
    x, coords = _tokens()
    band = torch.ones(1, 1, 24, 24, dtype=torch.bool).tril(diagonal=8)  # (1, 1, L, L) banded mask
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)  # no graph break in the blocks
    with torch.no_grad():
        assert torch.allclose(compiled(x, coords), net(x, coords), atol=1e-5)
        assert torch.allclose(compiled(x, coords, mask=band), net(x, coords, mask=band), atol=1e-5)
