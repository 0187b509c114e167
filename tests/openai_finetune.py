"""A local OpenAI files + fine-tuning API, for tests that run the real SDK against pytest-httpserver.

It keeps state like the real service: uploaded files (multipart, with their bytes), jobs, and each job's events.
A job follows a script of statuses, one step per ``GET /v1/fine_tuning/jobs/{id}`` (the last one repeats), so
successive polls see ``validating_files → running → succeeded``. Shapes follow the SDK's types
(``openai.types.file_object.FileObject``, ``openai.types.fine_tuning.FineTuningJob``, ``FineTuningJobEvent``).
Like the real API, a job that has not failed carries an error object with nothing in it (``idle_error``), and a
fine-tuned model is named after the root base model even when the job continued from a fine-tuned one.
"""

import json
import re
import time
from dataclasses import dataclass, field

from werkzeug import Request, Response

ORG = "org-rex-test"
JOB_RE = re.compile(r"^/v1/fine_tuning/jobs/(?P<id>ftjob-[A-Za-z0-9]+)$")
EVENTS_RE = re.compile(r"^/v1/fine_tuning/jobs/(?P<id>ftjob-[A-Za-z0-9]+)/events$")
CANCEL_RE = re.compile(r"^/v1/fine_tuning/jobs/(?P<id>ftjob-[A-Za-z0-9]+)/cancel$")
SUCCESS = ("validating_files", "running", "succeeded")
IDLE_ERROR = {"code": None, "message": None, "param": None}


def _json(data: dict, status: int = 200) -> Response:
    return Response(json.dumps(data), status=status, content_type="application/json")


def _error(message: str, *, status: int = 400, code: str = "invalid_request_error", param=None) -> Response:
    return _json({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}, status)


@dataclass
class FakeJob:
    body: dict  # the create request as sent
    script: tuple[str, ...]
    step: int = -1
    events: list[dict] = field(default_factory=list)  # oldest first
    error: dict | None = None
    trained_tokens: int = 48_213
    last_status: str = "validating_files"  # the status its events last described


