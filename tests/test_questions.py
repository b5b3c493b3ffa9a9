"""Questions: facts against independent measurements, balance, tokens, answers, bad requests."""

import jax
import numpy as np
import pytest

import physsim.env
from physsim import scenarios
from physsim.questions import answers, pipeline, selfcheck, templates
from physsim.questions import tokenizer as tok_lib

FAMILIES = ("collision", "projectile", "ramp", "stack", "compare", "chain")


@pytest.fixture(scope="session")
def measured():
    """One measured batch of 64 worlds (with twins) per family, compiled once."""
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = selfcheck.measured_batch(family, 64)
        return cache[family]

    return get


def test_every_family_is_registered_and_asks_questions():
    assert set(FAMILIES) <= set(scenarios.names())
    tasks = {t.task for f in FAMILIES for t in scenarios.get(f).questions}
    assert tasks == set(templates.TASKS)


@pytest.mark.parametrize("family", FAMILIES)
def test_facts_agree_with_independent_measurements(family, measured):
    _, m = measured(family)
    checks = selfcheck.fact_checks(family, m)
    assert checks
    for c in checks:
        assert c.n >= 5, f"{family}: only {c.n} worlds to check '{c.name}'"
        assert c.passed, f"{family}: {c.name}: {c.agree:.1%} of {c.n} agree, need {c.required:.0%}"


@pytest.mark.parametrize("family", FAMILIES)
def test_each_template_is_balanced_over_2000_samples(family, measured):
    spec, m = measured(family)
    table = selfcheck.answer_balance(spec, m, n_samples=2000)
    assert set(table) == {t.name for t in spec.templates()}
    for name, row in table.items():
        assert row["samples"] >= 1500, f"{family}/{name}: {row['samples']} samples"
        if row["kind"] != "number":
            assert row["max_excess"] <= 0.05, f"{family}/{name}: {row['fractions']}"


def test_counterfactual_twin_lacks_the_removed_object_and_decides_causes(measured):
    spec, m = measured("chain")
    factual = np.asarray(m.frames.pos)
    no_red = np.asarray(m.twins["remove_red"].pos)
    assert (no_red[:, :, 0, 0] > 40).all()  # parked far away at every frame
    assert (np.abs(factual[:, 0, 0, 0]) < 5).all()
    # The others start where they do in the factual world.
    np.testing.assert_allclose(no_red[:, 0, 1:], factual[:, 0, 1:], atol=1e-6)
    moved = lambda pos, i: np.linalg.norm(pos[:, :, i] - pos[:, :1, i], axis=-1).max(axis=1) > 0.03  # noqa: E731
    caused = np.asarray(m.facts["red_caused_blue"].value) > 0.5
    np.testing.assert_array_equal(caused, moved(factual, 2) & ~moved(no_red, 2))
    without_red = np.asarray(m.facts["without_red"].value) > 0.5
    np.testing.assert_array_equal(without_red, moved(no_red, 2))


def test_jitted_batch_has_static_shapes_and_consistent_tokens():
    spec = pipeline.BatchSpec("collision", n_worlds=16, n_questions=12, width=32, height=32, camera_jitter=0.1)
    batch = pipeline.qa_batch(jax.random.key(4), spec)
    r = spec.resolved()
    n_video = len(r.video_frames())
    assert batch.video.shape == (12, n_video, 32, 32, 3) and batch.video.dtype == np.uint8
    assert batch.question.shape == (12, pipeline.QUESTION_LENGTH)
    assert batch.answer.shape == (12, pipeline.ANSWER_LENGTH)
    assert batch.targets.shape == (12, len(r.horizons), 2, 3)
    tok = pipeline.default_tokenizer()
    rows = pipeline.readable(batch, r)
    for i, row in enumerate(rows):
        t = r.templates()[int(batch.template[i])]
        assert row["question"] == tok.decode(tok.encode(t.paraphrases[int(batch.paraphrase[i])]))
        assert row["answer"] == t.answer_text(float(batch.value[i]))
        assert answers.check_answer(row["answer"], t, float(batch.value[i]))
    # Dense targets are the chosen worlds' positions after the window: re-simulate them independently.
    env = physsim.env.make("collision")
    state = physsim.env.EnvState(params=batch.params)
    traj = env.rollout(state, r.seconds)
    # A different batch compiles to a different float32 program; after an impact positions differ by < 1 mm.
    np.testing.assert_allclose(np.asarray(traj.frames.pos[:, r.horizon_frames()]), np.asarray(batch.targets),
                               atol=2e-3)


