"""Encryption at rest of endpoint secrets, API keys and credential-like custom headers.

A database dump must not hand out the keys that let anyone forge our signatures, so those
columns hold Fernet tokens. ``WEBHOOKS_SECRET_KEY`` may list several keys: the first encrypts,
all decrypt, which lets operators rotate the key and re-encrypt at leisure.
"""

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from webhooks.core.config import get_settings
from webhooks.core.errors import ConfigurationError
from webhooks.core.redaction import is_credential_name

#: How a custom header's encrypted value is stored: an object, which no header value (always
#: a string) can be mistaken for.
_SEALED = "$encrypted"

#: :func:`seal_headers` or :func:`open_headers`.
HeaderRewrite = Callable[[Mapping[str, Any]], dict[str, Any]]


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plaintext: str) -> str:
    """Encrypt with the first configured key."""
    return _fernet(get_settings().secret_keys).encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt with any configured key."""
    try:
        return _fernet(get_settings().secret_keys).decrypt(token.encode()).decode()
    except InvalidToken:
        raise ConfigurationError(
            "a stored secret cannot be decrypted: WEBHOOKS_SECRET_KEY lacks the key it was "
            "encrypted with"
        ) from None


def seal_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """Custom headers as stored: credential-like values (``Authorization``, ``X-Auth-Token``,
    see :mod:`webhooks.core.redaction`) encrypted, the others as they are."""
    return {
        name: {_SEALED: encrypt(value)}
        if is_credential_name(name) and isinstance(value, str)
        else value
        for name, value in headers.items()
    }


def open_headers(stored: Mapping[str, Any]) -> dict[str, Any]:
    """Custom headers as sent: the inverse of :func:`seal_headers`. Values stored before
    headers were sealed are plain strings and come back as they are."""
    return {
        name: decrypt(value[_SEALED]) if isinstance(value, Mapping) else value
        for name, value in stored.items()
    }
