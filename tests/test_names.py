"""Every lookup by name fails the same way: the unknown name, the closest known one, the known ones."""

import pytest

from physsim import _names, episode, render, scenarios
from physsim.data import generate
from physsim.model import config as model_config
from physsim.sim import params, scene


def test_suggestion_is_the_closest_known_name_or_none():
    assert _names.suggestion("colision", ["collision", "projectile"]) == "collision"
    assert _names.suggestion("xyz", ["collision", "projectile"]) is None


def test_unknown_lists_the_known_names_and_keeps_the_error_type():
    class MyError(ValueError):
        pass

    err = _names.unknown("scene family", "colision", ["collision", "ramp"], MyError)
    assert isinstance(err, MyError)
    assert str(err) == "unknown scene family 'colision'; did you mean 'collision'? Known: collision, ramp"
    short = _names.unknown("config key", "train.stpes", ["train.steps", "train.seed"], list_known=False)
    assert str(short) == "unknown config key 'train.stpes'; did you mean 'train.steps'?"
    # Without a close name the list is shown even when asked to leave it out: the user needs something.
    assert "Known: train.steps" in str(_names.unknown("config key", "zzz", ["train.steps"], list_known=False))


LOOKUPS = {
    "scenario": (lambda: scenarios.get("rmap"), "ramp"),
    "split": (lambda: params.check_split("odd"), "ood"),
    "export split": (lambda: generate.check_split("tset_id"), "test_id"),
    "render backend": (lambda: render.render_with("jaxx"), "jax"),
    "model size": (lambda: model_config.get("smal"), "small"),
    "model config key": (lambda: model_config.get("tiny", enc_widht=8), "enc_width"),
    "model.dtype": (lambda: model_config.get("tiny", dtype="bfloat61"), "bfloat16"),
    "MJX impl": (lambda: scene.put_model(scenarios.get("ramp").layout(), "jx"), "jax"),
    "task type": (lambda: episode.BatchSpec("ramp", tasks=("stat",)).resolved(), "state"),
    "balance mode": (lambda: episode.BatchSpec("ramp", balance="shards").resolved(), "shard"),
}


@pytest.mark.parametrize("kind", LOOKUPS)
def test_every_name_lookup_suggests_the_closest_known_name(kind):
    lookup, close = LOOKUPS[kind]
    kind = kind.removeprefix("export ")
    with pytest.raises(ValueError, match=rf"unknown {kind} '\w+'; did you mean '{close}'\? Known: .*{close}"):
        lookup()
