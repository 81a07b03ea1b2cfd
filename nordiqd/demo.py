"""``nordiqd demo``: a private daemon under ~/.nordiqd-demo (or --dir), started in the foreground."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nordiqd import apikey
from nordiqd import config as config_mod

DEMO_CONFIG = """\
# nordiqd demo configuration, written by `nordiqd demo`.
[daemon]
data_dir = "{root}/data"
run_dir = "{root}/run"

[api]
host = "127.0.0.1"
port = {port}
key_file = "{root}/api_key"
"""


def prepare(root: Path, port: int) -> Path:
    """Create the demo folder, its config (kept if present) and key; return the config path."""
    root.mkdir(parents=True, exist_ok=True)
    cfg_path = root / "nordiqd.toml"
    if not cfg_path.exists():
        cfg_path.write_text(DEMO_CONFIG.format(root=root, port=port))
    return cfg_path


def main(root: str | None, port: int) -> int:
    """Prepare the demo folder, print how to use it, and run the daemon until Ctrl-C."""
    base = Path(root or os.path.join(Path.home(), ".nordiqd-demo")).resolve()
    cfg_path = prepare(base, port)
    try:
        cfg = config_mod.load(str(cfg_path))
    except config_mod.ConfigError as exc:
        print(f"nordiqd demo: configuration error: {exc}", file=sys.stderr)
        return 78
    key, _ = apikey.generate(cfg.api.key_file)
    url = f"http://{cfg.api.host}:{cfg.api.port}"
    print(
        f"nordiqd demo in {base}\n"
        f"  URL:      {url}\n"
        f"  API key:  {key}   (also in {cfg.api.key_file})\n"
        f"  try:      curl {url}/health\n"
        f'            curl -H "X-API-Key: {key}" {url}/status\n'
        "  stop:     Ctrl-C\n",
        flush=True,
    )
    from nordiqd.daemon import run

    return run(cfg, str(cfg_path))
