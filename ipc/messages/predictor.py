"""The predictor role's requests (its replies are ``JsonReply`` and ``ErrorReply``)."""

from __future__ import annotations

from ipc.messages.base import Message

# --- predictor (service requests) ------------------------------------------------


class PredictionsRequest(Message, frozen=True, tag="predictions"):
    """Service -> predictor: the whole fleet's cached forecasts, gzip-compressed.

    Reply: ``JsonReply`` with ``etag`` naming the forecast pass and ``encoding`` "gzip";
    when ``known`` already names the current pass, ``body`` is empty (not modified), so
    the api's copy is reused and megabytes do not cross the socket on every request.
    """

    known: str = ""


class ServerPredictionRequest(Message, frozen=True, tag="server_prediction"):
    """Service -> predictor: one server's forecast. Reply: ``JsonReply`` or ``ErrorReply``
    with kind ``not_found``."""

    server_name: str


class AlertsRequest(Message, frozen=True, tag="alerts"):
    """Service -> predictor: servers not ``ok``, worst first. Reply: ``JsonReply``."""


class ModelInfoRequest(Message, frozen=True, tag="model_info"):
    """Service -> predictor: the model being served. Reply: ``JsonReply``."""


class ModelsRequest(Message, frozen=True, tag="models"):
    """Service -> predictor: every model version on disk. Reply: ``JsonReply``."""


class AccuracyRequest(Message, frozen=True, tag="accuracy"):
    """Service -> predictor: live accuracy of the served forecasts over ``[since, until)``
    of data time (epoch seconds; None: unbounded), optionally of one ``target`` or one
    ``server``. Reply: ``JsonReply`` (the ``GET /admin/accuracy`` body), or ``ErrorReply``
    with kind ``bad_request`` for a target that is not forecast."""

    since: int | None = None
    until: int | None = None
    target: str | None = None
    server: str | None = None


class ReloadModel(Message, frozen=True, tag="reload_model"):
    """Service -> predictor: load ``version`` (pointing ``current`` at it) or re-load
    ``current``. Reply ``JsonReply`` once loaded, or ``ErrorReply`` (kind
    ``reload_failed``/``not_found``) while the old model keeps serving."""

    version: str | None = None


class RollbackModel(Message, frozen=True, tag="rollback_model"):
    """Service -> predictor: point ``current`` at the previous version and load it.
    Replies as ``ReloadModel``."""
