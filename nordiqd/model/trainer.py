"""The Lightning trainer for ``fitting.fit``: device choice, loader, progress, cancellation.

Training runs synchronously in the calling thread. ``_JobCallback`` reports progress
after every batch and raises ``TrainingCancelled`` before a batch when the caller asks
to stop; Lightning tears down and re-raises it, so the fit ends within one batch.

This is the one module that imports the Lightning trainer; serving never imports it.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from pytorch_forecasting import TemporalFusionTransformer
from torch.utils.data import DataLoader, Sampler

from nordiqd.model.dropout import bit_dropout
from nordiqd.model.errors import ModelError, TrainingCancelled
from nordiqd.model.params import ModelSpec
from nordiqd.model.train_forward import training_forward
from nordiqd.model.train_step import lean_training
from nordiqd.model.windows import BatchSet

_log = logging.getLogger(__name__)


class _JobCallback(Callback):
    """Progress after each batch; cancellation before each batch."""

    def __init__(
        self,
        total_batches: int,
        on_progress: Callable[[float], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.total = max(1, total_batches)
        self.done = 0
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.utilisation: list[int] = []

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Cancel before the batch runs when the caller asked to stop."""
        if self.should_stop is not None and self.should_stop():
            raise TrainingCancelled(f"training cancelled after {self.done} of {self.total} batches")

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Report the share of all batches done so far."""
        self.done += 1
        if self.done % 10 == 0 and torch.cuda.is_available() and pl_module.device.type == "cuda":
            self.utilisation += _utilisation()
        if self.on_progress is not None:
            self.on_progress(min(100.0, 100.0 * self.done / self.total))


def choose_device(accelerator: str, threads: int) -> tuple[str, str]:
    """Lightning accelerator and precision for this machine.

    CUDA when present, with bf16 autocast where the GPU supports bf16 (Ampere and
    later; it keeps fp32's range, so the TFT's -1e9 attention mask and the quantile
    loss do not overflow as they can in fp16). Otherwise the CPU, with torch's thread
    pool bounded so ingest and predictions keep their share of the cores.

    Raises:
        ModelError: ``accelerator`` is "gpu" and no CUDA device is present.
    """
    if accelerator in ("auto", "gpu") and torch.cuda.is_available():
        precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
        return "gpu", precision
    if accelerator == "gpu":
        raise ModelError("training on the GPU was requested but no CUDA device is present")
    torch.set_num_threads(max(1, threads))
    return "cpu", "32-true"


def batch_size_for(spec: ModelSpec, device: str) -> int:
    """Windows per batch: ``spec.batch_size`` on the CPU, more on a large GPU.

    A GPU runs a batch of 128 windows in about the time of one of a thousand, so on a
    device with room the batch grows (x1 per 16 GiB of memory, at most x8) and an epoch
    of the same windows takes fewer steps.
    """
    if device != "gpu":
        return spec.batch_size
    gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    return spec.batch_size * int(min(8, max(1, gib // 16)))


class EpochBatches(Sampler[list[int]]):
    """Batches of ``limit`` distinct random windows of ``count`` per epoch, each in ``parts``.

    The windows ``RandomSampler(range(count), num_samples=limit)`` draws with the same
    generator, without its list of every window number: a 30-day fleet has millions of
    windows, and that list cost seconds and hundreds of MB per epoch. With ``parts`` > 1
    each batch comes as that many consecutive micro-batches (sizes differing by at most
    one; fewer when the batch has fewer windows), which the trainer accumulates into one
    optimiser step.
    """

    def __init__(
        self, count: int, limit: int, batch_size: int, generator: torch.Generator, parts: int = 1
    ) -> None:
        self.count, self.limit, self.batch_size, self.generator = (
            count,
            min(limit, count),
            batch_size,
            generator,
        )
        self.parts = parts

    def __len__(self) -> int:
        full, rest = divmod(self.limit, self.batch_size)
        return full * min(self.parts, self.batch_size) + min(self.parts, rest)

    def __iter__(self) -> Iterator[list[int]]:
        chosen = torch.randperm(self.count, generator=self.generator)
        if self.limit == self.count:
            # RandomSampler draws (and drops) one more permutation when it takes them all;
            # drawn here too, so every epoch gets the windows it would have had.
            torch.randperm(self.count, generator=self.generator)
        else:
            chosen = chosen[: self.limit].clone()
        for lo in range(0, self.limit, self.batch_size):
            batch = chosen[lo : lo + self.batch_size]
            for part in torch.tensor_split(batch, min(self.parts, len(batch))):
                yield part.tolist()


def micro_batches(spec: ModelSpec, batch_size: int, device: str) -> int:
    """Parts each batch runs in: on the CPU enough that none exceeds ``spec.micro_batch_size``.

    Every layer of the TFT treats windows apart (layer norm is per window, nothing
    normalises across the batch) and the loss is a mean, so gradients of equal parts,
    each weighted by 1/parts, add up to the whole batch's gradient. Activation memory
    then scales with the part (1.9 GB at 128 windows of the default size against 0.75
    GB in parts of 16). A GPU has the memory and runs the batch whole.
    """
    if device == "gpu":
        return 1
    return max(1, -(-batch_size // spec.micro_batch_size))


def train_loader(
    batches: BatchSet, spec: ModelSpec, seed: int, batch_size: int, device: str, parts: int = 1
) -> DataLoader:
    """Shuffled batches of at most ``spec.max_windows_per_epoch`` windows per epoch, each
    in ``parts`` micro-batches (``micro_batches``).

    On the CPU the batches are built in the training thread: at tens of thousands of
    windows a second that is a rounding error next to the network. For a GPU two loader
    workers build them ahead into pinned memory, so the copy to the device is
    non-blocking and the GPU does not wait on the host.
    """
    count = len(batches)
    generator = torch.Generator().manual_seed(seed)
    gpu = device == "gpu"
    return DataLoader(
        batches,
        sampler=EpochBatches(count, spec.max_windows_per_epoch or count, batch_size, generator, parts),
        batch_size=None,
        num_workers=2 if gpu else 0,
        pin_memory=gpu,
        persistent_workers=gpu,
        prefetch_factor=4 if gpu else None,
    )


def _utilisation() -> list[int]:
    """The GPU's utilisation in percent now, or nothing where NVML is not there."""
    try:
        return [int(torch.cuda.utilization())]
    except Exception:  # noqa: BLE001 - pynvml absent or the driver refuses: no figure
        return []


