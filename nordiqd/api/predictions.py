"""Resources of the predictor role: forecasts, alerts, models, hot reload and accuracy.

The predictor encodes its bodies itself (once per forecast cycle for the fleet), so
these resources pass bytes through without decoding them.
"""

from __future__ import annotations

import functools
import gzip
import io
import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import falcon

from ipc import messages as m
from ipc.client import RequestTimeout
from nordiqd.api import schemas
from nordiqd.api.backends import Backends
from nordiqd.api.errors import ApiError, expected
from nordiqd.api.routes import Param
from nordiqd.names import NAME_RE

log = logging.getLogger(__name__)

ERROR_STATUS = {"not_found": 404, "reload_failed": 409, "no_model": 409, "bad_request": 400}


def _json(resp: falcon.Response, reply: m.Message) -> None:
    resp.content_type = falcon.MEDIA_JSON
    resp.data = expected(reply, m.JsonReply, ERROR_STATUS).body


class _PredictorResource:
    def __init__(self, backends: Backends) -> None:
        self._backends = backends

    def ask(self, msg: m.PredictorRequest, timeout_s: float | None = None) -> m.ServiceReply:
        return self._backends.service("predictor", msg, timeout_s=timeout_s)


@dataclass(frozen=True)
class _PredictionsBody:
    """One forecast pass's GET /predictions/current body as the predictor encoded it (gzip)."""

    etag: str
    gzip: bytes

    @functools.cached_property
    def plain(self) -> bytes:
        return gzip.decompress(self.gzip)


class PredictionsFollower:
    """The api's copy of the latest GET /predictions/current body, kept current off the request path.

    How it runs: started by the first request, one thread asks the predictor every
    ``POLL_S`` for a body newer than its copy (an unchanged pass costs an empty reply)
    and replaces the copy with one assignment. Requests read the copy and never wait on
    the predictor, so a forecast pass or a model swap there does not slow them. While the
    predictor has not confirmed the copy for ``STALE_S`` (the api just started, or the
    predictor is restarting), a request asks the predictor itself and gets its 503 if
    that fails: a stale copy is never served as current.

    How it stops: ``close()``; the thread is a daemon and ends with the process.
    """

    POLL_S = 0.025
    STALE_S = 2.0

    def __init__(self, backends: Backends) -> None:
        self._backends = backends
        self.body: _PredictionsBody | None = None
        self._confirmed = float("-inf")
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def current(self) -> _PredictionsBody | m.Message:
        """The latest body, or the predictor's error reply when it has none to give."""
        self._start()
        body = self.body
        if body is not None and time.monotonic() - self._confirmed <= self.STALE_S:
            return body
        return self._refresh()

    def close(self) -> None:
        """Stop polling."""
        self._stop.set()

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._follow, name="predictions-follower", daemon=True
                    )
                    self._thread.start()

    def _refresh(self) -> _PredictionsBody | m.Message:
        known = self.body.etag if self.body is not None else ""
        asked = time.monotonic()
        reply = self._backends.service("predictor", m.PredictionsRequest(known=known))
        if not isinstance(reply, m.JsonReply):
            return reply
        if reply.body:
            self.body = _PredictionsBody(reply.etag, reply.body)
        if self.body is None:
            return m.ErrorReply(kind="unavailable", message="the predictor sent no fleet forecast")
        self._confirmed = asked
        return self.body

    def _follow(self) -> None:
        failing = False
        while not self._stop.wait(self.POLL_S):
            try:
                reply = self._refresh()
            except RequestTimeout as exc:
                reply = m.ErrorReply(kind="timeout", message=str(exc))
            if isinstance(reply, m.ErrorReply) and not failing:
                log.warning("predictor not answering for the predictions body: %s", reply.message)
            elif not isinstance(reply, m.ErrorReply) and failing:
                log.info("predictor answering again")
            failing = isinstance(reply, m.ErrorReply)


class CurrentPredictions(_PredictorResource):
    """GET /predictions/current: every server's forecast, risk and alert level.

    The body changes once per forecast pass and the api holds a copy (``PredictionsFollower``);
    clients that accept gzip get it as the predictor compressed it, ETag/If-None-Match
    gives them a 304 for a pass they already have.
    """

    def __init__(self, backends: Backends) -> None:
        super().__init__(backends)
        self.follower = PredictionsFollower(backends)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        latest = self.follower.current()
        if not isinstance(latest, _PredictionsBody):
            _json(resp, latest)
            return
        resp.etag = latest.etag
        resp.vary = ("Accept-Encoding",)
        if latest.etag in (req.if_none_match or ()) or req.get_header("If-None-Match") == f'"{latest.etag}"':
            resp.status = falcon.HTTP_304
            return
        resp.content_type = falcon.MEDIA_JSON
        body = latest.gzip if "gzip" in (req.get_header("Accept-Encoding") or "") else latest.plain
        if body is latest.gzip:
            resp.set_header("Content-Encoding", "gzip")
        resp.set_stream(io.BytesIO(body), len(body))


class ServerPrediction(_PredictorResource):
    """GET /predictions/{server_name}: one server (404 for a server never seen)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response, server_name: str) -> None:
        _json(resp, self.ask(m.ServerPredictionRequest(server_name=server_name)))


class ActiveAlerts(_PredictorResource):
    """GET /alerts/active: servers not ok, worst first."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _json(resp, self.ask(m.AlertsRequest()))


class ModelInfo(_PredictorResource):
    """GET /admin/model-info: the model being served."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _json(resp, self.ask(m.ModelInfoRequest()))


class Models(_PredictorResource):
    """GET /admin/models: every version on disk, and which is current."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _json(resp, self.ask(m.ModelsRequest()))


class Accuracy(_PredictorResource):
    """GET /admin/accuracy[?since=&until=&target=&server=]: live scores of the served forecasts."""

    @staticmethod
    def params(targets: Sequence[str]) -> tuple[Param, ...]:
        """The query parameters, for /openapi.json."""
        when = "RFC 3339 (data time); a time without an offset is read as UTC"
        return (
            Param("since", "query", f"window start, {when}", schemas.DATE_TIME),
            Param("until", "query", f"window end, exclusive, {when}", schemas.DATE_TIME),
            Param("target", "query", "only this target", {"type": "string", "enum": list(targets)}),
            Param("server", "query", "only this server (whole days)", schemas.NAME),
        )

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        since, until = (_epoch(req, name) for name in ("since", "until"))
        target, server = req.get_param("target"), req.get_param("server")
        if target == "":
            raise ApiError(400, "bad query parameter: target= names no target")
        if server is not None and not NAME_RE.match(server):
            raise ApiError(400, f"bad query parameter: server={server!r} is not a server name")
        _json(resp, self.ask(m.AccuracyRequest(since=since, until=until, target=target, server=server)))


def _epoch(req: falcon.Request, name: str) -> int | None:
    """Query parameter ``name`` (ISO 8601; UTC unless it names a zone) as epoch seconds."""
    value = req.get_param(name)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"bad query parameter: {name}={value!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return math.floor(when.timestamp())


class ReloadModel(_PredictorResource):
    """POST /admin/reload-model[?version=]: load a version (or re-load current) now."""

    def __init__(self, backends: Backends, timeout_s: float) -> None:
        super().__init__(backends)
        self._timeout_s = timeout_s

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        version = req.get_param("version") or None
        _json(resp, self.ask(m.ReloadModel(version=version), timeout_s=self._timeout_s))


class Rollback(ReloadModel):
    """POST /admin/rollback: point ``current`` at the previous version and load it."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        _json(resp, self.ask(m.RollbackModel(), timeout_s=self._timeout_s))