class FakeFineTuning:
    """Install with ``FakeFineTuning(httpserver)``; set ``next_script`` (and ``next_error``) before a job is made."""

    def __init__(self, server):
        self.server = server
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.next_script: tuple[str, ...] = SUCCESS
        self.next_error: dict | None = None
        self.upload_status: int = 200  # set to e.g. 500 to make uploads fail
        self.idle_error: dict | None = IDLE_ERROR  # the error object of a job that has not failed ({} or None too)
        self._ids = 0
        server.expect_request("/v1/files", method="POST").respond_with_handler(self.upload)
        server.expect_request("/v1/fine_tuning/jobs", method="POST").respond_with_handler(self.create)
        server.expect_request(CANCEL_RE, method="POST").respond_with_handler(self.cancel)
        server.expect_request(EVENTS_RE, method="GET").respond_with_handler(self.list_events)
        server.expect_request(JOB_RE, method="GET").respond_with_handler(self.retrieve)

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids:06d}abc"

    # --- Files ---

    def upload(self, request: Request) -> Response:
        if self.upload_status != 200:
            return _error("The server had an error processing your request.", status=self.upload_status, code=None)
        upload = request.files.get("file")
        purpose = request.form.get("purpose")
        if upload is None or purpose not in ("fine-tune", "batch", "assistants", "user_data", "vision"):
            return _error("Invalid file upload.", param="file")
        content = upload.read()
        file_id = self._id("file-")
        self.files[file_id] = {"filename": upload.filename, "purpose": purpose, "content": content}
        return _json(
            {
                "id": file_id,
                "object": "file",
                "bytes": len(content),
                "created_at": int(time.time()),
                "filename": upload.filename,
                "purpose": purpose,
                "status": "processed",
                "expires_at": None,
                "status_details": None,
            }
        )

    # --- Jobs ---

    def create(self, request: Request) -> Response:
        body = request.get_json()
        for name in ("training_file", "validation_file"):
            if body.get(name) is not None and body[name] not in self.files:
                return _error(f"File {body[name]!r} not found.", status=404, code="file_not_found", param=name)
        job_id = self._id("ftjob-")
        job = FakeJob(body=body, script=self.next_script, error=self.next_error)
        self.jobs[job_id] = job
        self._event(job, "info", f"Created fine-tuning job: {job_id}")
        return _json(self._job_json(job_id, job, status="validating_files"))

    def retrieve(self, request: Request) -> Response:
        job_id = JOB_RE.match(request.path)["id"]
        job = self.jobs.get(job_id)
        if job is None:
            return _error(f"Could not find fine-tune: {job_id}", status=404, code="fine_tune_not_found")
        job.step = min(job.step + 1, len(job.script) - 1)
        status = job.script[job.step]
        self._status_event(job, status)
        return _json(self._job_json(job_id, job, status=status))

    def cancel(self, request: Request) -> Response:
        job_id = CANCEL_RE.match(request.path)["id"]
        job = self.jobs.get(job_id)
        if job is None:
            return _error(f"Could not find fine-tune: {job_id}", status=404, code="fine_tune_not_found")
        job.script, job.step = (*job.script[: job.step + 1], "cancelled"), job.step + 1
        self._status_event(job, "cancelled")
        return _json(self._job_json(job_id, job, status="cancelled"))

    def list_events(self, request: Request) -> Response:
        job = self.jobs.get(EVENTS_RE.match(request.path)["id"])
        if job is None:
            return _error("Could not find fine-tune.", status=404, code="fine_tune_not_found")
        newest_first = job.events[::-1]
        after = request.args.get("after")
        if after:
            ids = [event["id"] for event in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        limit = int(request.args.get("limit", 20))
        page = newest_first[:limit]
        return _json({"object": "list", "data": page, "has_more": len(newest_first) > limit})

    # --- Shapes ---

    def _event(self, job: FakeJob, level: str, message: str, *, kind: str = "message", data=None) -> None:
        job.events.append(
            {
                "id": self._id("ftevent-"),
                "object": "fine_tuning.job.event",
                "created_at": int(time.time()) + len(job.events),
                "level": level,
                "message": message,
                "data": data or {},
                "type": kind,
            }
        )

    def _status_event(self, job: FakeJob, status: str) -> None:
        if job.last_status == status:
            return
        job.last_status = status
        if status == "running":
            self._event(job, "info", "Fine-tuning job started")
            self._event(job, "info", "Step 1/30: training loss=1.82", kind="metrics", data={"step": 1})
        elif status == "succeeded":
            self._event(job, "info", "The job has successfully completed")
        elif status == "failed":
            self._event(job, "error", (job.error or {}).get("message") or "The job failed")
        elif status == "cancelled":
            self._event(job, "info", "The job was cancelled")
        else:
            self._event(job, "info", f"Job status: {status}")

    def _job_json(self, job_id: str, job: FakeJob, *, status: str) -> dict:
        finished = status in ("succeeded", "failed", "cancelled")
        suffix = job.body.get("suffix") or "model"
        model = job.body["model"]
        root = model.split(":")[1] if model.startswith("ft:") else model
        return {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": int(time.time()) - 60,
            "error": job.error if status == "failed" else self.idle_error,
            "fine_tuned_model": f"ft:{root}:{ORG}:{suffix}:AbC12xYz" if status == "succeeded" else None,
            "finished_at": int(time.time()) if finished else None,
            "hyperparameters": {"batch_size": "auto", "learning_rate_multiplier": "auto", "n_epochs": "auto"},
            "model": job.body["model"],
            "organization_id": ORG,
            "result_files": ["file-result000001"] if status == "succeeded" else [],
            "seed": 1234,
            "status": status,
            "trained_tokens": job.trained_tokens if status == "succeeded" else None,
            "training_file": job.body["training_file"],
            "validation_file": job.body.get("validation_file"),
            "estimated_finish": None,
            "integrations": [],
            "metadata": job.body.get("metadata"),
            "method": job.body.get("method"),
        }

    # --- What the SDK sent ---

    def uploaded_lines(self, file_id: str) -> list[dict]:
        return [json.loads(line) for line in self.files[file_id]["content"].decode().splitlines()]
