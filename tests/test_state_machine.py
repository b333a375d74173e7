"""The pipeline rendered as Step Functions state machines, checked by the real asl-validator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from decisionlake.ops.orchestration.asl import render_state_machine
from decisionlake.ops.pipeline import load_pipeline

from .conftest import REPO

VALIDATOR = REPO / ".cache" / "node" / "node_modules" / ".bin" / "asl-validator"


def _validate(machine: dict[str, Any], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    if not VALIDATOR.exists():
        pytest.fail(f"{VALIDATOR} missing: run `make tools`")
    path = tmp_path / "machine.json"
    path.write_text(json.dumps(machine), encoding="utf-8")
    return subprocess.run(
        [str(VALIDATOR), "--json-path", str(path)], capture_output=True, text=True
    )


def _tasks(machine: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for name, state in machine["States"].items():
        if state["Type"] == "Parallel":
            for branch in state["Branches"]:
                found.update(branch["States"])
        elif name.startswith("Run "):
            found[name] = state
    return found


@pytest.mark.parametrize(
    ("target", "transient"), [("emr", False), ("emr", True), ("emr-serverless", False)]
)
def test_rendered_machines_are_valid_asl(tmp_path: Path, target: str, transient: bool) -> None:
    machine = render_state_machine(load_pipeline(), target=target, transient=transient)
    result = _validate(machine, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validator_rejects_a_broken_machine(tmp_path: Path) -> None:
    machine = render_state_machine(load_pipeline(), target="emr")
    machine["States"]["Run build_advisor_360"]["Next"] = "Nowhere"
    assert _validate(machine, tmp_path).returncode != 0


def test_every_step_has_retry_timeout_catch_and_the_run_date() -> None:
    pipeline = load_pipeline()
    machine = render_state_machine(pipeline, target="emr")
    tasks = _tasks(machine)
    assert set(tasks) == {f"Run {s.name}" for s in pipeline.steps}
    for step in pipeline.steps:
        task = tasks[f"Run {step.name}"]
        assert task["Resource"] == "arn:aws:states:::elasticmapreduce:addStep.sync"
        assert task["TimeoutSeconds"] == step.timeout_minutes * 60
        if step.retries:
            assert task["Retry"][0]["MaxAttempts"] == step.retries
            assert task["Retry"][0]["BackoffRate"] == 2.0
        else:
            assert "Retry" not in task  # the quality gate is not retried
        args = task["Parameters"]["Step"]["HadoopJarStep"]["Args.$"]
        assert f"jobs/{step.job}.py" in args and args.endswith("'--run-date', $.run_date)")
    # Failures in any wave reach the notification, then the Fail state.
    waves = [s for s in machine["States"].values() if s["Type"] in ("Task", "Parallel")
             and s.get("Resource") != "arn:aws:states:::sns:publish"]  # fmt: skip
    assert all(s["Catch"][0]["Next"] == "Notify failure" for s in waves)
    assert machine["States"]["Notify failure"]["Next"] == "Failed"


def test_parallel_waves_follow_the_dependencies() -> None:
    machine = render_state_machine(load_pipeline(), target="emr")
    assert machine["StartAt"] == "Resolve run date"
    order, name = [], machine["States"]["Resolve run date"]["Choices"][0]["Next"]
    while name:
        order.append(name)
        name = machine["States"][name].get("Next")
    assert order == [
        "Wave 1: ingest_crm, ingest_clickstream, ingest_outcomes",
        "Wave 2: ingest_text, build_sessions",
        "Wave 3: build_identity, build_text_features",
        "Run build_advisor_360",
        "Run check_quality",
        "Run score",
        "Wave 7: build_call_list, export_scores, publish, monitor",
        "Run export_call_list",
    ]


def test_serverless_uses_client_tokens_and_transient_clusters_are_always_terminated() -> None:
    serverless = _tasks(render_state_machine(load_pipeline(), target="emr-serverless"))
    for name, task in serverless.items():
        assert task["Resource"] == "arn:aws:states:::emr-serverless:startJobRun.sync"
        assert "$$.Execution.Name" in task["Parameters"]["ClientToken.$"]
        assert "$$.State.RetryCount" in task["Parameters"]["ClientToken.$"]
        assert name.removeprefix("Run ") in task["Parameters"]["ClientToken.$"]
    transient = render_state_machine(load_pipeline(), target="emr", transient=True)
    states = transient["States"]
    assert states["Derive run date"]["Next"] == "Create cluster"
    assert states["Run check_quality"]["Next"] == "Run score"  # the gate precedes publishing
    assert states["Wave 7: build_call_list, export_scores, publish, monitor"]["Next"] == (
        "Run export_call_list"
    )
    assert states["Run export_call_list"]["Next"] == "Terminate cluster"
    assert states["Notify failure"]["Next"] == "Terminate cluster after failure"
    assert states["Terminate cluster after failure"]["Next"] == "Failed"


@pytest.mark.parametrize(
    ("path", "target", "transient"),
    [
        ("state_machine.emr.json", "emr", True),
        ("state_machine.emr_serverless.json", "emr-serverless", False),
    ],
)
def test_committed_state_machines_match_the_pipeline(
    path: str, target: str, transient: bool
) -> None:
    """emr/*.json are rendered from conf/pipeline.yaml; re-render them when it changes:
    decisionlake pipeline render --env prod --target TARGET [--transient] --out emr/PATH"""
    from decisionlake.ops.orchestration.asl import DeploySettings

    expected = render_state_machine(
        load_pipeline(), target=target, transient=transient, settings=DeploySettings(env="prod")
    )
    assert json.loads((REPO / "emr" / path).read_text(encoding="utf-8")) == expected
