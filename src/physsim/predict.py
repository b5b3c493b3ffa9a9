"""Ask a trained model about fresh scenes: `python -m physsim.predict --checkpoint DIR --scenario NAME`.

Simulates and renders new worlds of a family (the same jitted pipeline that
makes training batches), asks their balanced questions, decodes the model's
answers with the KV-cache decoder, and prints question, model answer, true
answer (with its tolerance) and whether the model is right, judged by the
same free-text checker that scores any model (`physsim.questions.answers`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jax

from physsim import episode
from physsim import model as model_lib
from physsim import scenarios
from physsim.model import checkpoint
from physsim.questions import answers
from physsim.sim import params as params_lib


def check_tokenizer_fits(cfg: model_lib.ModelConfig, tokenizer) -> None:
    if tokenizer.size > cfg.vocab_size:
        raise ValueError(f"tokenizer of {tokenizer.size} tokens does not fit model.vocab_size={cfg.vocab_size}")


def predict(model: model_lib.VLM, tokenizer, family: str, key: jax.Array, *, n: int = 8, split: str = "train",
            temperature: float = 0.0) -> list[dict]:
    """n fresh questions of `family`, each a dict of question, answer, model_answer, correct, task, ..."""
    cfg = model.config
    check_tokenizer_fits(cfg, tokenizer)
    spec = episode.BatchSpec(family, split=split, n_worlds=n, n_questions=n, width=cfg.width, height=cfg.height)
    spec = spec.resolved()
    k_scene, k_decode = jax.random.split(key)
    try:
        batch = episode.qa_batch(k_scene, spec, tokenizer)
    except ValueError as e:
        if "not in the vocabulary" in str(e):
            raise ValueError(f"the checkpoint's tokenizer (version {tokenizer.version}) cannot write {family!r} "
                             f"questions: {e}") from e
        raise
    video, frame_mask = model_lib.pad_frames(batch.video, cfg.frames)
    tokens = model_lib.generate(model, video, frame_mask, batch.question, model_lib.SpecialTokens.of(tokenizer),
                                key=k_decode, temperature=temperature)
    templates = spec.templates()
    rows = episode.readable(batch, spec, tokenizer)
    for row, t, answer_tokens in zip(rows, batch.template.tolist(), tokens):
        row["model_answer"] = tokenizer.decode(answer_tokens)
        row["correct"] = answers.check_answer(row["model_answer"], templates[t], row["value"])
    return rows


def print_table(rows: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for column in ("task", "question", "model answer", "true answer", ""):
        table.add_column(column, overflow="fold")
    for r in rows:
        truth = r["answer"] + (f" ({r['tolerance']})" if r["tolerance"] else "")
        mark = "[green]correct[/green]" if r["correct"] else "[red]wrong[/red]"
        table.add_row(r["task"], r["question"], r["model_answer"] or "(nothing)", truth, mark)
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(table)
    right = sum(r["correct"] for r in rows)
    console.print(f"{right} of {len(rows)} correct ({right / max(len(rows), 1):.0%})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a checkpoint directory (e.g. runs/tiny/checkpoints)")
    parser.add_argument("--scenario", required=True, help=f"scene family: {', '.join(scenarios.names())}")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    parser.add_argument("--num", type=int, default=8, help="questions to ask (one fresh world each)")
    parser.add_argument("--split", default="train", help="parameter ranges: train or ood")
    parser.add_argument("--seed", type=int, default=None, help="scene seed (default: a fresh one, printed)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 decodes greedily")
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f"--num={args.num} must be a positive integer")
    try:
        scenarios.get(args.scenario)
        params_lib.check_split(args.split)
        model, tokenizer, meta = checkpoint.load(args.checkpoint, args.step)
    except (ValueError, checkpoint.CheckpointError) as e:
        parser.error(str(e))
    seed = int.from_bytes(os.urandom(4), "little") if args.seed is None else args.seed
    rows = predict(model, tokenizer, args.scenario, jax.random.key(seed), n=args.num, split=args.split,
                   temperature=args.temperature)
    print_table(rows, f"{args.scenario} ({args.split}), seed {seed}, checkpoint step {meta['step']} "
                      f"of {args.checkpoint}, model {model.config.size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
