"""OviAutoencoders: media <-> DiT latents on the golden fixtures, and the mp4 it writes."""

from __future__ import annotations

import pytest
import torch

from avtok.generator.ovi.audio_vae import load_audio_vae
from avtok.generator.ovi.autoencoders import OviAutoencoders
from avtok.generator.ovi.checkpoints import OVI_CHECKPOINT_FILES
from avtok.generator.ovi.video_vae import load_wan_vae
from avtok.generator.ovi.vocoder import load_bigvgan
from avtok.media_io import read_clip, write_clip


@pytest.fixture(scope="module")
def fx(ovi_fixture):
    return ovi_fixture("ovi_video_vae"), ovi_fixture("ovi_audio_vae")


@pytest.fixture(scope="module")
def ae(fx):
    (_, _, vstate), (_, _, astate) = fx
    return OviAutoencoders(
        video=load_wan_vae(vstate),
        audio=load_audio_vae(astate, prefix="vae."),
        vocoder=load_bigvgan(astate, prefix="vocoder."),
    )


def test_video_round_trip_layouts(fx, ae, assert_close):
    (_, vio, _), _ = fx
    latent = ae.encode_video(vio["video_u8"])  # (48, F, h, w): what the DiT sees
    assert_close(latent, vio["latent"][0])
    assert_close(ae.encode_video(vio["video_input"][0]), vio["latent"][0])
    assert_close(ae.decode_video(vio["latent"][0]), vio["decoded"][0])
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\) uint8"):
        ae.encode_video(vio["video_input"][0].permute(1, 2, 3, 0))


def test_audio_layouts(fx, ae, assert_close):
    _, (_, aio, _) = fx
    assert_close(ae.decode_audio(aio["dit_audio_latent"]), aio["waveform_decoded"][0, 0])
    latent = ae.encode_audio(aio["waveform"][0])  # through our own mel front end
    assert latent.shape == aio["dit_audio_latent"].shape
    # the front end's float32 STFT rounding (<= 1e-3 on the mel, fixtures README) reaches the latent
    assert_close(latent, aio["dit_audio_latent"], rel=1e-3)


def test_decode_writes_an_mp4(fx, ae, tmp_path):
    (_, vio, _), (_, aio, _) = fx
    clip = ae.decode(vio["latent"][0], aio["dit_audio_latent"])
    assert clip.video.dtype == torch.uint8 and clip.video.shape == vio["video_u8"].shape
    assert torch.equal(clip.video, ((vio["decoded"][0] + 1) / 2 * 255).to(torch.uint8).permute(1, 2, 3, 0))
    assert clip.sample_rate == 16000 and clip.audio.shape == (1, aio["waveform_decoded"].shape[-1])
    path = write_clip(tmp_path / "ovi.mp4", clip)
    back = read_clip(path)
    assert back.video.shape == clip.video.shape and back.sample_rate == 16000


def test_from_checkpoint_dir(fx, tmp_path):
    (_, _, vstate), (_, _, astate) = fx
    files = {k: tmp_path / v for k, v in OVI_CHECKPOINT_FILES.items()}
    for f in files.values():
        f.parent.mkdir(parents=True, exist_ok=True)
    torch.save(vstate, files["video_vae"])
    torch.save({k[4:]: v for k, v in astate.items() if k.startswith("vae.")}, files["audio_vae"])
    torch.save(
        {"generator": {k[8:]: v for k, v in astate.items() if k.startswith("vocoder.")}}, files["vocoder"]
    )
    ae = OviAutoencoders.from_checkpoint_dir(tmp_path)
    assert ae.audio.cfg.hidden_dim == astate["vae.encoder.conv_in.weight"].shape[0]
    files["vocoder"].unlink()
    with pytest.raises(FileNotFoundError, match="best_netG.pt"):
        OviAutoencoders.from_checkpoint_dir(tmp_path)
