"""Errors of the backtest; each message names what is wrong and where."""

from __future__ import annotations


class BacktestError(Exception):
    """Base of every error the backtest raises on purpose."""


class BadData(BacktestError):
    """The data file or folder is missing, unreadable or lacks a needed column."""


class TooLittleHistory(BacktestError):
    """No server has enough history for one encoder window plus one horizon."""
