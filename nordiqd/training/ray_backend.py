"""A training job's fit on a Ray cluster: ``[training] backend = "ray"``.

``RayTraining`` is the ``fitting.NetworkTraining`` a job hands to ``fit`` in place of
the in-process Lightning run. ``fit`` has already framed the fleet, indexed the
windows and fitted the encoders, scalers and loss weights once, on this driver, and
built the network; ``RayTraining`` connects to ``[training] ray_address``, deals the
servers into one shard per worker by the hash of their names, and submits a Ray Train
run (``TorchTrainer`` over ``ray_worker.train_worker``) of ``ray_workers`` workers of
``ray_cpus_per_worker`` CPUs (and a GPU each with ``ray_use_gpu``). The network, its
starting weights and the fitted parameters go to every worker in the plan, so all
ranks train the same model; each reads only its servers' rows from the buffer's
Parquet files (through ``ray_buffer_uri``). Rank 0's weights come back into the
network, which the job then validates, publishes as a candidate and puts through the
gate exactly as a local job's.

How it runs and stops: ``trainer.fit()`` blocks, so it runs on a thread of the job;
the job's own thread polls the ``JobBridge`` actor twice a second for the batches done
(progress) and, once the job is asked to stop, sets its cancel flag, which the workers
read before every batch. A run that does not stop is the trainer role's to kill after
``cancel_grace_s``: the job process owns the Ray Train controller and the bridge, so
Ray ends them and the workers with it. A worker that dies fails the run (no retries:
``FailureConfig(max_failures=0)``) and the job reports why. An address that does not
answer fails within seconds, naming it (``ray_cluster``).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import Any

import ray
from pytorch_forecasting import TemporalFusionTransformer
from ray.exceptions import RayActorError
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from nordiqd.buffer.reader import parquet_files
from nordiqd.buffer.shards import server_shards
from nordiqd.config import TrainingConfig
from nordiqd.model.errors import ModelError, TrainingCancelled
from nordiqd.model.network import network_hparams
from nordiqd.model.params import ModelSpec
from nordiqd.model.windows import WindowBatches
from nordiqd.training.ray_cluster import RayUnavailable, check_resources, connect
from nordiqd.training.ray_worker import JobBridge, WorkerPlan, train_worker

log = logging.getLogger(__name__)

POLL_S = 0.5
CHUNK_ROWS = 1_000_000  # rows a worker reads in one pass over the files (about 45 MB of table)


class RayRunFailed(ModelError):
    """The Ray Train run failed; the message says which worker and why."""


def _reason(exc: BaseException) -> str:
    """The failure of a run in a line or two: a worker that died first, then the others."""
    failures: dict[int, BaseException] = getattr(exc, "worker_failures", {}) or {}
    if not failures:
        return _line(f"the Ray run failed: {type(exc).__name__}: {exc}", 600)
    # A killed worker shows as the others' broken collective too; its death is the cause.
    ranked = sorted(failures.items(), key=lambda kv: (_death(kv[1]) is None, kv[0]))
    parts = []
    for rank, error in ranked[:2]:
        death = _death(error)
        what, shown = ("failed", error) if death is None else ("died", death)
        parts.append(_line(f"worker {rank} {what}: {type(shown).__name__}: {shown}", 300))
    return f"the Ray run failed ({len(failures)} of its workers): " + "; ".join(parts)


def _death(error: BaseException) -> RayActorError | None:
    """The worker's death behind ``error`` (Ray Train reports it as a failed health check)."""
    cause = getattr(error, "health_check_failure", error)
    return cause if isinstance(cause, RayActorError) else None


def _line(text: str, limit: int) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())[:limit]


