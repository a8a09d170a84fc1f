"""write_clip: an AVClip -> h264 (yuv420p) + AAC mp4 that PyAV and ffmpeg read back."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from avtok.media_io.clip import AVClip
from avtok.media_io.errors import MediaError
from avtok.media_io.pyav import av  # imported on first use (decoding / encoding only)

_AAC_FRAME = 1024  # samples per AAC frame
_AAC_LAYOUTS = {1: "mono", 2: "stereo", 3: "3.0", 4: "4.0", 5: "5.0", 6: "5.1", 8: "7.1"}


def _check_writable(path: Path, clip: AVClip, crf: int) -> None:
    if path.suffix.lower() not in (".mp4", ".m4v", ".mov"):
        raise MediaError("write_clip writes mp4 (h264 + AAC); fix: use a .mp4 file name", path=path)
    if clip.height % 2 or clip.width % 2:
        raise MediaError(
            f"h264 (yuv420p) needs an even frame size, got {clip.height}x{clip.width}; "
            "fix: read with an even size=(H, W) or crop/pad the frames by one pixel",
            path=path,
        )
    if clip.channels not in _AAC_LAYOUTS:
        raise MediaError(
            f"AAC cannot store {clip.channels} audio channels; fix: mix down to 1 or 2 channels", path=path
        )
    if not 0 <= crf <= 51:
        raise MediaError(f"crf={crf!r} is outside x264's range 0..51; fix: e.g. crf=18", path=path)
    if not path.parent.is_dir():
        raise MediaError(f"folder {path.parent} does not exist; fix: create it first", path=path)


def _add_streams(container, clip: AVClip, crf: int):
    """Both streams must exist before the first packet is muxed (that writes the header)."""
    rate = Fraction(clip.fps).limit_denominator(1001)
    video = container.add_stream("libx264", rate=rate)
    video.width, video.height, video.pix_fmt = clip.width, clip.height, "yuv420p"
    # mbtree=0: x264's macroblock-tree rate control made the output depend on memory the encoder had not
    # written (see write_clip); without it the same frames give the same bytes in every process.
    video.options = {"crf": str(crf), "preset": "medium", "x264-params": "mbtree=0"}
    layout = _AAC_LAYOUTS[clip.channels]
    audio = container.add_stream("aac", rate=clip.sample_rate, layout=layout)
    return video, audio


def _write_video(container, stream, clip: AVClip) -> None:
    for i, rgb in enumerate(clip.video.numpy()):  # (H, W, 3) uint8 per frame
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
            format="yuv420p"
        )
        frame.pts, frame.time_base = i, Fraction(1, 1) / stream.codec_context.framerate
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def _write_audio(container, stream, clip: AVClip) -> None:
    layout = _AAC_LAYOUTS[clip.channels]
    wave = np.ascontiguousarray(clip.audio.numpy(), dtype=np.float32)  # (C, N)
    for offset in range(0, wave.shape[1], _AAC_FRAME):
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(wave[:, offset : offset + _AAC_FRAME]), format="fltp", layout=layout
        )
        frame.sample_rate, frame.pts, frame.time_base = (
            clip.sample_rate,
            offset,
            Fraction(1, clip.sample_rate),
        )
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_clip(path: str | Path, clip: AVClip, *, crf: int = 18) -> Path:
    """Write ``clip`` as an mp4 (h264 yuv420p at ``crf``, AAC audio); returns the path.

    The header (moov) is moved to the front (``movflags=+faststart``) so the file streams; AAC's encoder
    delay is recorded in the mp4 edit list, so readers see audio starting at 0.

    The file is reproducible: the same clip gives the same bytes in every process. x264's default
    macroblock-tree rate control does not (the libx264 in PyAV's wheel): the first encode in a process
    came out different in most processes — decoded pixels up to 32/255 apart on 4.5 s of the concert
    clip, with one thread or several — while later encodes in the same process agreed, the signature of a
    read of memory that was never written (fresh pages are zeros, recycled ones hold whatever was there).
    Tests and evidence runs that write their fixture clips shifted from session to session because of
    it. With ``mbtree=0`` 12 of 12 fresh processes wrote identical files; it costs some bits at a given
    ``crf`` (the tree lowers the quality of rarely-referenced blocks to save them).
    """
    path = Path(path)
    _check_writable(path, clip, crf)
    try:
        with av.open(str(path), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            video, audio = _add_streams(container, clip, crf)
            _write_video(container, video, clip)
            _write_audio(container, audio, clip)
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"encoding failed ({exc}); fix: check the frame size and free disk space", path=path
        ) from exc
    return path
