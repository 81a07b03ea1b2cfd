"""One Ray Train worker of a training job: its shard of servers, Lightning under DDP.

``train_worker`` is the ``train_loop_per_worker`` of the ``TorchTrainer`` that
``ray_backend`` submits; it runs in a Ray worker process on any node of the cluster.
It gets the plan (``WorkerPlan``) the driver made: the network's hyperparameters and
starting weights, the dataset parameters (encoders, scalers) and loss weights fitted
once on the driver, so every rank builds the same network; the Parquet files of the
window and its own servers (``buffer.shards``). It reads only those servers' rows,
frames them into series and windows, and trains with Lightning under
``RayDDPStrategy``/``RayLightningEnvironment`` (``prepare_trainer``): gradients are
averaged across ranks after every batch, so the ranks' weights stay equal.

Every rank runs the same number of batches per epoch (``WorkerPlan.steps``; a shard
with fewer windows goes round them again), as DDP needs. Rank 0 reports progress to
the job's ``JobBridge`` actor after every batch and asks it, before every batch,
whether the job was cancelled; the answer is broadcast to every rank, so all stop at
the same batch (``TrainingCancelled``). At the end rank 0 hands its weights to the
bridge, where the driver takes them; every rank reports its figures there (windows,
batches, seconds, its shard's array bytes and its peak resident memory).

A worker caps its own memory first (``[training] max_memory_mb``, as a local job's).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import resource
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
import ray.train
import torch
import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer
from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer
from torch.utils.data import DataLoader, Sampler

from nordiqd.buffer.shards import read_shard
from nordiqd.model.errors import InsufficientData, TrainingCancelled
from nordiqd.model.network import network_from_hparams
from nordiqd.model.params import ModelSpec
from nordiqd.model.series import FleetSeries, fleet_series
from nordiqd.model.trainer import choose_device, micro_batches, trainer_options
from nordiqd.model.windows import WindowBatches, training_windows
from nordiqd.training import memory

_log = logging.getLogger(__name__)

FRAME_ROWS = 250_000  # rows of whole servers framed at once (about 75 MB while it runs)


@ray.remote(num_cpus=0)
class JobBridge:
    """The job's side channel to its workers: cancel flag in, progress and weights out."""

    def __init__(self) -> None:
        self.stopping = False
        self.done = 0
        self.weights: dict[str, torch.Tensor] | None = None
        self.ranks: dict[int, dict[str, float]] = {}

    def stop(self) -> None:
        self.stopping = True

    def should_stop(self) -> bool:
        return self.stopping

    def progress(self, done: int) -> None:
        self.done = max(self.done, done)

    def batches_done(self) -> int:
        return self.done

    def put_weights(self, weights: dict[str, torch.Tensor]) -> None:
        self.weights = weights

    def take_weights(self) -> dict[str, torch.Tensor] | None:
        return self.weights

    def rank_done(self, rank: int, figures: dict[str, float]) -> None:
        self.ranks[rank] = figures

    def rank_figures(self) -> dict[int, dict[str, float]]:
        return self.ranks


@dataclass(frozen=True)
class WorkerPlan:
    """What every worker needs from the driver (the shard it reads is by rank)."""

    spec: ModelSpec
    hparams: dict[str, Any]
    parameters: dict[str, Any]
    loss_weights: list[float]
    state: dict[str, torch.Tensor]
    reals: list[str]
    categoricals: list[str]
    buffer_uri: str
    files: list[str]
    shards: list[list[str]]
    start_ms: float | None
    end_ms: float | None
    epochs: int
    steps: int
    batch_size: int
    seed: int
    threads: int
    use_gpu: bool
    memory_limit_mb: int | None
    chunk_servers: int
    bridge: Any  # the JobBridge actor's handle


