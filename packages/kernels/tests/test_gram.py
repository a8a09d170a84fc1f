"""Gram loss: fast backends against the plain-torch reference (values and gradients), closed forms."""

from __future__ import annotations

import pytest
import torch

from avtok.kernels import gram_loss, gram_loss_reference, gram_matrix
from avtok.kernels.gram import symmetric_difference

CPU_BACKENDS = ["sym", "blas"]


def _features(dtype=torch.float32, seed=0, grad_b=False):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(2, 130, 5, 7), (2, 3, 11), (2, 64, 9)]  # 130 channels: not a multiple of the block size
    a = [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]
    b = [(x.detach() + 0.5 * torch.randn(x.shape, generator=gen, dtype=dtype)).requires_grad_(grad_b)
         for x in a]
    return a, b


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("grad_b", [False, True])
def test_backend_matches_reference_values_and_grads(backend, grad_b):
    a, b = _features(grad_b=grad_b)
    ref = gram_loss_reference(a, b)
    inputs = a + (b if grad_b else [])
    g_ref = torch.autograd.grad(ref, inputs)
    out = gram_loss(a, b, backend=backend)
    g = torch.autograd.grad(out, inputs)
    assert out.shape == () and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=0)
    for x, y in zip(g, g_ref, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_gradcheck_float64(backend):
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, y: gram_loss([x], [y], backend=backend), (a, b))


def test_closed_form_single_channel():
    # C = 1: G = sum(f^2) / N, loss = (G_a - G_b)^2 (mean over the single entry).
    fa = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    fb = torch.zeros(1, 1, 4)
    expected = (30.0 / 4) ** 2
    for backend in ["torch", *CPU_BACKENDS]:
        assert gram_loss([fa], [fb], backend=backend).item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(gram_matrix(fa), torch.tensor([[[7.5]]]))


def test_gram_matrix_normalisation_and_symmetric_difference():
    gen = torch.Generator().manual_seed(2)
    f = torch.randn(3, 4, 5, 6, generator=gen)
    flat = f.flatten(2)
    torch.testing.assert_close(gram_matrix(f), flat @ flat.mT / (4 * 30))
    fa, fb = torch.randn(2, 200, 33, generator=gen), torch.randn(2, 200, 33, generator=gen)
    d = symmetric_difference(fa, fb, block=64)
    torch.testing.assert_close(d, fa @ fa.mT - fb @ fb.mT, rtol=1e-5, atol=1e-4)
    assert torch.equal(d, d.mT)


def test_identical_inputs_give_zero_loss_and_bf16_is_upcast():
    a, _ = _features(torch.bfloat16)
    for backend in ["torch", *CPU_BACKENDS]:
        out = gram_loss(a, [x.detach() for x in a], backend=backend)
        assert out.dtype == torch.float32 and out.item() == 0.0


def test_errors_name_the_input():
    x = torch.randn(2, 3, 4)
    with pytest.raises(TypeError, match="lists"):
        gram_loss(x, x)
    with pytest.raises(ValueError, match="same non-zero number"):
        gram_loss([x], [x, x])
    with pytest.raises(ValueError, match="layer 0"):
        gram_loss([x], [torch.randn(2, 3, 5)])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        gram_loss([torch.randn(3, 4)], [torch.randn(3, 4)])
    with pytest.raises(ValueError, match="unknown backend"):
        gram_loss([x], [x], backend="numba")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("backend", ["sym", "cupy"])
def test_gpu_backends_match_reference(backend):
    if backend == "cupy":
        pytest.importorskip("cupy")
    a, b = _features()
    a = [x.detach().cuda().requires_grad_() for x in a]
    b = [x.detach().cuda() for x in b]
    ref = gram_loss_reference(a, b)
    out = gram_loss(a, b, backend=backend)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=0)
    for x, y in zip(torch.autograd.grad(out, a), torch.autograd.grad(ref, a), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-3, atol=1e-8)


def test_auto_falls_back_to_sym_with_a_warning(monkeypatch):
    from avtok.kernels import gram

    def broken(fa, fb):
        raise RuntimeError("simulated cuBLAS failure")

    monkeypatch.setattr(gram, "_diff_fn", lambda name: broken)
    monkeypatch.setattr(gram, "AUTO_ORDER", {"cpu": ("blas",)})
    monkeypatch.delenv("AVTOK_KERNELS_BACKEND", raising=False)
    a, b = _features()
    with pytest.warns(RuntimeWarning, match="simulated cuBLAS failure"):
        out = gram_loss(a, b)
    torch.testing.assert_close(out, gram_loss_reference(a, b), rtol=1e-5, atol=0)
    with pytest.raises(RuntimeError, match="simulated"):
        gram_loss(a, b, backend="blas")
