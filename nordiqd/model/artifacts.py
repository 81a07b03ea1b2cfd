"""Model directories on disk: publish atomically, verify, load, list, point ``current``.

A model directory holds ``weights.safetensors`` (tensors only), ``dataset_parameters.json``
(fitted encoders and scalers, see ``dataset_params``), ``hyperparameters.json`` (spec,
loss weights, network constructor arguments) and ``manifest.json`` (what, when, on what
data, how good, and the sha256 of every other file). Nothing is ever unpickled.

Publishing writes the directory under a temporary name inside ``models/``, fsyncs the
files and the directory, renames it to its version, and then swaps the ``current``
symlink by creating a new link under a temporary name and ``os.replace``-ing it over
the old one, so a reader sees either the old model or the new one, never a half.

Torch is imported only by ``publish`` and ``load``; listing and verifying work without it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from nordiqd.durable import fsync_dir, fsync_file, write_atomic, write_synced
from nordiqd.model.errors import IncompatibleModel, ModelError, ModelLoadError
from nordiqd.model.params import ModelSpec
from nordiqd.model.trained import TrainedModel

if TYPE_CHECKING:
    # For the annotation only, so that listing and verifying stay torch-free.
    from pytorch_forecasting import TemporalFusionTransformer

MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
DATASET = "dataset_parameters.json"
HPARAMS = "hyperparameters.json"
CURRENT = "current"
FORMAT = 1
VERSION_PATTERN = re.compile(r"^tft_model_\d{8}_\d{6}$")
_REQUIRED = (WEIGHTS, DATASET, HPARAMS)
# Manifest fields that must agree with the stored spec and with what a caller expects.
_SHAPE_KEYS = ("targets", "quantiles", "step_seconds", "encoder_steps", "horizon_steps")


@dataclass
class LoadedModel:
    """A verified model ready to forecast (network in eval mode, on the CPU)."""

    path: Path
    version: str
    manifest: dict[str, Any]
    spec: ModelSpec
    network: TemporalFusionTransformer
    dataset_parameters: dict[str, Any]
    hparams: dict[str, Any]
    loss_weights: list[float]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True, allow_nan=False).encode()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _new_version(models_root: Path, now: datetime) -> tuple[str, datetime]:
    # Versions are named by the second; two publishes within one second take the next.
    while True:
        version = now.strftime("tft_model_%Y%m%d_%H%M%S")
        if not (models_root / version).exists():
            return version, now
        now += timedelta(seconds=1)


def publish(
    models_root: Path | str, trained: TrainedModel, *, now: datetime | None = None, serve: bool = True
) -> Path:
    """Write ``trained`` as a new version under ``models_root`` and point ``current`` at it.

    With ``serve`` False, ``current`` stays where it is: the version is a candidate that
    the promotion gate judges first (``nordiqd.promotion``).

    Returns:
        The published directory, ``models_root/tft_model_YYYYMMDD_HHMMSS``.
    """
    root = Path(models_root)
    root.mkdir(parents=True, exist_ok=True)
    version, created = _new_version(root, (now or datetime.now(UTC)).astimezone(UTC))
    staging = root / f".staging-{version}-{os.getpid()}"
    final = root / version
    try:
        staging.mkdir()
        _write_version(staging, trained, version, created)
        os.rename(staging, final)
        fsync_dir(root)
        if serve:
            point_current(root, version)
    except BaseException:
        # A full disk (or a cancel) part-way: leave nothing half-written, and no
        # version that ``current`` never pointed at (nor a candidate half-published);
        # the served model is untouched.
        shutil.rmtree(staging, ignore_errors=True)
        if final.exists() and current_version(root) != version:
            shutil.rmtree(final, ignore_errors=True)
        raise
    return final


def _write_version(staging: Path, trained: TrainedModel, version: str, created: datetime) -> None:
    """Writes every file of ``version`` into ``staging``, each fsynced."""
    # Imported here, not above, so that listing and verifying stay torch-free.
    from safetensors.torch import save_model

    from nordiqd.model import dataset_params
    from nordiqd.model.network import network_hparams

    # save_model stores each shared tensor once (the TFT shares its prescalers).
    save_model(trained.network.cpu(), str(staging / WEIGHTS), metadata={"version": version})
    fsync_file(staging / WEIGHTS)
    write_synced(staging / DATASET, _json_bytes(dataset_params.to_json(trained.dataset_parameters)))
    hparams = {
        "format": FORMAT,
        "spec": trained.spec.to_dict(),
        "loss_weights": trained.loss_weights,
        "network": network_hparams(trained.network),
    }
    write_synced(staging / HPARAMS, _json_bytes(hparams))
    spec = trained.spec
    val = trained.validation
    manifest = {
        "format": FORMAT,
        "version": version,
        "created_at": _iso(created),
        "training_window": {
            "start": _iso(trained.training_window[0]),
            "end": _iso(trained.training_window[1]),
        },
        "records": trained.records,
        "servers": trained.servers,
        "epochs": trained.epochs,
        "incremental": trained.incremental,
        "notes": trained.notes,
        "device": trained.device,
        "train_seconds": round(trained.seconds, 3),
        "validation": {
            "loss": _finite_or_none(val.loss),
            "mase_model": _finite_or_none(val.mase_model),
            "mase_seasonal_naive": _finite_or_none(val.mase_seasonal_naive),
            "windows": val.windows,
        },
        "targets": list(spec.targets),
        "quantiles": list(spec.quantiles),
        "step_seconds": spec.step_seconds,
        "encoder_steps": spec.encoder_steps,
        "horizon_steps": spec.horizon_steps,
        "files": {name: _sha256(staging / name) for name in _REQUIRED},
    }
    write_synced(staging / MANIFEST, _json_bytes(manifest))
    fsync_dir(staging)


def record_gate(directory: Path | str, gate: dict[str, Any]) -> None:
    """Add the promotion gate's figures to a version's manifest (atomically rewritten).

    The manifest checksums the other files, not itself, so the version stays verifiable.
    """
    path = Path(directory) / MANIFEST
    manifest = json.loads(path.read_bytes())
    manifest["gate"] = gate
    write_atomic(path, _json_bytes(manifest))


def _finite_or_none(value: float) -> float | None:
    return value if value == value and abs(value) != float("inf") else None


def point_current(models_root: Path | str, version: str) -> None:
    """Atomically point ``models_root/current`` at ``version`` (publish and rollback).

    Raises:
        ModelLoadError: ``version`` is not a model directory with a manifest.
    """
    root = Path(models_root)
    if not VERSION_PATTERN.match(version) or not (root / version / MANIFEST).is_file():
        raise ModelLoadError(f"no model version {version!r} in {root}")
    temp = root / f".{CURRENT}-{os.getpid()}"
    temp.unlink(missing_ok=True)
    # Relative target: the models directory can move (or be mounted elsewhere) intact.
    os.symlink(version, temp)
    os.replace(temp, root / CURRENT)
    fsync_dir(root)


def list_versions(models_root: Path | str) -> list[str]:
    """Published versions under ``models_root``, oldest first (staging dirs excluded)."""
    root = Path(models_root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if VERSION_PATTERN.match(p.name) and p.is_dir())


def current_version(models_root: Path | str) -> str | None:
    """The version ``current`` points at, or None when there is no (valid) link."""
    link = Path(models_root) / CURRENT
    try:
        target = os.readlink(link)
    except OSError:
        return None
    name = Path(target).name
    return name if VERSION_PATTERN.match(name) else None


def previous_version(models_root: Path | str) -> str | None:
    """The version published before the current one (the rollback target), or None."""
    versions = list_versions(models_root)
    current = current_version(models_root)
    if current not in versions:
        return versions[-1] if versions else None
    index = versions.index(current)
    return versions[index - 1] if index > 0 else None


def _check_safetensors(path: Path) -> None:
    """Refuse a weights file whose header or tensor data is cut short."""
    size = path.stat().st_size
    try:
        with path.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if header_len > size - 8:
                raise ValueError
            header = json.loads(fh.read(header_len))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError):
        raise ModelLoadError(f"{WEIGHTS} is truncated or not a safetensors file ({size} bytes)") from None
    expected = 8 + header_len + end
    if size < expected:
        raise ModelLoadError(f"{WEIGHTS} is truncated: {size} bytes of {expected}")


def verify(path: Path | str, *, expect: ModelSpec | None = None) -> dict[str, Any]:
    """Check a model directory without loading it; returns its manifest.

    Checks, in order: the manifest parses, every file is present, the weights are not
    truncated, every checksum matches, the manifest agrees with the stored spec, and
    (with ``expect``) the model forecasts what the caller expects.

    Raises:
        ModelLoadError: The first problem found, named.
        IncompatibleModel: The model is intact but not what ``expect`` describes.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ModelLoadError(f"model directory {directory} does not exist")
    try:
        manifest = json.loads((directory / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise ModelLoadError(f"{directory.name}: {MANIFEST} is missing") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{directory.name}: {MANIFEST} is not valid JSON ({exc})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise ModelLoadError(f"{directory.name}: {MANIFEST} has no file checksums")
    for name in _REQUIRED:
        if name not in files:
            raise ModelLoadError(f"{directory.name}: {MANIFEST} lists no checksum for {name}")
    for name in files:
        if not (directory / name).is_file():
            raise ModelLoadError(f"{directory.name}: {name} is missing")
    _check_safetensors(directory / WEIGHTS)
    for name, expected in files.items():
        found = _sha256(directory / name)
        if found != expected:
            raise ModelLoadError(
                f"{directory.name}: checksum mismatch for {name} "
                f"(manifest {expected[:12]}..., file {found[:12]}...)"
            )
    spec = _stored_spec(directory)
    stored = spec.to_dict()
    for key in _SHAPE_KEYS:
        if manifest.get(key) != stored[key]:
            raise ModelLoadError(
                f"{directory.name}: manifest {key} {manifest.get(key)!r} "
                f"differ from the model's {stored[key]!r}"
            )
    if expect is not None:
        wanted = expect.to_dict()
        for key in _SHAPE_KEYS:
            if stored[key] != wanted[key]:
                raise IncompatibleModel(
                    f"{directory.name}: model {key} {stored[key]!r} "
                    f"differ from the configured {wanted[key]!r}"
                )
    return manifest


def _stored_spec(directory: Path) -> ModelSpec:
    try:
        hparams = json.loads((directory / HPARAMS).read_bytes())
        return ModelSpec.from_dict(hparams["spec"])
    except (ValueError, KeyError, TypeError, msgspec.ValidationError) as exc:
        raise ModelLoadError(f"{directory.name}: {HPARAMS} holds no valid spec ({exc})") from None


def load(path: Path | str, *, expect: ModelSpec | None = None) -> LoadedModel:
    """Verify (see ``verify``) and load a model directory onto the CPU, in eval mode.

    ``path`` may be the ``current`` symlink; the result names the resolved version.

    Raises:
        ModelLoadError: The directory is missing, corrupt or cannot be rebuilt.
        IncompatibleModel: The model does not match ``expect``.
    """
    # Imported here, not above, so that listing and verifying stay torch-free.
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from nordiqd.model import dataset_params
    from nordiqd.model.network import network_from_hparams

    directory = Path(path).resolve()
    manifest = verify(directory, expect=expect)
    hparams = json.loads((directory / HPARAMS).read_bytes())
    spec = ModelSpec.from_dict(hparams["spec"])
    try:
        parameters = dataset_params.from_json(json.loads((directory / DATASET).read_bytes()))
        network = network_from_hparams(hparams["network"], parameters, spec, hparams["loss_weights"])
        load_model(network, str(directory / WEIGHTS), strict=True)
    except (ModelError, SafetensorError, RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{directory.name}: cannot rebuild the model ({exc})") from None
    network.eval()
    return LoadedModel(
        path=directory,
        version=directory.name,
        manifest=manifest,
        spec=spec,
        network=network,
        dataset_parameters=parameters,
        hparams=hparams["network"],
        loss_weights=list(hparams["loss_weights"]),
    )
