"""The ingest role: validates batches, logs them ahead, compacts them into Parquet."""

from __future__ import annotations

import os

import zmq

from nordiqd.roles.base import ServiceRole


class IngestRole(ServiceRole):
    """Owns every sample the fleet sends."""

    name = "ingest"

    def init(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        # A buffer folder that cannot be made is a fault of this role, not of the config:
        # the role fails and the supervisor's back-off decides what happens next.
        os.makedirs(self.config.buffer_dir, exist_ok=True)
        super().init(ctx)
