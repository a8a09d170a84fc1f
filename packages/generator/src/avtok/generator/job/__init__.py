"""The main job: train the tiny AV tokenizer and twin-DiT generator on a real sounding video, evaluate both
with avtok-eval, log to MLflow and write an HTML report — ``avtok demo`` (console command of
avtok-generator, the top of the dependency chain). Modules: ``config`` (DemoConfig, presets),
``tokenizer_stage`` / ``generator_stage`` (train or reuse, evaluate), ``report`` (HTML), ``cli`` (the command).
"""
