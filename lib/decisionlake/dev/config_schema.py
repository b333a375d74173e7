"""JSON Schemas of ``conf/`` for editors, derived from the typed config (never hand-written).

The loader (``decisionlake.config``) stays the authority and keeps its key-path errors; these
schemas give an editor (a YAML language server) completion and early errors from the same
dataclasses, read by pydantic's ``TypeAdapter`` (no second definition of the config):

- ``conf/schema/app.schema.json`` for ``conf/<env>/*.yaml``: every file is an overlay that is
  deep-merged, so no key is required there, but every object is closed (an unknown key is an
  error, as it is for the loader), and ``inherit`` is allowed at the top;
- ``conf/schema/model.schema.json`` for ``conf/models/<name>.yaml``: a whole model spec.

``scripts/config-schema`` rewrites them; a test fails when they are out of date.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = "schema"


def _closed(node: Any, *, keep_required: bool) -> Any:
    """Every object with named properties closed; ``required`` dropped unless kept."""
    if isinstance(node, dict):
        out = {k: _closed(v, keep_required=keep_required) for k, v in node.items()}
        if "properties" in out:
            out.setdefault("additionalProperties", False)
            if not keep_required:
                out.pop("required", None)
        return out
    if isinstance(node, list):
        return [_closed(v, keep_required=keep_required) for v in node]
    return node


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema."""
    from pydantic import TypeAdapter

    from decisionlake.config import AppConfig
    from decisionlake.models.spec import ModelSpec

    app = _closed(TypeAdapter(AppConfig).json_schema(), keep_required=False)
    app = copy.deepcopy(app)
    app["properties"]["inherit"] = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "environments whose files this one overlays",
    }
    app["title"] = "decisionlake conf/<env>/*.yaml (an overlay: keys merge, none required)"
    model = _closed(TypeAdapter(ModelSpec).json_schema(), keep_required=True)
    model["title"] = "decisionlake conf/models/<name>.yaml (a model spec)"
    return {"app.schema.json": app, "model.schema.json": model}


def rendered() -> dict[str, str]:
    return {name: json.dumps(s, indent=1, sort_keys=True) + "\n" for name, s in schemas().items()}


def write(conf_dir: Path) -> list[Path]:
    folder = conf_dir / SCHEMA_DIR
    folder.mkdir(exist_ok=True)
    written = []
    for name, text in rendered().items():
        (folder / name).write_text(text)
        written.append(folder / name)
    return written