class RayTraining:
    """Trains ``fit``'s network on the Ray cluster (a ``fitting.NetworkTraining``)."""

    def __init__(
        self,
        settings: TrainingConfig,
        spec: ModelSpec,
        *,
        buffer_dir: str,
        window: tuple[float | None, float | None],
        epochs: int,
        job_id: str,
        seed: int = 0,
        on_progress: Callable[[float], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        memory_limit_mb: int | None = None,
        servers: Sequence[str] | None = None,
    ) -> None:
        self.settings, self.spec, self.epochs, self.seed = settings, spec, epochs, seed
        self.buffer_dir, self.window, self.job_id = buffer_dir, window, job_id
        self.on_progress, self.should_stop = on_progress, should_stop
        self.memory_limit_mb = memory_limit_mb
        self.servers = servers  # to shard; None: the servers ``fit`` framed
        self.ranks: dict[int, dict[str, float]] = {}  # each rank's figures, after a run

    def plan(
        self,
        network: TemporalFusionTransformer,
        batches: WindowBatches,
        parameters: dict[str, Any],
        weights: list[float],
        bridge: Any,
    ) -> WorkerPlan:
        """Every worker's plan: the same network and parameters, its own shard by rank."""
        s = self.settings
        names = list(self.servers or [batches.series.names[i] for i in set(batches.series.server.tolist())])
        shards = server_shards(names, s.ray_workers)
        empty = [k for k, shard in enumerate(shards) if not shard]
        if empty:
            raise RayUnavailable(
                f"[training] ray_workers = {s.ray_workers} is more than the {sum(map(len, shards))} "
                "servers with training data: each worker needs at least one"
            )
        limit = self.spec.max_windows_per_epoch or len(batches)
        steps = max(1, math.ceil(min(limit, len(batches)) / (s.ray_workers * self.spec.batch_size)))
        buffer_uri = s.ray_buffer_uri or self.buffer_dir
        return WorkerPlan(
            spec=self.spec,
            hparams=network_hparams(network),
            parameters=parameters,
            loss_weights=list(weights),
            state={k: v.detach().cpu() for k, v in network.state_dict().items()},
            reals=list(batches.reals),
            categoricals=list(batches.categoricals),
            buffer_uri=buffer_uri,
            files=parquet_files(self.buffer_dir, *self.window),
            shards=shards,
            start_ms=self.window[0],
            end_ms=self.window[1],
            epochs=self.epochs,
            steps=steps,
            batch_size=self.spec.batch_size,
            seed=self.seed,
            threads=max(1, int(s.ray_cpus_per_worker)),
            use_gpu=s.ray_use_gpu,
            memory_limit_mb=self.memory_limit_mb,
            chunk_servers=self._chunk_servers(batches),
            bridge=bridge,
        )

    @staticmethod
    def _chunk_servers(batches: WindowBatches) -> int:
        """Servers a worker reads at once: about ``CHUNK_ROWS`` rows of the fleet's average server."""
        servers = len(set(batches.series.server.tolist()))
        return max(1, CHUNK_ROWS * servers // max(1, len(batches.series.values)))

    def __call__(
        self,
        network: TemporalFusionTransformer,
        batches: WindowBatches,
        parameters: dict[str, Any],
        weights: list[float],
    ) -> str:
        """Run the Ray Train run; rank 0's weights end up in ``network``.

        Raises:
            RayUnavailable: The cluster does not answer or is too small.
            RayRunFailed: A worker failed (the message says which and why).
            TrainingCancelled: The job was asked to stop.
        """
        s = self.settings
        connect(s.ray_address)
        storage = tempfile.mkdtemp(prefix="nordiqd-ray-")
        try:
            check_resources(s)
            bridge = JobBridge.remote()  # type: ignore[attr-defined]
            plan = self.plan(network, batches, parameters, weights, bridge)
            log.info(
                "Ray run at %s: %d workers x %g CPUs%s, %d batches per epoch each, shards of %s servers",
                s.ray_address, s.ray_workers, s.ray_cpus_per_worker, " + 1 GPU" if s.ray_use_gpu else "",
                plan.steps, "/".join(str(len(x)) for x in plan.shards),
            )  # fmt: skip
            trainer = TorchTrainer(
                train_worker,
                train_loop_config={"plan": plan},
                scaling_config=ScalingConfig(
                    num_workers=s.ray_workers,
                    use_gpu=s.ray_use_gpu,
                    resources_per_worker={"CPU": s.ray_cpus_per_worker},
                ),
                run_config=RunConfig(
                    name=self.job_id, storage_path=storage, failure_config=FailureConfig(max_failures=0)
                ),
            )
            self._follow(trainer, bridge, plan.steps * self.epochs)
            state = ray.get(bridge.take_weights.remote())
            if state is None:
                raise RayRunFailed("the Ray run ended without rank 0's weights")
            network.load_state_dict(state)
            self.ranks = ray.get(bridge.rank_figures.remote())
            for rank, f in sorted(self.ranks.items()):
                log.info(
                    "rank %d: %d servers, %d windows, %d batches in %.1f s; peak RSS %.0f MB, "
                    "shard arrays %.1f MB", rank, f["servers"], f["windows"], f["batches"], f["train_s"],
                    f["peak_rss_mb"], f["shard_array_mb"],
                )  # fmt: skip
            ray.kill(bridge)
        finally:
            ray.shutdown()
            shutil.rmtree(storage, ignore_errors=True)
        if self.on_progress is not None:
            self.on_progress(100.0)
        return "cuda" if s.ray_use_gpu else "cpu"

    def _follow(self, trainer: TorchTrainer, bridge: Any, total: int) -> None:
        """Run ``trainer.fit()`` on a thread; relay progress and the cancel meanwhile."""
        outcome: list[BaseException] = []

        def run() -> None:
            try:
                trainer.fit()
            except BaseException as exc:  # noqa: BLE001 - handed to the job's thread
                outcome.append(exc)

        thread = threading.Thread(target=run, name="ray-train", daemon=True)
        thread.start()
        stopping = False
        while thread.is_alive():
            thread.join(POLL_S)
            if not stopping and self.should_stop is not None and self.should_stop():
                stopping = True
                bridge.stop.remote()
                log.info("cancel: asked the Ray workers to stop before their next batch")
            if self.on_progress is not None and not stopping:
                done = ray.get(bridge.batches_done.remote(), timeout=30)
                self.on_progress(min(99.9, 100.0 * done / max(1, total)))
        if stopping or (self.should_stop is not None and self.should_stop()):
            raise TrainingCancelled("the Ray run stopped on request")
        if outcome:
            raise RayRunFailed(_reason(outcome[0])) from outcome[0]
