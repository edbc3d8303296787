"""``/docs``: the interactive API reference (Swagger UI) over ``/openapi.json``.

flask-smorest renders the page; its scripts and styles come from the ``swagger-ui-bundle``
package and are served by this app under ``/docs/assets/``, so the reference works offline
and the page fetches nothing from another host.
"""

from __future__ import annotations

from flask import Blueprint, Response, send_from_directory
from swagger_ui_bundle import swagger_ui_path

#: The page, and the prefix of its assets (flask-smorest appends the file names).
PAGE = "docs"
ASSETS = "/docs/assets/"

#: Flask config entries that make flask-smorest serve the page with our assets.
CONFIG = {
    "OPENAPI_SWAGGER_UI_PATH": PAGE,
    "OPENAPI_SWAGGER_UI_URL": ASSETS,
    "OPENAPI_SWAGGER_UI_CONFIG": {"persistAuthorization": True, "tryItOutEnabled": False},
}

assets = Blueprint("reference-assets", __name__)


@assets.get(f"{ASSETS}<path:filename>")
def asset(filename: str) -> Response:
    """One file of the Swagger UI distribution the package ships (404 for anything else)."""
    return send_from_directory(swagger_ui_path, filename, max_age=86_400)
