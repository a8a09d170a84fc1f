import pytest
import torch

from avtok.generator.ovi.solvers import (
    OVI_SIGMA_MAX,
    UniPC,
    euler,
    ovi_schedule,
    shift_sigmas,
    sigma_grid,
    unipc,
)

MU, S = 1.5, 0.3


def gaussian_velocity(xs, t):
    """Exact flow-matching velocity for data N(MU, S²): linear in x; x(0) = MU + S·x(1)."""
    var = (1 - t) ** 2 * S * S + t * t
    return [-MU + (t - (1 - t) * S * S) / var * (x - (1 - t) * MU) for x in xs]


def continuous(steps: int, shift: float = 1.0) -> torch.Tensor:
    """Ovi's sigma grid in float64; given as a tensor the model time is sigma itself."""
    return ovi_schedule(steps, shift, dtype=torch.float64).sigmas


def start(noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """The exact ODE state at sigma of the trajectory that ends at MU + S·noise."""
    return (1 - sigma) * MU + ((1 - sigma) ** 2 * S * S + sigma * sigma) ** 0.5 * noise


def test_shift_and_grid():
    g = sigma_grid(4, 3.0).sigmas
    assert g[0] == 1.0 and g[-1] == 0.0 and bool((g[1:] < g[:-1]).all())
    assert float(shift_sigmas(torch.tensor(0.5, dtype=torch.float64), 3.0)) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="shift"):
        sigma_grid(4, 0.0)


def test_ovi_schedule_is_discrete_and_float32():
    sch = ovi_schedule(10, 5.0)
    assert sch.sigmas.dtype == torch.float32 and sch.sigmas[-1] == 0 and sch.steps == 10
    assert OVI_SIGMA_MAX == pytest.approx(0.999, abs=1e-7) and OVI_SIGMA_MAX != 0.999  # float32(0.999)
    s0 = 5 * OVI_SIGMA_MAX / (1 + 4 * OVI_SIGMA_MAX)
    assert float(sch.sigmas[0]) == pytest.approx(s0, rel=1e-7) and int(sch.timesteps[0]) == 999
    torch.testing.assert_close(sch.times, sch.timesteps.double() / 1000)  # what the model sees
    assert bool((sch.timesteps == (sch.sigmas[:-1].double() * 1000).floor().long()).all())


def test_first_unipc_step_is_euler():
    sch = ovi_schedule(6, 5.0)
    x, v = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(UniPC(sch.sigmas).step(v, x), x + (sch.sigmas[1] - sch.sigmas[0]) * v)


@pytest.mark.parametrize("solver", [euler, unipc])
def test_straight_line_field_is_integrated_exactly(solver):
    c = torch.tensor([0.3, -2.0], dtype=torch.float64)
    noise = torch.randn(64, 2, dtype=torch.float64)
    out = solver(lambda xs, t: [(xs[0] - c) / t], [noise], continuous(7, 2.0))[0]  # v = (x - c) / t
    torch.testing.assert_close(out, c.expand_as(noise), rtol=0, atol=1e-10)


def test_gaussian_ode_converges_to_exact_solution():
    noise = torch.randn(2000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = MU + S * noise
    err = {}
    for name, f in (("euler", euler), ("unipc", unipc)):
        for n in (20, 80, 320):
            sig = continuous(n)
            out = f(gaussian_velocity, [start(noise, float(sig[0]))], sig)[0]
            err[name, n] = (out - exact).abs().max().item()
    assert err["euler", 320] < 0.015 and err["unipc", 320] < 2e-4
    assert err["unipc", 20] < err["euler", 20] / 5  # higher order at the same number of evaluations
    assert err["unipc", 80] / err["unipc", 320] > 10  # ~2nd order (4x steps -> ~16x smaller error)
    assert err["euler", 80] / err["euler", 320] == pytest.approx(4, rel=0.3)  # 1st order


def test_unipc_matches_euler_at_many_steps():
    noise = torch.randn(100, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fine_sig, sig = continuous(4000, 5.0), continuous(200, 5.0)
    fine = euler(gaussian_velocity, [start(noise, float(fine_sig[0]))], fine_sig)[0]
    torch.testing.assert_close(
        unipc(gaussian_velocity, [start(noise, float(sig[0]))], sig)[0], fine, rtol=0, atol=1e-2
    )  # Euler itself is ~1.5e-3 off at 4000 shifted steps


def test_unipc_refuses_a_schedule_from_sigma_one():
    with pytest.raises(ValueError, match="sigma 1"):
        unipc(gaussian_velocity, [torch.zeros(3)], sigma_grid(4).sigmas)
