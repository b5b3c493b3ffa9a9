"""Questions: the label contract (audit, knife-edge worlds, windows, horizons), balance, tokens, answers."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import physsim.env
from physsim import audit, scenarios, validate
from physsim import episode, selfcheck
from physsim.questions import answers, templates
from physsim.questions import tokenizer as tok_lib
from physsim.scenarios.base import Fact
from physsim.train import config as config_lib
from physsim.train import data

from helpers import ROOT, measured_worlds

FAMILIES = scenarios.names()


@pytest.fixture(scope="session")
def measured():
    """The audit's first worlds (`measured_worlds`, with twins and shadows) per family and split, compiled
    once and shared by the fact checks, the balance, the audit and the fuzz tests."""
    cache = {}

    def get(family, split="train"):
        if (family, split) not in cache:
            cache[family, split] = audit.measured_batch(family, split, n_worlds=measured_worlds(family))
        return cache[family, split]

    return get


def wilson_upper(successes: int, n: int) -> float:
    """Upper end of the 95% Wilson interval of a proportion."""
    return answers.interval(successes, n)[1]




def test_settled_reads_motion_over_the_window_not_the_jitter_of_instantaneous_velocities():
    """A box lying still whose velocities jitter above the rest speed (as MJX's soft contacts make them) has
    settled; one sliding at 1.5x the rest speed, one rocking by 5 degrees, or one that starts to move in the
    window has not. Each object of a batch of them is judged on its own."""
    from types import SimpleNamespace

    from physsim.scenarios import measure

    t = np.arange(0.0, 2.0 + 1e-9, 0.04)
    n = len(t)
    rng = np.random.default_rng(0)
    pos = np.zeros((n, 5, 3))
    pos[:, :, 2] = 0.06
    pos[:, 0] += rng.normal(0.0, 1e-4, (n, 3))  # 0: jitter of a tenth of a millimetre
    pos[:, 1, 0] = 1.5 * measure.REST_SPEED * t  # 1: slides
    pos[:, 3, 0] = np.where(t > 1.9, 0.01, 0.0)  # 3: knocked 1 cm in the last 0.1 s
    quat = np.tile([1.0, 0.0, 0.0, 0.0], (n, 5, 1))
    rock = np.radians(5.0) * np.sin(2 * np.pi * 3 * t)  # 2: rocks at 3 Hz
    quat[:, 2] = np.stack([np.cos(rock / 2), np.sin(rock / 2), 0 * t, 0 * t], -1)
    linvel = np.zeros((n, 5, 3))
    linvel[:, 0] = rng.normal(0.0, 2 * measure.REST_SPEED, (n, 3))
    frames = SimpleNamespace(time=jnp.asarray(t), pos=jnp.asarray(pos), quat=jnp.asarray(quat),
                             linvel=jnp.asarray(linvel), angvel=jnp.zeros((n, 5, 3)))
    assert not bool(measure.at_rest(frames, 0))  # the instantaneous reading calls the still box moving
    np.testing.assert_array_equal(measure.settled(frames, jnp.arange(5)), [True, False, False, False, True])
    assert bool(measure.settled(frames, 4)) and not bool(measure.settled(frames, 1))


def test_every_family_asks_a_descriptive_question_and_all_task_types_are_asked():
    for family in FAMILIES:
        assert "descriptive" in {t.task for t in scenarios.get(family).questions}, family
    assert {t.task for f in FAMILIES for t in scenarios.get(f).questions} == set(templates.TASKS)
    assert templates.TASKS[0] == "descriptive"


@pytest.mark.parametrize("family", FAMILIES)
def test_facts_obey_the_laws_their_family_checks(family, measured):
    """On the training split (the held-out split's checks are in `make validate`, on 64 worlds per family:
    simulating them here cost a quarter of the suite's time)."""
    _, m = measured(family)
    checks = selfcheck.fact_checks(family, m)
    assert checks
    for c in checks:
        assert c.n >= 3, f"{family}: only {c.n} worlds to check '{c.name}'"
        assert c.passed, f"{family}: {c.name}: {c.agree:.1%} of {c.n} agree, need {c.required:.0%}"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_template_agrees_with_its_independent_route_and_has_no_shortcut(family, measured):
    """The audit on the shared batch: agreement is not significantly below the template's bar (Wilson 95%
    upper bound), at most 20% of well-posed worlds are dropped as knife-edge (with sampling slack), and
    neither the question alone nor the question and the visible configuration beat chance by 5 points."""
    n = measured_worlds(family)
    rows = audit.audit_family(family, "train", n, batch=n, measured=lambda k: measured(family)[1], log=lambda s: None)
    assert {r["template"] for r in rows} == {t.name for t in scenarios.get(family).questions}
    for r in rows:
        name = f"{family}/{r['template']} ({r['route']})"
        assert r["asked"] >= 3, f"{name}: asked of {r['asked']} of {r['worlds']} worlds"
        agree = round(r["agreement"] * r["asked"])
        assert wilson_upper(agree, r["asked"]) >= r["bar"], f"{name}: {agree}/{r['asked']}: {r['disagreements']}"
        posed = r["asked"] / max(1e-9, 1 - r["knife_edge"])
        assert r["knife_edge"] * posed <= audit.KNIFE_EDGE_LIMIT * posed + 2 * math.sqrt(posed), name
        if r["kind"] != "number":
            assert r["baseline_question"] <= r["chance"] + audit.BASELINE_MARGIN, (name, r)
            if not r["reads_configuration"]:
                assert r["baseline_configuration"] <= r["chance"] + audit.BASELINE_MARGIN, (name, r)
        else:  # tolerances tight enough that one constant answer is not right on more than a quarter of worlds
            hits = round(r["best_constant_rate"] * r["asked"])
            assert answers.interval(hits, r["asked"])[0] <= audit.BEST_CONSTANT_LIMIT, (name, r["best_constant"], hits)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_template_is_balanced_within_each_visible_configuration(family, measured):
    spec, m = measured(family)
    table = selfcheck.answer_balance(spec, m, n_samples=8000)
    assert set(table) == {t.name for t in spec.templates()}
    for name, row in table.items():
        assert row["samples"] >= 6000, f"{family}/{name}: {row['samples']} samples"
        if row["kind"] != "number":
            assert row["max_excess"] <= 0.05, f"{family}/{name}: {row['fractions']}"


@pytest.mark.parametrize("family", FAMILIES)
def test_the_held_out_split_asks_every_template_as_training_does(family, measured):
    """validate's askability gate on the label tests' batches of both splits (the held-out batch reuses the
    compiled program): out of distribution every template is asked of some world, of not significantly less
    than OOD_ASKED_RATIO of the fraction it is asked of in distribution, and no answer is significantly above
    OOD_MAX_CLASS of its raw answers (Wilson 95% bounds on 32-48 worlds; `make validate` gates the estimates
    on 256). Failed before the held-out ranges were redesigned: collision's impact questions, chain's
    "first collision", compare's "bouncier" and projectile's "farther" (validate's rows, docs/DESIGN.md). And a
    number's best constant answer is not right on significantly more than a quarter of held-out worlds."""
    train = selfcheck.askability(*measured(family))
    ood = selfcheck.askability(*measured(family, "ood"))
    assert set(ood) == {t.name for t in scenarios.get(family).questions}
    for name, row in ood.items():
        n, asked = row["worlds"], row["asked"]
        assert asked >= 1, f"{family}/{name}: asked of no held-out world"
        assert wilson_upper(asked, n) >= validate.OOD_ASKED_RATIO * train[name]["asked_fraction"], (name, row)
        if row["kind"] != "number":
            top = round(max(row["answers"].values()) * asked)
            assert answers.interval(top, asked)[0] <= validate.OOD_MAX_CLASS, (name, row["answers"])
    # Number tolerances stay tight out of distribution too: one constant answer is not right on significantly
    # more than BEST_CONSTANT_LIMIT of the held-out worlds asked (the audit's gate, there in distribution).
    spec, m = measured(family, "ood")
    asked_worlds = np.asarray(episode.askable(spec, m)[0])
    for i, t in enumerate(spec.templates()):
        if t.kind == "number" and asked_worlds[i].any():
            _, right = answers.best_constant(t, np.asarray(m.facts[t.fact].value)[asked_worlds[i]])
            assert answers.interval(int(right.sum()), right.size)[0] <= audit.BEST_CONSTANT_LIMIT, \
                (t.name, int(right.sum()), right.size)


BALANCE_CONFIGS = {name: config_lib.load(ROOT / "experiments" / f"{name}.py") for name in validate.BALANCE_CONFIGS}
TRAINED = sorted({name for config in BALANCE_CONFIGS.values() for name in data.family_names(config.data)})


@pytest.mark.parametrize("family", TRAINED)
def test_a_runs_draws_stay_balanced_at_the_world_counts_of_the_shipped_configs(family, measured):
    """At the 2-6 worlds of a family a shipped config's scene shard holds, over a run's worth of its steps (its
    fresh questions into its share of the replay ring, updates drawn from the ring as the trainer draws them):
    each choice and yes/no template gives each answer its configuration allows within 5 points of uniform
    (judged by the 95% interval of each share), and every template is drawn. Uniform draws from a ring of
    unbalanced shards miss this (measured: collision's if_red_heavier 7/93, chain's blue_moved 26/74); how much
    of the template mix the ring serves is validate's row, on larger pools."""
    pool = measured(family)
    for name, config in BALANCE_CONFIGS.items():
        if family not in data.family_names(config.data):
            continue
        rows = validate.run_balance(config, pools={family: pool}, only=family)
        assert sum(r["samples"] for r in rows) > 0
        for r in rows:
            assert validate.balance_passed(r), (name, r["template"], r["worlds_per_shard"], r["share"],
                                                r["wanted_share"], r.get("fractions"))
        assert any(r["kind"] != "number" and r["groups_measured"] for r in rows), (name, family)


def test_held_out_suites_never_ask_a_world_the_same_template_twice():
    """`pick_distinct` (every held-out suite's draw) on synthetic tables of 12 worlds in two visible
    configurations, asked for more questions than there are (template, world) pairs: each pair it asks is one
    the tables allow, and none is asked twice. It stops when no
    configuration holds all of a template's answers among the worlds not yet asked, so fewer pairs than exist
    are asked, but more than one per template: a picker that forgot which worlds it asked repeats pairs."""
    spec = episode.BatchSpec("collision", n_worlds=12, n_questions=12).resolved()
    templates = spec.templates()
    n_t, b, c = len(templates), 12, max(t.n_classes for t in templates)
    rng = np.random.default_rng(0)
    n_classes = np.asarray([t.n_classes for t in templates])
    classes = np.stack([rng.integers(0, n, b) for n in n_classes])
    classes[n_classes == 1] = 0
    valid = rng.random((n_t, b)) < 0.8
    allowed = np.broadcast_to(np.arange(c) < n_classes[:, None, None], (n_t, b, c)).copy()
    tables = {"valid": valid, "classes": classes, "allowed": allowed, "config": np.arange(b) % 2,
              "per_config": np.asarray([not t.reads_configuration for t in templates])}
    picks = episode.pick_distinct(np.random.default_rng(1), spec, tables, n_questions=n_t * b + 5)
    asked = [(int(t), int(w)) for t, w, v in zip(picks["template"], picks["world"], picks["valid"]) if v]
    assert len(asked) == len(set(asked)), "a (template, world) pair asked twice"
    assert all(valid[t, w] for t, w in asked)
    assert len(asked) > n_t and not picks["valid"][-5:].any()


@pytest.mark.batch_of("projectile")
def test_a_slot_whose_template_cannot_be_asked_falls_back_and_is_counted(measured):
    """The jitted picker on a measured batch whose one fact is made unaskable: the slots that drew a template
    reading it go to templates that can be asked, are marked `fallback` (what the trainer sums into its
    `fallback_questions` metrics), and are as many as those templates' share of the weights says."""
    spec, m = measured("projectile")
    spec = dataclasses.replace(spec, n_questions=1024)
    templates = spec.templates()
    gone = templates[0].fact
    lost = {i for i, t in enumerate(templates) if t.fact == gone}
    fact = m.facts[gone]
    m = m.replace(facts={**m.facts, gone: fact.replace(valid=jnp.zeros_like(fact.valid))})
    picked = jax.device_get(jax.jit(episode.pick_questions, static_argnums=(1, 3))(
        jax.random.key(0), spec, m, episode.default_tokenizer()))
    asked = picked["template"][picked["valid"]]
    assert asked.size and not set(asked.tolist()) & lost
    share = sum(spec.template_weights()[i] for i in lost)
    n = spec.n_questions
    assert abs(picked["fallback"].sum() - share * n) <= 4 * math.sqrt(n * share * (1 - share)) + 1, \
        (picked["fallback"].sum(), share * n)


def _synthetic(values, shadow_values, valid=True, classes=None):
    b = len(values)
    fact = lambda v: Fact(value=jnp.asarray(v, jnp.float32), valid=jnp.full(b, valid),  # noqa: E731
                          time=jnp.zeros(b), classes=classes)
    return fact(values), fact(shadow_values)


def test_a_question_whose_answer_flips_in_the_shadow_world_is_not_asked():
    yesno = templates.Template("t", "state", "yesno", "f", ("q?",))
    f, g = _synthetic([1, 0, 1], [1, 1, 0])
    np.testing.assert_array_equal(np.asarray(episode.stable(yesno, f, g)), [True, False, False])
    metres = templates.Template("t", "state", "number", "f", ("q?",), unit="m", rel_tol=0.1, abs_tol=0.05)
    f, g = _synthetic([1.0, 1.0, 0.1], [1.09, 1.2, 0.16])  # within 10%, outside, within 0.05 m
    np.testing.assert_array_equal(np.asarray(episode.stable(metres, f, g)), [True, False, False])
    f, _ = _synthetic([1.0], [1.0])
    _, g = _synthetic([1.0], [1.0], valid=False)  # the shadow is not even well posed
    assert not bool(episode.stable(metres, f, g)[0])


@pytest.mark.batch_of("chain")
def test_shadow_worlds_start_a_tenth_of_a_millimetre_away_and_knife_edge_ones_are_dropped(measured):
    spec, m = measured("chain")
    world = jax.vmap(lambda p: scenarios.get("chain").world(p, scenarios.get("chain").layout()))(m.params)
    moved = np.asarray(episode.shadow_world(world).pos - world.pos)
    np.testing.assert_allclose(np.abs(moved[..., :2]), episode.KNIFE_EDGE, atol=1e-6)  # float32 at ~1 m
    assert (moved[..., 2] == 0).all()
    valid, edge = (np.asarray(x) for x in episode.askable(spec, m))
    assert not (valid & edge).any()
    for i, t in enumerate(spec.templates()):
        f, g = m.facts[t.fact], m.shadow[t.fact]
        flipped = np.asarray(f.valid & m.sound) & ~np.asarray(episode.stable(t, f, g))
        np.testing.assert_array_equal(edge[i], flipped)


@pytest.mark.slow
def test_the_window_ends_at_the_last_frame_shown_and_facts_treat_later_events_as_unseen():
    spec = episode.BatchSpec("collision", frame_stride=2).resolved()
    layout = scenarios.get("collision").layout()
    assert spec.observe_seconds == pytest.approx(spec.video_frames()[-1] / layout.fps)
    assert spec.observe_seconds == pytest.approx(0.56)  # 0.6 s at every 2nd of 25 frames/s shows 0 ... 0.56 s
    env = physsim.env.make("collision")
    # Balls 0.54 m apart closing at 1 m/s: they touch at ~0.57 s, after the last frame shown. (Four copies of the
    # world: four worlds of 2 s are the programs other collision tests compile, test_bench's and test_sim's.)
    state = env.reset(jax.random.key(0), 4, speed=[[0.5, 0.5]] * 4, gap=0.57, radius=[[0.08, 0.08]] * 4,
                      mass=[[0.5, 1.5]] * 4, restitution=[[0.5, 0.5]] * 4, friction=[[0.5, 0.5]] * 4)
    traj = env.rollout(state)
    hit = float(np.min(np.asarray(traj.frames.contact_time)[0, :, 2]))
    assert spec.observe_seconds < hit < 0.6
    asked = {q["template"]: q for q in env.ask(traj)[0]}
    assert asked["will_collide"]["answer"] == "yes" and "heavier" not in asked and "faster_after" not in asked


@pytest.mark.slow
def test_a_no_means_never_and_a_value_at_an_event_needs_the_event():
    env = physsim.env.make("collision")
    # Closing at 0.1 m/s from 1.4 m apart: they would meet after ~14 s, not in the 2 s rollout. (Four worlds, as
    # in the test above.)
    slow = env.reset(jax.random.key(0), 4, speed=[[0.05, 0.05], [-0.3, -0.3]] * 2, gap=1.4)
    asked = [{q["template"]: q["answer"] for q in w} for w in env.ask(env.rollout(slow))]
    assert "will_collide" not in asked[0]  # not "no": they are still closing in
    assert asked[1]["will_collide"] == "no"  # rolling apart: never
    projectile = physsim.env.make("projectile")
    # Launched steeply at 9 m/s: still rising when a 0.6 s rollout ends, so its apex is not in it.
    steep = projectile.reset(jax.random.key(0), 1, speed=[[9.0, 3.0]], elevation=[[80.0, 40.0]])
    asked = {q["template"] for q in projectile.ask(projectile.rollout(steep, 0.6))[0]}
    assert "apex_height" not in asked and "landing_point" not in asked


@pytest.mark.slow
def test_answers_that_depend_on_the_visible_configuration_say_so():
    env = physsim.env.make("stack")
    # Equal blocks. Tower 0: the green block's centre 0.02 half-widths inside the red one's edge; tower 1: a
    # load 0.1 half-widths inside its support's edge at worst; towers 2, 3 topple.
    shift = [[0.0, 0.49, 0.0, 0.0, 0.0], [0.0, 0.3, 0.3, 0.0, 0.0], [0.55] * 5, [0.55] * 5]
    state = env.reset(jax.random.key(1), 4, count=[2, 3, 4, 5], shift=shift, mass=1.0)
    measured = episode.measure_facts("stack", state.params, *_world_and_frames(env, state),
                                     view=episode.View.of(episode.BatchSpec("stack").resolved()))
    # Statics decides within a hair of the edge: knife-edge, whatever the simulation did (Fact.edge).
    falls = measured.facts["falls"]
    np.testing.assert_array_equal(np.asarray(falls.edge)[:2], [True, False])
    assert not bool(episode.stable(scenarios.get("stack").questions[0], falls, measured.shadow["falls"])[0])
    fact = measured.facts["lowest_to_fall"]
    # Options are the green to purple blocks: a tower of c blocks allows the lowest c - 1 of them.
    np.testing.assert_array_equal(np.asarray(fact.classes).sum(axis=1), [1, 2, 3, 4])
    assert not bool(fact.valid[0])  # a tower of two has one possible answer: not a question
    config = np.asarray(episode.configuration(measured.world))
    assert len(set(config.tolist())) == 4


def _world_and_frames(env, state):
    traj = env.rollout(state)
    return traj.world, traj.frames


@pytest.mark.slow
def test_jitted_batch_has_static_shapes_consistent_tokens_and_reproducible_targets():
    spec = episode.BatchSpec("collision", n_worlds=16, n_questions=12, width=32, height=32, camera_jitter=0.1)
    r = spec.resolved()
    tok = episode.default_tokenizer()
    batch, measured = jax.jit(episode.make_batch, static_argnums=(1, 2))(jax.random.key(4), r, tok)
    n_video = len(r.video_frames())
    assert batch.video.shape == (12, n_video, 32, 32, 3) and batch.video.dtype == np.uint8
    assert batch.question.shape == (12, templates.QUESTION_LENGTH)
    assert batch.answer.shape == (12, templates.ANSWER_LENGTH)
    assert batch.targets.shape == (12, len(r.horizons), 2, 3)
    rows = episode.readable(batch, r)
    for i, row in enumerate(rows):
        t = r.templates()[int(batch.template[i])]
        assert row["read"] == tok.decode(tok.encode(r.prompt(t, int(batch.paraphrase[i]))))
        assert row["prompt"].startswith("Frames are 0.08 s apart, from 0.00 s to 0.56 s.")
        assert row["prompt"].endswith(row["question"]) and row["question"] in t.paraphrases
        assert tok.decode(batch.answer[i]) == row["answer"] == t.answer_text(float(batch.value[i]))
        assert answers.check_answer(row["answer"], t, float(batch.value[i]))
    # Dense targets are the chosen worlds' positions after the window: re-simulated in another batch (another
    # compiled float32 program) they agree to 2 mm where they are insensitive, i.e. where the shadow world
    # (started 0.1 mm away) ends within 5 mm of them; after an impact float32 rounding alone moves them by
    # centimetres, which is why targets that move more than TARGET_STABLE in the shadow are not trained on.
    world = np.asarray(batch.world)
    shadow = np.asarray(measured.shadow_pos)[world][:, r.horizon_frames()]
    moved = np.linalg.norm(shadow - np.asarray(batch.targets), axis=-1).max(axis=(1, 2))
    np.testing.assert_array_equal(np.asarray(batch.target_ok), moved <= episode.TARGET_STABLE)
    calm = moved <= 5e-3
    assert calm.sum() >= 4
    env = physsim.env.make("collision")
    traj = env.rollout(physsim.env.EnvState(params=batch.params), r.seconds)
    again = np.asarray(traj.frames.pos[:, r.horizon_frames()])
    np.testing.assert_allclose(again[calm], np.asarray(batch.targets)[calm], atol=2e-3)


def test_prompts_carry_the_frame_times_and_a_scale_for_distances():
    spec = episode.BatchSpec("projectile").resolved()
    by_name = {t.name: t for t in spec.templates()}
    assert spec.prompt(by_name["landing_point"], 0) == (
        "Frames are 0.08 s apart, from 0.00 s to 0.16 s. Floor squares are 0.25 m wide. "
        + by_name["landing_point"].paraphrases[0])
    assert "Floor squares" not in spec.prompt(by_name["flight_time"], 0)
    tok = episode.default_tokenizer()
    for family in FAMILIES:
        r = episode.BatchSpec(family).resolved()
        for t in r.templates():
            for j in range(len(t.paraphrases)):
                assert len(tok.encode(r.prompt(t, j))) <= templates.QUESTION_LENGTH


def test_tokenizer_round_trips_every_template_and_any_number():
    tok = episode.default_tokenizer()
    for t in episode.all_templates():
        for text in t.paraphrases + t.options:
            assert tok.decode(tok.encode(text)) == " ".join(templates.words(text)).replace(" ?", "?").replace(
                " ,", ",").replace(" .", ".")
    for value in (0.0, 0.004, 0.05, 1.25, 12.5, 307.0, -3.2, 9999.99):
        ids, keep = tok_lib.number_tokens(tok, jax.numpy.float32(value))
        text = tok.decode(tok_lib.compact(ids, keep, 10))
        assert float(text) == pytest.approx(float(templates.format_number(value)))
        assert text == templates.format_number(value).lstrip("+") or value < 0
    again = tok_lib.build(episode.all_templates())
    assert again == tok and again.version == tok.version
    assert tok_lib.Tokenizer.from_json(tok.to_json()) == tok
    with pytest.raises(ValueError, match="does not match its version"):
        tok_lib.Tokenizer.from_json(tok.to_json().replace(tok.version, "000000000000"))
    with pytest.raises(ValueError, match="'zebra' is not in the vocabulary"):
        tok.encode("the zebra")


YESNO = templates.Template("t", "state", "yesno", "f", ("q?",))
CHOICE = templates.Template("t", "state", "choice", "f", ("q?",), options=("the red ball", "the blue ball"))
METRES = templates.Template("t", "state", "number", "f", ("q?",), unit="m", rel_tol=0.1, abs_tol=0.05)
SECONDS = templates.Template("t", "state", "number", "f", ("q?",), unit="s", abs_tol=0.1)


@pytest.mark.parametrize("text, template, value, right", [
    ("Yes.", YESNO, 1, True), ("I think no", YESNO, 0, True), ("no", YESNO, 1, False), ("maybe", YESNO, 1, False),
    ("the red ball", CHOICE, 0, True), ("The blue one, clearly.", CHOICE, 1, True), ("red or blue", CHOICE, 0, False),
    ("about 1.2 seconds", SECONDS, 1.25, True), ("1.4 s", SECONDS, 1.25, False), ("1250 ms", SECONDS, 1.25, True),
    ("1200 mm", METRES, 1.25, True), ("1.2", METRES, 1.25, True), ("3 m/s", METRES, 3.0, False),
    ("roughly 0,9 m", METRES, 1.0, True), ("no idea", METRES, 1.0, False),
])
def test_check_answer_reads_free_text(text, template, value, right):
    assert answers.check_answer(text, template, value) is right


@pytest.mark.slow
def test_env_ask_gives_readable_questions_with_measured_answers():
    env = physsim.env.make("chain")
    traj = env.rollout(env.reset(jax.random.key(3), batch_size=3))
    asked = env.ask(traj, jax.random.key(0))
    assert len(asked) == 3 and all(asked)
    for world in asked:
        for q in world:
            t = next(t for t in env.scenario.questions if t.name == q["template"])
            assert q["question"] in t.paraphrases and q["prompt"].endswith(q["question"])
            assert q["answer"] in t.options_text
            if t.name == "why_blue":
                assert q["answer"] in q["explanation"] and " s" in q["explanation"]


def test_impossible_requests_are_refused_by_name():
    with pytest.raises(ValueError, match="asks no 'causal' questions"):
        episode.BatchSpec("collision", tasks=("causal",)).resolved()
    with pytest.raises(ValueError, match="observation window 5.0 s"):
        episode.BatchSpec("collision", observe_seconds=5.0).resolved()
    with pytest.raises(ValueError, match="shows only the first frame"):
        episode.BatchSpec("collision", observe_seconds=0.05).resolved()
    with pytest.raises(ValueError, match="horizons"):
        episode.BatchSpec("collision", horizons=(3.0,)).resolved()
    with pytest.raises(ValueError, match="did you mean 'state'"):
        episode.BatchSpec("collision", tasks=("stat",)).resolved()
    with pytest.raises(ValueError, match="n_questions=0"):
        episode.BatchSpec("collision", n_questions=0).resolved()
    with pytest.raises(ValueError, match="stack.count=0"):
        physsim.env.make("stack").reset(jax.random.key(0), 2, count=0)
    with pytest.raises(ValueError, match="unknown scenario 'stak'; did you mean 'stack'"):
        episode.BatchSpec("stak").resolved()
    with pytest.raises(ValueError, match="a choice needs at least two options"):
        templates.Template("t", "state", "choice", "f", ("q?",), options=("one",))
    with pytest.raises(ValueError, match="route 'vibes'"):
        templates.Template("t", "state", "yesno", "f", ("q?",), route="vibes")


def test_default_specs_of_every_family_are_consistent():
    for family in FAMILIES:
        r = episode.BatchSpec(family).resolved()
        assert r.video_frames()[-1] <= r.horizon_frames()[0]
        assert r.templates()


@pytest.mark.batch_of("projectile")
def test_validate_reports_balance_and_fact_checks_and_fails_on_imbalance(tmp_path, monkeypatch, measured):
    import json

    from physsim import validate

    spec, m = measured("projectile")
    checks = selfcheck.fact_checks("projectile", m)
    balance = [{"template": f"projectile/{k}", **v} for k, v in selfcheck.answer_balance(spec, m).items()]
    by_config = [{"config": "tiny", **r} for r in validate.run_balance(BALANCE_CONFIGS["tiny"], pools={
        "projectile": (spec, m)}, steps=40, only="projectile")]
    monkeypatch.setattr(selfcheck, "self_check_all", lambda **_: (checks, balance))
    monkeypatch.setattr(validate, "config_balance", lambda: by_config)
    monkeypatch.setattr(validate, "split_askability", lambda **_: [])
    monkeypatch.setattr(validate, "suite_coverage", lambda: [])
    out = tmp_path / "v.json"
    assert validate.main(["--sections", "questions", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert len(payload["fact_checks"]) == len(checks) and len(payload["answer_balance"]) == len(balance)
    assert len(payload["answer_balance_by_config"]) == len(by_config)
    skewed = [dict(b, max_excess=0.2) if b["kind"] != "number" else b for b in balance]
    monkeypatch.setattr(selfcheck, "self_check_all", lambda **_: (checks, skewed))
    assert validate.main(["--sections", "questions", "--json", str(out)]) == 1
    monkeypatch.setattr(selfcheck, "self_check_all", lambda **_: (checks, balance))
    skewed = [dict(b, deviation_low=0.2) if b["kind"] != "number" else b for b in by_config]
    monkeypatch.setattr(validate, "config_balance", lambda: skewed)
    assert validate.main(["--sections", "questions", "--json", str(out)]) == 1
    monkeypatch.setattr(validate, "config_balance", lambda: by_config)
    asked = selfcheck.askability(spec, m)
    unasked = [validate.askability_row(f"projectile/{k}", v, dict(v, asked=0, asked_fraction=0.0))
               for k, v in asked.items()]
    monkeypatch.setattr(validate, "split_askability", lambda **_: unasked)
    assert validate.main(["--sections", "questions", "--json", str(out)]) == 1
    assert len(json.loads(out.read_text())["askability_by_split"]) == len(asked)
    monkeypatch.setattr(validate, "split_askability", lambda **_: [])
    empty_suite = [{"config": "tiny", "family": "projectile", "split": "ood", "template": "farther",
                    "suite_worlds": 128, "askable": 0, "questions": 0, "passed": False}]
    monkeypatch.setattr(validate, "suite_coverage", lambda: empty_suite)
    assert validate.main(["--sections", "questions", "--json", str(out)]) == 1
    assert json.loads(out.read_text())["suite_coverage"] == empty_suite


@pytest.mark.batch_of("collision")
def test_audit_cli_writes_one_row_per_template_and_refuses_bad_input(tmp_path, monkeypatch, capsys, measured):
    import json

    # The tests' batch is the audit's batch 0 of the same worlds: reuse it instead of simulating again.
    monkeypatch.setattr(audit, "measured_batch", lambda family, split, seed, k, n, config=None: measured(family, split))
    out = tmp_path / "audit.json"
    code = audit.main(["--families", "collision", "--split", "train", "--worlds", "8", "--json", str(out)])
    payload = json.loads(out.read_text())
    rows = payload["rows"]
    assert payload["complete"] and payload["worlds"] == 8
    assert [r["template"] for r in rows] == [t.name for t in scenarios.get("collision").questions]
    for r in rows:
        assert {"split", "family", "template", "route", "agreement", "knife_edge", "asked_fraction"} <= set(r)
        assert r["worlds"] == 8 and r["route"] in audit.AGREEMENT
    assert code == (0 if all(r["passed"] for r in rows) else 1)
    assert "collision" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        audit.main(["--families", "no_such_family"])
    assert "no_such_family" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        audit.main(["--worlds", "0"])
