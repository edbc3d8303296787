"""The management API: ``gunicorn 'api:create_app()'``.

A thin adapter over :mod:`webhooks`: flask-smorest blueprints, one per resource, whose
marshmallow schemas both validate requests and generate the OpenAPI document at
``/openapi.json``.
"""

from __future__ import annotations

from typing import Any

import flask_smorest
from flask import Flask

from api import auth, bodies, db, errors, reference
from api.console import bp as console_bp
from api.converters import CONVERTERS
from api.deliveries import blp as deliveries_blp
from api.endpoints import blp as endpoints_blp
from api.endpoints.attempts import blp as endpoint_attempts_blp
from api.endpoints.ping import blp as ping_blp
from api.endpoints.recovery import blp as recovery_blp
from api.endpoints.secrets import blp as secrets_blp
from api.endpoints.stats import blp as endpoint_stats_blp
from api.event_types import blp as event_types_blp
from api.events import blp as events_blp
from api.fields import Timestamp
from api.health import blp as health_blp
from api.metrics import blp as metrics_blp
from api.portal_links import blp as portal_links_blp
from api.tenants import blp as tenants_blp
from api.tokens import blp as tokens_blp
from webhooks import __version__
from webhooks.core.config import get_settings
from webhooks.core.logs import configure_logging

#: Room for the rest of a request around the largest event payload.
BODY_HEADROOM = 64 * 1024

BLUEPRINTS = (
    health_blp,
    metrics_blp,
    tenants_blp,
    tokens_blp,
    event_types_blp,
    endpoints_blp,
    secrets_blp,
    ping_blp,
    events_blp,
    deliveries_blp,
    endpoint_attempts_blp,
    recovery_blp,
    endpoint_stats_blp,
    portal_links_blp,
)


class _Api(flask_smorest.Api):  # type: ignore[misc]  # untyped base
    """flask-smorest's Api documenting errors as the problem details they are."""

    ERROR_SCHEMA = errors.ProblemSchema

    def _register_responses(self) -> None:
        # The shared error responses take the default content type, as successes do later.
        self.DEFAULT_RESPONSE_CONTENT_TYPE = errors.PROBLEM_JSON
        try:
            super()._register_responses()
        finally:
            del self.DEFAULT_RESPONSE_CONTENT_TYPE  # the class's application/json again


def create_app(settings_overrides: dict[str, Any] | None = None) -> Flask:
    """Build the WSGI app; ``settings_overrides`` are Flask config entries, applied last.

    The service's own settings come from the environment
    (:func:`webhooks.core.config.get_settings`).
    """
    configure_logging(get_settings())
    app = Flask(__name__)
    app.config.update(
        API_TITLE="webhooks",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"security": [{"bearerAuth": []}]},
        MAX_CONTENT_LENGTH=get_settings().max_payload_bytes + BODY_HEADROOM,
        **reference.CONFIG,
    )
    app.config.update(settings_overrides or {})
    api = _Api(app)
    api.spec.components.security_scheme("bearerAuth", auth.SECURITY_SCHEME)
    api.register_field(Timestamp, "string", "date-time")
    for name, converter in CONVERTERS.items():
        app.url_map.converters[name] = converter
        api.register_converter(converter, converter.doc)
    errors.register(app)
    db.init_app(app)
    app.before_request(auth.authenticate)
    app.before_request(bodies.require_json)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    app.register_blueprint(console_bp)  # HTML, so not in the OpenAPI document
    app.register_blueprint(reference.assets)
    return app
