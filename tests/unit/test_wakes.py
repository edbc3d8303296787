"""Waking an endpoint whose backlog a take parked beside another (waiting._Wakes): one
release at a time per endpoint in a process, and none asked for is lost."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from webhooks.delivery import waiting


def test_a_wake_asked_for_while_one_runs_is_folded_into_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wakes = waiting._Wakes()
    released: list[str] = []

    def release(endpoint_id: str) -> int:
        released.append(endpoint_id)
        if len(released) == 1:  # two more takes park and ask while the first release runs
            wakes.wake(endpoint_id)
            wakes.wake(endpoint_id)
            wakes.wake("ep_other")  # another endpoint's is its own
        return 0

    monkeypatch.setattr(waiting, "release_endpoint", release)
    wakes.wake("ep_1")
    # ep_1 once for the first asker, once more for the two that asked meanwhile (a release
    # that starts after they committed); the other endpoint's at once.
    assert released == ["ep_1", "ep_other", "ep_1"]
    wakes.wake("ep_1")  # nothing is left running: a later wake releases again
    assert released[-1] == "ep_1" and len(released) == 4


def test_a_wake_whose_release_fails_leaves_none_running(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweep lets go what the failed release did not; the next wake is not folded into
    one that is over."""
    wakes = waiting._Wakes()
    calls: list[str] = []

    def release(endpoint_id: str) -> int:
        calls.append(endpoint_id)
        if len(calls) == 1:
            raise ConnectionError("database gone")
        return 0

    monkeypatch.setattr(waiting, "release_endpoint", release)
    with pytest.raises(ConnectionError):
        wakes.wake("ep_1")
    wakes.wake("ep_1")
    assert calls == ["ep_1", "ep_1"]


class _PausingLock:
    """A lock that runs ``then`` once, just after the release it is armed for: the moment
    another wake may come, as a greenlet or thread switch would make it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.then: Callable[[], None] | None = None

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *_: object) -> None:
        self._lock.release()
        then, self.then = self.then, None
        if then is not None:
            then()


def test_a_wake_asked_for_as_the_running_one_ends_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The running wake decides to stop under the lock and is gone when it lets it go: a
    wake asked for right then runs a release of its own, not folded into one that is over."""
    wakes = waiting._Wakes()
    lock = _PausingLock()
    wakes._lock = lock  # type: ignore[assignment]
    released: list[str] = []

    def release(endpoint_id: str) -> int:
        released.append(endpoint_id)
        if len(released) == 1:  # the next release of the lock is the running wake's last
            lock.then = lambda: wakes.wake(endpoint_id)
        return 0

    monkeypatch.setattr(waiting, "release_endpoint", release)
    wakes.wake("ep_1")
    assert released == ["ep_1", "ep_1"]
