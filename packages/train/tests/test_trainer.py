"""The loop: accumulation equivalence, NaN guard, clipping, tracking calls, eval/artifact hooks, budget."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from avtok.eval.tracking import NullTracker
from avtok.train import ResumableLoader, TrainConfig, Trainer


def _cfg(**kw) -> TrainConfig:
    base = {"lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 2, "max_steps": 6, "ema_decay": None,
            "clip_grad_norm": None, "log_every": 1, "progress": False}
    return TrainConfig(**(base | kw))


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_grad_accumulation_of_two_equals_doubled_batch(toy):
    data = toy.make_dataset(48)
    runs = {}
    for accum, batch in ((2, 4), (1, 8)):
        model = toy.make_model()
        loader = ResumableLoader(data, batch_size=batch, shuffle=False)
        tracker = toy.ListTracker()
        Trainer(model, toy.step_fn, loader, _cfg(grad_accum=accum, clip_grad_norm=1.0), tracker=tracker).fit()
        runs[accum] = (_params(model), tracker.series("train/loss"), tracker.series("train/grad_norm"))
    (p2, loss2, gn2), (p1, loss1, gn1) = runs[2], runs[1]
    for k in p1:
        torch.testing.assert_close(p2[k], p1[k], atol=1e-6, rtol=1e-5)
    assert loss2 == pytest.approx(loss1, rel=1e-5) and gn2 == pytest.approx(gn1, rel=1e-5)
    assert len(loss1) == 6 and loss1[6] < loss1[1]  # it also learns


def test_nan_guard_skips_the_step_and_logs_it(toy, caplog):
    model = toy.make_model()
    calls = {"n": 0}

    def step(model, batch):
        calls["n"] += 1
        out = toy.step_fn(model, batch)
        if calls["n"] == 3:  # the third optimiser step produces NaN
            out["loss"] = out["loss"] * float("nan")
        return out

    trainer = Trainer(model, step, ResumableLoader(toy.make_dataset(32), batch_size=4), _cfg(max_steps=4),
                      tracker=(tracker := toy.ListTracker()))
    before = {}
    original = trainer.train_step

    def spy():
        before[trainer.step + 1] = _params(model)
        return original()

    trainer.train_step = spy
    with caplog.at_level(logging.WARNING, logger="avtok.training"):
        summary = trainer.fit()
    after_3 = before[4]  # parameters when step 4 began = after step 3
    for k, v in before[3].items():
        assert torch.equal(after_3[k], v), f"{k} changed on the skipped step"
    assert not torch.equal(before[2]["decoder.weight"], before[3]["decoder.weight"])  # normal steps update
    assert summary.skipped_steps == 1
    assert tracker.series("train/nan_skipped") == {1: 0.0, 2: 0.0, 3: 1.0, 4: 1.0}
    assert any("step 3: non-finite" in r.message for r in caplog.records)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_clipping_bounds_the_update_norm(toy):
    model = toy.make_model()
    scale = 1e4  # a huge loss: unclipped gradient norm far above the bound

    def step(model, batch):
        out = toy.step_fn(model, batch)
        return dict(out, loss=out["loss"] * scale)

    trainer = Trainer(model, step, ResumableLoader(toy.make_dataset(16), batch_size=8),
                      _cfg(max_steps=1, clip_grad_norm=0.5))
    sums = trainer._micro_steps()
    norm = trainer._clip()
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert sums["loss"] > 1.0 and norm.item() > 100.0  # the reported norm is the pre-clip norm
    assert clipped.item() == pytest.approx(0.5, rel=1e-4)


def test_tracker_gets_config_metrics_and_artifacts_at_eval_steps(toy, tmp_path: Path):
    tracker = toy.ListTracker()
    evaluated = []

    def evaluate(model, step):
        evaluated.append(step)
        x = torch.stack([x for x, _ in toy.make_dataset(8, seed=9)])
        return {"loss": float(model(x).square().mean())}

    def artifacts(model, step, out_dir):
        path = out_dir / "strip.txt"
        path.write_text(f"step {step}")
        return [path]

    cfg = _cfg(max_steps=6, eval_every=3, log_every=2, ema_decay=0.9, checkpoint_dir=tmp_path / "ckpt",
               checkpoint_every=100, lr_multipliers={"encoder": 0.1})
    trainer = Trainer(toy.make_model(), toy.step_fn, ResumableLoader(toy.make_dataset(32), batch_size=4), cfg,
                      tracker=tracker, evaluate=evaluate, artifacts=artifacts,
                      extra_metrics=lambda model, step: {"codebook/usage": 0.5},
                      params={"model": {"dim": 16}})
    summary = trainer.fit()
    assert tracker.params["train.lr"] == 1e-2 and tracker.params["train.lr_multipliers.encoder"] == 0.1
    assert tracker.params["train.max_steps"] == 6 and tracker.params["model.dim"] == 16
    assert set(tracker.params) >= {f"train.{k}" for k in ("betas", "weight_decay", "warmup_steps", "seed")}
    train_steps = [s for s, m in tracker.metrics if "train/loss" in m]
    assert train_steps == [2, 4, 6]
    logged = dict(tracker.metrics)[2]
    assert {"train/loss", "train/l1", "train/lr", "train/grad_norm", "codebook/usage"} <= set(logged)
    assert evaluated == [3, 6] and tracker.series("eval/loss").keys() == {3, 6}
    assert [a for _, a in tracker.artifacts] == ["step-00000003", "step-00000006"]
    assert Path(tracker.artifacts[0][0]).read_text() == "step 3"
    best = summary.best  # eval/loss picks the best checkpoint, written even off the checkpoint cadence
    assert best is not None and best["step"] in (3, 6)
    assert (tmp_path / "ckpt" / f"step-{best['step']:08d}").is_dir()


def test_null_tracker_run_and_wall_clock_budget(toy):
    cfg = _cfg(max_steps=10_000, max_minutes=0.02)  # 1.2 s
    summary = Trainer(toy.make_model(), toy.step_fn, ResumableLoader(toy.make_dataset(32), batch_size=4), cfg,
                      tracker=NullTracker()).fit()
    assert summary.stop_reason == "max_minutes" and 0 < summary.steps < 10_000
    assert 1.0 < summary.wall_seconds < 10.0 and summary.last_metrics["train/loss"] > 0


def test_budget_ends_the_cosine_where_the_minutes_run_out(toy):
    """With ``max_minutes`` and a huge ``max_steps`` the schedule still reaches ``min_lr``: the horizon is
    re-estimated from the measured step rate. ``anneal_to_budget=False`` keeps the step-based cosine."""
    def run(anneal: bool):
        cfg = _cfg(max_steps=1_000_000, max_minutes=0.03, warmup_steps=2, anneal_to_budget=anneal)
        tracker = toy.ListTracker()
        trainer = Trainer(toy.make_model(), toy.step_fn, ResumableLoader(toy.make_dataset(32), batch_size=4),
                          cfg, tracker=tracker)
        summary = trainer.fit()
        return trainer, summary, tracker.series("train/lr")

    trainer, summary, lrs = run(True)
    assert summary.stop_reason == "max_minutes" and summary.steps > 50
    assert trainer.horizon < 1_000_000 and abs(trainer.horizon - summary.steps) <= 0.25 * summary.steps
    steps = sorted(lrs)
    assert lrs[steps[-1]] < 0.25 * 1e-2  # the last steps run near min_lr (1e-3 of a 1e-2 peak)
    assert max(lrs.values()) == pytest.approx(1e-2, rel=0.05)
    _, _, flat = run(False)
    assert min(flat[s] for s in flat if s > 2) > 0.99 * 1e-2  # 1M-step cosine: still at the peak


def test_step_fn_without_loss_is_a_clear_error(toy):
    trainer = Trainer(toy.make_model(), lambda m, b: {"mse": torch.tensor(1.0)},
                      ResumableLoader(toy.make_dataset(8), batch_size=4), _cfg(max_steps=1))
    with pytest.raises(KeyError, match="'loss'"):
        trainer.fit()


def test_in_process_resume_is_exact(toy, tmp_path: Path):
    """Same-process resume (the subprocess/SIGKILL version lives in test_resume_kill.py)."""
    def run(max_steps: int, resume: bool, seed_model: int = 0):
        cfg = _cfg(max_steps=max_steps, checkpoint_dir=tmp_path, checkpoint_every=3, ema_decay=0.9,
                   clip_grad_norm=1.0)
        tracker = toy.ListTracker()
        trainer = Trainer(toy.make_model(seed=seed_model, dropout=0.3), toy.step_fn,
                          ResumableLoader(toy.make_dataset(20), batch_size=6, seed=2), cfg, tracker=tracker)
        trainer.fit(resume=resume)
        return _params(trainer.module), tracker.series("train/loss"), trainer.ema.state_dict()

    ref_params, ref_loss, ref_ema = run(8, False)
    for d in tmp_path.iterdir():
        if d.name.startswith("step-") and d.name != "step-00000003":
            __import__("shutil").rmtree(d)
    params, loss, ema = run(8, True, seed_model=7)  # different init: everything must come from the checkpoint
    assert sorted(loss) == [4, 5, 6, 7, 8]
    assert all(loss[s] == ref_loss[s] for s in loss)
    assert all(torch.equal(params[k], ref_params[k]) for k in ref_params)
    assert all(torch.equal(ema[k], ref_ema[k]) for k in ref_ema)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_autocast_on_cuda(toy):
    model = toy.make_model().cuda()
    seen = {}

    def step(model, batch):
        x, y = (t.cuda() for t in batch)
        h = model.encoder[0](x)
        seen["dtype"] = h.dtype
        return {"loss": (model(x) - y).square().mean()}

    Trainer(model, step, ResumableLoader(toy.make_dataset(16), batch_size=4), _cfg(max_steps=2)).fit()
    assert seen["dtype"] == torch.bfloat16
    assert next(model.parameters()).dtype == torch.float32  # master weights stay fp32


def test_last_step_is_evaluated_even_off_cadence(toy):
    evaluated = []
    cfg = _cfg(max_steps=5, eval_every=3, log_every=4)
    tracker = toy.ListTracker()
    summary = Trainer(toy.make_model(), toy.step_fn, ResumableLoader(toy.make_dataset(16), batch_size=4), cfg,
                      tracker=tracker, evaluate=lambda m, s: evaluated.append(s) or {"loss": float(s)}).fit()
    assert evaluated == [3, 5] and summary.eval_metrics == {"eval/loss": 5.0}
    assert sorted(tracker.series("train/loss")) == [4, 5]  # step 5 logged although log_every=4
