"""The Adaptive Card tests' schema check: every card built is validated against Microsoft's
published JSON schema of Adaptive Cards 1.4 (vendored in tests/data, see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "data" / "adaptive-card-1.4.json"


@pytest.fixture(scope="session")
def card_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


@pytest.fixture
def valid(card_validator):
    """``valid(card)`` asserts ``card`` is a valid Adaptive Card 1.4 and returns it."""

    def check(card: dict[str, Any]) -> dict[str, Any]:
        errors = sorted(card_validator.iter_errors(card), key=lambda e: list(e.absolute_path))
        details = [f"{list(e.absolute_path)}: {e.message}" for err in errors for e in (err.context or [err])]
        assert not errors, "\n".join(details[:20])
        assert card["version"] == "1.4"
        return card

    return check
