""".github/workflows/nightly.yml: valid against the published GitHub workflow JSON schema (SchemaStore's,
vendored in tests/schemas/github-workflow.json), and it does what the nightly job must: on schedule and by hand,
Python 3.11, `make install`, the engines up and healthy, the suite, regress against the stored baseline, the
results uploaded and the summary posted. Every bench command it runs exists in the CLI."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from bench.cli import app
from bench.spec import REPO_ROOT
from bench.suite import load_suite

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "nightly.yml"
SCHEMA = Path(__file__).parent / "schemas" / "github-workflow.json"


def _load() -> dict:
    doc = yaml.safe_load(WORKFLOW.read_text())
    if True in doc:  # YAML 1.1 reads the key `on` as a boolean; GitHub reads it as "on"
        doc["on"] = doc.pop(True)
    return doc


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    assert schema["$id"] == "https://json.schemastore.org/github-workflow.json"
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_workflow_is_valid_against_the_schema(validator):
    errors = sorted(validator.iter_errors(_load()), key=str)
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def test_the_schema_check_can_fail(validator):
    doc = _load()
    broken = copy.deepcopy(doc)
    broken["jobs"]["nightly"]["steps"][0]["uses"] = 42
    assert list(validator.iter_errors(broken))
    broken = copy.deepcopy(doc)
    broken["on"]["schedule"] = [{"crontab": "nightly"}]
    assert list(validator.iter_errors(broken))
    broken = copy.deepcopy(doc)
    del broken["jobs"]["nightly"]["runs-on"]
    assert list(validator.iter_errors(broken))


def _steps() -> list[dict]:
    return _load()["jobs"]["nightly"]["steps"]


def _runs() -> str:
    return "\n".join(s.get("run", "") for s in _steps())


def test_triggers_and_setup():
    doc = _load()
    assert "workflow_dispatch" in doc["on"]
    (cron,) = doc["on"]["schedule"]
    assert len(cron["cron"].split()) == 5
    uses = [s.get("uses", "") for s in _steps()]
    assert uses[0].startswith("actions/checkout@")
    setup = next(s for s in _steps() if s.get("uses", "").startswith("actions/setup-python@"))
    assert str(setup["with"]["python-version"]) == "3.11"
    assert any(u.startswith("actions/upload-artifact@") for u in uses)
    runs = _runs()
    assert "make install" in runs
    assert re.search(r"docker compose up -d --wait\b", runs)
    assert ">> \"$GITHUB_STEP_SUMMARY\"" in runs
    assert "docker compose down" in runs


def test_suite_regress_and_upload_are_wired_together():
    steps = _steps()
    runs = _runs()
    assert "bench suite configs/suites/nightly.toml" in runs
    load_suite(REPO_ROOT / "configs" / "suites" / "nightly.toml")
    suite = next(s for s in steps if "bench suite" in s.get("run", ""))
    assert suite.get("continue-on-error") is True  # regress, the summary and the upload still happen
    regress = next(s for s in steps if "bench regress" in s.get("run", ""))
    assert regress.get("if") == "always()" and "--out regress.md" in regress["run"]
    assert 'base="baselines/$BASELINE"' in regress["run"] and 'base="baselines/nightly-rolling"' in regress["run"]
    assert '--baseline "$base" --candidate "results/$RUN_ID"' in regress["run"]
    restore = next(i for i, s in enumerate(steps) if s.get("uses", "").startswith("actions/cache/restore@"))
    assert restore < steps.index(regress)
    roll = next(s for s in steps if "--name nightly-rolling --append" in s.get("run", ""))
    assert "steps.suite.outcome == 'success'" in roll["if"] and "steps.regress.outcome == 'success'" in roll["if"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload.get("if") == "always()" and "results/${{ env.RUN_ID }}" in upload["with"]["path"]
    last = steps[-1]  # a failed suite cell fails the job, after everything was kept
    assert "steps.suite.outcome == 'failure'" in last["if"] and "exit 1" in last["run"]


def test_every_bench_command_in_the_workflow_exists():
    import typer.main

    click_app = typer.main.get_command(app)
    seen = 0
    for line in _runs().replace("\\\n", " ").splitlines():
        line = line.strip()
        if ".venv/bin/bench " not in line:
            continue
        words = shlex.split(line[line.index(".venv/bin/bench "):].split("||")[0].split(">")[0])[1:]
        cmd = click_app
        ctx_words = []
        while words and hasattr(cmd, "commands") and words[0] in cmd.commands:
            ctx_words.append(words[0])
            cmd = cmd.commands[words.pop(0)]
        assert ctx_words, f"unknown bench command in: {line}"
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        for w in words:
            if w.startswith("--"):
                assert w in opts, f"`bench {' '.join(ctx_words)}` has no option {w}"
        seen += 1
    assert seen >= 4


def test_history_is_appended_checked_and_published():
    steps = _steps()
    names = [s.get("name", "") for s in steps]

    def at(pred) -> int:
        return next(i for i, s in enumerate(steps) if pred(s))

    restore = at(lambda s: s.get("uses", "").startswith("actions/cache/restore@") and s["with"]["path"] == "history")
    add = at(lambda s: "bench history add" in s.get("run", ""))
    save = at(lambda s: s.get("uses", "").startswith("actions/cache/save@") and s["with"]["path"] == "history")
    changes = at(lambda s: "bench history changes" in s.get("run", ""))
    page = at(lambda s: "bench history report" in s.get("run", ""))
    upload = at(lambda s: s.get("uses", "").startswith("actions/upload-artifact@"))
    suite = at(lambda s: "bench suite" in s.get("run", ""))
    assert suite < restore < add < save and add < changes < page < upload, names
    # the cache is restored from the newest earlier night and saved under this run's own key
    assert steps[restore]["with"]["restore-keys"] == "bench-history-"
    assert steps[save]["with"]["key"].startswith("bench-history-${{ github.run_id }}")
    assert '"results/$RUN_ID" --store history' in steps[add]["run"] and steps[add]["if"].startswith("always()")
    assert "--store history --last 2 > history-changes.txt" in steps[changes]["run"]
    assert steps[changes].get("continue-on-error") is True  # the page, the summary and the upload still happen
    assert "history-changes.txt" in steps[page]["run"] and '>> "$GITHUB_STEP_SUMMARY"' in steps[page]["run"]
    assert "--out history-page" in steps[page]["run"]
    assert "history-page" in steps[upload]["with"]["path"] and "history-changes.txt" in steps[upload]["with"]["path"]
    # GitHub Pages when the repository enables it
    pages = [s for s in steps if s.get("uses", "").startswith(("actions/upload-pages-artifact@",
                                                                "actions/deploy-pages@"))]
    assert len(pages) == 2 and all("vars.BENCH_HISTORY_PAGES == 'true'" in s["if"] for s in pages)
    assert pages[0]["with"]["path"] == "history-page"
    perms = _load()["permissions"]
    assert perms["pages"] == "write" and perms["id-token"] == "write" and perms["contents"] == "read"
    # a recent change for the worse fails the job, after everything was kept
    fail = at(lambda s: "steps.history_changes.outcome == 'failure'" in s.get("if", ""))
    assert fail > upload and "exit 1" in steps[fail]["run"]
    # the rolling baseline does not depend on the history's steps
    roll = next(s for s in steps if "--name nightly-rolling --append" in s.get("run", ""))
    assert "history" not in roll["if"]
    assert all(steps[i].get("continue-on-error") is True for i in (add, changes))
