"""The API key file: generated once, readable only by its owner (and group), never by others."""

from __future__ import annotations

import os
import secrets
import stat

from nordiqd.config import ConfigError


def generate(path: str) -> tuple[str, bool]:
    """Create ``path`` with a new key (mode 0600) unless it exists; return (key, created)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    key = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read(path), False
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return key, True


def read(path: str) -> str:
    """Read the key; raise ``ConfigError`` when it is missing, empty or readable by others."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(
            f"API key file {path} does not exist (key 'api.key_file'); create it with "
            "'nordiqd keygen -c CONFIG'"
        ) from None
    if st.st_mode & (stat.S_IROTH | stat.S_IWOTH):
        raise ConfigError(
            f"API key file {path} is readable or writable by others "
            f"(mode {stat.S_IMODE(st.st_mode):04o}); run 'chmod 600 {path}' (or 640 with a trusted group)"
        )
    try:
        with open(path) as fh:
            key = fh.read().strip()
    except PermissionError:
        raise ConfigError(f"API key file {path}: permission denied for uid {os.getuid()}") from None
    if len(key) < 16:
        raise ConfigError(f"API key file {path} holds no usable key (at least 16 characters)")
    return key
