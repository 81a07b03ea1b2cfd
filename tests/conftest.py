"""Shared fixtures: a real daemon on a temporary directory, killed as a group on teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import Daemon


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[type[Daemon]]:
    """Build daemons on ``tmp_path``; every one started is killed (group) at teardown."""
    started: list[Daemon] = []

    def make(**overrides: object) -> Daemon:
        d = Daemon(tmp_path / f"d{len(started)}", overrides)
        started.append(d)
        return d

    yield make  # type: ignore[misc]
    for d in started:
        d.kill_group()


@pytest.fixture
def daemon(daemon_factory) -> Iterator[Daemon]:  # type: ignore[no-untyped-def]
    """A running daemon with all roles ready."""
    d = daemon_factory()
    d.start()
    d.wait_ready()
    yield d
