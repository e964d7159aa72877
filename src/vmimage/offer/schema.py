"""The JSON Schema of ``offer.yaml``, generated from the models so it cannot drift.

``scripts/gen-offer-schema.py`` writes it to ``src/vmimage/schemas/offer-manifest.json`` (for
editors: ``# yaml-language-server: $schema=...``); a test fails when the file is stale.
"""

from __future__ import annotations

import json

from vmimage.offer.model import Manifest

SCHEMA_ID = "https://vmimage.dev/schemas/offer-manifest.json"
SCHEMA_PATH = "schemas/offer-manifest.json"


def manifest_schema() -> dict[str, object]:
    """The manifest's JSON Schema (draft 2020-12)."""
    body = Manifest.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **body}


def schema_text() -> str:
    """The schema as the file holds it: sorted keys, two-space indent, final newline."""
    return json.dumps(manifest_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
