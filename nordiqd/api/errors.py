"""The one exception-to-HTTP table, and the JSON shape of every error.

Every error body is ``{"success": false, "error": "<one sentence>", ...}``. A role's
``ErrorReply`` becomes an ``ApiError`` here too (``expected``), by its kind.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, TypeVar

import falcon
import zmq

from ipc import messages as m
from ipc.client import RequestTimeout
from ipc.codec import ProtocolError

log = logging.getLogger(__name__)

R = TypeVar("R", bound=m.Message)


class ApiError(Exception):
    """An error with its HTTP status and optional structured details."""

    def __init__(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra


def expected(reply: m.Message, cls: type[R], statuses: Mapping[str, int] | None = None) -> R:
    """``reply`` if it is a ``cls``, else the ``ApiError`` it maps to.

    An ``ErrorReply`` maps by its kind through ``statuses`` (503 for a kind not there),
    its ``details`` becoming fields of the body (a ``retry_after_s`` also the Retry-After
    header: a busy role's word on when to send again); any other reply is a 502.
    """
    if isinstance(reply, cls):
        return reply
    if isinstance(reply, m.ErrorReply):
        extra = {k: v for k, v in (reply.details or {}).items() if k not in ("success", "error")}
        after = extra.get("retry_after_s")
        headers = {"Retry-After": str(after)} if isinstance(after, int) else None
        raise ApiError((statuses or {}).get(reply.kind, 503), reply.message, headers=headers, **extra)
    raise ApiError(502, f"a daemon role answered {type(reply).__name__} where {cls.__name__} was due")


def _send(resp: falcon.Response, status: int, message: str, **extra: Any) -> None:
    resp.status = falcon.code_to_http_status(status)
    resp.media = {"success": False, "error": message, **extra}


def _api_error(req: falcon.Request, resp: falcon.Response, exc: ApiError, params: Any) -> None:
    resp.set_headers(exc.headers)
    _send(resp, exc.status, exc.message, **exc.extra)


def _timeout(req: falcon.Request, resp: falcon.Response, exc: RequestTimeout, params: Any) -> None:
    log.warning("%s %s: %s", req.method, req.path, exc)
    _send(resp, 503, f"the daemon did not answer in time: {exc}")


def _link(req: falcon.Request, resp: falcon.Response, exc: zmq.ZMQError, params: Any) -> None:
    # The api role is stopping (its zmq context is being destroyed under requests still
    # in flight) or a socket failed: the caller may retry, as after a restart.
    log.warning("%s %s: %s", req.method, req.path, exc)
    _send(resp, 503, f"the daemon's internal link failed (stopping or restarting?): {exc}")


def _protocol(req: falcon.Request, resp: falcon.Response, exc: ProtocolError, params: Any) -> None:
    log.error("%s %s: %s", req.method, req.path, exc)
    _send(resp, 502, f"a daemon role answered something unexpected: {exc}")


def _http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError, params: Any) -> None:
    message = exc.description or exc.title or "request failed"
    if exc.status_code == 404 and not exc.description:
        message = f"no such endpoint: {req.method} {req.path}"
    elif exc.status_code == 405:
        message = f"method {req.method} not allowed on {req.path}"
    elif exc.status_code == 413 and not exc.description:
        message = "request body too large"
    resp.status = exc.status
    resp.set_headers(exc.headers or {})
    resp.media = {"success": False, "error": message}


def _internal(req: falcon.Request, resp: falcon.Response, exc: Exception, params: Any) -> None:
    log.exception("%s %s failed", req.method, req.path)
    _send(resp, 500, f"internal error: {type(exc).__name__}: {exc}")


def install(app: falcon.App) -> None:
    """Register the table on ``app``; the most general handler first (Falcon picks the
    most specific class match)."""
    app.add_error_handler(Exception, _internal)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(ApiError, _api_error)
    app.add_error_handler(RequestTimeout, _timeout)
    app.add_error_handler(zmq.ZMQError, _link)
    app.add_error_handler(ProtocolError, _protocol)
