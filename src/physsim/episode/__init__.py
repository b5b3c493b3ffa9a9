"""The episode core: from a PRNG key to a batch of (video, question, answer), inside one `jax.jit`.

    key -> sample -> worlds -> counterfactual twins + knife-edge shadows -> one rollout -> facts
        -> pick balanced questions -> render the window once (one camera jitter) -> tokens + video

`spec` says what a batch is (`BatchSpec`, `View`), `core` simulates and
measures (`Measured`, `askable`), `pick` draws balanced questions and their
tokens, `batch` renders and assembles (`QABatch`) and puts any question into
words (`describe`, `readable`). `env.Env`, the trainer's data, the held-out
suites, the exports, the reference pipeline, the checks and the audit are
built on these functions; nothing below this package (sim, render, scenarios,
the question vocabulary) imports it.
"""

from physsim.episode.batch import (
    QABatch,
    assemble,
    camera_jitter,
    describe,
    make_batch,
    qa_batch,
    readable,
    render_images,
    render_worlds,
)
from physsim.episode.core import (
    KNIFE_EDGE,
    TARGET_STABLE,
    Measured,
    answer_classes,
    askable,
    class_mask,
    configuration,
    measure_facts,
    measure_params,
    rollout,
    shadow_world,
    simulate_and_measure,
    slot_properties,
    stable,
    twin_worlds,
    worlds_of,
)
from physsim.episode.pick import complete_configurations, draw_tables, pick_distinct, pick_questions, questions_at
from physsim.episode.spec import BALANCE_MODES, BatchSpec, View, all_templates, default_tokenizer

__all__ = [
    "BALANCE_MODES", "KNIFE_EDGE", "TARGET_STABLE", "BatchSpec", "Measured", "QABatch", "View", "all_templates",
    "answer_classes", "askable", "assemble", "camera_jitter", "class_mask", "complete_configurations",
    "configuration", "default_tokenizer", "describe", "draw_tables", "make_batch", "measure_facts",
    "measure_params", "pick_distinct", "pick_questions", "qa_batch", "questions_at", "readable", "render_images",
    "render_worlds", "rollout", "shadow_world", "simulate_and_measure", "slot_properties", "stable", "twin_worlds",
    "worlds_of",
]
