"""What one POST to a receiver came to, as the engine, the history and the metrics see it.

Its own module so that readers of the history need not import the HTTP transport.
"""

from dataclasses import dataclass

#: Most of a response body that is read and kept (the transport never downloads the rest,
#: the history keeps no more of any body it is given).
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Outcome:
    """What one POST came to: a response (maybe partial), an error, or both.

    ``error`` is None whenever a non-3xx status was received, because the status says it
    all; otherwise it is one of ``"redirect"`` (status and headers are kept),
    ``"timeout"``, ``"connection"``, ``"tls"``, ``"refused_target"`` or
    ``"invalid_request"`` (the request itself could not be sent, e.g. a bad header value).
    """

    status: int | None
    headers: dict[str, str]
    body: bytes
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        """A 2xx received in time: the receiver has the event."""
        return self.error is None and self.status is not None and 200 <= self.status < 300
