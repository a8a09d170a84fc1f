"""Losses against closed forms, hand computations and reference implementations (eval's metrics)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from avtok.eval.audio_metrics import mel_l1, mrstft_distance
from avtok.media_io import read_audio
from avtok.media_io.samples import sample_path
from avtok.tokenizer.losses import (
    ATokenLossWeights,
    ar_prior_loss,
    atoken_objective,
    avtok_objective,
    distillation_kl,
    kl_loss,
    l1_loss,
    load_teacher,
    mel_l1_loss,
    mrstft_loss,
    representation_alignment_loss,
    sigmoid_alignment_loss,
    similarity_logits,
    wave_mel_l1_loss,
)


@pytest.fixture(scope="module")
def song() -> torch.Tensor:
    """0.5 s of the real song (mono, 22.05 kHz), (1, N)."""
    wave, rate = read_audio(sample_path("song"), start=3.0, duration=0.5, sample_rate=22050, channels=1)
    assert rate == 22050 and wave.abs().max() > 0.01  # real music, not silence
    return wave.float()  # (1, N)


def test_kl_closed_form_for_known_gaussian():
    mean = torch.tensor([[0.5, -1.0]])
    var = torch.tensor([[2.0, 0.25]])
    pairs = zip(mean[0].tolist(), var[0].tolist(), strict=True)
    expected = sum(0.5 * (m**2 + v - 1 - math.log(v)) for m, v in pairs)
    assert kl_loss(mean, var.log()).item() == pytest.approx(expected, rel=1e-6)
    assert kl_loss(torch.zeros(4, 3), torch.zeros(4, 3)).item() == 0.0


def test_distillation_kl_equals_hand_computation():
    s = torch.tensor([[1.0, 2.0, 0.0]])
    t = torch.tensor([[0.0, 3.0, 1.0]])
    tau = 2.0
    p = [math.exp(v / tau) for v in t[0].tolist()]
    p = [v / sum(p) for v in p]
    q = [math.exp(v / tau) for v in s[0].tolist()]
    q = [v / sum(q) for v in q]
    expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    assert distillation_kl(s, t, tau=tau).item() == pytest.approx(expected, rel=1e-6)
    assert distillation_kl(t, t).item() == pytest.approx(0.0, abs=1e-7)
    student = s.clone().requires_grad_(True)
    distillation_kl(student, t).backward()
    assert student.grad.abs().sum() > 0


def test_sigmoid_alignment_matches_pairwise_definition():
    torch.manual_seed(0)
    v, t = torch.randn(4, 8), torch.randn(4, 8)
    scale, bias = torch.tensor(math.log(10.0)), torch.tensor(-10.0)
    loss = sigmoid_alignment_loss(v, t, logit_scale=scale, logit_bias=bias)
    sims = similarity_logits(v, t)
    expected = 0.0
    for i in range(4):
        for j in range(4):
            z = 1.0 if i == j else -1.0
            expected -= math.log(1 / (1 + math.exp(-z * (10.0 * sims[i, j].item() - 10.0))))
    assert loss.item() == pytest.approx(expected / 4, rel=1e-5)
    aligned = sigmoid_alignment_loss(t, t, logit_scale=torch.tensor(math.log(20.0)), logit_bias=bias)
    assert aligned < loss  # perfectly paired embeddings score better


def test_l1_lists_count_every_pixel_once():
    a, b = torch.zeros(2, 4, 4, 3), torch.ones(2, 4, 4, 3)
    small, big = torch.zeros(1, 2, 2, 3), torch.zeros(1, 4, 4, 3)
    assert l1_loss(a, b).item() == 1.0
    value = l1_loss([small, big], [small + 1.0, big]).item()
    assert value == pytest.approx(12 / (12 + 48))
    with pytest.raises(ValueError, match="shapes must match"):
        l1_loss(a, b[:1])


def test_mrstft_equals_eval_metric_and_decreases_with_noise(song):
    torch.manual_seed(0)
    noise = torch.randn_like(song)
    values = []
    for level in (0.3, 0.1, 0.03, 0.01):
        noisy = song + level * noise
        loss = mrstft_loss(noisy, song)
        ref = mrstft_distance(noisy, song).mean().item()  # eval's float64 metric is the oracle
        assert loss.item() == pytest.approx(ref, rel=1e-4)
        values.append(loss.item())
    assert values == sorted(values, reverse=True) and values[-1] < 0.5 * values[0]
    assert mrstft_loss(song, song).item() == pytest.approx(0.0, abs=1e-6)
    pred = (song + 0.1 * noise).requires_grad_(True)
    mrstft_loss(pred, song).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


def test_mel_l1_matches_eval_metric(song):
    noisy = song + 0.05 * torch.randn_like(song)
    reference = mel_l1(noisy, song, sample_rate=22050).item()  # eval's metric is the oracle
    assert wave_mel_l1_loss(noisy, song).item() == pytest.approx(reference, rel=1e-5)
    m = torch.randn(2, 80, 10)
    assert mel_l1_loss(m + 0.5, m).item() == pytest.approx(0.5)


def test_representation_alignment_and_ar_prior():
    torch.manual_seed(0)
    tok, tgt = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    assert representation_alignment_loss(tgt * 3.0, tgt).item() == pytest.approx(0.0, abs=1e-6)
    assert representation_alignment_loss(-tgt, tgt).item() == pytest.approx(2.0, abs=1e-6)
    manual = 1 - (F.normalize(tok, dim=-1) * F.normalize(tgt, dim=-1)).sum(-1).mean()
    assert representation_alignment_loss(tok, tgt).item() == pytest.approx(manual.item(), rel=1e-6)
    logits, tokens = torch.randn(2, 4, 7), torch.randint(0, 7, (2, 4))
    manual = -sum(F.log_softmax(logits[b, t], -1)[tokens[b, t + 1]] for b in range(2) for t in range(3)) / 6
    assert ar_prior_loss(logits, tokens).item() == pytest.approx(manual.item(), rel=1e-6)
    with pytest.raises(ValueError, match="L >= 2"):
        ar_prior_loss(logits[:, :1], tokens[:, :1])


def test_objectives_apply_paper_weights():
    one = torch.tensor(1.0)
    out = atoken_objective(rec=one, sem=one * 2, kl=one * 1e6, weights=ATokenLossWeights())
    assert out["loss"].item() == pytest.approx(0.2 + 2.0 + 1e-2)
    assert set(out) == {"rec", "sem", "kl", "loss"}
    av = avtok_objective(video=one, audio_mel=one * 2)
    assert av["loss"].item() == 3.0 and "align" not in av
    with pytest.raises(ValueError, match="no loss terms"):
        avtok_objective()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices
def test_load_teacher_from_local_torchscript(tmp_path: Path):
    path = tmp_path / "teacher.pt"
    torch.jit.save(torch.jit.script(nn.Linear(4, 3)), str(path))
    teacher = load_teacher(path)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert teacher(torch.randn(2, 4)).shape == (2, 3)
    with pytest.raises(FileNotFoundError, match="not shipped offline"):
        load_teacher(tmp_path / "siglip2.pt")
    from safetensors.torch import save_file

    save_file(nn.Linear(4, 3).state_dict(), str(tmp_path / "t.safetensors"))
    built = load_teacher(tmp_path / "t.safetensors", build=lambda: nn.Linear(4, 3))
    assert not any(p.requires_grad for p in built.parameters())
