"""ODE solvers for flow-matching sampling: Euler and UniPC (bh2, order 2, x0-prediction), on a Schedule.

Convention: ``x_sigma = (1 − sigma)·x0 + sigma·noise``, the model predicts ``v = noise − x0``, and the
data prediction is ``x0 = x − sigma·v`` (``alpha = 1 − sigma``, ``lambda = log(alpha / sigma)``).

:func:`ovi_schedule` is the schedule of Ovi's ``FlowUniPCMultistepScheduler`` (Wan): ``sigma_max`` is
float32(0.999) (the last of 1000 training sigmas), ``s = linspace(sigma_max, 0, steps + 1)[:-1]`` in
float64, shifted ``shift·s / (1 + (shift − 1)·s)``, timesteps ``floor(1000·sigma)`` (int64, what the model
sees, as t = timestep / 1000), sigmas stored in float32 with a final 0. :func:`sigma_grid` is the plain
continuous grid from 1 to 0 (t = sigma), kept for analysis in float64.

:class:`UniPC` follows the update of that scheduler — written here, not imported, so one code path serves
several tensors and held-fixed modalities: first step order 1, then the order-2 predictor (rho_p = 1/2)
with the UniC corrector (order of the previous predictor; 2×2 solve), and order 1 on the final step
(``lower_order_final``). Coefficients are computed in the schedule's dtype (float32 for Ovi, like the
scheduler's float32 sigmas), so the trajectory matches the reference to float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "OVI_SIGMA_MAX",
    "Schedule",
    "UniPC",
    "Velocity",
    "euler",
    "ovi_schedule",
    "shift_sigmas",
    "sigma_grid",
    "unipc",
]

Velocity = Callable[[list[Tensor], float], list[Tensor]]  # (xs, model time t) -> dx/dsigma per tensor
OVI_SIGMA_MAX = float(np.float32(1.0 - 1.0 / 1000))  # the first of 1000 training sigmas, as float32


@dataclass(kw_only=True, frozen=True)
class Schedule:
    """sigmas (steps + 1,) ending at 0; times (steps,) float64 = the t the model gets at each step."""

    sigmas: Tensor
    times: Tensor
    timesteps: Tensor | None = None  # (steps,) int64 for discrete (Ovi) schedules

    @property
    def steps(self) -> int:
        return self.times.numel()


def shift_sigmas(sigmas: Tensor, shift: float) -> Tensor:
    """Timestep shift (SD3 / Wan): shift·s / (1 + (shift − 1)·s) (> 1: more steps at high noise)."""
    if shift <= 0:
        raise ValueError(f"shift={shift}: must be > 0 (1 = no shift; Ovi uses 5)")
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def _check_steps(steps: int) -> None:
    if steps < 1:
        raise ValueError(f"steps={steps}: need at least 1 sampling step")


def sigma_grid(steps: int, shift: float = 1.0) -> Schedule:
    """Continuous float64 grid from sigma 1 to 0, shifted; the model time is sigma itself."""
    _check_steps(steps)
    sigmas = shift_sigmas(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift)
    return Schedule(sigmas=sigmas, times=sigmas[:-1].clone())


def ovi_schedule(steps: int, shift: float = 5.0, *, sigma_max: float = OVI_SIGMA_MAX,
                 dtype: torch.dtype = torch.float32) -> Schedule:
    """Ovi's UniPC schedule (sigmas in ``dtype``, float32 as Ovi; int64 timesteps = floor(1000·sigma))."""
    _check_steps(steps)
    base = torch.linspace(sigma_max, 0.0, steps + 1, dtype=torch.float64)[:-1]
    sigmas = shift_sigmas(base, shift)  # (steps,) float64
    timesteps = (sigmas * 1000).to(torch.int64)  # truncation = floor (positive)
    full = torch.cat((sigmas, sigmas.new_zeros(1))).float().to(dtype)
    return Schedule(sigmas=full, times=timesteps.double() / 1000, timesteps=timesteps)


def _as_schedule(schedule: Schedule | Tensor) -> Schedule:
    if isinstance(schedule, Schedule):
        return schedule
    return Schedule(sigmas=schedule, times=schedule[:-1].double())


def euler(velocity: Velocity, xs: Sequence[Tensor], schedule: Schedule | Tensor) -> list[Tensor]:
    """x_{i+1} = x_i + (s_{i+1} − s_i)·v(x_i, t_i)."""
    sch = _as_schedule(schedule)
    xs, sig = list(xs), sch.sigmas.tolist()
    for i, t in enumerate(sch.times.tolist()):
        vs = velocity(xs, t)
        xs = [x + (sig[i + 1] - sig[i]) * v for x, v in zip(xs, vs, strict=True)]
    return xs


