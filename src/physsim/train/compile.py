"""How long the model's part of a training step takes to trace and compile, per model size, without weights.

    python -m physsim.train.compile --sizes small large --batch 8 --json benchmarks/compile/cpu-2core.json

The program is what the trainer compiles around its data pipeline: forward,
backward and the trainer's optimiser update (`step._update`) for the model
and, as with `train.blind_baseline`, for its blind copy, on abstract inputs
of `--batch` examples (`jax.ShapeDtypeStruct`s: nothing is allocated, so the
large model compiles on a small machine). Each tower's blocks are one
`nnx.scan` (`model.layers.Stack`); `--unroll` compiles them unrolled instead,
as every block was traced before the scan.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from flax import nnx

from physsim import episode
from physsim.model import config as model_config
from physsim.model.vlm import abstract
from physsim.train import data as data_lib
from physsim.train import step as step_lib
from physsim.train.config import Config, TrainConfig


def abstract_batch(cfg: model_config.ModelConfig, n: int) -> data_lib.Batch:
    """`n` examples of the model's input and target shapes, as ShapeDtypeStructs."""
    s = jax.ShapeDtypeStruct
    q, objects = (n,), (n, cfg.max_objects)
    return data_lib.Batch(
        video=s((n, cfg.frames, cfg.height, cfg.width, 3), jnp.uint8), frame_mask=s((n, cfg.frames), bool),
        question=s((n, cfg.question_length), jnp.int32), answer=s((n, cfg.answer_length), jnp.int32),
        targets=s((n, cfg.horizons, cfg.max_objects, 3), jnp.float32), target_ok=s(q, bool),
        slot_mask=s(objects, bool), properties=s((*objects, 3), jnp.float32), gravity=s(q, jnp.float32),
        family=s(q, jnp.int32), template=s(q, jnp.int32), task=s(q, jnp.int32), value=s(q, jnp.float32),
        chance=s(q, jnp.float32), answer_class=s(q, jnp.int32), configuration=s(q, jnp.int32), valid=s(q, bool))


def compile_seconds(size: str, batch: int, *, unroll: bool = False, blind: bool = True) -> dict:
    """Seconds to trace and lower, and to compile, one update of a model size (and of its blind copy)."""
    vocab = episode.default_tokenizer().size
    cfg = model_config.get(size, vocab_size=vocab)
    if unroll:
        cfg = cfg.replace(scan_unroll=max(cfg.enc_depth, cfg.dec_depth))
    config = Config(model=cfg, train=TrainConfig(blind_baseline=blind))
    graphdef, state = nnx.split(abstract(cfg))
    params = nnx.to_pure_dict(state)  # the model holds parameters only
    opt = step_lib.optimizer(config)
    opt_state = jax.eval_shape(opt.init, params)
    bos = episode.default_tokenizer().bos_id

    def update(params, opt_state, batch):
        out = step_lib._update(graphdef, params, opt_state, batch, batch.video, config, bos, opt)
        if blind:
            out = (out, step_lib._update(graphdef, params, opt_state, batch, jnp.zeros_like(batch.video), config,
                                         bos, opt))
        return out

    start = time.perf_counter()
    lowered = jax.jit(update).lower(params, opt_state, abstract_batch(cfg, batch))
    traced = time.perf_counter() - start
    start = time.perf_counter()
    lowered.compile()
    compiled = time.perf_counter() - start
    return {"size": size, "batch_size": batch, "blind_copy": blind, "blocks": cfg.enc_depth + cfg.dec_depth,
            "scan": not unroll, "trace_and_lower_s": traced, "compile_s": compiled, "total_s": traced + compiled,
            "device": jax.devices()[0].device_kind, "jax": jax.__version__, "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.train.compile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["small", "large"], choices=list(model_config.SIZES))
    parser.add_argument("--batch", type=int, default=8, help="examples per update (default 8)")
    parser.add_argument("--unroll", action="store_true", help="unroll every tower's blocks (as before the scan)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch {args.batch} must be at least 1")
    rows = []
    for size in args.sizes:
        rows.append(compile_seconds(size, args.batch, unroll=args.unroll))
        r = rows[-1]
        print(f"{size:<6} {'unrolled' if args.unroll else 'scanned':<8} {r['blocks']:>3} blocks  "
              f"trace+lower {r['trace_and_lower_s']:7.1f} s  compile {r['compile_s']:7.1f} s", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
