"""The trainer role: one training job at a time, each in a fresh subprocess."""

from __future__ import annotations

from nordiqd.roles.base import ServiceRole


class TrainerRole(ServiceRole):
    """Owns the training-job queue and history."""

    name = "trainer"
