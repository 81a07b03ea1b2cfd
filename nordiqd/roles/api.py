"""The api role: the Falcon app on waitress, in its own process.

How it runs: ``init()`` reads the key (refusing a key file readable by others), builds
the app and starts waitress on a thread; the runner's loop only ticks. How it stops:
``close()`` closes the listening socket; in-flight requests are finished by waitress's
threads until the process exits.
"""

from __future__ import annotations

import logging
import os
import threading

import waitress
import zmq

from nordiqd import apikey
from nordiqd.api.app import Deps, create_app
from nordiqd.api.backends import ZmqBackends
from nordiqd.config import applying
from nordiqd.roles.base import Role

log = logging.getLogger(__name__)


class ApiRole(Role):
    """Serves the REST API on ``[api] host:port``."""

    name = "api"

    def init(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        super().init(ctx)
        cfg = self.config.api
        # The api sends bytes the predictor already built; when the CPU is short, the
        # predictor's forecast pass (a swap answering) and ingest come first. Threads
        # started from here on (waitress, the fleet follower) inherit it.
        os.nice(cfg.nice)
        deps = Deps(
            api_key=apikey.read(cfg.key_file),
            backends=ZmqBackends(ctx, self.config),
            max_body_bytes=int(cfg.max_body_mb * 1024 * 1024),
            default_epochs=self.config.training.default_epochs,
            data_dir=self.config.daemon.data_dir,
            disk_warn_bytes=self.config.daemon.disk_free_warn_mb << 20,
            metrics=tuple(self.config.schema.metrics),
            targets=self.config.model.targets,
            max_batch_records=self.config.buffer.max_batch_records,
            max_future_s=self.config.buffer.max_future_s,
        )
        # An address that cannot be listened on (not this machine's, an unknown host) is
        # for the operator to change: exit 78, named, rather than a restart loop.
        with applying("api.host", "api.port", catch=(OSError,)):
            self._server = waitress.create_server(
                create_app(deps),
                host=cfg.host,
                port=cfg.port,
                threads=cfg.threads,
                max_request_body_size=deps.max_body_bytes + 1024 * 1024,  # our JSON 413 first
                ident="nordiqd",
                channel_timeout=max(30, int(cfg.request_timeout_s * 3)),
            )
        self._thread = threading.Thread(target=self._server.run, name="waitress", daemon=True)
        self._thread.start()
        log.info("REST API listening on http://%s:%d", cfg.host, cfg.port)

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.close()
