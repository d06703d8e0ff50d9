"""Service settings from the environment, a .env file and *_FILE secrets; bad values stop
`tapweight serve` with one line; the README's table is the class's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.spec import SpecLimits
from service.settings import Settings, load_settings
from tapweight.errors import ConfigError

README = Path(__file__).resolve().parents[2] / "README.md"
VARIABLES = [Settings.variable(name) for name in Settings.model_fields]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No variable of the test run and no .env of the checkout leaks into these settings."""
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(f"{variable}_FILE", raising=False)
    monkeypatch.chdir(tmp_path)


def test_every_variable_keeps_its_name(monkeypatch):
    values = {
        "DATABASE_URL": "postgresql+psycopg://u:p@db/tapweight",
        "RAY_ADDRESS": "http://head:8265",
        "TAPWEIGHT_API_TOKENS": "alpha, beta,",
        "TAPWEIGHT_RUNS_DIR": "/runs",
        "TAPWEIGHT_DATA_DIR": "/data",
        "TAPWEIGHT_UPLOADS_DIR": "/uploads",
        "TAPWEIGHT_MAX_UPLOAD_BYTES": "2048",
        "TAPWEIGHT_CACHE_DIR": "/cache",
        "TAPWEIGHT_OFFLINE": "1",
        "TAPWEIGHT_EXECUTOR": "none",
        "TAPWEIGHT_MAX_BODY_BYTES": "4096",
        "TAPWEIGHT_WORKER_THREADS": "3",
        "TAPWEIGHT_CORS_ORIGINS": "https://a.example,https://b.example",
        "TAPWEIGHT_POLL_INTERVAL_S": "0.5",
        "TAPWEIGHT_MAX_REQUEUES": "0",
        "TAPWEIGHT_MAX_SEEDS": "5",
        "TAPWEIGHT_MAX_TRIALS": "50",
        "TAPWEIGHT_MAX_TRIAL_CPUS": "2",
        "TAPWEIGHT_MAX_TRIAL_GPUS": "0.5",
    }
    assert sorted(values) == sorted(VARIABLES)
    for variable, value in values.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert settings.database_url == values["DATABASE_URL"]
    assert settings.ray_address == "http://head:8265"
    assert settings.api_tokens == ("alpha", "beta")
    assert settings.runs_dir == Path("/runs") and settings.data_dir == Path("/data")
    assert settings.uploads_root() == Path("/uploads") and settings.max_upload_bytes == 2048
    assert settings.cache_dir == Path("/cache") and settings.offline is True
    assert settings.executor == "none" and settings.max_body_bytes == 4096
    assert settings.worker_threads == 3
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.poll_interval_s == 0.5 and settings.max_requeues == 0
    assert settings.spec_limits() == SpecLimits(seeds=5, trials=50, cpu=2, gpu=0.5)


def test_unset_and_empty_variables_give_the_defaults(monkeypatch):
    monkeypatch.setenv("TAPWEIGHT_CORS_ORIGINS", "")  # as docker-compose passes an unset one
    settings = load_settings()
    assert settings == Settings.model_construct()
    assert settings.cors_origins == () and settings.ray_address is None


def test_a_dotenv_file_is_read_and_the_environment_wins(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text(
        "TAPWEIGHT_EXECUTOR=none\nTAPWEIGHT_MAX_REQUEUES=7\nPOSTGRES_PASSWORD=for-compose\n"
    )
    monkeypatch.setenv("TAPWEIGHT_MAX_REQUEUES", "2")
    settings = load_settings()
    assert settings.executor == "none" and settings.max_requeues == 2


def test_secrets_can_come_from_files(monkeypatch, tmp_path):
    (tmp_path / "tokens").write_text("alpha\nbeta\n")
    (tmp_path / "database").write_text("postgresql+psycopg://u:secret@db/tapweight\n")
    monkeypatch.setenv("TAPWEIGHT_API_TOKENS_FILE", str(tmp_path / "tokens"))
    (tmp_path / ".env").write_text(f"DATABASE_URL_FILE={tmp_path / 'database'}\n")
    settings = load_settings()
    assert settings.api_tokens == ("alpha", "beta")
    assert settings.database_url == "postgresql+psycopg://u:secret@db/tapweight"


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"DATABASE_URL_FILE": "/nonexistent/url"}, "DATABASE_URL_FILE=/nonexistent/url: No such"),
        (
            {"TAPWEIGHT_API_TOKENS": "a", "TAPWEIGHT_API_TOKENS_FILE": "/x"},
            "both TAPWEIGHT_API_TOKENS and TAPWEIGHT_API_TOKENS_FILE are set",
        ),
        ({"TAPWEIGHT_EXECUTOR": "celery"}, "TAPWEIGHT_EXECUTOR: Input should be 'ray' or 'none'"),
        ({"TAPWEIGHT_MAX_BODY_BYTES": "10"}, "TAPWEIGHT_MAX_BODY_BYTES: Input should be greater"),
        ({"TAPWEIGHT_OFFLINE": "maybe"}, "TAPWEIGHT_OFFLINE: Input should be a valid boolean"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch, environment, message):
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings()


def test_serve_stops_on_a_bad_value_with_one_line(tmp_path):
    environment = {**os.environ, "TAPWEIGHT_API_TOKENS": "t", "TAPWEIGHT_POLL_INTERVAL_S": "abc"}
    result = subprocess.run(
        [sys.executable, "-m", "tapweight.cli", "serve"],
        capture_output=True,
        text=True,
        env={**environment, "COLUMNS": "40"},  # a narrow terminal must not wrap the line
        cwd=tmp_path,
        timeout=120,
    )
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 2, output
    assert output.count("\n") == 0 and "Traceback" not in output, output
    assert "TAPWEIGHT_POLL_INTERVAL_S" in output and "'abc'" in output


def settings_table() -> str:
    """The README's table, from the class: variable, default, meaning."""
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        variable = f"`{Settings.variable(name)}`"
        if name in Settings.secrets:
            variable += f" or `{Settings.variable(name)}_FILE`"
        default = str(field.default).lower() if field.default is False else field.default
        shown = "unset" if default in (None, ()) else f"`{default}`"
        lines.append(f"| {variable} | {shown} | {field.description} |")
    return "\n".join(lines)


def test_the_readme_settings_table_is_the_class():
    readme = README.read_text()
    block = re.search(
        r"<!-- settings table.*?-->\n(.*?)\n<!-- end of settings table -->", readme, re.S
    )
    assert block, "README.md lost its settings table markers"
    expected = settings_table()
    assert block.group(1) == expected, f"replace the README's settings table with:\n{expected}"
