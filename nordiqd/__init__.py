"""nordiqd: predictive monitoring daemon for a server fleet."""

__version__ = "0.1.0"
