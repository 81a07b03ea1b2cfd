"""The predictor role: rolling windows per server, cached fleet forecasts, hot reload.

How it runs: the main thread serves requests from the latest ``ForecastPass`` and applies
the accepted batches ingest publishes (SUB) to the rolling windows. At start a refill
thread reads the last encoder-length of the buffer into the windows (live batches that
arrive meanwhile are applied after it; a sample counted twice only re-weights its bucket
mean), so a restart needs no warm-up. The refill starts a window before the data time the
live scores had reached, so a replay restarted mid-way refills where it was, and the
issue points crossed while the predictor was down are issued as it catches up. The
forecast cycle and the model loader run on their own threads (``nordiqd.serving``);
reload requests answer once the loader is done.

Live accuracy runs in data time: batches reach the windows through a ``DataTimeFeed``
(``serving.data_time``), which keeps the watermark and hands the accuracy thread
(``serving.scoring``) the windows as they stood at every issue point and step boundary;
the forecast cycle forecasts each issue point as one of its passes, so what is scored is
what was served, at no second forecast.

How it stops: ``close()`` stops the loader, the watchdog, the forecast thread and the
accuracy thread (which saves the scores).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import zmq

from ipc import codec
from ipc import messages as m
from ipc.sockets import make_socket
from nordiqd.accuracy.live import LiveAccuracy
from nordiqd.buffer.batch import decode_batch
from nordiqd.buffer.layout import BufferLayout
from nordiqd.buffer.reader import read_window
from nordiqd.config import applying
from nordiqd.model import artifacts
from nordiqd.predict.windows import RollingWindows
from nordiqd.promotion.log import PromotionLog
from nordiqd.roles.base import ServiceRole
from nordiqd.serving.challenger import StatisticalChallenger
from nordiqd.serving.cycle import ForecastCycle
from nordiqd.serving.data_time import DataTimeFeed
from nordiqd.serving.exposition import accuracy_metrics
from nordiqd.serving.probation import Probation
from nordiqd.serving.rest_bodies import iso
from nordiqd.serving.routes import Router
from nordiqd.serving.scoring import Scoring
from nordiqd.serving.slot import Done, ModelSlot

log = logging.getLogger(__name__)

WARMUP_SERVERS = 8  # real windows the warm-up forward pass of a new model must keep finite
MAX_CATCH_UP_S = 2 * 86400  # data time the refill replays through the ledger after a restart
DAY_S = 86400  # a buffer day file's span
SETTLE_WAIT_S = 120.0  # the model served at start is loaded before missed issue points are caught up


class PredictorRole(ServiceRole[m.PredictorRequest]):
    """Serves forecasts from rolling windows; reloads models when ``current`` changes."""

    name = "predictor"
    requests = codec.predictor_requests

    def init(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        super().init(ctx)
        cfg, spec = self.config, self.config.model
        self.windows = RollingWindows(cfg.schema.metrics, spec.step_seconds, spec.encoder_steps)
        with applying("endpoints.ingest_publish", catch=(zmq.ZMQError,)):
            self.sub = make_socket(ctx, zmq.SUB, connect=cfg.endpoint("ingest_publish"))
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.slot = ModelSlot(
            cfg.models_dir,
            spec,
            self._warmup_sample,
            self._on_swap,
            torch_threads=cfg.predictor.torch_threads,
            batch_size=cfg.predictor.forecast_batch_size,
            workers=cfg.predictor.forecast_workers,
            promotions=PromotionLog(cfg.state_dir),
        )
        self.live = LiveAccuracy.from_config(cfg)
        routing = cfg.routing
        self.challenger = StatisticalChallenger(cfg) if routing.enabled and routing.refit_hours > 0 else None
        fit = self.challenger.forecast if self.challenger is not None else None
        router = (
            Router(self.live.routes, routing.blend_steps, fit, self.live.bands) if routing.enabled else None
        )
        self.cycle = ForecastCycle(
            cfg, self.windows, self.slot, watermark=lambda: self.feed.watermark, router=router
        )
        if spec.encoder_steps * spec.step_seconds < 86400:
            # The seasonal-naive reference is the value a day earlier, read from the windows.
            log.warning(
                "[model] encoder_steps x step_seconds = %d s is under a day: live accuracy has no "
                "seasonal reference and scores no forecast",
                spec.encoder_steps * spec.step_seconds,
            )
        self.scoring = Scoring(
            cfg, self.live, probation=Probation(cfg, self.live, self.slot), challenger=self.challenger
        )
        self.feed = DataTimeFeed(self.windows, spec, self.live, self.scoring, self.slot, self.cycle)
        self._replies: queue.Queue[tuple[list[bytes], m.ServiceReply]] = queue.Queue()
        self._held: list[Any] | None = []  # live batches held while the refill runs
        self._held_lock = threading.Lock()
        self.scoring.start()
        threading.Thread(target=self._refill, name="refill", daemon=True).start()
        self.slot.start()
        self.cycle.start()
        if self.challenger is not None:
            self.challenger.start()

    def sockets(self) -> list[zmq.Socket[bytes]]:
        return [self.service, self.sub]

    def on_readable(self, sock: zmq.Socket[bytes]) -> None:
        if sock is self.sub:
            self._drain_published()
        else:
            super().on_readable(sock)

    def tick(self, now: float) -> None:
        while True:
            try:
                frames, msg = self._replies.get_nowait()
            except queue.Empty:
                return
            self.reply_later(frames, msg)

    def close(self) -> None:
        for part in ("challenger", "slot", "cycle", "scoring"):
            if getattr(self, part, None) is not None:
                getattr(self, part).close()

    # --- windows ----------------------------------------------------------------

    def _drain_published(self) -> None:
        for event in codec.drain(self.sub, codec.publish, limit=256):
            table = decode_batch(event.arrow)
            with self._held_lock:
                if self._held is not None:
                    self._held.append(table)
                    continue
            self.feed.apply(table)

    def _refill(self) -> None:
        spec = self.config.model
        started = time.monotonic()
        window = (spec.encoder_steps + 1) * spec.step_seconds
        now = time.time()
        since = self.live.scored_through  # the data time the scores had reached
        if since is not None and since < now - MAX_CATCH_UP_S:
            log.warning(
                "live accuracy: the saved scores end %.1f h before the clock; the issue points "
                "between are not caught up",
                (now - since) / 3600,
            )
            since = None
        columns = ["timestamp", "server_name", "profile", *self.config.schema.metrics]
        try:
            start = (since if since is not None else now) - window
            table = read_window(self.config.buffer_dir, start=start, columns=columns, dictionary_names=True)
            if since is None and not table.num_rows:
                # A fleet silent for longer than a window (or a replay of old data): its
                # windows are the newest data's, in data time, not the clock's last hours.
                days = BufferLayout(self.config.buffer_dir).days()
                newest_day = days[-1] * DAY_S - window if days else None
                table = read_window(
                    self.config.buffer_dir, start=newest_day, columns=columns, dictionary_names=True
                )
            rows = table.num_rows
            # Issue points caught up are forecast with the model served now: the loader
            # (whose warm-up reads the windows refilled so far) has it first.
            self.feed.refilled(table, since, settle=lambda: self.slot.settled.wait(SETTLE_WAIT_S))
        except Exception:
            log.exception("refill from the buffer failed; windows fill from live data only")
            rows = 0
        with self._held_lock:  # the role thread waits: batches apply in one order, on one thread
            for t in self._held or []:
                self.feed.apply(t)
            self._held = None
        log.info(
            "windows refilled from the buffer: %d records, %d servers in %.2f s",
            rows,
            len(self.windows),
            time.monotonic() - started,
        )
        self.cycle.trigger()

    def _warmup_sample(self) -> tuple[np.ndarray, list[str], list[str], np.ndarray] | None:
        snap = self.windows.snapshot(list(self.config.model.targets), time.time())
        ok = np.flatnonzero(snap.filled_steps >= self.config.predictor.min_history_steps)[:WARMUP_SERVERS]
        if ok.size == 0:
            return None
        names = [snap.names[i] for i in ok]
        return snap.windows[ok], names, [snap.profiles[i] for i in ok], snap.last_bucket_start[ok]

    def _on_swap(self) -> None:
        self.cycle.trigger()

    # --- requests ---------------------------------------------------------------

    def handle(self, msg: m.PredictorRequest) -> m.ServiceReply | None:
        bodies = self.cycle.latest.bodies
        match msg:
            case m.PredictionsRequest(known=known):
                body = b"" if known == bodies.etag else bodies.predictions_gzip
                return m.JsonReply(body=body, etag=bodies.etag, encoding="gzip")
            case m.ServerPredictionRequest(server_name=name):
                entry = bodies.servers.get(name)
                if entry is None:
                    seen = name in self.windows
                    why = "has no forecast yet" if seen else "has never sent a sample"
                    return m.ErrorReply(kind="not_found", message=f"server {name!r} {why}")
                return m.JsonReply(body=msgspec.json.encode({**entry, "history": self._history(name)}))
            case m.AlertsRequest():
                return m.JsonReply(body=bodies.alerts)
            case m.ModelInfoRequest():
                return m.JsonReply(body=msgspec.json.encode(self._model_info()))
            case m.ModelsRequest():
                return m.JsonReply(body=msgspec.json.encode(self._models()))
            case m.AccuracyRequest(since=since, until=until, target=target, server=server):
                if target is not None and target not in self.config.model.targets:
                    return m.ErrorReply(kind="bad_request", message=f"target: {target!r} is not forecast")
                return m.JsonReply(body=msgspec.json.encode(self.live.report(since, until, target, server)))
            case m.ReloadModel(version=version):
                self.slot.request(version=version, done=self._deferred(self.request_frames))
                return None
            case m.RollbackModel():
                self.slot.request(rollback=True, done=self._deferred(self.request_frames))
                return None
            case _:
                return super().handle(msg)

    def _history(self, name: str) -> dict[str, Any]:
        """The server's recent bucket means of every target, for charts."""
        targets = list(self.config.model.targets)
        starts, means = self.windows.history(name, targets)
        rounded = np.round(means, 3)
        return {
            "timestamps": [iso(float(t)) for t in starts],
            **{t: [None if np.isnan(v) else float(v) for v in rounded[:, j]] for j, t in enumerate(targets)},
        }

    def metrics_text(self) -> str:
        return self.cycle.metrics_text + accuracy_metrics(self.live.trailing())

    def _deferred(self, frames: list[bytes]) -> Done:
        def done(ok: bool, kind: str, message: str) -> None:
            if ok:
                reply: m.ServiceReply = m.JsonReply(
                    body=msgspec.json.encode({"success": True, "message": message, **self._model_info()})
                )
            else:
                reply = m.ErrorReply(kind=kind, message=message, details={"model": self._model_info()})
            self._replies.put((frames, reply))

        return done

    def _model_info(self) -> dict[str, Any]:
        served = self.slot.served
        base = {"last_reload_error": self.slot.last_reload_error}
        if served is None:
            return {
                "kind": "baseline",
                "version": None,
                "path": None,
                "loaded_at": None,
                "manifest": None,
                **base,
            }
        return {
            "kind": served.kind,
            "version": served.version,
            "path": served.path,
            "loaded_at": served.loaded_at,
            "manifest": served.manifest,
            **base,
        }

    def _models(self) -> dict[str, Any]:
        root = Path(self.config.models_dir)
        current = artifacts.current_version(root)
        served = self.slot.served
        versions = []
        for version in artifacts.list_versions(root):
            try:
                manifest = json.loads((root / version / "manifest.json").read_text())
            except (OSError, ValueError):
                manifest = {}
            versions.append(
                {
                    "version": version,
                    "current": version == current,
                    "served": served is not None and served.version == version,
                    "created_at": manifest.get("created_at"),
                    "records": manifest.get("records"),
                    "epochs": manifest.get("epochs"),
                    "incremental": manifest.get("incremental"),
                    "validation": manifest.get("validation"),
                }
            )
        return {"current": current, "served": served.version if served else None, "versions": versions}
