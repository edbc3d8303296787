"""Encryption at rest of endpoint secrets and API keys.

A database dump must not hand out the keys that let anyone forge our signatures, so those
columns hold Fernet tokens. ``WEBHOOKS_SECRET_KEY`` may list several keys: the first encrypts,
all decrypt, which lets operators rotate the key and re-encrypt at leisure.
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from webhooks.core.config import get_settings
from webhooks.core.errors import ConfigurationError


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
