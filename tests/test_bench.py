"""The benchmark and the conventional reference pipeline it compares against."""

import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from PIL import Image

from physsim import bench, reference, scenarios
from physsim.scenarios import measure
from physsim.sim import simulate
from physsim.validate import Settings

from helpers import ROOT


@pytest.fixture(scope="session")
def collision_traj(collision_env):
    # Speeds towards each other so that most worlds collide inside the rollout.
    state = collision_env.reset(jax.random.key(3), batch_size=4)
    return collision_env.rollout(state)


def test_mujoco_c_rollout_records_the_contact_events_mjx_records(collision_env, collision_traj):
    """The reference's MuJoCo C frames carry the same contact events and motion as MJX's."""
    layout = collision_env.layout
    balls = measure.pair(layout, 0, 1)
    n_frames = collision_traj.frames.time.shape[1]
    checked = 0
    for i in range(4):
        world = jax.tree.map(lambda x, i=i: np.asarray(x[i]), collision_traj.world)
        mjx_frames = jax.tree.map(lambda x, i=i: np.asarray(x[i]), collision_traj.frames)
        c_frames = simulate.rollout_mj(world, layout=layout, n_frames=n_frames)
        np.testing.assert_allclose(c_frames.time, mjx_frames.time, atol=1e-4)  # float32 time in MJX
        hit_c = c_frames.contact_time[:, balls].min()
        hit_mjx = mjx_frames.contact_time[:, balls].min()
        assert np.isfinite(hit_c) == np.isfinite(hit_mjx)
        if np.isfinite(hit_c):
            checked += 1
            assert abs(hit_c - hit_mjx) <= 2 * layout.timestep + 1e-6
            # A normal impulse was exchanged in the frame of the first touch, in both.
            k = int(np.argmax(np.isfinite(c_frames.contact_time[:, balls])))
            assert c_frames.contact_impulse[k, balls] > 0 and mjx_frames.contact_impulse[k, balls] > 0
        # Before anything hits, the two simulators agree on where the balls are (mm).
        before = c_frames.time < min(hit_c, hit_mjx) - 0.05
        np.testing.assert_allclose(c_frames.pos[before], mjx_frames.pos[before], atol=2e-3)
        # Both balls touch the floor from the start: the ball-floor pairs are touching in frame 1.
        floor = [measure.pair(layout, None, j) for j in range(2)]
        assert c_frames.contact_touch[1, floor].all() and mjx_frames.contact_touch[1, floor].all()
    assert checked >= 1, "no collision among the sampled worlds: the test checks nothing"


def test_threaded_c_rollout_of_every_step_is_the_frame_by_frame_rollout(collision_env, collision_traj):
    """The audit's float64 route (`rollout_mj_steps`, mujoco.rollout on 2 threads, several worlds with their
    own models) records, at each frame's step, exactly the state the one-world loop records."""
    layout = collision_env.layout
    n_frames = 12
    worlds = [jax.tree.map(lambda x, i=i: np.asarray(x[i]), collision_traj.world) for i in range(3)]
    steps = simulate.rollout_mj_steps(worlds, layout=layout, n_steps=(n_frames - 1) * layout.substeps)
    assert steps.qpos.shape[:2] == (3, (n_frames - 1) * layout.substeps + 1)
    for i, world in enumerate(worlds):
        frames = simulate.rollout_mj(world, layout=layout, n_frames=n_frames, contacts=False)
        np.testing.assert_array_equal(steps.qpos[i, ::layout.substeps], frames.qpos)
        np.testing.assert_array_equal(steps.pos[i, ::layout.substeps], frames.pos)
    assert not np.array_equal(steps.pos[0, -1], steps.pos[1, -1])  # each world ran with its own model


