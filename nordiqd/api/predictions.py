"""Resources of the predictor role: forecasts, alerts, models and hot reload.

The predictor encodes its bodies itself (once per forecast cycle for the fleet), so
these resources pass bytes through without decoding them.
"""

from __future__ import annotations

import gzip
import io
import threading
from typing import Any

import falcon

from ipc import messages as m
from nordiqd.api.errors import ApiError

ERROR_STATUS = {"not_found": 404, "reload_failed": 409, "no_model": 409}


def _json(resp: falcon.Response, reply: Any) -> None:
    if isinstance(reply, m.ErrorReply):
        raise ApiError(ERROR_STATUS.get(reply.kind, 503), reply.message, **(reply.details or {}))
    if not isinstance(reply, m.JsonReply):
        raise ApiError(502, f"predictor answered {type(reply).__name__}")
    resp.content_type = falcon.MEDIA_JSON
    resp.data = reply.body


class _PredictorResource:
    def __init__(self, backends: Any) -> None:
        self._backends = backends

    def ask(self, msg: m.Message, timeout_s: float | None = None) -> Any:
        return self._backends.service("predictor", msg, timeout_s=timeout_s)


class _FleetBody:
    """The api's copy of the latest fleet body (gzip, and plain once someone needs it)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.etag = ""
        self.gzip = b""
        self._plain: bytes | None = None

    def update(self, etag: str, body: bytes) -> None:
        with self.lock:
            self.etag, self.gzip, self._plain = etag, body, None

    def plain(self) -> bytes:
        with self.lock:
            if self._plain is None:
                self._plain = gzip.decompress(self.gzip)
            return self._plain


class CurrentPredictions(_PredictorResource):
    """GET /predictions/current: every server's forecast, risk and alert level.

    The body changes once per forecast pass: the predictor sends it only when the api's
    copy is stale, compressed; clients that accept gzip get it as is, ETag/If-None-Match
    gives them a 304 for a pass they already have.
    """

    def __init__(self, backends: Any) -> None:
        super().__init__(backends)
        self._copy = _FleetBody()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self.ask(m.PredictionsRequest(known=self._copy.etag))
        if isinstance(reply, m.ErrorReply) or not isinstance(reply, m.JsonReply):
            _json(resp, reply)
            return
        if reply.body:
            self._copy.update(reply.etag, reply.body)
        resp.etag = reply.etag
        resp.vary = ("Accept-Encoding",)
        resp.content_type = falcon.MEDIA_JSON
        if reply.etag in (req.if_none_match or ()) or req.get_header("If-None-Match") == f'"{reply.etag}"':
            resp.status = falcon.HTTP_304
            return
        if "gzip" in (req.get_header("Accept-Encoding") or ""):
            resp.set_header("Content-Encoding", "gzip")
            body = self._copy.gzip
        else:
            body = self._copy.plain()
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


class ReloadModel(_PredictorResource):
    """POST /admin/reload-model[?version=]: load a version (or re-load current) now."""

    def __init__(self, backends: Any, timeout_s: float) -> None:
        super().__init__(backends)
        self._timeout_s = timeout_s

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        version = req.get_param("version") or None
        _json(resp, self.ask(m.ReloadModel(version=version), timeout_s=self._timeout_s))


class Rollback(ReloadModel):
    """POST /admin/rollback: point ``current`` at the previous version and load it."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        _json(resp, self.ask(m.RollbackModel(), timeout_s=self._timeout_s))
