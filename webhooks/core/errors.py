"""The exceptions the library raises.

Producers catch :class:`WebhooksError`; the API maps each subclass to one HTTP status, so
the class says what went wrong and the message says it to a person.
"""


class WebhooksError(Exception):
    """Base of every error the library raises on purpose."""


class ConfigurationError(WebhooksError):
    """A setting is missing or malformed."""


class NotFound(WebhooksError):
    """The named tenant, endpoint, event or delivery does not exist (or is not yours)."""


class AccessDenied(WebhooksError):
    """The caller may not do this: another tenant's path, a missing scope, admins only."""


class Unauthenticated(WebhooksError):
    """The credential (token, session, portal link) is unknown, expired, used or revoked."""


class Conflict(WebhooksError):
    """The object would clash with one that exists (a duplicate uid or name)."""


class InvalidInput(WebhooksError):
    """A value is invalid; ``field`` names it when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadTooLarge(InvalidInput):
    """The event payload exceeds ``WEBHOOKS_MAX_PAYLOAD_BYTES``."""


class TargetRefused(InvalidInput):
    """An endpoint URL is not allowed: wrong scheme, credentials, or a forbidden address."""


class DatabaseUnavailable(WebhooksError):
    """The database could not be reached; nothing was stored."""


class SchemaMissing(DatabaseUnavailable):
    """The database answered but has no schema, or an older one: it needs migrating."""
