"""TFDS builder of frozen physsim sets, written as `array_record` (no TensorFlow needed).

    builder = physsim.data.builder.PhysSim(data_dir=DIR, config="collision")
    builder.download_and_prepare()
    source = tfds.data_source("physsim/collision", data_dir=DIR)   # random access, NumPy

Configs: `all` (every family) and one per family, each with the splits
`train`, `test_id` and `test_ood` (see `physsim.data.generate`). Sizes are
config values: `PhysSimConfig(name=..., families=..., sizes=(("test_id",
64), ...))` builds a custom set. Scenes are simulated in batches through the
same jitted pipeline training uses (a progress bar per split), and a set is
the same on every build with the same config (seed, batch size, sizes).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from physsim import scenarios
from physsim.data import generate

DEFAULT_SIZES = (("train", 10_000), ("test_id", 1_000), ("test_ood", 1_000))


@dataclasses.dataclass(eq=False)
class PhysSimConfig(tfds.core.BuilderConfig):
    """Which families, how many questions per split, and how they are drawn."""

    families: tuple[str, ...] = ()
    sizes: tuple[tuple[str, int], ...] = DEFAULT_SIZES  # questions per split, over all families
    seed: int = 0
    batch_size: int = 32  # worlds simulated per jitted call (part of what names the set)
    width: int = 64
    height: int = 64
    depth: bool = False
    segmentation: bool = False

    def __post_init__(self):
        generate.check_families(self.families)
        for split, n in self.sizes:
            generate.check_split(split)
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"config {self.name!r}: split {split!r} size {n!r} must be a positive integer")
        if (self.width, self.height) != (64, 64):
            raise ValueError(f"config {self.name!r}: frozen sets are 64x64 (the pipeline's resolution)")


def _configs() -> list[PhysSimConfig]:
    names = scenarios.names()
    return [PhysSimConfig(name="all", families=tuple(names), description="every scene family"),
            *(PhysSimConfig(name=n, families=(n,), description=scenarios.get(n).description) for n in names)]


def png(frame: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="PNG")
    return buffer.getvalue()


class PhysSim(tfds.core.GeneratorBasedBuilder):
    """Videos of simulated scenes with physics questions whose answers were read from the simulator."""

    name = "physsim"
    VERSION = tfds.core.Version("0.1.0")
    RELEASE_NOTES = {"0.1.0": "First release: six scene families, four task types."}
    BUILDER_CONFIGS = _configs()

    def __init__(self, *args, file_format: str = "array_record", **kwargs):
        super().__init__(*args, file_format=file_format, **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        c = self.builder_config
        text = tfds.features.Text()
        features = {
            "id": text, "video": tfds.features.Sequence(tfds.features.Image(shape=(c.height, c.width, 3))),
            "question": text, "prompt": text, "answer": text, "explanation": text, "family": text, "task": text,
            "frame_times": tfds.features.Sequence(tfds.features.Scalar(np.float32)),
            "chance": tfds.features.Scalar(np.float32),
            "template": text, "kind": text, "value": tfds.features.Scalar(np.float32),
            "unit": text, "abs_tol": tfds.features.Scalar(np.float32), "rel_tol": tfds.features.Scalar(np.float32),
            "tolerance": text, "options": tfds.features.Sequence(text),
            "params": text,  # JSON: each family samples different parameters
            "seed": tfds.features.Scalar(np.int64),
        }
        if c.depth:
            features["depth"] = tfds.features.Tensor(shape=(None, c.height, c.width), dtype=np.float32)
        if c.segmentation:
            features["segmentation"] = tfds.features.Tensor(shape=(None, c.height, c.width), dtype=np.int32)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(features),
            homepage="https://github.com/physsim/physsim",
            description=__doc__.split("\n\n")[0],
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing is downloaded: every sample is simulated
        return {split: self._generate_examples(split, n) for split, n in self.builder_config.sizes}

    def _generate_examples(self, split: str, total: int):
        c = self.builder_config
        for rec in generate.set_records(c.families, split, total, desc=f"physsim/{c.name} {split}", seed=c.seed,
                                        batch_size=c.batch_size, depth=c.depth, segmentation=c.segmentation):
            yield rec["id"], example(rec, c)


def example(rec: dict, config: PhysSimConfig) -> dict:
    """A generated record in the builder's features."""
    out = {k: rec[k] for k in ("id", "question", "prompt", "answer", "explanation", "family", "task", "template",
                                "kind", "value", "unit", "abs_tol", "rel_tol", "tolerance", "options", "seed",
                                "frame_times", "chance")}
    out["video"] = [png(f) for f in rec["frames"]]
    out["params"] = generate.params_json(rec)
    if config.depth:
        out["depth"] = rec["depth"]
    if config.segmentation:
        out["segmentation"] = rec["segmentation"]
    return out
