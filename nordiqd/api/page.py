"""The fleet page: ``GET /`` and ``GET /static/{name}``, served from the package's ``static/``.

The files are read once, when the app is built: the set of names that can be served is
fixed then, so a request can only ever name one of them (no path is joined with user
input, hence no directory traversal). Each answer carries an ETag and ``Cache-Control:
no-cache``, so a browser revalidates cheaply and never runs a stale script after an
upgrade. The page itself is public; the data calls it makes carry the API key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import falcon

STATIC_PREFIX = "/static/"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}

# The page only talks to its own origin: no CDN, no web fonts, no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True)
class Asset:
    """One static file: its bytes, content type and entity tag."""

    body: bytes
    content_type: str
    etag: str


def load_assets(package: str = "nordiqd", folder: str = "static") -> dict[str, Asset]:
    """Every regular file directly in ``package/folder``, by file name."""
    assets: dict[str, Asset] = {}
    root = resources.files(package).joinpath(folder)
    if not root.is_dir():
        return assets
    for entry in root.iterdir():
        if not entry.is_file() or entry.name.startswith("."):
            continue
        body = entry.read_bytes()
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        assets[entry.name] = Asset(
            body=body,
            content_type=CONTENT_TYPES.get(suffix, "application/octet-stream"),
            etag=hashlib.sha256(body).hexdigest()[:32],
        )
    return assets


ASSETS = load_assets()

# For the auth middleware: exactly the paths that exist, nothing under a pattern.
PUBLIC_PATHS = frozenset({"/", *(STATIC_PREFIX + name for name in ASSETS)})
# For /openapi.json: the names that can be asked for and the types they come as.
NAME_SCHEMA = {"type": "string", "enum": sorted(ASSETS)}
MEDIA_TYPES = tuple(sorted({asset.content_type for asset in ASSETS.values()}))


def _serve(req: falcon.Request, resp: falcon.Response, asset: Asset) -> None:
    resp.etag = asset.etag
    resp.cache_control = ["no-cache"]
    if req.if_none_match and any(tag == asset.etag for tag in req.if_none_match):
        # Not modified: no body, hence no Content-Type either.
        resp.status = falcon.HTTP_304
        return
    resp.content_type = asset.content_type
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.data = asset.body


class Index:
    """GET /: the fleet page (``static/index.html``)."""

    def __init__(self, assets: dict[str, Asset]) -> None:
        self._asset = assets.get("index.html")

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._asset is None:
            raise falcon.HTTPNotFound(description="the fleet page is not installed")
        _serve(req, resp, self._asset)
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("Referrer-Policy", "no-referrer")

    on_head = on_get


class Static:
    """GET /static/{name}: one of the page's files, looked up by name among those loaded."""

    def __init__(self, assets: dict[str, Asset]) -> None:
        self._assets = assets

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        asset = self._assets.get(name)
        if asset is None:
            raise falcon.HTTPNotFound(description=f"no such file: {STATIC_PREFIX}{name}")
        _serve(req, resp, asset)

    on_head = on_get
