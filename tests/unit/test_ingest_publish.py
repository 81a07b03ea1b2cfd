"""The ingest role in process: a large batch reaches the predictor's SUB in bounded slices."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import zmq

from ipc import codec
from ipc import messages as m
from ipc.sockets import make_socket
from nordiqd import config
from nordiqd.buffer.batch import decode_batch
from nordiqd.roles.ingest import PUBLISH_RECORDS, IngestRole


def test_a_large_batch_is_published_in_slices_of_at_most_publish_records(tmp_path: Path) -> None:
    cfg = config.from_dict(
        {"daemon": {"data_dir": str(tmp_path / "data"), "run_dir": str(tmp_path / "run")}}, "test"
    )
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    role = IngestRole(cfg)
    role.init(ctx)
    sub = make_socket(ctx, zmq.SUB, connect=cfg.endpoint("ingest_publish"))
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    try:
        now = time.time() - 3600
        records = [{"timestamp": now + i // 1000, "server_name": f"web-{i % 1000:04d}"} for i in range(12000)]
        time.sleep(0.3)  # the SUB's connection is made before the publish
        ack = role.handle(m.IngestBatch(format="msgpack", body=msgspec.msgpack.encode({"records": records})))
        assert isinstance(ack, m.IngestAck) and ack.accepted == 12_000
        sizes, seqs = [], set()
        while sub.poll(2000):
            event = codec.publish.decode(sub.recv())
            assert isinstance(event, m.AcceptedBatch)
            table = decode_batch(event.arrow)
            assert table.num_rows == event.records
            sizes.append(event.records)
            seqs.add(event.seq)
            if sum(sizes) == 12_000:
                break
        assert sizes == [PUBLISH_RECORDS, PUBLISH_RECORDS, 12_000 - 2 * PUBLISH_RECORDS] and seqs == {ack.seq}
    finally:
        sub.close(0)
        role.close()
        role.service.close(0)
        role.pub.close(0)
        ctx.term()
