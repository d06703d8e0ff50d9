"""Fuzz every operation from the OpenAPI schema (schemathesis): no 500s, and responses match
the documented status codes, content types and schemas."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig

from service.main import create_app
from tests.service.conftest import TOKENS, settings_for

# Module level, as schemathesis' parametrize needs the schema at collection time; the folder
# (SQLite store and runs) is removed when the interpreter exits.
_TMP = tempfile.TemporaryDirectory(prefix="tw-fuzz-")
_APP = create_app(settings_for(f"sqlite:///{_TMP.name}/fuzz.db", Path(_TMP.name)))
_CONFIG = SchemathesisConfig.from_dict(
    {
        # Through the security scheme, so that negative cases can also leave the token out.
        "auth": {"openapi": {"HTTPBearer": {"bearer": TOKENS[0]}}},
        # Unknown query parameters are ignored, as HTTP APIs commonly do.
        "generation": {"allow-extra-parameters": False},
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP, config=_CONFIG)
# A spec is also checked against the registries (known datasets, encoders, objectives of one
# domain, budgets a strategy can pay for), which no JSON schema expresses: a schema-valid spec
# may rightly be refused with 422.
_EXCLUDED = CHECKS.get_by_names(["positive_data_acceptance"])


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema_without_server_errors(case):
    case.call_and_validate(excluded_checks=_EXCLUDED)
