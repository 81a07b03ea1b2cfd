"""``create_app(deps)``: the Falcon application, its auth and its routes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import falcon
import msgspec

from nordiqd import __version__
from nordiqd.api import errors, ingest, metrics, page, predictions, promotions, schemas, system, training
from nordiqd.api.backends import Backends
from nordiqd.api.routes import Operation, Param, Route, openapi
from nordiqd.model.params import DEFAULT_TARGETS
from nordiqd.names import DEFAULT_METRICS


@dataclass(frozen=True)
class Deps:
    """What the app needs from outside: the key, the backends, the configuration.

    The metrics, targets and batch bounds go into /openapi.json, which describes the
    batches and parameters this daemon accepts.
    """

    api_key: str
    backends: Backends
    max_body_bytes: int = 16 * 1024 * 1024
    default_epochs: int = 5
    blocking_timeout_s: float = 3600.0
    reload_timeout_s: float = 120.0
    data_dir: str | None = None  # whose free space /health reports
    disk_warn_bytes: int = 0
    metrics: tuple[str, ...] = DEFAULT_METRICS
    targets: tuple[str, ...] = DEFAULT_TARGETS
    max_batch_records: int = 100_000
    max_future_s: float = 300.0


# The fleet page and its files are public; the data calls the page makes carry the key.
PUBLIC_PATHS = frozenset({"/health", *page.PUBLIC_PATHS})


class ApiKeyAuth:
    """Falcon middleware: every path but the public ones needs the right ``X-API-Key``."""

    def __init__(self, key: str) -> None:
        self._key = key.encode()

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in PUBLIC_PATHS:
            return
        given = (req.get_header("X-API-Key") or "").encode()
        # Constant-time comparison: the time taken says nothing about the key.
        if not hmac.compare_digest(given, self._key):
            why = "missing X-API-Key header" if not given else "wrong API key in X-API-Key header"
            raise errors.ApiError(401, why)


def build_routes(deps: Deps) -> list[Route]:
    """Every route of the API, with the docs /openapi.json serves."""
    bodies, components = schemas.bodies()
    routes = [
        Route(
            "/",
            page.Index(page.ASSETS),
            {
                "GET": Operation(
                    "The fleet page (HTML); it asks for the API key and keeps it for the tab",
                    {200: "the page", 304: "unchanged (If-None-Match)"},
                    auth=False,
                    media=("text/html",),
                ),
            },
        ),
        Route(
            "/static/{name}",
            page.Static(page.ASSETS),
            {
                "GET": Operation(
                    "A file of the fleet page (script, style sheet, icon)",
                    {200: "the file", 304: "unchanged (If-None-Match)", 404: "no such file"},
                    auth=False,
                    params=(Param("name", "path", "the file name, e.g. app.js", page.NAME_SCHEMA),),
                    media=page.MEDIA_TYPES,
                ),
            },
        ),
        Route(
            "/health",
            system.Health(deps.backends, deps.data_dir, deps.disk_warn_bytes),
            {
                "GET": Operation(
                    "Overall state, each role's state, free space of the data directory",
                    {200: "all roles ready", 503: "starting, degraded or the supervisor is unreachable"},
                    auth=False,
                    bodies={200: bodies["HealthBody"], 503: bodies["HealthBody"]},
                ),
            },
        ),
        Route(
            "/status",
            system.Status(deps.backends),
            {
                "GET": Operation(
                    "The supervisor's status per role: pid, state, uptime, restarts, last exit",
                    {
                        200: "status",
                        401: "missing or wrong key",
                        502: "the supervisor answered something unexpected",
                        503: "the supervisor did not answer",
                    },
                    bodies={200: bodies["StatusBody"]},
                ),
            },
        ),
        Route(
            "/feed/data",
            ingest.Feed(deps.backends, deps.max_body_bytes),
            {
                "POST": Operation(
                    "Ingest a batch of records, all-or-nothing; acknowledged once in the write-ahead log",
                    {
                        200: "accepted: the number of records",
                        400: "rejected: every problem with its record index and field",
                        401: "missing or wrong key",
                        413: "body or batch too large",
                        503: "ingest busy (send again after Retry-After) or did not answer in time",
                        507: "the disk is full: nothing of the batch was stored (retry later)",
                    },
                    body='{"records": [{"timestamp": ..., "server_name": ..., "<metric>": ...}]}',
                    body_schema=schemas.feed_body(deps.metrics, deps.max_batch_records, deps.max_future_s),
                    bodies={200: bodies["IngestAccepted"]},
                )
            },
        ),
        *training_routes(deps),
        *prediction_routes(deps),
        Route(
            "/metrics",
            metrics.Metrics(deps.backends),
            {
                "GET": Operation(
                    "Prometheus text: forecasts at a few horizons, risk scores, the daemon's own figures",
                    {200: "text/plain; version=0.0.4", 401: "missing or wrong key"},
                    media=("text/plain",),
                )
            },
        ),
    ]
    doc_route = Route(
        "/openapi.json",
        None,
        {
            "GET": Operation("This OpenAPI document", {200: "the document", 401: "missing or wrong key"}),
        },
    )
    document = openapi([*routes, doc_route], __version__, components)
    return [*routes, Route(doc_route.path, system.OpenApi(document), doc_route.operations)]


def training_routes(deps: Deps) -> list[Route]:
    """The seed manual's four training endpoints, and the promotion log and promotion by hand."""
    common = {401: "missing or wrong key", 503: "the trainer did not answer in time"}
    return [
        Route(
            "/admin/trigger-training",
            training.TriggerTraining(deps.backends, deps.default_epochs, deps.blocking_timeout_s),
            {
                "POST": Operation(
                    "Start a training job in the background (blocking=true waits for its end)",
                    {
                        200: "blocking: the finished job",
                        202: "queued: job_id, status, epochs, incremental",
                        400: "bad query parameter",
                        409: "rejected: a job is running, or too little data (status 'rejected')",
                        504: "blocking: the job outlived the wait",
                        **common,
                    },
                    params=(
                        Param(
                            "epochs",
                            "query",
                            "epochs to train (default [training] default_epochs)",
                            {"type": "integer", "minimum": 1, "maximum": training.MAX_EPOCHS},
                        ),
                        Param(
                            "incremental",
                            "query",
                            "continue from the current model (default true)",
                            training.FLAG_SCHEMA,
                        ),
                        Param(
                            "blocking",
                            "query",
                            "wait for the job to end (default false)",
                            training.FLAG_SCHEMA,
                        ),
                    ),
                )
            },
        ),
        Route(
            "/admin/training-status",
            training.TrainingStatus(deps.backends),
            {
                "GET": Operation(
                    "A job's status: progress_pct, duration_seconds, model_path, error",
                    {200: "the job", 404: "no such job, or none has run", **common},
                    params=(Param("job_id", "query", "the job; default: the current or last job"),),
                )
            },
        ),
        Route(
            "/admin/training-stats",
            training.TrainingStats(deps.backends),
            {
                "GET": Operation(
                    "Current job, history, data buffer, ready_to_train and ready_reason, config",
                    {200: "the statistics", **common},
                )
            },
        ),
        Route(
            "/admin/cancel-training",
            training.CancelTraining(deps.backends),
            {
                "POST": Operation(
                    "Cancel the running job at its next batch; it never publishes a model",
                    {200: "marked as cancelled", 409: "no job is running", **common},
                )
            },
        ),
        Route(
            "/admin/promotions",
            promotions.Promotions(deps.backends),
            {
                "GET": Operation(
                    "Every promotion decision, newest first: promoted, rejected, forced, rolled_back",
                    {200: "the log", **common},
                )
            },
        ),
        Route(
            "/admin/promote",
            promotions.Promote(deps.backends, deps.reload_timeout_s),
            {
                "POST": Operation(
                    "Serve a version by hand, past the promotion gate (logged 'forced')",
                    {
                        200: "the log entry and the model now served",
                        400: "no version given",
                        404: "no such version",
                        409: "a gate is running, the version is unusable or already served",
                        **common,
                    },
                    params=(Param("version", "query", "the version to serve", schemas.NAME, required=True),),
                )
            },
        ),
    ]