def test_reference_pipeline_writes_one_sample_per_askable_scene(tmp_path):
    """PNG frames of the observation window and a JSON record whose answer is the template's for the value."""
    result = reference.run("collision", 3, tmp_path, gl="jax", seed=5)
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "samples").glob("*.json"))]
    assert len(records) == result["samples"] >= 1
    assert result["qa_per_s"] == pytest.approx(result["samples"] / result["seconds"])
    templates = {t.name: t for t in scenarios.get("collision").questions}
    for r in records:
        t = templates[r["template"]]
        assert r["question"] in t.paraphrases
        assert r["answer"] == t.answer_text(r["value"])
        assert len(r["frames"]) == result["video_frames"] == 8
        for frame in r["frames"]:
            image = np.asarray(Image.open(tmp_path / frame))
            assert image.shape == (64, 64, 3)
            assert image.std() > 0  # something was drawn, not a blank frame


def test_reference_rejects_an_unknown_renderer(tmp_path):
    with pytest.raises(ValueError, match="unknown reference renderer 'vulkan'"):
        reference.run("collision", 1, tmp_path, gl="vulkan")


@pytest.mark.slow
# Its train section compiles the step the runs compile (tests/helpers.py: SMALL is the quick variant): with them.
@pytest.mark.xdist_group("runs")
def test_quick_bench_writes_its_sections_with_figure_unit_batch_and_device(tmp_path):
    """The sections the GPU check's dry run (below) does not run: model and reference (which measures the
    questions rate it compares with, on collision at 16 worlds: the program the dry run's questions stage then
    loads from the persistent cache)."""
    out, png = tmp_path / "out.json", tmp_path / "scaling.png"
    assert bench.main(["--quick", "--sections", "model", "reference", "--families", "collision", "--json", str(out),
                       "--plot", str(png)]) == 0
    report = json.loads(out.read_text())
    assert report["quick"] is True and report["device"] and report["jax"] == jax.__version__
    rows = report["results"]
    assert {r["section"] for r in rows} == {"model", "reference", "questions"}
    for r in rows:
        assert isinstance(r["figure"], float) and math.isfinite(r["figure"]) and r["figure"] > 0, r
        assert r["unit"] and isinstance(r["unit"], str), r
        assert isinstance(r["batch_size"], int) and r["batch_size"] >= 1, r
        assert r["device"] == report["device"], r
    ref = next(r for r in rows if r["section"] == "reference")
    ours = next(r for r in rows if r["section"] == "questions" and r["scenario"] == ref["scenario"])
    assert ref["physsim_qa_per_s"] == ours["figure"]
    assert ref["ratio"] == pytest.approx(ours["figure"] / ref["figure"])
    assert ref["samples"] <= ref["scenes"] == 8
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.xdist_group("runs")
def test_the_gpu_check_dry_run_records_every_stage(tmp_path):
    """scripts/gpu_check.sh --dry-run: the GPU check's stages at small sizes on the CPU, its results kept under
    --out (benchmarks/ untouched): the train section with shares and MFU, the training run's held-out
    evaluation, and the physics, render and questions sections."""
    before = sorted(p.name for p in (ROOT / "benchmarks" / "results").iterdir())
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "every stage finished" in proc.stdout
    (results,) = tmp_path.glob("*.json")
    rows = json.loads(results.read_text())["results"]
    assert {r["section"] for r in rows} == {"train", "physics", "render", "questions"}
    assert all(math.isfinite(r["figure"]) and r["figure"] > 0 for r in rows)
    assert {r["batch_size"] for r in rows if r["section"] == "physics"} == {16, 64}
    train = next(r for r in rows if r["section"] == "train")
    assert set(train["share"]) == {"simulation", "rendering", "questions", "model"}
    # Shares are ratios of separately timed programs: under load (two test workers) the simulation timed
    # alone took longer than the whole step, 1.0 is not a bound that holds on any machine.
    assert all(math.isfinite(v) and v >= 0 for v in train["share"].values())
    assert train["achieved_flops_per_s"] > 0 and "mfu" in train  # None on a CPU: no peak is known
    declared = Settings.of(scenarios.get("collision").config.physics()).label()
    assert {r["settings"] for r in rows if r["section"] == "physics"} == {declared}  # the family's own
    lines = [json.loads(line) for line in (tmp_path / "training_metrics.jsonl").read_text().splitlines()]
    evaluation = [e for e in lines if e["kind"] == "eval"][-1]  # --stop-at 2 at an evaluation step evaluates
    assert evaluation["step"] == 2 and evaluation["by_split_task"]
    assert all({"worlds", "ci_low", "ci_high"} <= set(r) for r in evaluation["by_split_task"])
    assert (tmp_path / "training.log").read_text().count("held-out suite") >= 1
    assert sorted(p.name for p in (ROOT / "benchmarks" / "results").iterdir()) == before


