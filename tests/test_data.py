"""Frozen sets: TFDS build and read-back, determinism, JSONL export, refusal to overwrite, the scorer."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from physsim import export, score
from physsim.data import builder, generate
from physsim.questions.answers import check_answer
from physsim.questions.templates import Template

FAMILY = "collision"


@pytest.fixture(scope="session")
def fresh_records():
    return list(generate.records(FAMILY, "test_ood", 6, seed=7, batch_size=4))


def test_generation_is_deterministic_and_splits_differ(fresh_records):
    again = list(generate.records(FAMILY, "test_ood", 6, seed=7, batch_size=4))
    assert [generate.metadata(r) for r in again] == [generate.metadata(r) for r in fresh_records]
    assert all(np.array_equal(a["frames"], b["frames"]) for a, b in zip(again, fresh_records))
    other = list(generate.records(FAMILY, "test_id", 6, seed=7, batch_size=4))
    assert [r["params"] for r in other] != [r["params"] for r in fresh_records]
    # The out-of-distribution split samples outside the training ranges (collision: gap or speed or radius...).
    assert all(r["split"] == "test_ood" for r in fresh_records)
    for r in fresh_records:
        assert r["frames"].shape == (8, 64, 64, 3) and r["frames"].dtype == np.uint8
        t = score.template_of(FAMILY, r["template"])
        assert r["answer"] == t.answer_text(r["value"])  # the tokens decode to the template's answer text
        assert r["question"] in t.paraphrases
        # The prompt carries what a viewer needs: the frames' times (0 s is the first frame) and, for distances,
        # a scale.
        assert r["prompt"] == f"Frames are 0.08 s apart, from 0.00 s to {r['frame_times'][-1]:.2f} s. " + (
            "Floor squares are 0.25 m wide. " if t.unit in ("m", "m/s") else "") + r["question"]
        assert r["frame_times"] == pytest.approx([0.08 * k for k in range(8)]) and r["fps"] == pytest.approx(12.5)
        assert check_answer(r["answer"], t, r["value"])


def test_tfds_build_reads_back_the_generated_questions(tmp_path, fresh_records):
    config = builder.PhysSimConfig(name="tiny_test", families=(FAMILY,), sizes=(("test_ood", 6),), seed=7,
                                   batch_size=4, depth=True)
    b = builder.PhysSim(data_dir=str(tmp_path), config=config)
    b.download_and_prepare()
    assert b.info.splits["test_ood"].num_examples == 6
    assert list(tmp_path.rglob("*.array_record-*"))  # written as array_record
    source = tfds.data_source("physsim/tiny_test", data_dir=str(tmp_path), split="test_ood")
    got = sorted((source[i] for i in range(len(source))), key=lambda e: e["id"])
    want = sorted(fresh_records, key=lambda r: r["id"])
    assert [g["id"].decode() if isinstance(g["id"], bytes) else g["id"] for g in got] == [w["id"] for w in want]
    for g, w in zip(got, want):
        text = lambda x: x.decode() if isinstance(x, bytes) else x  # noqa: E731
        assert text(g["question"]) == w["question"] and text(g["answer"]) == w["answer"]
        assert text(g["prompt"]) == w["prompt"] and np.allclose(g["frame_times"], w["frame_times"])
        assert np.isclose(g["value"], w["value"]) and text(g["template"]) == w["template"]
        assert json.loads(text(g["params"])) == w["params"]
        np.testing.assert_array_equal(np.stack(g["video"]), w["frames"])  # PNG is lossless
        assert g["depth"].shape == (8, 64, 64) and np.isfinite(g["depth"]).any()


def test_jsonl_export_chat_layout_and_refusal_to_overwrite(tmp_path, fresh_records):
    out = tmp_path / "set"
    assert export.main(["--out", str(out), "--num", "6", "--split", "test_ood", "--families", FAMILY,
                        "--seed", "7", "--batch-size", "4"]) == 0
    lines = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    assert [x["id"] for x in lines] == [r["id"] for r in fresh_records]
    first = lines[0]
    user, assistant = first["messages"]
    assert user["role"] == "user" and assistant["role"] == "assistant"
    assert [c["type"] for c in user["content"]] == ["image"] * 8 + ["text"]
    assert user["content"][-1]["text"] == fresh_records[0]["prompt"]
    assert assistant["content"][0]["text"] == fresh_records[0]["answer"]
    frame = np.asarray(Image.open(out / first["images"][3]))
    np.testing.assert_array_equal(frame, fresh_records[0]["frames"][3])
    assert json.loads((out / "info.json").read_text())["num"] == 6
    assert not export.temporary_dir(out).exists()

    # A second export to the same place is refused and leaves the set as it was.
    before = (out / "data.jsonl").read_bytes()
    assert export.main(["--out", str(out), "--num", "2", "--families", FAMILY]) == 2
    assert (out / "data.jsonl").read_bytes() == before
    # An interrupted export's leftovers are removed, never mistaken for a set; --overwrite replaces.
    export.temporary_dir(out).mkdir()
    (export.temporary_dir(out) / "data.jsonl").write_text("half")
    assert export.main(["--out", str(out), "--num", "2", "--families", FAMILY, "--split", "test_ood",
                        "--seed", "7", "--batch-size", "4", "--overwrite"]) == 0
    assert len((out / "data.jsonl").read_text().splitlines()) == 2
    assert not export.temporary_dir(out).exists()


def test_overwrite_deletes_only_an_earlier_export_or_an_empty_directory(tmp_path, capsys):
    """`--overwrite` on a directory physsim.export did not make (a user's home, a checkout) is refused before
    anything is simulated, and the directory is left as it was."""
    theirs = tmp_path / "notes"
    theirs.mkdir()
    (theirs / "thesis.tex").write_text("years of work")
    lookalike = tmp_path / "other"
    lookalike.mkdir()
    (lookalike / "info.json").write_text('{"author": "someone"}')  # an info.json, not an export's
    a_file = tmp_path / "data.jsonl"
    a_file.write_text("{}")
    for out in (theirs, lookalike, a_file):
        before = sorted((p.name, p.read_bytes()) for p in ([out] if out.is_file() else out.iterdir()))
        assert export.main(["--out", str(out), "--num", "2", "--families", FAMILY, "--overwrite"]) == 2
        assert "not a physsim export" in capsys.readouterr().err
        assert sorted((p.name, p.read_bytes()) for p in ([out] if out.is_file() else out.iterdir())) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export.replaceable(empty)
    made = tmp_path / "made"
    made.mkdir()
    (made / "info.json").write_text(json.dumps({"format": "jsonl", "physsim": "0", "families": [FAMILY],
                                                "split": "test_id"}))
    assert export.replaceable(made) and not export.replaceable(lookalike)


YESNO = Template("t_yesno", "state", "yesno", "f", ("Will it?",))
CHOICE = Template("t_choice", "property", "choice", "f", ("Which?",), options=("the red ball", "the blue ball"))
SECONDS = Template("t_s", "state", "number", "f", ("When?",), unit="s", abs_tol=0.1)
METRES = Template("t_m", "state", "number", "f", ("Where?",), unit="m", abs_tol=0.05)


@pytest.mark.parametrize("text, template, value, correct", [
    ("Yes.", YESNO, 1.0, True),
    ("yes", YESNO, 0.0, False),
    ("I think no", YESNO, 0.0, True),
    ("No, they will not.", YESNO, 1.0, False),
    ("the red ball", CHOICE, 0.0, True),
    ("The blue ball is heavier.", CHOICE, 0.0, False),
    ("the ball", CHOICE, 0.0, False),  # names no option
    ("about 1.2 seconds", SECONDS, 1.25, True),
    ("about 1.2 seconds", SECONDS, 1.5, False),
    ("1200 ms", SECONDS, 1.2, True),
    ("1200 mm", METRES, 1.2, True),
    ("1200 mm", SECONDS, 1.2, False),  # a length is not a time
    ("1.2", METRES, 1.22, True),  # no unit: read in the question's unit
    ("no idea", METRES, 1.0, False),
])
def test_scorer_reads_tricky_answers(text, template, value, correct):
    assert check_answer(text, template, value) is correct


def test_score_cli_tables_and_errors(tmp_path, fresh_records, capsys):
    out = tmp_path / "set"
    export.export(out, fmt="jsonl", families=(FAMILY,), split="test_ood", num=6, seed=7, batch_size=4)
    data = [json.loads(x) for x in (out / "data.jsonl").read_text().splitlines()]
    preds = tmp_path / "preds.jsonl"
    # Right answers phrased freely for the first three, wrong for the fourth, none for the rest.
    lines = [{"id": d["id"], "prediction": f"I believe it is {d['messages'][1]['content'][0]['text']}."}
             for d in data[:3]]
    lines.append({"id": data[3]["id"], "response": "The moon."})
    preds.write_text("\n".join(json.dumps(x) for x in lines))
    assert score.main(["--predictions", str(preds), "--dataset", str(out), "--json", str(tmp_path / "s.json")]) == 0
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["overall"] == {"accuracy": pytest.approx(3 / 6), "n": 6, "answered": 4}
    assert sum(v["n"] for v in summary["per_task"].values()) == 6
    assert "accuracy per family" in capsys.readouterr().out

    preds.write_text(json.dumps({"id": "nope", "prediction": "yes"}))
    assert score.main(["--predictions", str(preds), "--dataset", str(out)]) == 2
    assert "no prediction id matches" in capsys.readouterr().err
    preds.write_text(json.dumps({"id": data[0]["id"], "prediction": "yes"}) + "\n{oops")
    assert score.main(["--predictions", str(preds), "--dataset", str(out)]) == 2
    assert "preds.jsonl:2: not a JSON line" in capsys.readouterr().err
