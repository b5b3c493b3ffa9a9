"""The bench's records: the scaling plot, the README's Markdown table, merging a run into a record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


def plot_scaling(rows: list[dict], path: Path, title: str) -> bool:
    """Log-log throughput vs batch size: physics per family, rendering per backend and resolution,
    and QA samples/s of physsim vs the reference pipeline per family. False, and nothing drawn, where matplotlib
    is not installed (a GPU machine that cannot fetch it: the plot is drawn later from the JSON)."""
    try:
        import matplotlib
    except ImportError:
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    physics = [r for r in rows if r["section"] == "physics"]
    colours = {name: f"C{i}" for i, name in enumerate(sorted({r["scenario"] for r in physics}))}
    # One line per family and physics setting: the family's own settings solid, others (--default-physics) dashed.
    for name, settings in sorted({(r["scenario"], r.get("settings")) for r in physics}, key=str):
        mine = [r for r in physics if (r["scenario"], r.get("settings")) == (name, settings)]
        own = all(r.get("declared", True) for r in mine)
        axes[0].plot(*zip(*sorted((r["batch_size"], r["figure"]) for r in mine)), marker="o", color=colours[name],
                     linestyle="-" if own else "--", label=name if own else f"{name} at {settings}")
    axes[0].set(xscale="log", yscale="log", xlabel="worlds per call", ylabel="world-steps/s", title="physics")
    render = [r for r in rows if r["section"] == "render"]
    for case in sorted({(r["backend"], r["resolution"]) for r in render}):
        mine = sorted((r["batch_size"], r["figure"]) for r in render if (r["backend"], r["resolution"]) == case)
        axes[1].plot(*zip(*mine), marker="o", label=" ".join(case))
    axes[1].set(xscale="log", yscale="log", xlabel="frames per call", ylabel="frames/s", title="rendering")
    ref = [r for r in rows if r["section"] == "reference"]
    if ref:
        x = np.arange(len(ref))
        axes[2].bar(x - 0.2, [r["physsim_qa_per_s"] for r in ref], 0.4, label="physsim (batched, jitted)")
        axes[2].bar(x + 0.2, [r["figure"] for r in ref], 0.4, label="reference (MuJoCo C + GL, PNG/JSON)")
        axes[2].set_xticks(x, [r["scenario"] for r in ref])
        axes[2].set(yscale="log", ylabel="QA samples/s", title="questions, 64x64")
    for ax in axes:
        if ax.has_data():
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _num(x: float) -> str:
    return f"{x / 1000:,.1f}k" if x >= 10_000 else f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def markdown_table(report: dict) -> str:
    """The recorded results as the README's Markdown table (one line per case group)."""
    rows = report["results"]
    lines = ["| stage | batch | figure |", "|---|---|---|"]

    def series(items, fmt):
        items = sorted(items, key=lambda r: r["batch_size"])
        return " / ".join(str(r["batch_size"]) for r in items), " / ".join(fmt(r) for r in items)

    physics = [r for r in rows if r["section"] == "physics"]
    for name, settings in sorted({(r["scenario"], r.get("settings", "")) for r in physics}):
        mine = [r for r in physics if (r["scenario"], r.get("settings", "")) == (name, settings)]
        b, f = series(mine, lambda r: _num(r["figure"]))
        how = f" ({settings}{', declared' if mine[0].get('declared') else ''})" if settings else ""
        lines.append(f"| physics, `{name}`{how} | {b} worlds | {f} world-steps/s |")
    for backend, res in sorted({(r["backend"], r["resolution"]) for r in rows if r["section"] == "render"}):
        b, f = series([r for r in rows if r["section"] == "render" and (r["backend"], r["resolution"]) == (backend, res)],
                      lambda r: _num(r["figure"]))
        lines.append(f"| render, {backend}, {res} | {b} frames | {f} frames/s |")
    for name, n in sorted({(r["scenario"], r["devices"]) for r in rows if r["section"] == "questions"}):
        mine = [r for r in rows if r["section"] == "questions" and (r["scenario"], r["devices"]) == (name, n)]
        b, f = series(mine, lambda r: _num(r["figure"]))
        lines.append(f"| questions, `{name}` ({mine[0]['video_frames']} frames 64×64; {n} "
                     f"CPU device{'s' * (n > 1)}) | {b} worlds | {f} QA samples/s |")
    for r in rows:
        if r["section"] == "model":
            lines.append(f"| model training step, `{r['size']}` (random inputs) | {r['batch_size']} examples | "
                         f"{_num(r['figure'])} examples/s ({r['achieved_flops_per_s'] / 1e12:.3f} TFLOP/s) |")
        if r["section"] == "train":
            share = ", ".join(f"{k} {v:.0%}" for k, v in r["share"].items())
            lines.append(f"| whole training step, `{Path(r['config']).name}` | {r['batch_size']} examples "
                         f"({r['fresh_questions_per_step']} fresh) | {_num(r['figure'])} examples/s, "
                         f"{_num(r['fresh_qa_per_s'])} fresh QA/s; {share} |")
    for r in rows:
        if r["section"] == "reference":
            lines.append(f"| reference (MuJoCo C + {r['renderer']}, PNG/JSON), `{r['scenario']}` | 1 scene | "
                         f"{_num(r['figure'])} QA samples/s; physsim {_num(r['physsim_qa_per_s'])}: "
                         f"**{r['ratio']:.1f}×** |")
    return "\n".join(lines)


def _case(row: dict) -> tuple:
    # No overrides and an empty set of them (rows recorded before --train-set) are the same case.
    return tuple(str(row.get(k)) for k in ("section", "scenario", "backend", "size", "config", "batch_size",
                                           "devices", "resolution", "device", "settings")) + \
        (str(row.get("overrides") or None),)


def merge_results(path: Path, header: dict, rows: list[dict]) -> list[dict]:
    """Adds `rows` to the results file at `path`, replacing earlier rows of the same case; returns all rows."""
    old = json.loads(path.read_text()) if path.exists() else {**header, "results": []}
    if old.get("device") != header["device"]:
        raise SystemExit(f"--update {path}: it holds results of {old.get('device')}, this is {header['device']}")
    new_cases = {_case(r) for r in rows}
    kept = [r for r in old["results"] if _case(r) not in new_cases]
    write_atomically(path, json.dumps({**old, **header, "results": kept + rows}, indent=2))
    return kept + rows


def write_atomically(path: Path, text: str) -> None:
    """The file is the old one or the new one, never a half-written one: the bench rewrites its results while a
    time limit's SIGINT may arrive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