class UniPC:
    """One tensor's UniPC-bh2 state: call :meth:`step` once per schedule step with the velocity."""

    def __init__(self, sigmas: Tensor) -> None:
        self.sigmas = sigmas  # (steps + 1,)
        self.lams = torch.log(1 - sigmas) - torch.log(sigmas)  # lambda per sigma (inf at sigma 0)
        self.index = 0
        self.history: list[Tensor] = []  # data predictions, newest last (at most 2)
        self.last_sample: Tensor | None = None
        self.last_order = 0

    def _h(self, s0: int, t: int) -> tuple[Tensor, Tensor, Tensor]:
        """(hh = −h, h_phi_1 = expm1(hh), B_h = expm1(hh)) for the step sigma[s0] -> sigma[t]."""
        hh = -(self.lams[t] - self.lams[s0])
        return hh, torch.expm1(hh), torch.expm1(hh)

    def _base(self, x: Tensor, m0: Tensor, s0: int, t: int) -> tuple[Tensor, Tensor, Tensor]:
        hh, h_phi_1, b_h = self._h(s0, t)
        alpha_t = 1 - self.sigmas[t]
        return self.sigmas[t] / self.sigmas[s0] * x - alpha_t * h_phi_1 * m0, alpha_t * b_h, hh

    def _rk(self, prev: int, s0: int, t: int) -> Tensor:
        return (self.lams[prev] - self.lams[s0]) / (self.lams[t] - self.lams[s0])

    def _correct(self, m_t: Tensor) -> Tensor:
        """UniC for the step (index − 1) -> index with the fresh data prediction ``m_t``."""
        s0, t = self.index - 1, self.index
        m0 = self.history[-1]
        x_t, scale, hh = self._base(self.last_sample, m0, s0, t)
        if self.last_order == 1:
            return x_t - scale * (0.5 * (m_t - m0))
        rk = self._rk(s0 - 1, s0, t)
        b_h = torch.expm1(hh)
        h_phi_k = torch.expm1(hh) / hh - 1
        b = torch.stack((h_phi_k / b_h, (h_phi_k / hh - 0.5) * 2 / b_h))
        r = torch.stack((torch.ones_like(rk), torch.ones_like(rk), rk, torch.ones_like(rk))).view(2, 2)
        rho = torch.linalg.solve(r, b)  # (2,)
        d1 = (self.history[-2] - m0) / rk
        return x_t - scale * (rho[0] * d1 + rho[1] * (m_t - m0))

    def step(self, v: Tensor, x: Tensor) -> Tensor:
        """Advance x from sigma[index] to sigma[index + 1] given the velocity v at x."""
        steps = self.sigmas.numel() - 1
        if self.index >= steps:
            raise RuntimeError(f"UniPC: all {steps} steps are done; build a new solver")
        sigma = self.sigmas[self.index]
        m = x - sigma * v  # data prediction
        if self.index > 0 and self.last_sample is not None:
            x = self._correct(m)
        self.history = (self.history + [m])[-2:]
        order = min(2, steps - self.index, len(self.history))  # warm-up and lower order at the end
        self.last_sample, self.last_order = x, order
        s0, t = self.index, self.index + 1
        x_next, scale, _ = self._base(x, m, s0, t)
        if order == 2:
            d1 = (self.history[-2] - m) / self._rk(s0 - 1, s0, t)
            x_next = x_next - scale * (0.5 * d1)
        self.index += 1
        return x_next.to(x.dtype)


def unipc(velocity: Velocity, xs: Sequence[Tensor], schedule: Schedule | Tensor) -> list[Tensor]:
    """UniPC-bh2 (order 2) with the corrector; one velocity evaluation per step like Euler."""
    sch = _as_schedule(schedule)
    if not math.isfinite(float(torch.log(1 - sch.sigmas[0]) - torch.log(sch.sigmas[0]))):
        raise ValueError("unipc: the schedule starts at sigma 1 (lambda = -inf); use ovi_schedule or euler")
    solvers = [UniPC(sch.sigmas.to(x.device)) for x in xs]
    xs = list(xs)
    for t in sch.times.tolist():
        vs = velocity(xs, t)
        xs = [s.step(v, x) for s, v, x in zip(solvers, vs, xs, strict=True)]
    return xs
