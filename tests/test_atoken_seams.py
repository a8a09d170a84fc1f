"""tools/evidence_atoken_seams.py runs on a converted fixture-layout model (``--model DIR``, the path a user
with the converted released So/C takes): its table is finite, the two modes give the same frames within
the first chunk (empty cache, t from 0 in both) and different frames after it (the cache is used)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
ATOKEN = Path(os.environ.get("AVTOK_FIXTURES", ROOT / ".." / "shared" / "fixtures")) / "atoken"

pytestmark = pytest.mark.skipif(
    not (ATOKEN / "atoken_soc.json").is_file(), reason=f"no AToken fixtures in {ATOKEN} (set AVTOK_FIXTURES)"
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """The So/C fixture converted the way ``avtok-tokenizer convert --from atoken`` does."""
    from avtok.tokenizer.visual.convert import convert_atoken

    tmp = tmp_path_factory.mktemp("soc")
    meta = json.loads((ATOKEN / "atoken_soc.json").read_text())
    config = tmp / "atoken_soc.yaml"
    config.write_text(yaml.safe_dump(meta["config_used"]))
    return convert_atoken(ATOKEN / meta["weights"]["file"], config, tmp / "avtok")


@pytest.fixture
def seams(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    import evidence_atoken_seams

    return evidence_atoken_seams


def test_seam_mask_marks_both_sides_of_each_chunk_boundary(seams) -> None:
    mask = seams.seam_mask(40, 16)
    assert mask.nonzero().squeeze(1).tolist() == [15, 16, 31, 32]
    assert seams.seam_mask(32, 16).nonzero().squeeze(1).tolist() == [15, 16]  # the clip's end is no seam
    assert seams.patch_edge_mask(20, 4, 16).nonzero().squeeze(1).tolist() == [0, 3, 4, 7, 8, 11, 12, 19]


def test_converted_model_two_chunks(seams, converted, capsys) -> None:
    reports = seams.main(["--model", str(converted), "--heldout-frames", "32", "--threads", "1"])
    report = reports["model"]
    table = capsys.readouterr().out
    assert "| official_chunks |" in table and "| kv_cached_tiles |" in table
    for mode, *values in report.rows():
        assert len(values) == 4 and all(math.isfinite(v) for v in values), (mode, values)
    assert int(report.seam.sum()) == 2
    official, cached = report.frames["official_chunks"], report.frames["kv_cached_tiles"]
    assert official.shape == cached.shape == report.reference.shape and official.dtype == torch.uint8
    assert torch.equal(official[:16], cached[:16]), "the first chunk sees no cache: both modes must agree"
    assert not torch.equal(official[16:], cached[16:]), "the second chunk attends to the cache: must differ"
    assert "first chunk identical in both modes: True" in table
    # the printed PSNR is avtok.eval.psnr of the uint8 frames, recomputed here
    p = report.psnr["official_chunks"]
    mse = (official.double() - report.reference.double()).square().mean(dim=(1, 2, 3))
    torch.testing.assert_close(p, 10 * torch.log10(255.0**2 / mse))
