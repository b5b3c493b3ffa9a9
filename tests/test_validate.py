"""The fidelity report's closed-form rows are tests: physics must match mechanics."""

import json

import pytest

from physsim import validate

EXPECTED_EXPERIMENTS = {
    "free fall", "ballistic flight", "sliding block", "block on incline", "sphere rolling on incline",
    "elastic-like collision", "inelastic collision", "pendulum", "MJX vs MuJoCo C (float64)",
}


def test_report_covers_every_required_experiment(validation_rows):
    assert EXPECTED_EXPERIMENTS <= {r.experiment for r in validation_rows}


@pytest.mark.parametrize("experiment", sorted(EXPECTED_EXPERIMENTS))
def test_gated_rows_pass(validation_rows, experiment):
    rows = [r for r in validation_rows if r.experiment == experiment and r.gated]
    assert rows
    for r in rows:
        assert r.passed, f"{r.experiment} / {r.quantity}: expected {r.expected}, simulated {r.simulated}"


def test_closed_form_rows_meet_two_percent_target(validation_rows):
    for r in validation_rows:
        if r.gated and not r.absolute:
            assert r.tolerance <= 0.02 and r.error <= 0.02, r


def test_row_fails_when_simulation_disagrees():
    assert not validate.Row("x", "q", "m", 1.0, 1.05, 0.02).passed
    assert validate.Row("x", "q", "m", 1.0, 1.01, 0.02).passed
    assert not validate.Row("x", "q", "m", 0.0, 2e-3, 1e-3, absolute=True).passed
    assert not validate.Row("x", "q", "m", 1.0, float("nan"), 0.02).passed


def test_cli_writes_json_and_exit_code_follows_gated_rows(tmp_path, monkeypatch, validation_rows):
    monkeypatch.setattr(validate, "run_all", lambda: validation_rows)
    out = tmp_path / "report.json"
    assert validate.main(["--json", str(out), "--sections", "physics"]) == 0
    payload = json.loads(out.read_text())
    assert payload["passed"] is True and payload["complete"] is True
    assert len(payload["rows"]) == len(validation_rows)
    assert {"expected", "simulated", "error", "tolerance", "passed"} <= set(payload["rows"][0])

    failing = validation_rows + [validate.Row("broken", "q", "m", 1.0, 2.0, 0.02)]
    monkeypatch.setattr(validate, "run_all", lambda: failing)
    assert validate.main(["--json", str(out), "--sections", "physics"]) == 1
    assert json.loads(out.read_text())["passed"] is False


def test_a_crash_in_a_later_section_keeps_the_sections_already_measured(tmp_path, monkeypatch, validation_rows):
    """`make validate` once died after ~95 min in its askability section and wrote nothing: the report is
    now written after every section, marked incomplete until the last."""
    from physsim import selfcheck

    def crash(**_):
        raise RuntimeError("LLVM ERROR: Unable to allocate section memory")

    monkeypatch.setattr(validate, "run_all", lambda: validation_rows)
    monkeypatch.setattr(selfcheck, "self_check_all", crash)
    out = tmp_path / "report.json"
    with pytest.raises(RuntimeError):
        validate.main(["--json", str(out)])
    payload = json.loads(out.read_text())
    assert payload["complete"] is False and len(payload["rows"]) == len(validation_rows)
