"""etc/nordiqd.toml, the packaged configuration, is the built-in defaults written out.

When a key is added to nordiqd/config.py (or nordiqd/model/params.py) these tests fail,
naming the key, until the file lists it with its default and a comment.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from nordiqd import config

PATH = Path(__file__).resolve().parents[2] / "etc" / "nordiqd.toml"
_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=")
_SECTION_LINE = re.compile(r"^\[([A-Za-z_][A-Za-z0-9_.]*)\]\s*(#.*)?$")


def _defaults() -> dict[str, dict[str, Any]]:
    built: dict[str, dict[str, Any]] = msgspec.to_builtins(config.Config())
    return built


def _flat(d: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, keys in d.items() for key, value in keys.items()}


def test_file_lists_every_key() -> None:
    with open(PATH, "rb") as fh:
        written = _flat(tomllib.load(fh))
    expected = _flat(_defaults())
    missing = sorted(set(expected) - set(written))
    unknown = sorted(set(written) - set(expected))
    assert not missing, (
        f"{PATH.name} lacks these keys of nordiqd.config.Config; add each with its default "
        f"and a one-line comment: {', '.join(missing)}"
    )
    assert not unknown, f"{PATH.name} lists keys the daemon does not know: {', '.join(unknown)}"


def test_file_loads_and_equals_builtin_defaults() -> None:
    loaded = _flat(msgspec.to_builtins(config.load(str(PATH))))
    expected = _flat(_defaults())
    differ = [f"{k}: file {loaded[k]!r} != default {v!r}" for k, v in expected.items() if loaded.get(k) != v]
    assert not differ, f"{PATH.name} does not match the built-in defaults: " + "; ".join(differ)


def test_every_key_has_a_comment() -> None:
    lines = PATH.read_text().splitlines()
    section = ""
    bare = []
    for i, line in enumerate(lines):
        if m := _SECTION_LINE.match(line):
            section = m.group(1)
            if "." in section:
                # [alerts.warning] is the key alerts.warning written as a table: the
                # comment goes above the header, its entries are the table's items.
                above = lines[i - 1].strip() if i else ""
                if "#" not in line and not above.startswith("#"):
                    bare.append(section)
            continue
        if "." in section or not (m := _KEY_LINE.match(line)):
            continue
        above = lines[i - 1].strip() if i else ""
        if "#" not in line and not above.startswith("#"):
            bare.append(f"{section}.{m.group(1)}")
    assert not bare, f"{PATH.name}: give these keys a one-line comment: {', '.join(bare)}"


def test_packaged_paths_are_the_service_paths() -> None:
    cfg = config.load(str(PATH))
    assert (cfg.daemon.data_dir, cfg.daemon.run_dir, cfg.api.key_file) == (
        "/var/lib/nordiqd",
        "/run/nordiqd",
        "/etc/nordiqd/api_key",
    )
