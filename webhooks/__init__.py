"""Self-hosted webhook dispatcher: the core library.

Producers call :func:`enqueue_event`; everything else (API, workers) is built on the plain
functions of this package, which imports neither :mod:`api` nor :mod:`workers`.
"""

from importlib.metadata import PackageNotFoundError, version

from webhooks.core.errors import WebhooksError

__version__: str
try:
    __version__ = version("webhooks-dispatcher")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

# Last: modules imported from here read __version__.
from webhooks.ingest.enqueue import enqueue_event

__all__ = ["WebhooksError", "__version__", "enqueue_event"]