class ShardBatches(Sampler[list[int]]):
    """Exactly ``steps`` batches of ``batch_size`` windows of ``count`` per epoch, each in ``parts``.

    An epoch draws only the windows it runs: distinct windows, without a permutation of
    the whole shard (a 5,000-server shard of 30 days has 47 M windows, whose permutation
    alone was 370 MB for an epoch of a few thousand). A shard with fewer windows than
    an epoch runs goes round them again, a new permutation each time, rather than run
    fewer batches than the others. With ``parts`` > 1 each batch comes as that many
    consecutive micro-batches (``trainer.micro_batches``), the same on every rank.
    """

    def __init__(
        self, count: int, steps: int, batch_size: int, generator: torch.Generator, parts: int = 1
    ) -> None:
        self.count, self.steps, self.batch_size, self.generator = count, steps, batch_size, generator
        self.parts = min(parts, batch_size)

    def __len__(self) -> int:
        return self.steps * self.parts

    def __iter__(self) -> Iterator[list[int]]:
        chosen = self._draw(self.steps * self.batch_size)
        for batch in chosen.split(self.batch_size):
            for part in torch.tensor_split(batch, self.parts):
                yield part.tolist()

    def _draw(self, need: int) -> torch.Tensor:
        """``need`` window numbers: distinct while the shard has that many."""
        if need >= self.count:
            rounds = -(-need // self.count)
            return torch.cat([torch.randperm(self.count, generator=self.generator) for _ in range(rounds)])[
                :need
            ]
        if 2 * need >= self.count:  # a permutation costs at most twice the draw here
            return torch.randperm(self.count, generator=self.generator)[:need].clone()
        chosen = np.zeros(0, dtype=np.int64)
        while len(chosen) < need:
            more = torch.randint(self.count, (need - len(chosen),), generator=self.generator).numpy()
            drawn = np.concatenate([chosen, more])
            first = np.sort(np.unique(drawn, return_index=True)[1])  # first draws, in order
            chosen = drawn[first]
        return torch.from_numpy(chosen)


class _RankCallback(Callback):
    """Rank 0 reports progress and reads the cancel flag; every rank obeys it.

    It counts micro-batches (``parts`` to a batch) and reports whole batches.
    """

    def __init__(self, bridge: Any, rank: int, parts: int) -> None:
        self.bridge, self.rank, self.parts, self.done = bridge, rank, parts, 0

    @property
    def batches(self) -> int:
        return self.done // self.parts

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        flag = torch.zeros(1)
        if self.rank == 0 and ray.get(self.bridge.should_stop.remote()):
            flag += 1
        dist.broadcast(flag, src=0)
        if flag.item():
            raise TrainingCancelled(f"training cancelled after {self.batches} batches")

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.done += 1
        if self.rank == 0 and self.done % self.parts == 0:
            self.bridge.progress.remote(self.batches)


def shard_batches(plan: WorkerPlan, rank: int) -> WindowBatches:
    """This rank's servers' windows, read from the buffer's files under ``buffer_uri``.

    The shard is read ``plan.chunk_servers`` servers at a time (each read is a pass over
    the files) and framed ``FRAME_ROWS`` rows of whole servers at a time (framing takes
    about 300 bytes a row while it runs), and the pieces are joined: besides the shard's
    own arrays only one chunk's rows and one slice's framing are in memory at once (a
    5,000-server shard of 30 days is 43 M rows).

    Raises:
        InsufficientData: None of the shard's servers has a full window.
    """
    spec, servers = plan.spec, plan.shards[rank]
    pieces = []
    for lo in range(0, len(servers), plan.chunk_servers):
        chunk = servers[lo : lo + plan.chunk_servers]
        table = read_shard(plan.buffer_uri, plan.files, list(spec.targets), chunk, plan.start_ms, plan.end_ms)
        memory.trim_heap()  # what the read's row groups left in the heap
        runs = server_runs(table, FRAME_ROWS)
        del table  # the slices hold its buffers until the last of them is framed and let go
        while runs:
            part = runs.pop(0)
            with contextlib.suppress(InsufficientData):  # none of these servers has a window
                pieces.append(fleet_series(part, spec))
            del part
        memory.trim_heap()  # the chunk's rows and framing, before the next chunk's
    if not pieces:
        raise InsufficientData(f"worker {rank}: none of its {len(servers)} servers has a full window")
    series = joined(pieces)
    windows = training_windows(series, spec, plan.seed)
    return WindowBatches(series, windows, spec, plan.parameters, plan.reals, plan.categoricals)


def server_runs(table: pa.Table, rows: int) -> list[pa.Table]:
    """``table`` (sorted by server) cut into slices of about ``rows`` rows of whole servers."""
    if table.num_rows == 0:
        return []
    codes = pc.dictionary_encode(table["server_name"]).combine_chunks().indices.to_numpy()
    starts = np.concatenate(([0], np.flatnonzero(np.diff(codes)) + 1))
    cuts = [0]
    for start in starts.tolist():
        if start - cuts[-1] >= rows:
            cuts.append(start)
    cuts.append(table.num_rows)
    return [table.slice(a, b - a) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def joined(pieces: list[FleetSeries]) -> FleetSeries:
    """One ``FleetSeries`` of pieces framed from consecutive runs of sorted server names.

    Empties ``pieces`` as it copies them into the joined values, so the peak is the
    shard's values and one piece, not the values twice.
    """
    if len(pieces) == 1:
        return pieces[0]
    width, dtype = pieces[0].values.shape[1], pieces[0].values.dtype
    targets, step_seconds = pieces[0].targets, pieces[0].step_seconds
    lengths = [len(p.values) for p in pieces]
    offsets = np.cumsum([0, *(len(p.names) for p in pieces[:-1])])
    starts = np.cumsum([0, *lengths])
    values = np.empty((int(starts[-1]), width), dtype=dtype)
    kept = []
    for k in range(len(pieces)):
        piece = pieces[k]
        values[starts[k] : starts[k + 1]] = piece.values
        # An empty array of its own: a view (``values[:0]``) would keep the piece alive.
        kept.append(dataclasses.replace(piece, values=np.empty((0, width), dtype=dtype)))  # the rest is small
        pieces[k] = kept[-1]
        del piece
    return FleetSeries(
        values=values,
        starts=np.concatenate(
            [p.starts[:-1] + s for p, s in zip(kept, starts[:-1], strict=True)] + [starts[-1:]]
        ),
        first_tick=np.concatenate([p.first_tick for p in kept]),
        server=np.concatenate([p.server + o for p, o in zip(kept, offsets, strict=True)]),
        segment=np.concatenate([p.segment for p in kept]),
        names=[n for p in kept for n in p.names],
        profiles=[x for p in kept for x in p.profiles],
        targets=targets,
        step_seconds=step_seconds,
        records=sum(p.records for p in kept),
        window=(min(p.window[0] for p in kept), max(p.window[1] for p in kept)),
    )


def shard_bytes(batches: WindowBatches) -> int:
    """Bytes of the shard's arrays: its series and its window index."""
    series, index = batches.series, batches.index
    arrays = [series.values, series.starts, series.first_tick, series.server, series.segment]
    arrays += [index.series, index.hidden, index.offset, index.cum, index.length]
    return sum(a.nbytes for a in arrays)


def train_worker(config: dict[str, Any]) -> None:
    """``train_loop_per_worker``: train this rank's shard; rank 0 hands back the weights."""
    plan: WorkerPlan = config["plan"]
    if plan.memory_limit_mb is not None:
        memory.apply(plan.memory_limit_mb)
    # What Arrow frees goes back to the system, as in a local job (``memory.apply``): a
    # worker's reads come and go chunk by chunk, and its peak is what it holds.
    pa.set_memory_pool(pa.system_memory_pool())
    memory.map_large_blocks()
    context = ray.train.get_context()
    rank = context.get_world_rank()
    torch.manual_seed(plan.seed)
    start_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    batches = shard_batches(plan, rank)
    shard_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    network = network_from_hparams(plan.hparams, plan.parameters, plan.spec, plan.loss_weights)
    network.load_state_dict(plan.state)
    # The framing's and the network's leftovers (pytorch-forecasting's ``__init__`` leaves
    # a reference cycle) go before training, which then runs on top of the shard's arrays.
    memory.release_freed()
    device, precision = choose_device("gpu" if plan.use_gpu else "cpu", plan.threads)
    parts = micro_batches(plan.spec, plan.batch_size, device)
    generator = torch.Generator().manual_seed(plan.seed + rank)
    loader = DataLoader(
        batches,
        sampler=ShardBatches(len(batches), plan.steps, plan.batch_size, generator, parts),
        batch_size=None,
        num_workers=0,
    )
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    callback = _RankCallback(plan.bridge, rank, parts)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nordiqd-ray-") as root, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*ReduceLROnPlateau conditioned.*")
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
        options = trainer_options(plan.spec, plan.epochs, device, precision, parts, [callback], root)
        trainer = Trainer(
            **options, devices="auto", strategy=RayDDPStrategy(), plugins=[RayLightningEnvironment()]
        )
        trainer = prepare_trainer(trainer)
        trainer.fit(network, train_dataloaders=loader)
    figures = {
        "servers": float(len(plan.shards[rank])),
        "windows": float(len(batches)),
        "batches": float(callback.batches),
        "micro_batches": float(callback.done),
        "train_s": time.monotonic() - started,
        "shard_array_mb": shard_bytes(batches) / 2**20,
        "start_rss_mb": start_rss_mb,
        "shard_peak_rss_mb": shard_rss_mb,  # the peak until the shard was read and framed
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    ray.get(plan.bridge.rank_done.remote(rank, figures))
    if rank == 0:
        weights = {k: v.detach().cpu() for k, v in network.state_dict().items()}
        ray.get(plan.bridge.put_weights.remote(weights))
