"""The seed manual's four training endpoints, field for field.

``POST /admin/trigger-training?epochs&incremental&blocking``, ``GET
/admin/training-status[?job_id]``, ``GET /admin/training-stats`` and ``POST
/admin/cancel-training``. Refusals keep the seed's body (``success: false``, ``error``,
``status: "rejected"``) with a 409; a bad parameter is a 400.
"""

from __future__ import annotations

import time
from typing import Any

import falcon
import msgspec

from ipc import messages as m
from nordiqd.api.backends import Backends
from nordiqd.api.errors import ApiError, expected

BLOCKING_POLL_S = 1.0
MAX_EPOCHS = 1000


def job_body(job: m.JobStatus) -> dict[str, Any]:
    """A job as the seed shows it: integer ``progress_pct``, then our extra fields."""
    body = msgspec.to_builtins(job)
    body["progress_pct"] = int(job.progress_pct)
    return body


def _plain(reply: m.Message) -> dict[str, Any]:
    body = msgspec.to_builtins(reply)
    body.pop("t", None)
    body.pop("v", None)
    return body


class TriggerTraining:
    """POST /admin/trigger-training: start a background job (or wait for it with ``blocking``)."""

    def __init__(self, backends: Backends, default_epochs: int, blocking_timeout_s: float) -> None:
        self._backends = backends
        self._default_epochs = default_epochs
        self._blocking_timeout_s = blocking_timeout_s

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            epochs = req.get_param_as_int(
                "epochs", default=self._default_epochs, min_value=1, max_value=MAX_EPOCHS
            )
        except falcon.HTTPBadRequest as exc:
            raise ApiError(400, f"bad query parameter: {exc.description}") from None
        incremental = _flag(req, "incremental", default=True)
        blocking = _flag(req, "blocking", default=False)
        trigger = m.TriggerTraining(epochs=epochs, incremental=incremental)
        reply = expected(self._backends.service("trainer", trigger), m.TriggerReply)
        body = {k: v for k, v in _plain(reply).items() if v is not None or k in ("success", "status")}
        if not reply.success:
            resp.status = falcon.HTTP_409
            resp.media = {"success": False, "error": reply.error, "status": reply.status}
            return
        if not blocking:
            resp.status = falcon.HTTP_202
            resp.media = body
            return
        deadline = time.monotonic() + self._blocking_timeout_s
        while True:
            status = self._backends.service("trainer", m.TrainingStatusRequest(job_id=reply.job_id))
            job = expected(status, m.JobStatusReply).job
            if job is not None and job.status in m.TERMINAL_JOB_STATES:
                resp.media = {**body, **job_body(job), "success": job.status == "completed"}
                return
            if time.monotonic() > deadline:
                raise ApiError(504, f"job {reply.job_id} still running after {self._blocking_timeout_s:g} s")
            time.sleep(BLOCKING_POLL_S)


# The seed manual's curl sends ``true``; its Python client (requests) sends ``True``.
FLAG_VALUES = ("true", "false", "True", "False")
FLAG_SCHEMA: dict[str, Any] = {"type": "string", "enum": list(FLAG_VALUES)}


def _flag(req: falcon.Request, name: str, default: bool) -> bool:
    """Query parameter ``name`` as /openapi.json has it: ``true``/``True`` or ``false``/``False``."""
    value = req.get_param(name)
    if value is None:
        return default
    if value not in FLAG_VALUES:
        raise ApiError(400, f"bad query parameter: {name}={value!r} must be true or false")
    return value.lower() == "true"


class TrainingStatus:
    """GET /admin/training-status[?job_id]: one job, or the current/last one."""

    def __init__(self, backends: Backends) -> None:
        self._backends = backends

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        job_id = req.get_param("job_id") or None
        status = self._backends.service("trainer", m.TrainingStatusRequest(job_id=job_id))
        reply = expected(status, m.JobStatusReply)
        if reply.job is None:
            raise ApiError(
                404, f"No training job with id {job_id}" if job_id else "No training job has run yet"
            )
        resp.media = job_body(reply.job)


class TrainingStats:
    """GET /admin/training-stats: current job, history, data buffer, readiness, config."""

    def __init__(self, backends: Backends) -> None:
        self._backends = backends

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = expected(self._backends.service("trainer", m.TrainingStatsRequest()), m.TrainingStatsReply)
        body = _plain(reply)
        if body["current_job"] is not None:
            body["current_job"]["progress_pct"] = int(body["current_job"]["progress_pct"])
        resp.media = body


class CancelTraining:
    """POST /admin/cancel-training: stop the running job at its next batch."""

    def __init__(self, backends: Backends) -> None:
        self._backends = backends

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = expected(self._backends.service("trainer", m.CancelTraining()), m.CancelReply)
        if not reply.success:
            resp.status = falcon.HTTP_409
            resp.media = {"success": False, "error": reply.message}
            return
        resp.media = {k: v for k, v in _plain(reply).items() if v is not None}
