"""Fine-tuning a converted Ovi-layout model: LoRA through peft on real clips, adapters, loss masking, and the
converter's errors on wrong input."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from avtok.generator import recipes
from avtok.generator.ovi.config import OVI_ROPE_SCALE, build_config
from avtok.generator.ovi.convert import avtok_to_ovi, convert_ovi
from avtok.generator.ovi.flow import FlowBatch, FlowMatchingConfig, flow_matching_loss
from avtok.generator.ovi.lora import LoraSettings, add_lora, load_lora, merge_lora
from avtok.generator.ovi.recipe import short_run_config
from avtok.generator.ovi.sampling import SamplerConfig, TextCondition, sample
from avtok.generator.ovi.twin_dit import TwinDiT
from avtok.train.pretrained import from_pretrained

pytest.importorskip("peft")


def ovi_checkpoint(folder, video_channels: int, audio_channels: int, text_dim: int = 384):
    """A tiny model written in the *official* layout (state dict + video.json / audio.json)."""
    torch.manual_seed(0)
    cfg = build_config("tiny", video_channels=video_channels, audio_channels=audio_channels,
                       text_dim=text_dim, video_patch=(1, 2, 2), text_len=512, audio_embed="conv",
                       audio_rope_scale=OVI_ROPE_SCALE)
    model = TwinDiT(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(avtok_to_ovi(model.state_dict(), cfg), str(folder / "model.safetensors"))
    (folder / "video.json").write_text(json.dumps({"num_heads": cfg.heads, "in_dim": video_channels}))
    (folder / "audio.json").write_text(json.dumps({"in_dim": audio_channels,
                                                   "temporal_rope_scaling_factor": OVI_ROPE_SCALE}))
    return model


@pytest.fixture(scope="module")
def converted(tmp_path_factory, real_latents):
    video, audio = real_latents
    root = tmp_path_factory.mktemp("lora")
    original = ovi_checkpoint(root / "ovi", video.shape[-1], audio.shape[-1])
    out = convert_ovi(root / "ovi", root / "avtok")
    return out, original, root


def batch_of(real_latents) -> FlowBatch:
    video, audio = real_latents
    text = torch.randn(video.shape[0], 6, 384, generator=torch.Generator().manual_seed(3))
    return FlowBatch(video=video, audio=audio, text=text)


def fixed_loss(model, batch: FlowBatch) -> float:
    fm = FlowMatchingConfig(text_dropout=0.0)
    with torch.no_grad():
        return flow_matching_loss(model, batch, fm, generator=torch.Generator().manual_seed(7)).loss.item()


def test_converted_model_is_the_written_one(converted):
    out, original, _ = converted
    model = from_pretrained(out)
    for k, v in original.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_lora_lowers_the_loss_and_adapters_round_trip(converted, real_latents, tmp_path):
    out, _, _ = converted
    batch = batch_of(real_latents)
    base = from_pretrained(out)
    before = fixed_loss(base, batch)
    settings = LoraSettings(rank=4, alpha=8, targets=("self", "cross", "fusion", "ffn"))
    model = add_lora(from_pretrained(out), settings)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    items = [{"video": batch.video[i], "audio": batch.audio[i], "text": batch.text[i]} for i in range(4)]
    cfg = short_run_config(lr=1e-2, steps=30, checkpoint_dir=tmp_path / "ckpt", warmup_steps=2, log_every=40,
                           progress=False)
    recipes.train_generator(model, items, cfg, fm=FlowMatchingConfig(text_dropout=0.0), batch_size=4)
    model.eval()
    after = fixed_loss(model, batch)
    assert after < 0.8 * before, (before, after)
    # base weights untouched by LoRA
    fresh = from_pretrained(out)
    merged_ref = {k: v.clone() for k, v in fresh.state_dict().items()}
    model.save_pretrained(str(tmp_path / "adapter"))
    loaded = load_lora(fresh, tmp_path / "adapter")
    assert fixed_loss(loaded, batch) == pytest.approx(after, rel=1e-6)
    # merged and unmerged sampling agree
    text = TextCondition(text=batch.text[:1], negative_video=torch.zeros_like(batch.text[:1]),
                         negative_audio=torch.zeros_like(batch.text[:1]))
    spec = _spec(batch)
    scfg = SamplerConfig(steps=3, slg_layer=1)
    unmerged = sample(loaded, spec, text, cfg=scfg, seeds=[5])
    merged_model = merge_lora(loaded)
    assert any(not torch.equal(merged_model.state_dict()[k], v) for k, v in merged_ref.items())
    merged = sample(merged_model, spec, text, cfg=scfg, seeds=[5])
    torch.testing.assert_close(merged.video, unmerged.video, rtol=0, atol=1e-4)
    torch.testing.assert_close(merged.audio, unmerged.audio, rtol=0, atol=1e-4)


def _spec(batch: FlowBatch):
    from avtok.generator.ovi.config import LatentSpec

    _, t, h, w, c = batch.video.shape
    return LatentSpec(video_frames=t, video_height=h, video_width=w, video_channels=c, video_latent_rate=8.0,
                      audio_tokens=batch.audio.shape[1], audio_channels=batch.audio.shape[2],
                      audio_latent_rate=batch.audio.shape[1])


def test_loss_masking_and_lora_on_one_tower(converted, real_latents):
    out, _, _ = converted
    batch = batch_of(real_latents)
    model = from_pretrained(out)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    both = flow_matching_loss(model, batch, FlowMatchingConfig(text_dropout=0.0), generator=g())
    masked = {on: flow_matching_loss(model, batch, FlowMatchingConfig(text_dropout=0.0, loss_on=on),
                                     generator=g()) for on in ("video", "audio")}
    only_v, only_a = masked["video"], masked["audio"]
    assert only_v.loss.item() == pytest.approx(both.video.item()) and only_a.loss.item() == pytest.approx(
        both.audio.item())
    assert both.loss.item() == pytest.approx(0.85 * both.video.item() + 0.15 * both.audio.item())
    audio_only = add_lora(from_pretrained(out), LoraSettings(rank=2, towers=("audio",)))
    names = [n for n, _ in audio_only.named_parameters() if "lora_A" in n]
    assert names and all(".audio.blocks." in n for n in names)


def test_convert_rejects_other_checkpoints(tmp_path, converted):
    _, _, root = converted
    other = tmp_path / "other"
    other.mkdir()
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(other / "model.safetensors"))
    with pytest.raises(ValueError, match="not an Ovi fusion checkpoint"):
        convert_ovi(other, tmp_path / "o1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no Ovi checkpoint"):
        convert_ovi(tmp_path / "empty", tmp_path / "o2")
    wrong = tmp_path / "wrong"
    ovi_checkpoint(wrong, 3, 80)
    (wrong / "video.json").write_text(json.dumps({"num_heads": 4, "in_dim": 48}))  # claims Wan2.2's 48
    with pytest.raises(ValueError, match="takes 3 latent channels"):
        convert_ovi(wrong, tmp_path / "o3")
