"""``/docs``: an interactive API reference whose every asset the app serves itself."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask.testing import FlaskClient


def test_docs_page_loads_the_generated_document_with_local_assets(client: FlaskClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'url: "/openapi.json"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {asset.rsplit("/", 1)[-1] for asset in assets} == {
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    }
    for asset in assets:
        parts = urlsplit(asset)
        assert not parts.scheme and not parts.netloc, f"{asset} is fetched from another host"
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.get_data()) > 1000
    assert client.get("/docs/assets/swagger-ui-bundle.js").mimetype in (
        "application/javascript",
        "text/javascript",
    )
    # Only the package's files: no way out of its directory.
    missing = client.get("/docs/assets/../../../../etc/passwd")
    assert missing.status_code == 404
    assert missing.mimetype == "application/problem+json"


def test_the_document_itself_is_still_served(client: FlaskClient) -> None:
    document = client.get("/openapi.json").get_json()
    assert document["info"]["title"] == "webhooks" and "/v1/tenants" in document["paths"]