def test_rows_are_written_as_they_are_measured_so_a_stopped_bench_keeps_them(tmp_path, monkeypatch):
    """What the GPU check's time limits rely on: the rows of the families measured before a stop (timeout's
    SIGINT) are already in the results file, and the plot is skipped with a way to draw it where matplotlib
    is missing."""
    def physics(batches, seconds, repeats, families, physics=None):
        if families == ["stack"]:
            raise KeyboardInterrupt
        return [{"section": "physics", "scenario": families[0], "batch_size": b, "figure": 1.0,
                 "unit": "world-steps/s", "device": "cpu:test"} for b in batches]

    monkeypatch.setattr(bench, "bench_physics", physics)
    out = tmp_path / "r.json"
    with pytest.raises(KeyboardInterrupt):
        bench.main(["--sections", "physics", "--physics-batches", "16", "64", "--families", "collision", "stack",
                    "--json", str(out)])
    rows = json.loads(out.read_text())["results"]
    assert sorted((r["scenario"], r["batch_size"]) for r in rows) == [("collision", 16), ("collision", 64)]

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    assert bench.report.plot_scaling(rows, tmp_path / "p.png", "t") is False and not (tmp_path / "p.png").exists()


def test_overrides_of_the_train_section_are_checked_before_anything_is_measured(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--sections", "train", "--train-config", str(ROOT / "experiments" / "quick.py"),
                    "--train-set", "data.shardz=1"])
    err = capsys.readouterr().err
    assert "data.shardz" in err and "data.shards" in err, err  # the key, and the one meant
    with pytest.raises(SystemExit):
        bench.main(["--sections", "train", "--train-set", "shards"])


@pytest.mark.parametrize("args, message", [(["--budget", "8m"], "--budget 8m"),
                                           (["--stages", "train,fizz"], "unknown stage 'fizz'")])
def test_the_gpu_check_refuses_a_bad_budget_or_stage_before_doing_anything(args, message):
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), *args], capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def test_merged_results_replace_rows_of_the_same_case(tmp_path):
    path = tmp_path / "r.json"
    header = {"device": "cpu:test"}
    row = {"section": "physics", "scenario": "ramp", "batch_size": 16, "figure": 1.0, "unit": "world-steps/s",
           "device": "cpu:test"}
    bench.merge_results(path, header, [row, {**row, "batch_size": 64}])
    merged = bench.merge_results(path, header, [{**row, "figure": 2.0}])
    assert sorted((r["batch_size"], r["figure"]) for r in merged) == [(16, 2.0), (64, 1.0)]
    assert json.loads(path.read_text())["results"] == merged
    with pytest.raises(SystemExit, match="holds results of cpu:test"):
        bench.merge_results(path, {"device": "gpu:other"}, [row])
    # A train row without overrides replaces one recorded before rows had them; one with overrides is its own case.
    train = {"section": "train", "config": "q.py", "batch_size": 8, "figure": 1.0, "device": "cpu:test"}
    bench.merge_results(path, header, [train])
    merged = bench.merge_results(path, header, [{**train, "overrides": {}, "figure": 2.0},
                                                {**train, "overrides": {"data.shards": 1}, "figure": 3.0}])
    assert sorted(r["figure"] for r in merged if r["section"] == "train") == [2.0, 3.0]
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, replaced in one step
