"""What ``avtok-generator train`` and ``train-ar`` share: the data options (``--data``, the older
``--clip``, ``--windows``, ``--holdout-seconds``) and the claim of ``--output`` as a run folder
(:func:`avtok.train.run_folder.claim_on_main`, as ``avtok-tokenizer train`` claims its --checkpoint-dir)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

from avtok.generator.training_data import data_specs
from avtok.train.run_folder import claim_on_main

__all__ = ["claim_output", "data_and_flag"]

DATA_HELP = ("Training data (repeatable): a media file, a folder, a manifest (.csv/.jsonl/.parquet), "
             "tar shards (raw media or pre-extracted windows) or sample:<name>; windows come from its "
             "train split")
CLIP_HELP = "Same as --data (the older name): a media file or bundled sample name (repeatable)."
WINDOWS_HELP = ("Training windows per --data/--clip source: a shuffled sample of the train split (all "
                "sources sampled together)")
HOLDOUT_HELP = ("Hold out the last N seconds of every file (never trained on; so does a manifest's split "
                "column)")
RESUME_HELP = "Continue the run in --output (same options; a larger --steps extends it)"
OVERWRITE_HELP = ("Move a run already in --output aside (<dir>.replaced-<time>, nothing deleted) and train "
                  "anew")
RUNTIME_OPTIONS = ("output", "steps", "strategy", "activation_checkpointing", "mlflow", "resume",
                   "overwrite")


def data_and_flag(data: list[str] | None, clips: list[str] | None) -> tuple[list[str], str]:
    """The specs of ``--data`` and ``--clip`` (default: the bundled concert) and the flag errors name."""
    specs = data_specs(data or [], flag="--data") + data_specs(clips or [], flag="--clip")
    return (specs or ["sample:concert"]), ("--clip" if clips and not data else "--data")


def claim_output(output: Path, options: dict, *, command: str, specs: list[str], resume: bool,
                 overwrite: bool) -> AbstractContextManager:
    """Claim ``--output`` for this run (run.json + run.lock, on rank 0): a folder holding another run is
    refused unless --resume (the same options but the run's length) or --overwrite (moved aside)."""
    identity = {k: str(v) for k, v in options.items() if k not in RUNTIME_OPTIONS}
    identity["data"] = [s if s.startswith("sample:") else str(Path(s).resolve()) for s in specs]
    identity.pop("sources", None)  # --clip: in data
    summary = f"{command} {options.get('preset')} on {','.join(specs)}"
    return claim_on_main(output, {"command": command, **identity}, summary=summary, resume=resume,
                         overwrite=overwrite, flag="--output")
