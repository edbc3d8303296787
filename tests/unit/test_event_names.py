"""Event type names and endpoint filters."""

import pytest

from webhooks.core.errors import InvalidInput
from webhooks.ingest.event_names import validate_filters, validate_name


@pytest.mark.parametrize("name", ["", "a..b", ".a", "a.", "a b", "a.*", "é", "x" * 201])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidInput):
        validate_name(name)


@pytest.mark.parametrize("pattern", ["*", "a*", "a.*.b", "a.**", ""])
def test_bad_filters(pattern: str) -> None:
    with pytest.raises(InvalidInput):
        validate_filters([pattern])


def test_filters_are_deduplicated_in_order() -> None:
    assert validate_filters(["b.*", "a", "b.*"]) == ["b.*", "a"]
    assert validate_name("traveller.profile-v2.updated_x") == "traveller.profile-v2.updated_x"
