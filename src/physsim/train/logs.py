"""What a training run writes and shows: metrics.jsonl, the curves, the summary table, TensorBoard, progress."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from physsim.train.config import Config, ConfigError


class MetricsLog:
    """metrics.jsonl, appended to; on resume, lines past the resumed step are dropped."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        if resume_step is None:
            path.write_text("")
        elif path.exists():
            kept = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))

    def write(self, entry: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


def finite(x: float) -> float | None:
    return float(x) if math.isfinite(float(x)) else None


def plot_curves(entries: list[dict], path: Path) -> None:
    """Training loss, and held-out accuracy per task type, of the model (solid) and the blind baseline (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [e for e in entries if e["kind"] == "train"]
    evals = [e for e in entries if e["kind"] == "eval"]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [e["step"] for e in train]
    ax_loss.plot(steps, [e["loss"] for e in train], label="model")
    if train and "blind/loss" in train[0]:
        ax_loss.plot(steps, [e["blind/loss"] for e in train], "--", label="blind baseline")
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    ax_loss.legend()
    if evals:
        for split, style in (("train", "-"), ("ood", ":")):
            for i, row in enumerate(r for r in evals[-1]["by_split_task"] if r["split"] == split):
                color = f"C{i}"
                series = [(e["step"], next(r for r in e["by_split_task"] if r["split"] == split and r["task"] == row["task"]))
                          for e in evals]
                ax_acc.plot([s for s, _ in series], [r["accuracy"] for _, r in series], style, color=color, marker="o",
                            label=f"{row['task']} ({'in-dist.' if split == 'train' else 'ood'})")
                if "blind_accuracy" in row and split == "train":
                    ax_acc.plot([s for s, _ in series], [r["blind_accuracy"] for _, r in series], "--", color=color,
                                alpha=0.5)
        ax_acc.set(xlabel="step", ylabel="held-out accuracy", ylim=(0, 1),
                   title="held-out accuracy (dashed: blind baseline)")
        ax_acc.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_summary(summary: dict, console) -> None:
    from rich.table import Table

    table = Table(title="held-out accuracy by task type, with 95% intervals (model vs blind baseline vs chance vs "
                        "best constant answer)")
    for column in ("split", "task", "questions", "worlds", "accuracy", "blind", "chance", "best constant",
                   "state error (m)", "blind state error"):
        table.add_column(column, justify="right")

    def rate(r, prefix=""):
        if f"{prefix}accuracy" not in r:
            return "-"
        return f"{r[prefix + 'accuracy']:.1%} [{r[prefix + 'ci_low']:.0%}, {r[prefix + 'ci_high']:.0%}]"

    for r in summary["by_split_task"]:
        table.add_row(r["split"], r["task"], str(r["questions"]), str(r["worlds"]), rate(r), rate(r, "blind_"),
                      f"{r['chance']:.1%}", f"{r['best_constant']:.1%}",
                      f"{r['state_error_m']:.3f}", f"{r.get('blind_state_error_m', float('nan')):.3f}")
    console.print(table)


def tensorboard(config: Config, run_dir: Path) -> Any:
    if not config.run.tensorboard:
        return None
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ConfigError("run.tensorboard=True needs tensorboardX (pip install 'physsim[tensorboard]')") from e
    return SummaryWriter(str(run_dir / "tensorboard"))


class Progress:
    """A rich progress line (step, loss, steps/s, questions/s, ETA), or plain log lines off a terminal."""

    def __init__(self, console, total: int, done: int, enabled: bool):
        self.console, self.total, self.done, self.enabled = console, total, done, enabled
        self.bar = None

    def __enter__(self):
        if self.enabled and self.console.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("step {task.completed}/{task.total}"), BarColumn(),
                                TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=self.console)
            self.bar.start()
            self.task = self.bar.add_task("train", total=self.total, completed=self.done, info="compiled, running")
        return self

    def update(self, step: int, entry: dict) -> None:
        loss = "not finite" if entry["loss"] is None else f"{entry['loss']:.3f}"  # logged as null
        info = (f"loss {loss} · {entry['steps_per_s']:.2f} steps/s · "
                f"{entry['questions_per_s']:.0f} questions/s trained ({entry['fresh_questions_per_s']:.0f} fresh)")
        if entry.get("skipped_updates"):
            info += f" · {entry['skipped_updates']:.0f} update(s) skipped (non-finite)"
        if entry.get("unsound_worlds"):
            info += f" · {entry['unsound_worlds']:.0f} invalid world(s)"
        if self.bar is not None:
            self.bar.update(self.task, completed=step, info=info)
        elif self.enabled:
            left = (self.total - step) / max(entry["steps_per_s"], 1e-9)
            self.console.print(f"step {step}/{self.total} · {info} · ETA {left / 60:.1f} min")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
