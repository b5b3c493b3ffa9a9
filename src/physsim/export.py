"""Export a frozen question set: `python -m physsim.export --format jsonl --out DIR --num N --split test_ood`.

`--format jsonl` writes `DIR/images/<id>_<k>.png` (the observation window,
one PNG per frame), `DIR/data.jsonl` (one question per line, in the chat
layout VLM fine-tuning tools read; schema in the README) and `DIR/info.json`
(how the set was made). `--format tfds` builds the TFDS dataset
(`physsim.data.builder`, array_record) into DIR.

An export is written under a temporary name beside DIR and renamed at the
end, so DIR never looks complete when it is not: an interrupted export leaves
only the temporary directory, which the next export removes. An existing DIR
is refused unless `--overwrite`, and is replaced only once the new set is
complete; `--overwrite` deletes nothing but an empty directory or an earlier
export (its `info.json`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from PIL import Image

import physsim
from physsim import _names, scenarios
from physsim.data import generate

FORMATS = ("jsonl", "tfds")


def chat_record(rec: dict, images: list[str]) -> dict:
    """One question in the chat-message layout: the user shows the frames and asks; the assistant answers."""
    content = [{"type": "image", "image": path} for path in images]
    content.append({"type": "text", "text": rec["prompt"]})
    return {
        "id": rec["id"],
        "messages": [{"role": "user", "content": content},
                     {"role": "assistant", "content": [{"type": "text", "text": rec["answer"]}]}],
        "images": images,
        **{k: v for k, v in generate.metadata(rec).items() if k not in ("id",)},
    }


def write_jsonl(out: Path, families: tuple[str, ...], split: str, num: int, seed: int, batch_size: int) -> int:
    """Writes the set into `out` (an empty directory); returns the number of questions."""
    (out / "images").mkdir(parents=True)
    written = 0
    with open(out / "data.jsonl", "w") as f:
        for rec in generate.set_records(families, split, num, desc=f"export {split}", seed=seed,
                                        batch_size=batch_size):
            images = []
            for k, frame in enumerate(rec["frames"]):
                path = f"images/{rec['id']}_{k:02d}.png"
                Image.fromarray(frame).save(out / path)
                images.append(path)
            f.write(json.dumps(chat_record(rec, images)) + "\n")
            written += 1
    return written


def write_tfds(out: Path, families: tuple[str, ...], split: str, num: int, seed: int, batch_size: int,
               depth: bool, segmentation: bool) -> int:
    from physsim.data.builder import PhysSim, PhysSimConfig

    config = PhysSimConfig(name="custom", families=families, sizes=((split, num),), seed=seed,
                           batch_size=batch_size, depth=depth, segmentation=segmentation,
                           description=f"{num} {split} questions of {', '.join(families)} (seed {seed})")
    PhysSim(data_dir=str(out), config=config).download_and_prepare()
    return num


def replaceable(out: Path) -> bool:
    """Whether `--overwrite` may delete `out`: an empty directory, or one an export made (its info.json)."""
    if not out.is_dir() or out.is_symlink():
        return False
    if not any(out.iterdir()):
        return True
    try:
        info = json.loads((out / "info.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and {"format", "physsim", "families", "split"} <= set(info)


def temporary_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def export(out: Path, *, fmt: str, families, split: str, num: int, seed: int = 0, batch_size: int = 32,
           overwrite: bool = False, depth: bool = False, segmentation: bool = False) -> Path:
    """Makes the set in a temporary directory, then moves it to `out` (see the module docstring)."""
    if fmt not in FORMATS:
        raise _names.unknown("format", fmt, FORMATS)
    families = generate.check_families(families)
    generate.check_split(split)
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"--num {num!r} must be a positive integer")
    if (depth or segmentation) and fmt != "tfds":
        raise ValueError("depth and segmentation maps are exported in the tfds format only")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it (it is kept until the new set is "
                              f"complete)")
    if out.exists() and not replaceable(out):
        raise FileExistsError(f"--overwrite {out}: refused, it is not a physsim export (no info.json written by "
                              f"physsim.export in it) and would be deleted; remove or move it yourself")
    tmp = temporary_dir(out)
    if tmp.exists():
        shutil.rmtree(tmp)  # what an interrupted export left behind
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.mkdir()
    if fmt == "jsonl":
        written = write_jsonl(tmp, families, split, num, seed, batch_size)
    else:
        written = write_tfds(tmp, families, split, num, seed, batch_size, depth, segmentation)
    info = {"format": fmt, "families": list(families), "split": split, "num": written, "seed": seed,
            "batch_size": batch_size, "physsim": physsim.__version__}
    (tmp / "info.json").write_text(json.dumps(info, indent=2))
    if out.exists():
        old = out.parent / f".{out.name}.old"
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
    else:
        tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m physsim.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--format", choices=FORMATS, default="jsonl")
    parser.add_argument("--out", type=Path, required=True, help="output directory (must not exist)")
    parser.add_argument("--num", type=int, required=True, help="questions in the set (shared among the families)")
    parser.add_argument("--split", default="test_id", choices=tuple(generate.SPLITS))
    parser.add_argument("--families", nargs="+", default=None, help="scene families (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=32, help="worlds simulated per jitted call")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out (an earlier export or an empty directory) once the new set is made")
    parser.add_argument("--depth", action="store_true", help="also depth maps (tfds format)")
    parser.add_argument("--segmentation", action="store_true", help="also segmentation maps (tfds format)")
    args = parser.parse_args(argv)
    try:
        out = export(args.out, fmt=args.format, families=args.families or scenarios.names(), split=args.split,
                     num=args.num, seed=args.seed, batch_size=args.batch_size, overwrite=args.overwrite,
                     depth=args.depth, segmentation=args.segmentation)
    except (ValueError, FileExistsError) as err:
        print(f"physsim.export: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
