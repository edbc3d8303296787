"""Ids sort by creation time, which keyset pagination relies on."""

from webhooks.core.ids import new_id, ulid


def test_ulids_sort_by_time_and_are_unique() -> None:
    earlier, later = ulid(1_700_000_000_000), ulid(1_700_000_000_001)
    assert len(earlier) == 26 and earlier < later
    assert len({new_id("evt") for _ in range(10_000)}) == 10_000


def test_prefix() -> None:
    assert new_id("ep").startswith("ep_")
