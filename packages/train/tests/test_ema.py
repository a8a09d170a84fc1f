"""EMA equals its closed form; swap restores trained weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avtok.train import EMA


def test_ema_closed_form_after_k_steps():
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)
        model.bias.zero_()
    ema = EMA(model, decay=0.9)
    values = [2.0, -1.0, 4.0, 0.5]
    for v in values:
        with torch.no_grad():
            model.weight.fill_(v)
        ema.update(model)
    d, k = 0.9, len(values)
    expected = d**k * 1.0 + sum((1 - d) * d ** (k - 1 - i) * v for i, v in enumerate(values))
    assert torch.allclose(ema.shadow["weight"], torch.full((2, 3), expected), atol=1e-6)
    assert ema.shadow["bias"].abs().max() == 0
    assert ema.num_updates == k


def test_ema_of_constant_parameter_converges_geometrically():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(10):
        ema.update(model)
    assert ema.shadow["weight"].item() == pytest.approx(1 - 0.5**10)


def test_swap_and_integer_buffers():
    model = nn.BatchNorm1d(2)
    ema = EMA(model, decay=0.5)
    model(torch.randn(8, 2))  # moves running stats, increments num_batches_tracked
    ema.update(model)
    assert ema.shadow["num_batches_tracked"].item() == 1  # integer buffers are copied, not averaged
    trained = model.running_mean.clone()
    with ema.swap(model):
        assert torch.allclose(model.running_mean, trained * 0.5)
    assert torch.equal(model.running_mean, trained)


def test_bad_decay():
    with pytest.raises(ValueError, match="decay"):
        EMA(nn.Linear(1, 1), decay=1.0)


def test_warmup_decay_closed_form():
    """Update n uses min(decay, (1 + n) / (10 + n)): 0.1, 2/11, 3/12, … until it reaches ``decay``."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.2, warmup=True)
    expected, values, decays = 0.0, [1.0, 3.0, -2.0, 5.0], []
    for n, v in enumerate(values):
        d = min(0.2, (1 + n) / (10 + n))
        decays.append(ema.current_decay())
        assert decays[-1] == pytest.approx(d)
        with torch.no_grad():
            model.weight.fill_(v)
        ema.update(model)
        expected = d * expected + (1 - d) * v
    assert ema.shadow["weight"].item() == pytest.approx(expected)
    assert decays == pytest.approx([0.1, 2 / 11, 0.2, 0.2])  # the warm-up, then capped at ``decay``
    assert EMA(model, decay=0.999).current_decay() == 0.999  # no warm-up unless asked
