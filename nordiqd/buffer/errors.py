"""Errors raised by the durable buffer.

The hierarchy is small on purpose: the ingest role maps ``BatchTooLarge`` to 413, any
other ``BatchRejected`` to 400, ``DiskFull`` to 507, and everything else under
``DataBufferError`` to 500.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "BatchRejected",
    "BatchTooLarge",
    "DataBufferError",
    "DiskFull",
    "RecordProblem",
    "StoreClosed",
]


class RecordProblem(msgspec.Struct, frozen=True):
    """One reason a batch was rejected.

    Attributes:
        index: Position of the offending record in the batch, or None for a problem
            with the batch as a whole (malformed body, empty, too many records).
        field: Name of the offending field, or None when no single field is to blame.
        message: One sentence a person can act on.
    """

    index: int | None
    field: str | None
    message: str


class DataBufferError(Exception):
    """Base class of every error the buffer package raises on purpose."""


class BatchRejected(DataBufferError):
    """A batch failed validation; nothing of it was written.

    Attributes:
        problems: The problems found, in record order, at most ``MAX_PROBLEMS`` of them.
        total: How many problems were found in all (``total - len(problems)`` were
            left out of the list to keep error replies small).
    """

    MAX_PROBLEMS = 100

    def __init__(self, problems: list[RecordProblem], total: int | None = None) -> None:
        self.problems = problems[: self.MAX_PROBLEMS]
        self.total = len(problems) if total is None else total
        super().__init__(self._summary())

    def _summary(self) -> str:
        first = self.problems[0] if self.problems else None
        if first is None:
            return "batch rejected"
        where = "batch" if first.index is None else f"record {first.index}"
        if first.field is not None:
            where += f", field {first.field!r}"
        more = self.total - 1
        tail = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
        return f"batch rejected: {where}: {first.message}{tail}"

    def to_dict(self) -> dict[str, object]:
        """Returns the JSON-ready error body the REST and zmq replies carry."""
        return {
            "success": False,
            "error": str(self),
            "problems": [msgspec.structs.asdict(p) for p in self.problems],
            "problem_count": self.total,
        }


class BatchTooLarge(BatchRejected):
    """A batch holds more records than ``max_batch_records`` (HTTP 413)."""


class StoreClosed(DataBufferError):
    """The store was used after ``close()``."""


class DiskFull(DataBufferError):
    """The disk refused a write: the batch was not logged, and nothing of it is left.

    Attributes:
        path: The folder that could not be written (the write-ahead log's).
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
