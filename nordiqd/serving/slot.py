"""The served model and its hot reload: load off to the side, verify, swap one reference.

How it runs: a watchdog observer on ``models/`` only enqueues a reload when ``current``
changes; one loader thread takes reload requests in order, coalesces a burst into one
load of whatever ``current`` points at by then, loads and verifies the model (manifest,
checksums, targets and quantiles, a warm-up forward pass on real windows with finite
outputs) and only then replaces ``self.served``. Readers take ``slot.served`` once per
use, so a forecast that started on the old model finishes on it. A model that fails
verification is never served: the old one stays, ``last_reload_error`` says why.

How it stops: ``close()`` stops the observer and the loader thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nordiqd.model import artifacts
from nordiqd.model.errors import ModelError
from nordiqd.model.params import ModelSpec
from nordiqd.promotion.log import PromotionLog

if TYPE_CHECKING:  # the module imports torch: the loader thread imports it when it first loads
    from nordiqd.model.forecast import WindowForecaster

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.01  # a burst of symlink swaps inside this window loads once
Warmup = Callable[[], tuple[np.ndarray, list[str], list[str], np.ndarray] | None]
Done = Callable[[bool, str, str], None]  # (ok, error kind, message)


class UnknownVersion(ModelError):
    """A reload named a version that is not on disk."""


@dataclass(frozen=True)
class ServedModel:
    """A verified model and what /admin/model-info says about it."""

    version: str
    path: str
    loaded_at: str
    manifest: dict[str, Any]
    forecaster: WindowForecaster
    kind: str = "tft"


@dataclass
class _Request:
    version: str | None = None
    rollback: bool = False
    force: bool = False
    done: Done | None = None


@dataclass
class ReloadStats:
    """Counters /metrics exposes."""

    ok: int = 0
    failed: int = 0
    last_seconds: float = 0.0
    history: list[str] = field(default_factory=list)


class ModelSlot:
    """Holds the served model; see the module docstring."""

    def __init__(
        self,
        models_dir: str,
        spec: ModelSpec,
        warmup: Warmup,
        on_swap: Callable[[], None],
        torch_threads: int = 1,
        batch_size: int = 64,
        workers: int = 1,
        promotions: PromotionLog | None = None,
    ) -> None:
        self.models_dir = Path(models_dir)
        self._promotions = promotions
        self.spec = spec
        self._warmup = warmup
        self._on_swap = on_swap
        self._threads = torch_threads
        self._batch_size = batch_size
        self._workers = workers
        self.served: ServedModel | None = None
        self.last_reload_error: str | None = None
        self.stats = ReloadStats()
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="model-loader", daemon=True)
        self._observer: Any = None
        # Set once the model ``current`` names at start is served (or refused, or absent).
        self.settled = threading.Event()

    def start(self) -> None:
        """Load ``current`` if there is one (in the loader thread) and watch for changes."""
        from watchdog.observers import Observer

        self.models_dir.mkdir(parents=True, exist_ok=True)
        self._observer = Observer()
        self._observer.schedule(_CurrentWatcher(self), str(self.models_dir), recursive=False)
        self._observer.daemon = True
        self._observer.start()
        self._thread.start()
        if (self.models_dir / "current").exists():
            self.request()
        else:
            self.settled.set()

    def request(self, version: str | None = None, rollback: bool = False, done: Done | None = None) -> None:
        """Enqueue a reload (of ``version``, of the previous one, or of ``current``)."""
        self._queue.put(_Request(version, rollback, force=version is not None or done is not None, done=done))

    def close(self) -> None:
        """Stop watching and loading."""
        self.settled.set()
        if self._observer is not None:
            self._observer.stop()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)  # a load in progress only reads: no need to wait it out

    # --- the loader thread -------------------------------------------------------

    def _loop(self) -> None:
        import gc

        import torch

        import nordiqd.model.forecast  # noqa: F401  (imported now, so the first swap is not slowed by it)

        # Like what the role's init() built, torch and pytorch-forecasting live as long as
        # the process: frozen out of the cyclic collector, their ~400k objects are not
        # walked by every full collection (0.26-0.32 s each, inside model swaps).
        gc.collect()
        gc.freeze()
        torch.set_num_threads(self._threads)
        while True:
            first = self._queue.get()
            if first is None:
                return
            time.sleep(DEBOUNCE_S)
            batch = [first]
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    return
                batch.append(nxt)
            self._serve(batch)
            self.settled.set()

    def _serve(self, batch: list[_Request]) -> None:
        refused: dict[int, tuple[str, str]] = {}
        for i, req in enumerate(batch):  # pointer moves in the order asked; a bad one fails alone
            try:
                self._move_pointer(req)
            except ModelError as exc:
                kind = "not_found" if isinstance(exc, UnknownVersion) else "reload_failed"
                refused[i] = (kind, str(exc))
                log.error("reload refused: %s", exc)
        ok, message = True, ""
        if len(refused) < len(batch):
            ok, message = self._load_current(any(r.force for i, r in enumerate(batch) if i not in refused))
        for i, req in enumerate(batch):
            if req.done is None:
                continue
            if i in refused:
                req.done(False, *refused[i])
            else:
                req.done(ok, "" if ok else "reload_failed", message)

    def _move_pointer(self, req: _Request) -> None:
        if req.rollback:
            self._roll_back()
        elif req.version is not None:
            if req.version not in artifacts.list_versions(self.models_dir):
                raise UnknownVersion(f"no model version {req.version!r} in {self.models_dir}")
            artifacts.point_current(self.models_dir, req.version)

    def _roll_back(self) -> None:
        """Point ``current`` at the model that served before it and log it (by hand).

        The promotion log knows what served when, so a rejected candidate published after
        the champion is never the target; without a log entry for the current version (a
        model published before the log existed) the version published before it is.
        """
        current, promotions = artifacts.current_version(self.models_dir), self._promotions
        if promotions is not None and current is not None and current in promotions.served_versions():
            previous = promotions.served_before(current, artifacts.list_versions(self.models_dir))
        else:
            previous = artifacts.previous_version(self.models_dir)
        if previous is None:
            raise ModelError("there is no previous model version to roll back to")
        artifacts.point_current(self.models_dir, previous)
        if promotions is not None and current is not None:
            promotions.rolled_back(
                current, previous, [f"rolled back by hand from {current} to {previous}"], {}, trigger="manual"
            )

    def _load_current(self, force: bool) -> tuple[bool, str]:
        current = self.models_dir / "current"
        if not current.exists():
            return False, "there is no current model"
        target = os.path.realpath(current)
        served = self.served
        if served is not None and served.path == target and not force:
            return True, f"already serving {served.version}"
        started = time.monotonic()
        try:
            candidate = self._verify(target)
        except Exception as exc:  # any failure to load means: keep serving the old model
            if not isinstance(exc, ModelError):
                log.exception("unexpected error loading %s", target)
            self.stats.failed += 1
            name = Path(target).name
            self.last_reload_error = str(exc) if name in str(exc) else f"{name}: {exc}"
            still = served.version if served else "the baseline"
            log.error("model %s refused, still serving %s: %s", target, still, exc)
            return False, self.last_reload_error
        self.served = candidate
        self.last_reload_error = None
        self.stats.ok += 1
        self.stats.last_seconds = time.monotonic() - started
        log.info("now serving %s (loaded and verified in %.2f s)", candidate.version, self.stats.last_seconds)
        self._on_swap()
        return True, f"now serving {candidate.version}"

    def load_shadow(self, version: str) -> ServedModel:
        """Load and verify ``version`` as ``_load_current`` would, without serving it.

        For a model forecasting in shadow (``serving.probation``); ``self.served`` and
        ``current`` stay as they are.

        Raises:
            UnknownVersion: ``version`` is not on disk.
            ModelError: It fails verification.
        """
        if version not in artifacts.list_versions(self.models_dir):
            raise UnknownVersion(f"no model version {version!r} in {self.models_dir}")
        return self._verify(str(self.models_dir / version))

    def _verify(self, path: str) -> ServedModel:
        from nordiqd.model.forecast import WindowForecaster

        loaded = artifacts.load(path)
        spec = loaded.spec
        if tuple(spec.targets) != tuple(self.spec.targets):
            raise ModelError(
                f"model forecasts {list(spec.targets)} but [model] targets are {list(self.spec.targets)}"
            )
        if tuple(spec.quantiles) != tuple(self.spec.quantiles):
            raise ModelError(
                f"model quantiles {list(spec.quantiles)} differ from "
                f"[model] quantiles {list(self.spec.quantiles)}"
            )
        if (spec.step_seconds, spec.encoder_steps) != (self.spec.step_seconds, self.spec.encoder_steps):
            raise ModelError(
                f"model reads {spec.encoder_steps} steps of {spec.step_seconds} s but the predictor keeps "
                f"{self.spec.encoder_steps} steps of {self.spec.step_seconds} s"
            )
        forecaster = WindowForecaster(loaded, batch_size=self._batch_size, workers=self._workers)
        sample = self._warmup()
        if sample is not None:
            windows, names, profiles, last = sample
            result = forecaster.forecast(windows, names, profiles, last)
            if not np.isfinite(result.values[result.valid]).all():
                raise ModelError("warm-up forward pass gave non-finite forecasts")
        return ServedModel(
            version=loaded.version,
            path=str(loaded.path),
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
            manifest=loaded.manifest,
            forecaster=forecaster,
        )


class _CurrentWatcher:
    """watchdog handler: any event touching ``current`` enqueues a reload, nothing more."""

    def __init__(self, slot: ModelSlot) -> None:
        self._slot = slot

    def dispatch(self, event: Any) -> None:
        paths = (getattr(event, "src_path", ""), getattr(event, "dest_path", ""))
        if any(os.path.basename(str(p)) == "current" for p in paths if p):
            self._slot.request()