def gpu_report(utilisation: list[int]) -> str:
    """One line on the GPU's use by the run just finished."""
    props = torch.cuda.get_device_properties(0)
    used = torch.cuda.max_memory_allocated() / 2**30
    line = f"GPU {props.name}: peak {used:.2f} of {props.total_memory / 2**30:.0f} GiB"
    if utilisation:
        line += (
            f", utilisation {sum(utilisation) / len(utilisation):.0f}% (mean of {len(utilisation)} samples)"
        )
    return line


def trainer_options(
    spec: ModelSpec,
    epochs: int,
    device: str,
    precision: str,
    parts: int,
    callbacks: Sequence[Callback],
    root: str,
) -> dict[str, Any]:
    """The Lightning ``Trainer``'s options of every training run: a local job's or a Ray rank's.

    One builder, so a rank trains as a local job does: ``device`` and ``precision`` as
    ``choose_device`` chose them, gradient clipping, each batch's ``parts`` micro-batches
    (``micro_batches``) accumulated into one optimiser step, no validation loop
    (``fitting.validate`` scores the model after fitting), and no logger, checkpoint,
    progress bar or summary. The caller adds where it runs: ``devices`` locally, Ray's
    strategy and environment on a rank.
    """
    return {
        "max_epochs": epochs,
        "accelerator": device,
        "precision": precision,
        "gradient_clip_val": spec.gradient_clip,
        "accumulate_grad_batches": parts,
        "callbacks": list(callbacks),
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "limit_val_batches": 0,
        "num_sanity_val_steps": 0,
        "default_root_dir": root,
    }


@contextmanager
def cpu_training(network: Any) -> Iterator[None]:
    """The fused forward (``train_forward``), dropout's 16-bit draw (``dropout``), the
    lean step with fused Adam (``train_step``), and denormal floats flushed to zero.

    Gradients and optimiser moments that decay towards zero pass through denormal
    values, which x86 cores compute in microcode, many times slower: flushing them
    trained 5 % more windows per second at the default size (bench/README.md, issue 16)
    at a precision below 1e-38.
    """
    flushed = torch.set_flush_denormal(True)
    try:
        with training_forward(network), bit_dropout(network), lean_training(network):
            yield
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def run_trainer(
    network: TemporalFusionTransformer,
    batches: BatchSet,
    spec: ModelSpec,
    epochs: int,
    threads: int,
    accelerator: str,
    on_progress: Callable[[float], None] | None,
    should_stop: Callable[[], bool] | None,
    seed: int,
    notes: list[str] | None = None,
    callbacks: Sequence[Callback] = (),
) -> str:
    """Train ``network`` in place for ``epochs``; returns the device it ran on.

    On a GPU, a line on its use (memory, utilisation) is appended to ``notes``.
    ``callbacks`` join the trainer's own (tests look at the gradients through one).

    Raises:
        TrainingCancelled: ``should_stop`` returned True before some batch.
    """
    if epochs < 1:
        raise ModelError("epochs must be at least 1")
    device, precision = choose_device(accelerator, threads)
    batch_size = batch_size_for(spec, device)
    parts = micro_batches(spec, batch_size, device)
    loader = train_loader(batches, spec, seed, batch_size, device, parts)
    if device == "gpu":
        torch.cuda.reset_peak_memory_stats()
    callback = _JobCallback(epochs * len(loader), on_progress, should_stop)
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="nordiqd-fit-") as root, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*feature names.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        # Validation runs once after fitting (``fitting.validate``), never inside the loop.
        warnings.filterwarnings("ignore", message=".*ReduceLROnPlateau conditioned.*")
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
        options = trainer_options(spec, epochs, device, precision, parts, [callback, *callbacks], root)
        trainer = Trainer(**options, devices=1)
        # The CPU trains through the fused forward (``train_forward``) with denormal
        # floats flushed to zero; the GPU path keeps the network's own until it is
        # measured there.
        with cpu_training(network) if device == "cpu" else nullcontext():
            trainer.fit(network, train_dataloaders=loader)
    if should_stop is not None and should_stop():
        # A stop request during the last batch still means the caller does not want it.
        raise TrainingCancelled("training cancelled during its last batch")
    if on_progress is not None:
        on_progress(100.0)
    _log.info(
        "trained %d epochs, %d micro-batches (%d to a batch of %d) on %s",
        epochs, callback.done, parts, batch_size, device,
    )  # fmt: skip
    if device == "gpu":
        report = f"{gpu_report(callback.utilisation)}, batches of {batch_size} windows"
        _log.info("%s", report)
        if notes is not None:
            notes.append(report)
    return "cuda" if device == "gpu" else "cpu"
