import pytest
import torch

from avtok.generator.ovi.solvers import euler, shift_sigmas, sigma_grid, unipc

MU, S = 1.5, 0.3


def gaussian_velocity(xs, t):
    """Exact flow-matching velocity for data N(MU, S²): linear in x; x(0) = MU + S·x(1)."""
    var = (1 - t) ** 2 * S * S + t * t
    return [-MU + (t - (1 - t) * S * S) / var * (x - (1 - t) * MU) for x in xs]


def test_shift_and_grid():
    g = sigma_grid(4, 3.0)
    assert g[0] == 1.0 and g[-1] == 0.0 and bool((g[1:] < g[:-1]).all())
    assert float(shift_sigmas(torch.tensor(0.5, dtype=torch.float64), 3.0)) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="shift"):
        sigma_grid(4, 0.0)


@pytest.mark.parametrize("solver", [euler, unipc])
def test_straight_line_field_is_integrated_exactly(solver):
    c = torch.tensor([0.3, -2.0], dtype=torch.float64)
    noise = torch.randn(64, 2, dtype=torch.float64)
    out = solver(lambda xs, t: [(xs[0] - c) / t], [noise], sigma_grid(7, 2.0))[0]  # v = (x - c) / t
    torch.testing.assert_close(out, c.expand_as(noise), rtol=0, atol=1e-10)


def test_gaussian_ode_converges_to_exact_solution():
    noise = torch.randn(2000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    exact = MU + S * noise
    err = {
        (name, n): (f(gaussian_velocity, [noise], sigma_grid(n))[0] - exact).abs().max().item()
        for name, f in (("euler", euler), ("unipc", unipc))
        for n in (20, 80, 320)
    }
    assert err["euler", 320] < 0.015 and err["unipc", 320] < 2e-4
    assert err["unipc", 20] < err["euler", 20] / 5  # higher order at the same number of evaluations
    assert err["unipc", 80] / err["unipc", 320] > 10  # ~2nd order (4x steps -> ~16x smaller error)
    assert err["euler", 80] / err["euler", 320] == pytest.approx(4, rel=0.3)  # 1st order


def test_unipc_matches_euler_at_many_steps():
    noise = torch.randn(100, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    fine = euler(gaussian_velocity, [noise], sigma_grid(4000, 5.0))[0]
    torch.testing.assert_close(
        unipc(gaussian_velocity, [noise], sigma_grid(200, 5.0))[0], fine, rtol=0, atol=1e-2
    )  # Euler itself is ~1.5e-3 off at 4000 shifted steps
