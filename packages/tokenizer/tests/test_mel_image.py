"""Audio through the visual tokenizer: log-mel ↔ grey image, mel windows, and the recipe's audio task."""

from __future__ import annotations

import pytest
import torch

from avtok.media_io import MelConfig, log_mel, read_clip, sample_path, write_clip
from avtok.tokenizer.mel_image import MEL_IMAGE_RANGE, image_to_mel, mel_to_image
from avtok.tokenizer.recipes import RunConfig
from avtok.tokenizer.runner import train_tokenizer
from avtok.tokenizer.visual import recipe as recipes_visual
from avtok.tokenizer.visual.recipe import mel_windows


@pytest.fixture(scope="module")
def song_clip():
    """4 s of the real concert clip at the vocoder's rate, mono."""
    return read_clip(sample_path("concert"), start=12.0, duration=4.0, size=32, sample_rate=22050, channels=1)


def test_mel_image_round_trip_on_real_audio(song_clip):
    mel = log_mel(song_clip.audio[0])  # (80, F)
    img = mel_to_image(mel)
    assert img.shape == (*mel.shape, 3) and img.min() >= -1 and img.max() <= 1
    assert torch.equal(img[..., 0], img[..., 2])  # the same grey value in every channel
    back = image_to_mel(img)
    want = mel.clamp(*MEL_IMAGE_RANGE)
    assert torch.allclose(back, want, atol=1e-5)
    # the affine map is the documented one: the floor log(1e-5) -> -1, 2.5 -> +1
    ends = mel_to_image(torch.tensor([[MEL_IMAGE_RANGE[0], MEL_IMAGE_RANGE[1]]]))[0, :, 0]
    assert torch.allclose(ends, torch.tensor([-1.0, 1.0]), atol=1e-6)
    # channel mean: a decoded image whose channels disagree maps through their average
    noisy = img.clone()
    noisy[..., 0] += 0.1
    noisy[..., 1] -= 0.1
    assert torch.allclose(image_to_mel(noisy), back, atol=1e-4)


def test_mel_image_rejects_bad_input():
    with pytest.raises(ValueError, match="log_mel"):
        mel_to_image(torch.zeros(80, dtype=torch.int64))
    with pytest.raises(ValueError, match="n_mels, frames, 3"):
        image_to_mel(torch.zeros(80, 20))


def test_mel_windows_cut_consecutive_two_second_windows(song_clip):
    wins = mel_windows(song_clip, seconds=2.0, hop_seconds=1.0)
    frames = 2 * 22050 // 256
    assert wins.shape == (3, 80, frames, 3)  # 4 s: windows at 0, 1 and 2 s
    full = mel_to_image(log_mel(song_clip.audio[0]))
    hop = 22050 // 256
    assert torch.allclose(wins[1], full[:, hop : hop + frames], atol=1e-6)
    with pytest.raises(ValueError, match="22050 Hz"):
        mel_windows(read_clip(sample_path("concert"), start=1.0, duration=2.5, size=32, sample_rate=16000))


def test_visual_recipe_trains_the_audio_task_on_mel_images(tmp_path, monkeypatch):
    clip = read_clip(sample_path("concert"), start=30.0, duration=5.0)
    path = write_clip(tmp_path / "clip.mp4", clip)
    seen = []
    original = recipes_visual.hooks

    def spy(cfg, ctx, model, stage):
        h = original(cfg, ctx, model, stage)
        step = h.step_fn

        def counted(net, item):
            seen.append((item["task"], tuple(item["batch"].shape[1:])))
            return step(net, item)

        h.step_fn = counted
        return h

    monkeypatch.setattr(recipes_visual, "hooks", spy)
    cfg = RunConfig(
        family="visual",
        schedule="plain",
        data=str(path),
        holdout_seconds=2.0,
        max_steps=7,
        batch_size=4,
        eval_every=7,
        eval_windows=1,
        image_size=32,
        perceptual=False,
        mel_images=True,
        checkpoint_dir=tmp_path / "run",
        artifacts=False,
    )
    _, results = train_tokenizer(cfg)
    tasks = {t for t, _ in seen}
    assert tasks == {"image_rec", "video_rec", "audio_rec"}
    assert ("audio_rec", (80, 2 * MelConfig().sample_rate // 256, 3)) in seen
    # round robin 1 : 3 : 3 (audio as often as video) -> one cycle of 7 micro-batches per optimizer step
    assert sum(t == "audio_rec" for t, _ in seen) == 3 * sum(t == "image_rec" for t, _ in seen)
    assert "eval/mel_l1" in results[0].eval_metrics and results[0].eval_metrics["eval/mel_l1"] > 0
