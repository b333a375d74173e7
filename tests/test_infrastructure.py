"""The CloudFormation template: rendered from config, linted by cfn-lint, least privilege."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from decisionlake.config import load_config
from decisionlake.ops.orchestration.cfn import BUCKETS, render_template
from decisionlake.ops.pipeline import load_pipeline

from .conftest import REPO

TEMPLATE = REPO / "emr" / "cloudformation.json"


def _template() -> dict[str, Any]:
    return render_template(load_config("prod"), load_pipeline())


def test_committed_template_matches_the_config() -> None:
    """Re-render after changing config: decisionlake infra render --env prod --out PATH"""
    assert json.loads(TEMPLATE.read_text(encoding="utf-8")) == _template()


def test_cfn_lint_passes() -> None:
    lint = shutil.which("cfn-lint", path=str(REPO / ".venv" / "bin")) or shutil.which("cfn-lint")
    assert lint, "cfn-lint is installed with the dev dependencies"
    result = subprocess.run([lint, str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def _statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource["Properties"].get("Policies", []):
            out += [(name, st) for st in policy["PolicyDocument"]["Statement"]]
    return out


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def test_no_wildcard_actions_and_data_buckets_are_named() -> None:
    template = _template()
    statements = _statements(template)
    assert statements
    for role, st in statements:
        assert not any(a == "*" or a.endswith(":*") for a in _actions(st)), (role, st)
        resources = json.dumps(st["Resource"])
        if any(a.startswith("s3:") for a in _actions(st)):
            assert "Bucket}" in resources and "arn:${AWS::Partition}:s3:::*" not in resources
        if resources == '"*"':
            assert set(_actions(st)) <= {
                "redshift-data:DescribeStatement", "redshift-data:GetStatementResult"
            }, (role, st)  # fmt: skip
    for kind in BUCKETS:
        bucket = template["Resources"][f"{kind.capitalize()}Bucket"]["Properties"]
        assert all(bucket["PublicAccessBlockConfiguration"].values())
        assert bucket["LifecycleConfiguration"]["Rules"]
    staging = template["Resources"]["StagingBucket"]["Properties"]["LifecycleConfiguration"]
    assert {"Id": "expire-staged-exports", "Status": "Enabled", "ExpirationInDays": 7} in (
        staging["Rules"]
    )


@pytest.mark.parametrize(
    ("role", "readable", "unreadable"),
    [
        ("AnalystAccessRole", {"lake/silver", "lake/gold"}, {"lake/bronze"}),
        ("ConsumerAccessRole", {"lake/gold"}, {"lake/bronze", "lake/silver"}),
        ("DataEngineerAccessRole", {"lake/bronze", "lake/silver", "lake/gold"}, set()),
    ],
)
def test_access_policy_is_rendered_per_tier(role: str, readable: set, unreadable: set) -> None:
    statements = [st for name, st in _statements(_template()) if name == role]
    prefixes = {
        json.dumps(st["Resource"]).split("}/")[1].rsplit("/*", 1)[0]
        for st in statements
        if "s3:GetObject" in _actions(st)
    }
    assert readable <= prefixes and not (unreadable & prefixes)
    assert not any("s3:PutObject" in _actions(st) for st in statements)


def test_schedule_feeds_the_state_machine_its_firing_time() -> None:
    resources = _template()["Resources"]
    target = resources["DailySchedule"]["Properties"]["Target"]
    assert json.loads(target["Input"]) == {"scheduled_time": "<aws.scheduler.scheduled-time>"}
    machine = json.loads(resources["DailyStateMachine"]["Properties"]["DefinitionString"])
    assert machine["StartAt"] == "Resolve run date"
    derive = machine["States"]["Derive run date"]["Parameters"]["run_date.$"]
    assert derive == "States.Format('scheduled:{}', $.scheduled_time)"
    table = resources["DeltaLogTable"]["Properties"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["tablePath", "fileName"]
