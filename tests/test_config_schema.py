"""conf/'s JSON Schemas (for editors) are current, accept every shipped file and close objects."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from decisionlake.config import default_conf_dir
from decisionlake.dev.config_schema import SCHEMA_DIR, rendered

CONF = default_conf_dir()


def _schema(name: str) -> dict:
    return json.loads((CONF / SCHEMA_DIR / name).read_text())


def test_the_committed_schemas_are_the_generated_ones() -> None:
    for name, text in rendered().items():
        committed = CONF / SCHEMA_DIR / name
        assert committed.read_text() == text, f"{committed} is stale: run scripts/config-schema"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in CONF.glob("*/*.yaml")),
    ids=lambda p: str(Path(p).relative_to(CONF)),
)
def test_every_shipped_file_is_valid(path: Path) -> None:
    # conf/pipeline.yaml sits at the top of conf/, outside this glob: it has its own loader.
    name = "model.schema.json" if path.parent.name == "models" else "app.schema.json"
    document = yaml.safe_load(path.read_text()) or {}
    errors = [
        f"{'.'.join(map(str, e.path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(_schema(name)).iter_errors(document)
    ]
    assert not errors, errors


def test_an_unknown_or_mistyped_key_is_an_error_for_the_editor_too() -> None:
    validator = jsonschema.Draft202012Validator(_schema("app.schema.json"))
    assert not list(validator.iter_errors({"clickstream": {"lookback_days": 3}}))
    assert list(validator.iter_errors({"clickstream": {"lookback_dayz": 3}}))
    assert list(validator.iter_errors({"clickstream": {"lookback_days": "three"}}))
    model = jsonschema.Draft202012Validator(_schema("model.schema.json"))
    assert list(model.iter_errors({"task": "classification"}))  # a whole spec is required
