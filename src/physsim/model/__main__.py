"""`python -m physsim.model --sizes`: parameters and training FLOPs of every model size (no weights made)."""

from __future__ import annotations

import argparse
import sys

from physsim.model import config as config_lib
from physsim.model import flops
from physsim.model.vlm import count_params


def size_rows(vocab_size: int) -> list[dict]:
    rows = []
    for name in config_lib.SIZES:
        cfg = config_lib.get(name, vocab_size=vocab_size)
        counts = count_params(cfg)
        rows.append({"size": name, **counts, "video": f"{cfg.frames}x{cfg.height}x{cfg.width}",
                     "video_tokens": cfg.video_tokens, "train_gflops_per_example": flops.train_flops_per_example(cfg) / 1e9,
                     "dtype": cfg.dtype, "remat": cfg.remat})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.model", description=__doc__)
    parser.add_argument("--sizes", action="store_true", help="print every size's parameter count")
    args = parser.parse_args(argv)
    if not args.sizes:
        parser.print_help()
        return 0
    from rich.console import Console
    from rich.table import Table

    from physsim.episode import default_tokenizer

    table = Table(title=f"physsim model sizes (vocabulary {default_tokenizer().size} tokens)")
    for column in ("size", "encoder", "decoder", "heads", "total", "video (F×H×W)", "video tokens",
                   "train GFLOP/example", "compute", "remat"):
        table.add_column(column, justify="right")
    for r in size_rows(default_tokenizer().size):
        table.add_row(r["size"], f"{r['encoder']:,}", f"{r['decoder']:,}", f"{r['heads']:,}", f"{r['total']:,}",
                      r["video"], str(r["video_tokens"]), f"{r['train_gflops_per_example']:,.1f}", r["dtype"],
                      "yes" if r["remat"] else "no")
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
