"""Frozen question sets from the same jitted pipeline training uses, batch by batch.

A set is named by (family, split, seed, batch size) and is the same on every
run: batch b of a family is simulated from
`fold_in(fold_in(split_key(seed, split), crc32(family)), b)`, so adding a
family or asking for more samples never changes the samples already made.
The keys come from their own stream of the seed (`streams.export`), apart from
training's (stream 0) and the trainer's held-out suites (stream 1).

Splits: `train` and `test_id` draw parameters from the training ranges
(from different key streams), `test_ood` from the out-of-distribution ranges
(low gravity, unseen masses, frictions, speeds, sizes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import jax
import numpy as np
from tqdm.auto import tqdm

from physsim import _names, scenarios, streams
from physsim import episode
from physsim.questions.templates import YES_NO, Template

EMPTY_BATCHES = 20  # batches in a row without a question before a set is refused (rather than looping forever)
# split name -> (parameter ranges it samples, key sub-stream)
SPLITS = {"train": ("train", 0), "test_id": ("train", 1), "test_ood": ("ood", 2)}


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise _names.unknown("split", split, SPLITS)


def check_families(families) -> tuple[str, ...]:
    families = tuple(families)
    if not families:
        raise ValueError("no scene families chosen")
    for name in families:
        scenarios.get(name)  # a clear error naming the unknown family
    return families


def batch_key(seed: int, split: str, family: str, batch: int) -> jax.Array:
    check_split(split)
    return streams.export(seed, SPLITS[split][1], family, batch)




def _template_fields(t: Template) -> dict:
    return {"template": t.name, "task": t.task, "kind": t.kind, "unit": t.unit, "abs_tol": t.abs_tol,
            "rel_tol": t.rel_tol, "options": list(t.options) if t.kind == "choice" else
            (list(YES_NO) if t.kind == "yesno" else []), "tolerance": t.tolerance_text()}


def records(family: str, split: str, num: int, *, seed: int = 0, batch_size: int = 32, depth: bool = False,
            segmentation: bool = False, first_batch: int = 0) -> Iterator[dict]:
    """`num` question records of one family and split, in a fixed order (see the module docstring).

    Each record: id, family, split, task, template, kind, question (as
    written), prompt (the context a viewer needs, then the question),
    frame_times (s) and fps of the frames, answer (text), value (the number
    or class behind it), chance, explanation, tolerance
    (text, and unit / abs_tol / rel_tol), options, params (the sampled scene
    parameters), seed, batch, slot, frames (F, H, W, 3) uint8 and, when asked,
    depth (F, H, W) float32 metres and segmentation (F, H, W) int32.
    Only well-posed questions about soundly simulated worlds are yielded.
    """
    check_split(split)
    if not isinstance(num, int) or num < 0:
        raise ValueError(f"num={num!r} must be a non-negative integer")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    spec = episode.BatchSpec(family, split=SPLITS[split][0], n_worlds=batch_size, n_questions=batch_size).resolved()
    templates = spec.templates()
    tok = episode.default_tokenizer()
    fps = 1.0 / spec.frame_interval()
    frame_times = [round(float(k) / scenarios.get(family).layout().fps, 4) for k in spec.video_frames()]
    made, batch, empty = 0, first_batch, 0
    while made < num:
        qa = jax.device_get(episode.qa_batch(batch_key(seed, split, family, batch), spec, tok,
                                             extras=depth or segmentation))
        valid = np.flatnonzero(np.asarray(qa.valid))
        empty = 0 if valid.size else empty + 1
        if empty == EMPTY_BATCHES:
            raise ValueError(f"{EMPTY_BATCHES} batches of {batch_size} {family!r} worlds of split {split!r} in a row "
                             f"gave no well-posed question; this family asks nothing of that split")
        for i in valid:
            if made == num:
                break
            t = templates[int(qa.template[i])]
            # The paraphrase as written (the tokens the model reads are its lower-cased words), and the prompt:
            # what a viewer needs beside it (frame times, the time origin, a scale for distances).
            words = episode.describe(spec, t, float(qa.value[i]), float(qa.event_time[i]), int(qa.paraphrase[i]))
            rec = {
                "id": f"{family}-{split}-s{seed}-b{batch}-{i}", **words, "split": split,
                "frame_times": frame_times, "fps": fps, "chance": float(qa.chance[i]), **_template_fields(t),
                "params": {k: np.asarray(v[i]).tolist() for k, v in qa.params.items()},
                "seed": seed, "batch": batch, "slot": int(i), "frames": np.asarray(qa.video[i]),
            }
            if depth:
                rec["depth"] = np.asarray(qa.depth[i], np.float32)
            if segmentation:
                rec["segmentation"] = np.asarray(qa.segmentation[i], np.int32)
            made += 1
            yield rec
        batch += 1


def split_counts(total: int, families: tuple[str, ...]) -> dict[str, int]:
    """`total` questions shared as evenly as possible among the families (earlier families get the rest)."""
    base, rest = divmod(total, len(families))
    return {f: base + (i < rest) for i, f in enumerate(families)}


def set_records(families: tuple[str, ...], split: str, num: int, *, desc: str, **kwargs) -> Iterator[dict]:
    """`num` records of a set shared among `families` (see `split_counts`), family after family, with a
    progress bar; `kwargs` go to `records`."""
    counts = split_counts(num, families)
    with tqdm(total=num, desc=desc, unit="q") as bar:
        for family in families:
            for rec in records(family, split, counts[family], **kwargs):
                bar.update(1)
                yield rec


def metadata(rec: dict) -> dict:
    """A record without its arrays (what JSONL and the scorer keep)."""
    return {k: v for k, v in rec.items() if not isinstance(v, np.ndarray)}


def params_json(rec: dict) -> str:
    return json.dumps(rec["params"], sort_keys=True)


__all__ = ["SPLITS", "batch_key", "check_families", "check_split", "metadata", "params_json", "records", "set_records",
           "split_counts"]
