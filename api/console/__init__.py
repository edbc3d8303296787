"""The web console and customer portal at ``/console``.

Server-rendered pages (Jinja2) over the same :mod:`webhooks` functions as the JSON API, with
no script at all: a second adapter, not a second implementation. Sign-in is with an API
token or a portal link; the session is a cookie (:mod:`api.console.blueprint`).
"""

from __future__ import annotations

from api.console import endpoints, filters, history, signin
from api.console.blueprint import bp

filters.register(bp)

__all__ = ["bp", "endpoints", "history", "signin"]