def test_tokenizer_round_trips_every_template_and_any_number():
    tok = pipeline.default_tokenizer()
    for t in pipeline.all_templates():
        for text in t.paraphrases + t.options:
            assert tok.decode(tok.encode(text)) == " ".join(templates.words(text)).replace(" ?", "?").replace(
                " ,", ",").replace(" .", ".")
    for value in (0.0, 0.004, 0.05, 1.25, 12.5, 307.0, -3.2, 9999.99):
        ids, keep = tok_lib.number_tokens(tok, jax.numpy.float32(value))
        text = tok.decode(tok_lib.compact(ids, keep, 10))
        assert float(text) == pytest.approx(float(templates.format_number(value)))
        assert text == templates.format_number(value).lstrip("+") or value < 0
    again = tok_lib.build(pipeline.all_templates())
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


def test_env_ask_gives_readable_questions_with_measured_answers():
    env = physsim.env.make("chain")
    traj = env.rollout(env.reset(jax.random.key(3), batch_size=3))
    asked = env.ask(traj, jax.random.key(0))
    assert len(asked) == 3 and all(asked)
    for world in asked:
        for q in world:
            t = next(t for t in env.scenario.questions if t.name == q["template"])
            assert q["question"] in t.paraphrases
            assert q["answer"] in (templates.YES_NO + t.options)
            if t.name == "why_blue":
                assert q["answer"] in q["explanation"] and " s" in q["explanation"]


def test_impossible_requests_are_refused_by_name():
    with pytest.raises(ValueError, match="asks no 'causal' questions"):
        pipeline.BatchSpec("collision", tasks=("causal",)).resolved()
    with pytest.raises(ValueError, match="observation window 5.0 s"):
        pipeline.BatchSpec("collision", observe_seconds=5.0).resolved()
    with pytest.raises(ValueError, match="horizons"):
        pipeline.BatchSpec("collision", horizons=(3.0,)).resolved()
    with pytest.raises(ValueError, match="did you mean 'state'"):
        pipeline.BatchSpec("collision", tasks=("stat",)).resolved()
    with pytest.raises(ValueError, match="n_questions=0"):
        pipeline.BatchSpec("collision", n_questions=0).resolved()
    with pytest.raises(ValueError, match="stack.count=0"):
        physsim.env.make("stack").reset(jax.random.key(0), 2, count=0)
    with pytest.raises(ValueError, match="unknown scenario 'stak'; did you mean 'stack'"):
        pipeline.BatchSpec("stak").resolved()
    with pytest.raises(ValueError, match="a choice needs at least two options"):
        templates.Template("t", "state", "choice", "f", ("q?",), options=("one",))


def test_default_specs_of_every_family_are_consistent():
    for family in scenarios.names():
        r = pipeline.BatchSpec(family).resolved()
        assert r.video_frames()[-1] <= r.horizon_frames()[0]
        assert r.templates()


def test_validate_reports_balance_and_fact_checks_and_fails_on_imbalance(tmp_path, monkeypatch, measured):
    import json

    from physsim import validate

    spec, m = measured("projectile")
    checks = selfcheck.fact_checks("projectile", m)
    balance = [{"template": f"projectile/{k}", **v} for k, v in selfcheck.answer_balance(spec, m).items()]
    monkeypatch.setattr(selfcheck, "self_check_all", lambda: (checks, balance))
    out = tmp_path / "v.json"
    assert validate.main(["--sections", "questions", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert len(payload["fact_checks"]) == len(checks) and len(payload["answer_balance"]) == len(balance)
    skewed = [dict(b, max_excess=0.2) if b["kind"] != "number" else b for b in balance]
    monkeypatch.setattr(selfcheck, "self_check_all", lambda: (checks, skewed))
    assert validate.main(["--sections", "questions", "--json", str(out)]) == 1
