"""OpenAPI links: which value of a response names the resource that the next requests are about
(a submitted job's id leads to its status, results, events, report, figures, artifacts, cancel
and resume; an upload's id to the dataset). Clients read them as documentation; schemathesis
follows them to chain requests in its stateful tests."""

from __future__ import annotations

from typing import Any

Links = dict[str, dict[str, Any]]


def _link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    """A link to ``operation_id``; a parameter is a runtime expression or a constant."""
    return {"operationId": operation_id, "parameters": parameters, "description": description}


def _job_links(job_id: str) -> Links:
    return {
        "GetJob": _link("get_job", "status, progress and results", job_id=job_id),
        "GetJobResults": _link("get_results", "every finished trial's row", job_id=job_id),
        "StreamJobEvents": _link("stream_events", "the run's events as they come", job_id=job_id),
        "GetJobReport": _link("get_report", "the report, once the run wrote it", job_id=job_id),
        "GetJobScoresFigure": _link(
            "get_figure", "the report's scores figure", job_id=job_id, name="scores.png"
        ),
        "ListJobArtifacts": _link("list_artifacts", "each trial's encoder", job_id=job_id),
        "CancelJob": _link("cancel_job", "cancel it", job_id=job_id),
        "ResumeJob": _link("resume_job", "resume it when failed or cancelled", job_id=job_id),
    }


SUBMITTED_JOB = _job_links("$response.body#/id")
"""From ``POST /jobs``: the job it queued (or, for a repeated Idempotency-Key, the first one)."""

LISTED_JOB: Links = {
    "GetListedJob": _link("get_job", "the newest job listed", job_id="$response.body#/items/0/id")
}

LISTED_ARTIFACT: Links = {
    "DownloadArtifact": _link(
        "download_artifact",
        "the first artifact listed, as .tar.gz",
        job_id="$request.path.job_id",
        artifact_id="$response.body#/items/0/id",
    )
}

UPLOADED_DATASET: Links = {
    "GetDataset": _link("get_dataset", "what the service read", dataset_id="$response.body#/id"),
    "DeleteDataset": _link("delete_dataset", "remove it", dataset_id="$response.body#/id"),
}

LISTED_DATASET: Links = {
    "GetListedDataset": _link(
        "get_dataset", "the newest dataset listed", dataset_id="$response.body#/items/0/id"
    )
}
