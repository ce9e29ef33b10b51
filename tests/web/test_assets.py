"""The site's own files: vendored unchanged (digests), served at /static, and the API docs
pages use nothing else."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from fastapi.testclient import TestClient

from fairbill.web.assets import STATIC_DIR

from .conftest import World, enter

VENDOR_DIRS = [STATIC_DIR / "vendor", Path(__file__).parent / "vendor"]


def test_vendored_files_match_their_recorded_digests() -> None:
    for folder in VENDOR_DIRS:
        lines = (folder / "SHA256SUMS").read_text().splitlines()
        listed = set()
        for line in lines:
            digest, name = line.split(maxsplit=1)
            path = folder / name
            listed.add(path)
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, path
        present = {
            p
            for p in folder.rglob("*")
            if p.is_file() and p.name not in ("SHA256SUMS", "README.md")
        }
        assert present == listed, present ^ listed
        assert "LICENSE" in {p.name for p in present}


def test_the_docs_pages_load_only_this_servers_files(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
        assert urls, path
        for url in urls:
            assert url.startswith("/static/"), (path, url)
            assert client.get(url).status_code == 200, url
    assert "swagger-ui-bundle.js" in client.get("/docs").text
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_pages_reference_only_their_own_assets(client: TestClient, world: World) -> None:
    enter(client, world.tokens["voip"])
    page = client.get("/portal/")
    for url in re.findall(r"""(?:src|href)=["'](/static/[^"']+)["']""", page.text):
        assert client.get(url).status_code == 200, url
    assert "http://" not in page.text and "https://" not in page.text
