"""Compaction steps on one day's files: tier merges, closing, deleting, crash repair.

Each step leaves the day readable at every instant: a merged file is published (temp
name, fsync, rename, fsync folder) before its inputs are unlinked, and its footer names
those inputs, so ``repair_day`` can finish the job after a crash in between.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from nordiqd.durable import fsync_dir

from .layout import BufferLayout, day_name, file_info, file_metadata
from .merge import merge_files

__all__ = ["close_day", "delete_day", "merge_tiers", "remove_dir", "repair_day", "seq_of"]

log = logging.getLogger(__name__)


def merge_tiers(
    layout: BufferLayout,
    schema: pa.Schema,
    day: int,
    fanout: int,
    between: Callable[[], object] = lambda: None,
) -> int:
    """Merges ``fanout`` parts of a level into one of the next, while any level is full.

    ``between`` runs before each merge (the store flushes there when a flush is due).

    Returns:
        The number of merges done.
    """
    merges = 0
    while True:
        if merges:
            between()
        parts = layout.parts(day)
        levels = sorted({p.level for p in parts})
        full = next((lv for lv in levels if sum(p.level == lv for p in parts) >= fanout), None)
        if full is None:
            return merges
        inputs = [p for p in parts if p.level == full]
        dest = layout.part_path(day, full + 1, max(p.seq for p in inputs))
        merge_into(layout, schema, day, [p.path for p in inputs], dest)
        merges += 1


def close_day(layout: BufferLayout, schema: pa.Schema, day: int) -> Path:
    """Merges a day's parts (and its existing file, first) into its daily file."""
    final = layout.final_path(day)
    inputs = [p.path for p in layout.parts(day)]
    merge_into(layout, schema, day, ([final] if final.exists() else []) + inputs, final)
    remove_dir(layout.part_dir(day))
    log.info("closed %s", final.name)
    return final


def merge_into(layout: BufferLayout, schema: pa.Schema, day: int, inputs: list[Path], dest: Path) -> None:
    """Merges ``inputs`` (oldest first) into ``dest``, then deletes the inputs."""
    infos = [file_info(p) for p in inputs]
    marks: dict[str, int] = {}
    for info in infos:
        for server, latest in info.server_max.items():
            marks[server] = max(latest, marks.get(server, latest))
    parts = [p.name for p in inputs if p.parent != layout.root]
    meta = file_metadata(parts, marks, max((i.wal_before for i in infos), default=0))
    merge_files(inputs, dest, schema, meta)
    # dest's footer names its inputs: a crash before these unlinks is repaired on open.
    for path in inputs:
        if path != dest:
            path.unlink(missing_ok=True)
    fsync_dir(layout.part_dir(day) if layout.part_dir(day).exists() else layout.root)


def delete_day(layout: BufferLayout, day: int) -> None:
    """Deletes a day's file and parts (retention)."""
    layout.final_path(day).unlink(missing_ok=True)
    remove_dir(layout.part_dir(day))
    fsync_dir(layout.root)


def repair_day(layout: BufferLayout, day: int) -> tuple[int, dict[str, int] | None]:
    """Deletes parts that a later file already replaced; rebuilds the day's marks.

    Returns:
        The highest part sequence number the day mentions (so new parts never reuse
        a name a footer lists), and the per-server latest timestamps stored in parts
        for an open day (None when the day has its daily file: it is closed).
    """
    parts = layout.parts(day)
    infos = {p.path.name: file_info(p.path) for p in parts}
    final = layout.final_path(day)
    replaced = set(file_info(final).replaces) if final.exists() else set()
    for info in infos.values():
        replaced |= info.replaces
    marks: dict[str, int] = {}
    for part in parts:
        if part.path.name in replaced:
            log.warning("removing %s/%s, already merged", day_name(day), part.path.name)
            part.path.unlink()
            continue
        for server, latest in infos[part.path.name].server_max.items():
            marks[server] = max(latest, marks.get(server, latest))
    seq = max([0, *(p.seq for p in parts), *(seq_of(n) for n in replaced)])
    return seq, (None if final.exists() else marks)


def seq_of(part_name: str) -> int:
    """Returns the sequence number in a part's name (0 when it is not a part name)."""
    try:
        return int(part_name.split("-")[1].split(".")[0])
    except (IndexError, ValueError):
        return 0


def remove_dir(folder: Path) -> None:
    """Removes a folder and makes its removal durable."""
    if folder.exists():
        shutil.rmtree(folder)
        fsync_dir(folder.parent)
