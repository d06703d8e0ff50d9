"""The body of ``POST /jobs``: an experiment spec as JSON or YAML (the form users write).

The route reads the body itself rather than through a FastAPI body parameter, so that the
token is checked before the body is parsed, YAML is accepted, references are checked against
the data root before the spec's validators touch the file system, and the service's limits
reach those validators.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any

import yaml
from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from harness.spec import ExperimentSpec, validate_spec
from service.api.deps import OwnerDep, SettingsDep
from service.datasets import resolve_dataset_ids
from service.settings import Settings
from tapweight.data.registry import DATASETS
from tapweight.models.registry import is_encoder_name

JSON_TYPES = ("application/json",)  # and any application/*+json
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
ACCEPTED = "application/json or application/yaml"

OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"$ref": "#/components/schemas/ExperimentSpec"}}
            for media in ("application/json", "application/yaml")
        },
    }
}
"""The route's documented body; :func:`spec_schemas` supplies the components it refers to."""


def spec_schemas() -> dict[str, Any]:
    """``ExperimentSpec`` and the models it nests, as OpenAPI component schemas."""
    schema = ExperimentSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    nested = schema.pop("$defs", {})
    return {**nested, "ExperimentSpec": schema}


class _NoAliases(yaml.SafeLoader):
    """Safe YAML without anchors and aliases: a small body of nested aliases would expand to
    billions of nodes in validation, and a spec never needs them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            problem = "aliases (*name) are not accepted"
            raise yaml.MarkedYAMLError(problem=problem, problem_mark=mark)
        return super().compose_node(parent, index)


def _invalid(message: str, kind: str = "value_error") -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body",), "msg": message}])


def _media_type(request: Request) -> str | None:
    header = request.headers.get("content-type")
    return header.split(";", 1)[0].strip().lower() if header else None


def _parse(body: bytes, media_type: str | None) -> Any:
    """The spec's data; JSON without a Content-Type, since that is what clients mostly send."""
    is_yaml = media_type in YAML_TYPES
    is_json = media_type is None or media_type in JSON_TYPES or media_type.endswith("+json")
    if not (is_json or is_yaml):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {media_type!r} is not accepted; send the spec as {ACCEPTED}",
        )
    if not body.strip():
        raise _invalid("the body is empty; send an experiment spec")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _invalid(f"the body is not UTF-8 text (byte {error.start})") from None
    try:
        if is_yaml:
            return yaml.load(text, Loader=_NoAliases)  # noqa: S506 - a SafeLoader subclass
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno} column {error.colno}"
        raise _invalid(f"invalid JSON at {where}: {error.msg}", "json_invalid") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise _invalid(f"invalid YAML{where}: {error.problem}") from None
    except (yaml.YAMLError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise _invalid(f"unreadable {'YAML' if is_yaml else 'JSON'}: {reason}") from None


def _path_problem(value: str, data_root: Path | None, key: bool) -> str | None:
    """Why a dataset/corpus/encoder reference may not be used, or None when it may.

    A registry key (``key``) is a plain name. Anything else is a path, and must be absolute
    and resolve (symlinks included) inside the data root: a relative one, even a bare
    ``model.pth``, would resolve against the Ray job's working directory. '..' is refused
    outright.
    """
    windows = PureWindowsPath(value)
    pathlike = "/" in value or "\\" in value or value.startswith("~") or bool(windows.drive)
    if "\x00" in value:
        return "contains a NUL byte"
    if ".." in PurePosixPath(value).parts or ".." in windows.parts:
        return "contains '..'; paths must stay inside the data root"
    if key and not pathlike:
        return None
    if data_root is None:
        return (
            "is not a registry key, so a path, but the service has no data root "
            "(TAPWEIGHT_DATA_DIR); use a registry key (`tapweight data list`)"
        )
    path = Path(value)
    if not path.is_absolute():
        return (
            "is not a registry key, and a relative path is not accepted; use a registry key "
            "(`tapweight data list`) or an absolute path inside the data root"
        )
    if not path.resolve().is_relative_to(data_root.resolve()):
        return "resolves outside the data root"
    return None


def _references(
    body: dict[str, Any], uploads: set[int]
) -> Iterator[tuple[tuple[str | int, ...], Any, bool]]:
    """(loc, value, is a registry key) of every reference in the spec (other types are left
    to the spec's validation); the dataset entries at ``uploads`` name the service's own
    files, found by their dataset_id."""
    datasets = body.get("datasets")
    if isinstance(datasets, list):
        for index, value in enumerate(datasets):
            if isinstance(value, dict):
                if index not in uploads:  # a file of the data root: a path like any other
                    yield ("body", "datasets", index, "path"), value.get("path"), False
                continue
            yield ("body", "datasets", index), value, True  # keys only; the spec names typos
    corpus, encoder = body.get("corpus"), body.get("encoder")
    if isinstance(corpus, str):
        yield ("body", "corpus"), corpus, corpus == "task" or corpus in DATASETS
    if isinstance(encoder, str):
        yield ("body", "encoder"), encoder, is_encoder_name(encoder)


def _resolve_uploads(
    request: Request, owner: str, data: dict[str, Any]
) -> tuple[set[int], list[dict[str, Any]]]:
    with request.app.state.db.read() as session:
        return resolve_dataset_ids(session, owner, data)


def _checked_spec(request: Request, owner: str, body: bytes, settings: Settings) -> ExperimentSpec:
    """The body as a validated spec, or 415/422; all in one worker thread, since YAML parses
    slowly, the owner's uploads are read from the database (for a spec naming a
    ``dataset_id``) and the files a spec names are read and checked."""
    data = _parse(body, _media_type(request))
    if isinstance(data, dict):
        uploads, errors = _resolve_uploads(request, owner, data)
        errors += [
            {"type": "value_error", "loc": loc, "msg": f"{value!r} {problem}"}
            for loc, value, key in _references(data, uploads)
            if isinstance(value, str) and (problem := _path_problem(value, settings.data_dir, key))
        ]
        if errors:
            raise RequestValidationError(errors)
    try:
        return validate_spec(data, settings.spec_limits())
    except ValidationError as error:
        raise RequestValidationError(
            [
                {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]}
                for e in error.errors()
            ]
        ) from None


async def read_spec(request: Request, owner: OwnerDep, settings: SettingsDep) -> ExperimentSpec:
    """The validated spec, or 415/422 naming what to fix (after the token is checked). A
    dataset named by ``dataset_id`` is this token's upload, read from the uploads folder."""
    body = await request.body()
    return await run_in_threadpool(_checked_spec, request, owner, body, settings)


SpecBody = Annotated[ExperimentSpec, Depends(read_spec)]
