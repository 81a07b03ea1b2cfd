"""The promotion log and promotion by hand: ``GET /admin/promotions``, ``POST /admin/promote``.

The trainer owns the log and the gate, so both ask it. ``POST /admin/promote?version=V``
has the trainer point ``current`` at ``V`` and log it ``forced``, then asks the predictor
to load it, so that a 200 means the version is being served.
"""

from __future__ import annotations

import json

import falcon

from ipc import messages as m
from nordiqd.api.backends import Backends
from nordiqd.api.errors import ApiError, expected

ERROR_STATUS = {"not_found": 404, "conflict": 409, "reload_failed": 409, "bad_request": 400}


class Promotions:
    """GET /admin/promotions: every decision about the served model, newest first."""

    def __init__(self, backends: Backends) -> None:
        self._backends = backends

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = expected(self._backends.service("trainer", m.PromotionsRequest()), m.JsonReply, ERROR_STATUS)
        resp.content_type = falcon.MEDIA_JSON
        resp.data = reply.body


class Promote:
    """POST /admin/promote?version=V: serve ``V`` past the gate (logged ``forced``)."""

    def __init__(self, backends: Backends, reload_timeout_s: float) -> None:
        self._backends = backends
        self._reload_timeout_s = reload_timeout_s

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        version = req.get_param("version")
        if not version:
            raise ApiError(400, "bad query parameter: version is required")
        reply = self._backends.service("trainer", m.PromoteModel(version=version))
        entry = json.loads(expected(reply, m.JsonReply, ERROR_STATUS).body)
        loaded = self._backends.service(
            "predictor", m.ReloadModel(version=version), timeout_s=self._reload_timeout_s
        )
        if isinstance(loaded, m.ErrorReply):
            raise ApiError(
                409, f"{version} is logged as forced, but the predictor did not load it: {loaded.message}"
            )
        model = json.loads(expected(loaded, m.JsonReply, ERROR_STATUS).body)
        resp.media = {"success": True, "promotion": entry, "model": model}
