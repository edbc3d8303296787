"""The one rule for what is a credential, and how it is masked wherever it might be shown.

Logs, the execution history, API responses and metrics all show requests the dispatcher made
on a tenant's behalf, and users put credentials in them: a signing secret, an API key, an
``Authorization`` or ``X-Auth-Token`` custom header, a Slack-style URL whose query is the
token. Each place asks this module instead of keeping its own list, so that a credential
masked in the history is masked in the logs too.

The rule, by header (or field) name: ``Authorization`` and ``Cookie`` (with their ``Proxy-``
and ``Set-`` forms), and every name containing ``token``, ``key``, ``secret``, ``password``,
``credential`` or ``signature``, except identifiers of them (``token_id``). In URLs every
query value is masked (the names stay, they help debugging).
In free text (exception messages, log lines) the recognisable shapes are masked: bearer
tokens, Standard Webhooks signatures, ``whsec_`` secrets, ``Name: value`` pairs of the names
above and URL query values.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"

_CREDENTIAL_NAME = re.compile(
    r"authorization|cookie|token|key|secret|password|passwd|signature|credential", re.IGNORECASE
)

#: What a credential-like name looks like inside free text (``x-auth-token``, ``api_key``).
_NAME_IN_TEXT = r"[\w-]*(?:authorization|cookie|token|key|secret|password|passwd|signature)[\w-]*"

#: Secret-looking values inside free text, masked in this order.
_SECRET_TEXT: tuple[tuple[re.Pattern[str], str], ...] = (
    # The database's own echo of the data in an error (``DETAIL: Key (x)=(...)``, ``CONTEXT:
    # JSON data, line 1: ...``) and SQLAlchemy's bound parameters: payloads and headers.
    (re.compile(r"^(DETAIL|CONTEXT):.*$", re.MULTILINE), r"\1: " + REDACTED),
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: " + REDACTED + "]"),
    # Bearer/Basic credentials (first: the name rule below would mask only the scheme word).
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer " + REDACTED),
    (re.compile(r"(?i)\bbasic\s+[A-Za-z0-9+/]{8,}=*"), "Basic " + REDACTED),
    # Standard Webhooks signatures (``v1,<base64>``, ``v1a,<base64>``), one or several.
    (re.compile(r"\bv1a?,[A-Za-z0-9+/=]{20,}"), "v1," + REDACTED),
    # Signing secrets and ed25519 private keys.
    (re.compile(r"\b(whsec|whsk)_[A-Za-z0-9+/=_-]+"), r"\1_" + REDACTED),
    # ``Name: value``, ``'name': 'value'`` or ``name=value`` for credential-like names.
    (
        re.compile(
            rf"""(?P<key>["']?{_NAME_IN_TEXT}["']?\s*[:=]\s*)(?P<quote>["']?)"""
            r"""(?!(?:Bearer|Basic) |\[redacted\])[^"',}&\s]+""",
            re.IGNORECASE,
        ),
        r"\g<key>\g<quote>" + REDACTED,
    ),
    # Query values of URLs: ``?sig=abc&x=1`` becomes ``?sig=[redacted]&x=[redacted]``.
    (
        re.compile(r"(?<=[?&])(?P<name>[^=&#\s\"'?]+)=(?!\[redacted\])[^&#\s\"',}]*"),
        r"\g<name>=" + REDACTED,
    ),
)


#: ``token_id``, ``key-id``: the name of a credential, not the credential.
_IDENTIFIER = re.compile(r"[_-]ids?$", re.IGNORECASE)


def is_credential_name(name: str) -> bool:
    """Whether a header, field or extra called ``name`` carries a credential."""
    return bool(_CREDENTIAL_NAME.search(name)) and not _IDENTIFIER.search(name)


def mask_headers(headers: Mapping[str, str], hidden: Iterable[str] = ()) -> dict[str, str]:
    """``headers`` with credential-like values (and those named in ``hidden``) masked."""
    also = {name.lower() for name in hidden}
    return {
        name: REDACTED if name.lower() in also or is_credential_name(name) else value
        for name, value in headers.items()
    }


def mask_url(url: str) -> str:
    """``url`` with every query value masked; the rest, query names included, as it was."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return redact_text(url)
    if not parts.query:
        return url
    masked = "&".join(
        f"{pair.partition('=')[0]}={REDACTED}" if "=" in pair else pair
        for pair in parts.query.split("&")
    )
    return urllib.parse.urlunsplit(parts._replace(query=masked))


def redact_text(text: str) -> str:
    """Free text with every recognisable credential masked."""
    for pattern, replacement in _SECRET_TEXT:
        text = pattern.sub(replacement, text)
    return text


def mask_value(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` (mappings, sequences, text) with credentials masked throughout.

    A mapping entry under a credential-like key is masked whatever it holds; text anywhere
    else goes through :func:`redact_text`. Deeper than a log line would sensibly nest, the
    rest is masked as a whole rather than walked.
    """
    if depth > 16:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and is_credential_name(key) and item is not None
            else mask_value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [mask_value(item, depth + 1) for item in value]
    return value
