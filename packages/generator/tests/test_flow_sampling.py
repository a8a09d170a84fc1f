import pytest
import torch
from torch import nn

from avtok.generator.ovi.config import LatentSpec, build_config
from avtok.generator.ovi.flow import FlowBatch, FlowMatchingConfig, flow_matching_loss, interpolate
from avtok.generator.ovi.sampling import SamplerConfig, TextCondition, guided_velocity, sample
from avtok.generator.ovi.twin_dit import TwinDiT, TwinOutput

SPEC = LatentSpec(
    video_frames=3,
    video_height=2,
    video_width=2,
    video_channels=3,
    video_latent_rate=4.0,
    audio_tokens=6,
    audio_channels=8,
    audio_latent_rate=8.0,
)


class Recorder(nn.Module):
    """Returns zeros and records what the model was called with."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, video, audio, t_video, t_audio, text, **kw):
        self.calls.append(
            {"video": video, "audio": audio, "t_video": t_video, "t_audio": t_audio, "text": text}
        )
        return TwinOutput(video=torch.zeros_like(video), audio=torch.zeros_like(audio))


def batch(b=4):
    g = torch.Generator().manual_seed(0)
    return FlowBatch(
        video=torch.randn(SPEC.video_shape(b), generator=g),
        audio=torch.randn(SPEC.audio_shape(b), generator=g),
        text=torch.randn(b, 5, 384, generator=g),
    )


def test_interpolant_endpoints():
    x0, n = torch.randn(2, 3), torch.randn(2, 3)
    torch.testing.assert_close(interpolate(x0, n, torch.tensor([0.0, 1.0])), torch.stack([x0[0], n[1]]))


def test_loss_is_weighted_velocity_mse():
    b, rec = batch(), Recorder()
    out = flow_matching_loss(
        rec, b, FlowMatchingConfig(text_dropout=0.0), generator=torch.Generator().manual_seed(3)
    )
    call = rec.calls[0]
    t_v = call["t_video"].view(-1, 1, 1, 1, 1)
    noise_v = (call["video"] - (1 - t_v) * b.video) / t_v  # recover the noise the loss drew
    target_v = noise_v - b.video
    assert out.video.item() == pytest.approx(target_v.pow(2).mean().item(), rel=1e-4)
    assert out.loss.item() == pytest.approx(0.85 * out.video.item() + 0.15 * out.audio.item(), rel=1e-6)
    torch.testing.assert_close(call["t_video"], call["t_audio"])  # shared t by default


def test_independent_t_and_task_masks():
    rec = Recorder()
    flow_matching_loss(
        rec, batch(), FlowMatchingConfig(independent_t=True), generator=torch.Generator().manual_seed(0)
    )
    assert (rec.calls[0]["t_video"] - rec.calls[0]["t_audio"]).abs().min() > 0
    b = batch()
    rec = Recorder()
    out = flow_matching_loss(rec, b, FlowMatchingConfig(task_probs=(0.0, 1.0, 0.0)))  # a2v only
    assert torch.equal(rec.calls[0]["audio"], b.audio) and bool((rec.calls[0]["t_audio"] == 0).all())
    assert out.audio.item() == 0.0 and out.video.item() > 0
    rec = Recorder()
    out = flow_matching_loss(rec, b, FlowMatchingConfig(task_probs=(0.0, 0.0, 1.0)))  # v2a only
    assert torch.equal(rec.calls[0]["video"], b.video) and out.video.item() == 0.0
    with pytest.raises(ValueError, match="task_probs"):
        FlowMatchingConfig(task_probs=(0.5, 0.2))


def tiny_model():
    torch.manual_seed(0)
    return TwinDiT(build_config("tiny", depth=1, audio_channels=8)).eval()


def conditions(b=2):
    g = torch.Generator().manual_seed(5)
    return TextCondition(
        text=torch.randn(b, 4, 384, generator=g),
        negative_video=torch.randn(b, 3, 384, generator=g),
        negative_audio=torch.randn(b, 2, 384, generator=g),
    )


def test_cfg_scale_one_is_the_conditional_prediction_and_scale_s_extrapolates():
    m, text = tiny_model(), conditions()
    v, a = torch.randn(SPEC.video_shape(2)), torch.randn(SPEC.audio_shape(2))
    with torch.no_grad():
        t = torch.full((2,), 0.7)
        cond = m(v, a, t, t, text.text, spec=SPEC)
        neg = m(v, a, t, t, text.negative_video, text_audio=text.negative_audio, spec=SPEC)
        one = guided_velocity(m, v, a, 0.7, "t2av", text, SamplerConfig(cfg_video=1.0, cfg_audio=1.0), SPEC)
        two = guided_velocity(m, v, a, 0.7, "t2av", text, SamplerConfig(cfg_video=4.0, cfg_audio=3.0), SPEC)
    torch.testing.assert_close(one.video, cond.video)
    torch.testing.assert_close(one.audio, cond.audio)
    torch.testing.assert_close(two.video, neg.video + 4.0 * (cond.video - neg.video))
    torch.testing.assert_close(two.audio, neg.audio + 3.0 * (cond.audio - neg.audio))


@pytest.mark.parametrize("task", ["a2v", "v2a"])
def test_conditional_tasks_leave_the_given_modality_untouched(task):
    m, text = tiny_model(), conditions()
    given_v, given_a = torch.randn(SPEC.video_shape(2)), torch.randn(SPEC.audio_shape(2))
    kw = {"audio": given_a} if task == "a2v" else {"video": given_v}
    out = sample(m, SPEC, text, task=task, cfg=SamplerConfig(steps=3, solver="unipc"), seeds=[1, 2], **kw)
    if task == "a2v":
        assert torch.equal(out.audio, given_a) and not torch.allclose(out.video, given_v)
    else:
        assert torch.equal(out.video, given_v)
    with pytest.raises(ValueError, match="needs clean"):
        sample(m, SPEC, text, task=task, cfg=SamplerConfig(steps=2))


def test_batched_sampling_matches_single_with_seeds():
    m, text = tiny_model(), conditions()
    cfg = SamplerConfig(steps=3, solver="euler", cfg_video=2.0, cfg_audio=1.5)
    both = sample(m, SPEC, text, cfg=cfg, seeds=[7, 9])
    one = sample(
        m,
        SPEC,
        TextCondition(
            text=text.text[1:], negative_video=text.negative_video[1:], negative_audio=text.negative_audio[1:]
        ),
        cfg=cfg,
        seeds=[9],
    )
    torch.testing.assert_close(both.video[1:], one.video, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both.audio[1:], one.audio, rtol=1e-4, atol=1e-5)
    again = sample(m, SPEC, text, cfg=cfg, seeds=[7, 9])
    assert torch.equal(again.video, both.video)
