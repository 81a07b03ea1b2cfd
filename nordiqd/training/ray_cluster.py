"""Joining a Ray cluster as a driver: a training job's, or ``nordiqd backtest --ray``'s.

``connect`` never starts a cluster: it joins the one at the address or fails, within
``CONNECT_TIMEOUT_S`` when nothing answers there, with a message that names it.
"""

from __future__ import annotations

import logging
import socket
from urllib.parse import urlsplit

import ray

from nordiqd.config import TrainingConfig
from nordiqd.model.errors import ModelError

CONNECT_TIMEOUT_S = 5.0


class RayUnavailable(ModelError):
    """The Ray cluster cannot be reached, or cannot hold the run."""


def probe(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, naming ``address``, when nothing listens there.

    ``ray.init`` on a silent address retries for a minute or more; a TCP connect to the
    head's port answers in at most ``timeout_s``. "auto" is left to ``ray.init``, which
    fails at once when this machine runs no Ray node.

    Raises:
        RayUnavailable: Nothing accepts a connection at ``address``.
    """
    if address == "auto":
        return
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    host, port = parts.hostname, parts.port
    if host is None or port is None:
        raise RayUnavailable(f"the Ray address {address!r} is not HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise RayUnavailable(f"the Ray cluster at {address} does not answer: {exc}") from None


def connect(address: str) -> None:
    """Join the cluster at ``address`` as a driver (no local cluster is ever started).

    Raises:
        RayUnavailable: It does not answer.
    """
    probe(address)
    try:
        ray.init(address=address, namespace="nordiqd", log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, TimeoutError) as exc:
        raise RayUnavailable(f"the Ray cluster at {address} does not answer: {exc}") from None


def check_resources(settings: TrainingConfig) -> None:
    """Refuse a run the whole cluster could never place (it would wait forever).

    Raises:
        RayUnavailable: The cluster has fewer CPUs (or GPUs) than the workers ask for.
    """
    resources = ray.cluster_resources()
    wanted = {"CPU": settings.ray_workers * settings.ray_cpus_per_worker}
    if settings.ray_use_gpu:
        wanted["GPU"] = float(settings.ray_workers)
    for kind, amount in wanted.items():
        have = float(resources.get(kind, 0.0))
        if have < amount:
            raise RayUnavailable(
                f"the Ray cluster at {settings.ray_address} has {have:g} {kind}s; "
                f"[training] ray_workers = {settings.ray_workers} needs {amount:g}"
            )
