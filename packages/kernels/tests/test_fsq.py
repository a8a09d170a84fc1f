"""FSQ: every backend against the plain-torch reference, exact inverses, closed forms."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avtok.kernels import FSQ, BackendUnavailableError, codes_to_indices, fsq, fsq_reference, indices_to_codes
from avtok.kernels.fsq_tables import FSQ_EPS, fsq_tables

LEVEL_MIXES = [(8, 5, 5, 5), (4,) * 6, (8, 8, 8, 5, 5, 5)]
# The Hatch matrix sets AVTOK_KERNELS_BACKEND; without it every CPU backend is checked.
_ENV = os.environ.get("AVTOK_KERNELS_BACKEND")
CPU_BACKENDS = [_ENV] if _ENV in ("torch", "numba") else ["torch", "numba"]


def _boundary_values(levels: tuple[int, ...]) -> np.ndarray:
    """(2 * (Lmax - 1), d) fp32: each threshold T (rounded up to fp32) and the fp32 just below it."""
    thr = fsq_tables(levels).thresholds  # (d, Lmax-1), NaN padding
    finite = np.where(np.isfinite(thr), thr, 0.0).astype(np.float32)
    below = np.nextafter(finite, np.float32(-np.inf))
    return np.concatenate([finite.T, below.T], axis=0)


def _latent(levels, groups, shape, dtype, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(*shape, groups * len(levels), generator=gen) * 1.5
    flat = z.view(-1, groups * len(levels))
    edges = torch.from_numpy(np.tile(_boundary_values(levels), (1, groups)))  # rounding boundaries
    flat[: edges.shape[0]] = edges
    flat[-1, 0], flat[-1, 1] = float("inf"), float("-inf")
    return z.to(dtype)


@pytest.mark.parametrize("levels", LEVEL_MIXES)
def test_thresholds_are_exact_rounding_boundaries(levels):
    # At each fp32 threshold the reference (float64 tanh) digit steps up by exactly one.
    edges = torch.from_numpy(_boundary_values(levels))  # (2T, d)
    n_thr = edges.shape[0] // 2
    out = fsq_reference(edges, levels)
    digits = []
    for idx in out.indices[:, 0].tolist():
        digits.append([(idx // int(b)) % lv for b, lv in zip(fsq_tables(levels).basis, levels, strict=True)])
    digits = np.asarray(digits)  # (2T, d)
    for j, level in enumerate(levels):
        for t in range(level - 1):
            assert digits[t, j] == t + 1 and digits[n_thr + t, j] == t, (levels, j, t)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("levels", LEVEL_MIXES)
def test_backend_matches_reference(backend, dtype, levels):
    groups = 3
    z = _latent(levels, groups, (5, 7), dtype).requires_grad_()
    z_ref = z.detach().clone().requires_grad_()
    out = fsq(z, levels, num_groups=groups, backend=backend)
    ref = fsq_reference(z_ref, levels, num_groups=groups)
    assert out.codes.dtype == dtype and out.indices.dtype == torch.int32
    assert out.codes.shape == z.shape and out.indices.shape == (5, 7, groups)
    torch.testing.assert_close(out.codes, ref.codes, rtol=0, atol=0)
    assert torch.equal(out.indices, ref.indices)
    grad = torch.randn(z.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    (g,) = torch.autograd.grad(out.codes, z, grad)
    (g_ref,) = torch.autograd.grad(ref.codes, z_ref, grad)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-2, "atol": 1e-3}
    torch.testing.assert_close(g, g_ref, **tol)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradient_is_derivative_of_bound(backend):
    levels = (8, 5, 5, 5)
    z = torch.linspace(-3, 3, 4 * 50).reshape(50, 4).requires_grad_()
    out = fsq(z, levels, backend=backend)
    (g,) = torch.autograd.grad(out.codes.sum(), z)
    lv = torch.tensor(levels, dtype=torch.float64)
    half_l = (lv - 1) * (1 + FSQ_EPS) / 2
    shift = torch.atanh(torch.where(lv % 2 == 0, 0.5, 0.0) / half_l)
    expected = half_l / (lv // 2) * (1 - torch.tanh(z.detach().double() + shift) ** 2)
    torch.testing.assert_close(g, expected.float(), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_closed_form_codes_and_saturation(backend):
    # L=4: z=0 -> q=0 -> code 0; +inf -> q=1 -> 0.5; -inf -> q=-2 -> -1.  L=3: +-inf -> +-1.
    z = torch.tensor([[0.0, 0.0], [float("inf"), float("inf")], [float("-inf"), float("-inf")]])
    out = fsq(z, (4, 3), backend=backend)
    assert out.codes.tolist() == [[0.0, 0.0], [0.5, 1.0], [-1.0, -1.0]]
    assert out.indices[:, 0].tolist() == [2 + 4 * 1, 3 + 4 * 2, 0]  # digit0 + 4 * digit1


def test_atoken_default_layer():
    layer = FSQ()
    assert (layer.dim, layer.num_groups, layer.codebook_size) == (48, 8, 4096)
    z = torch.randn(2, 10, 48) * 2
    out = layer(z)
    assert out.indices.shape == (2, 10, 8) and out.indices.dtype == torch.int32
    assert 0 <= int(out.indices.min()) and int(out.indices.max()) < 4096
    assert set(out.codes.unique().tolist()) <= {-1.0, -0.5, 0.0, 0.5}
    torch.testing.assert_close(layer.indices_to_codes(out.indices), out.codes, rtol=0, atol=0)
    assert torch.equal(layer.codes_to_indices(out.codes), out.indices)


@pytest.mark.parametrize("levels", LEVEL_MIXES[:2] + [(7, 3), (2, 2, 2)])
def test_indices_codes_exact_inverses_over_whole_codebook(levels):
    size = int(np.prod(levels))
    idx = torch.arange(size, dtype=torch.int32).reshape(-1, 1)
    codes = indices_to_codes(idx, levels)  # (K, d)
    assert torch.equal(codes_to_indices(codes, levels), idx)
    assert codes.unique(dim=0).shape[0] == size and codes.abs().max() <= 1.0
    # quantizing the codes' own pre-images reproduces them: FSQ(atanh-space centre) -> same code
    tables = fsq_tables(levels)
    q = codes.double() * torch.from_numpy(tables.half_width)
    centre = torch.atanh((q + torch.from_numpy(tables.offset)) / torch.from_numpy(tables.half_l))
    centre = centre - torch.from_numpy(tables.shift)
    out = fsq(centre.float(), levels, backend="numba")
    assert torch.equal(out.indices, idx)


def test_matches_lucidrains_fsq():
    vq = pytest.importorskip("vector_quantize_pytorch")
    levels = [8, 5, 5, 5]
    theirs = vq.FSQ(levels=levels, dim=8, num_codebooks=2)
    z = torch.randn(3, 50, 8, generator=torch.Generator().manual_seed(3)) * 2
    their_codes, their_idx = theirs(z)
    for backend in CPU_BACKENDS:
        ours = fsq(z, levels, num_groups=2, backend=backend)
        torch.testing.assert_close(ours.codes, their_codes, rtol=0, atol=1e-6)
        assert torch.equal(ours.indices.long(), their_idx.long())


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_odd_shapes_dtypes_and_empty(backend):
    z64 = torch.randn(3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    out = fsq(z64, (5, 4), num_groups=2, backend=backend)
    assert out.codes.dtype == torch.float64
    assert torch.equal(out.indices, fsq_reference(z64, (5, 4), num_groups=2).indices)
    empty = fsq(torch.zeros(0, 6), (4, 4, 4), num_groups=2, backend=backend)
    assert empty.codes.shape == (0, 6) and empty.indices.shape == (0, 2)
    strided = torch.randn(8, 12)[:, ::2]  # non-contiguous
    assert torch.equal(fsq(strided, (4, 4), num_groups=3, backend=backend).indices,
                       fsq_reference(strided, (4, 4), num_groups=3).indices)


def test_errors_name_the_input():
    with pytest.raises(ValueError, match="num_groups"):
        fsq(torch.randn(2, 7), (4,) * 6, num_groups=1)
    with pytest.raises(TypeError, match="floating-point"):
        fsq(torch.ones(2, 6, dtype=torch.int64), (4,) * 6)
    with pytest.raises(ValueError, match="levels"):
        fsq(torch.randn(2, 2), (1, 4))
    with pytest.raises(ValueError, match="unknown backend"):
        fsq(torch.randn(2, 6), (4,) * 6, backend="triton")
    with pytest.raises(BackendUnavailableError, match="cupy"):
        fsq(torch.randn(2, 6), (4,) * 6, backend="cupy")
    with pytest.raises(ValueError, match=r"\[0, 64\)"):
        indices_to_codes(torch.tensor([[64]]), (4, 4, 4))
    with pytest.raises(ValueError, match="outside"):
        codes_to_indices(torch.tensor([[1.0, 0.0]]), (4, 4))  # 1.0 is not an L=4 code


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("backend", ["numba", "cupy"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("levels", LEVEL_MIXES)
def test_gpu_backend_matches_reference(backend, dtype, levels):
    if backend == "cupy":
        pytest.importorskip("cupy")
    z = _latent(levels, 3, (33, 7), dtype).cuda().requires_grad_()
    z_ref = z.detach().clone().requires_grad_()
    out = fsq(z, levels, num_groups=3, backend=backend)
    ref = fsq_reference(z_ref, levels, num_groups=3)
    torch.testing.assert_close(out.codes, ref.codes, rtol=0, atol=0)
    assert torch.equal(out.indices, ref.indices)
    grad = torch.randn_like(out.codes)
    (g,) = torch.autograd.grad(out.codes, z, grad)
    (g_ref,) = torch.autograd.grad(ref.codes, z_ref, grad)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-2, "atol": 1e-3}
    torch.testing.assert_close(g, g_ref, **tol)


def test_auto_falls_back_to_reference_when_a_gpu_backend_fails(monkeypatch):
    fsq_module = importlib.import_module("avtok.kernels.fsq")  # the package re-exports the function

    # Pretend CuPy serves this CPU tensor: its wrapper refuses (needs CUDA), "auto" warns and recovers.
    monkeypatch.setattr(fsq_module, "_usable", lambda z: {"cupy": True})
    monkeypatch.delenv("AVTOK_KERNELS_BACKEND", raising=False)
    z = torch.randn(4, 6)
    with pytest.warns(RuntimeWarning, match="falling back to the torch reference"):
        out = fsq(z, (4,) * 6)
    assert torch.equal(out.indices, fsq_reference(z, (4,) * 6).indices)
    with pytest.raises(ValueError, match="needs a CUDA tensor"):
        fsq(z, (4,) * 6, backend="cupy")


@settings(max_examples=25, deadline=None)
@given(
    levels=st.lists(st.integers(min_value=2, max_value=9), min_size=1, max_size=5),
    groups=st.integers(min_value=1, max_value=3),
    rows=st.integers(min_value=1, max_value=40),
    scale=st.floats(min_value=0.1, max_value=6.0),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_property_numba_equals_reference(levels, groups, rows, scale, seed):
    z = torch.randn(rows, groups * len(levels), generator=torch.Generator().manual_seed(seed)) * scale
    out = fsq(z, levels, num_groups=groups, backend="numba")
    ref = fsq_reference(z, levels, num_groups=groups)
    assert torch.equal(out.codes, ref.codes) and torch.equal(out.indices, ref.indices)
    assert torch.equal(codes_to_indices(out.codes, levels, num_groups=groups), out.indices)