def prediction_routes(deps: Deps) -> list[Route]:
    """Forecasts, alerts and the model endpoints of the predictor."""
    common = {401: "missing or wrong key", 503: "the predictor did not answer in time"}
    reload_codes = {
        200: "the model now served",
        404: "no such version",
        409: "refused: the old model keeps serving",
    }
    b = deps.backends
    return [
        Route(
            "/predictions/current",
            predictions.CurrentPredictions(b),
            {
                "GET": Operation(
                    "Every server's forecast (quantiles over the horizon), risk score and alert level",
                    {200: "the fleet's forecasts", **common},
                ),
            },
        ),
        Route(
            "/predictions/{server_name}",
            predictions.ServerPrediction(b),
            {
                "GET": Operation(
                    "One server's forecast, risk and alert level",
                    {200: "the server's forecast", 404: "unknown server", **common},
                    params=(Param("server_name", "path", "the server", schemas.NAME),),
                ),
            },
        ),
        Route(
            "/alerts/active",
            predictions.ActiveAlerts(b),
            {
                "GET": Operation(
                    "Servers not ok, worst first: metric, threshold, minutes until the crossing",
                    {200: "the alerts", **common},
                ),
            },
        ),
        Route(
            "/admin/model-info",
            predictions.ModelInfo(b),
            {
                "GET": Operation(
                    "The served model: version, path, kind, loaded_at, manifest, last_reload_error",
                    {200: "model info", **common},
                ),
            },
        ),
        Route(
            "/admin/models",
            predictions.Models(b),
            {
                "GET": Operation(
                    "Every model version on disk, and which is current", {200: "the versions", **common}
                ),
            },
        ),
        Route(
            "/admin/accuracy",
            predictions.Accuracy(b),
            {
                "GET": Operation(
                    "Live accuracy of the served forecasts per version, target and lead bucket",
                    {200: "the scores", 400: "bad time or unknown target", **common},
                    params=predictions.Accuracy.params(deps.targets),
                ),
            },
        ),
        Route(
            "/admin/reload-model",
            predictions.ReloadModel(b, deps.reload_timeout_s),
            {
                "POST": Operation(
                    "Load a version (pointing current at it), or re-load current",
                    {**reload_codes, **common},
                    params=(Param("version", "query", "a version; default current"),),
                ),
            },
        ),
        Route(
            "/admin/rollback",
            predictions.Rollback(b, deps.reload_timeout_s),
            {
                "POST": Operation(
                    "Point current at the previous version and load it", {**reload_codes, **common}
                ),
            },
        ),
    ]


def create_app(deps: Deps) -> falcon.App:
    """Build the WSGI app over ``deps`` (real backends in the api role, fakes in tests)."""
    app = falcon.App(middleware=[ApiKeyAuth(deps.api_key)])
    app.req_options.strip_url_path_trailing_slash = True
    # Bodies are Structs or dicts, encoded by msgspec (the falcon + msgspec recipe).
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = falcon.media.JSONHandler(dumps=msgspec.json.encode)
    errors.install(app)
    for route in build_routes(deps):
        app.add_route(route.path, route.resource)
    return app
