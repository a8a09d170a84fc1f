"""ODE solvers for flow-matching sampling: Euler and UniPC (bh2, order 2, x0-prediction form).

State: a list of tensors (video, audio latents) integrated together on one sigma grid from 1 to 0.
``velocity(xs, sigma) -> list`` returns dx/dsigma. UniPC (Zhao et al. 2023) is written here rather than
taken from diffusers because diffusers is a large dependency for ~60 lines and avtok must also hold some
tensors fixed (a2v / v2a); the update is the ``FlowUniPCMultistepScheduler`` one (Wan / Ovi): in flow
form ``alpha = 1 − sigma``, ``lambda = log(alpha / sigma)``, data prediction ``x0 = x − sigma·v``,
B(h) = expm1(−h) ("bh2"), order 2 with order 1 on the first step and on the final step (to sigma = 0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = ["Velocity", "euler", "shift_sigmas", "sigma_grid", "unipc"]

Velocity = Callable[[list[Tensor], float], list[Tensor]]


def shift_sigmas(sigmas: Tensor, shift: float) -> Tensor:
    """Timestep shift (SD3 / Wan): shift·s / (1 + (shift − 1)·s) (> 1: more steps at high noise)."""
    if shift <= 0:
        raise ValueError(f"shift={shift}: must be > 0 (1 = no shift; Ovi uses 5)")
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def sigma_grid(steps: int, shift: float = 1.0) -> Tensor:
    """(steps + 1,) float64 sigmas from 1 down to 0, shifted."""
    if steps < 1:
        raise ValueError(f"steps={steps}: need at least 1 sampling step")
    return shift_sigmas(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift)


def euler(velocity: Velocity, xs: Sequence[Tensor], sigmas: Tensor) -> list[Tensor]:
    """x_{i+1} = x_i + (s_{i+1} − s_i)·v(x_i, s_i)."""
    xs = list(xs)
    for s, s_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
        vs = velocity(xs, s)
        xs = [x + (s_next - s) * v for x, v in zip(xs, vs, strict=True)]
    return xs


def _lambda(sigma: float) -> float:
    alpha = 1.0 - sigma
    if sigma <= 0:
        return math.inf
    return -math.inf if alpha <= 0 else math.log(alpha) - math.log(sigma)


def _coefficients(lam_s0: float, lam_t: float, lam_prev: float | None) -> tuple[float, float, float | None]:
    """(h_phi_1, B_h, rk) for a step s0 -> t; rk is None where only order 1 is usable."""
    h = lam_t - lam_s0
    if math.isinf(h):  # from sigma = 1 or to sigma = 0: the order-1 limit (an exact DDIM / Euler step)
        return -1.0, -1.0, None
    hh = -h
    rk = None if lam_prev is None or math.isinf(lam_prev) else (lam_prev - lam_s0) / h
    return math.expm1(hh), math.expm1(hh), rk


def _order2_rhos(hh: float, b_h: float, rk: float) -> tuple[float, float]:
    """Solve the 2×2 UniC system R·rho = b with R = [[1, 1], [rk, 1]]."""
    h_phi_1 = math.expm1(hh)
    h_phi_k = h_phi_1 / hh - 1.0
    b0 = h_phi_k / b_h
    b1 = (h_phi_k / hh - 1.0 / 2.0) * 2.0 / b_h
    rho = torch.linalg.solve(
        torch.tensor([[1.0, 1.0], [rk, 1.0]], dtype=torch.float64),
        torch.tensor([b0, b1], dtype=torch.float64),
    )
    return float(rho[0]), float(rho[1])


def _predict(x: Tensor, m0: Tensor, m_prev: Tensor | None, s0: float, t: float, lam: tuple) -> Tensor:
    """UniP: x_t from x at s0 with data predictions m0 (at s0) and m_prev (one step earlier)."""
    h_phi_1, b_h, rk = _coefficients(*lam)
    alpha_t = 1.0 - t
    x_t = (t / s0) * x - alpha_t * h_phi_1 * m0
    if m_prev is not None and rk is not None:
        x_t = x_t - alpha_t * b_h * 0.5 * (m_prev - m0) / rk  # bh2 order-2 predictor: rho_p = 1/2
    return x_t


def _correct(
    x: Tensor, m0: Tensor, m_t: Tensor, m_prev: Tensor | None, s0: float, t: float, lam: tuple
) -> Tensor:
    """UniC: refine x_t using the fresh data prediction m_t at t."""
    h_phi_1, b_h, rk = _coefficients(*lam)
    alpha_t = 1.0 - t
    x_t = (t / s0) * x - alpha_t * h_phi_1 * m0
    if m_prev is None or rk is None:
        return x_t - alpha_t * b_h * 0.5 * (m_t - m0)
    rho_prev, rho_t = _order2_rhos(lam[0] - lam[1], b_h, rk)
    return x_t - alpha_t * b_h * (rho_prev * (m_prev - m0) / rk + rho_t * (m_t - m0))


def unipc(velocity: Velocity, xs: Sequence[Tensor], sigmas: Tensor) -> list[Tensor]:
    """UniPC-bh2 (order 2) with the corrector; one velocity evaluation per step like Euler."""
    sig = sigmas.tolist()
    lams = [_lambda(s) for s in sig]
    xs, last_xs = list(xs), None
    m_hist: list[list[Tensor]] = []  # data predictions per step
    for i in range(len(sig) - 1):
        vs = velocity(xs, sig[i])
        m = [x - sig[i] * v for x, v in zip(xs, vs, strict=True)]  # x0 predictions
        if i > 0:  # corrector for the step (i-1) -> i, reusing m
            prev2 = m_hist[-2] if len(m_hist) > 1 else None
            lam = (lams[i - 1], lams[i], lams[i - 2] if prev2 is not None else None)
            xs = [
                _correct(x, m0, mt, None if prev2 is None else p, sig[i - 1], sig[i], lam)
                for x, m0, mt, p in zip(last_xs, m_hist[-1], m, prev2 or m, strict=True)
            ]
        m_hist.append(m)
        final = i == len(sig) - 2
        prev = m_hist[-2] if len(m_hist) > 1 and not final else None
        lam = (lams[i], lams[i + 1], lams[i - 1] if prev is not None else None)
        last_xs = xs
        xs = [
            _predict(x, m0, None if prev is None else p, sig[i], sig[i + 1], lam)
            for x, m0, p in zip(xs, m, prev or m, strict=True)
        ]
    return xs
