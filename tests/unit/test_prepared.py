"""How a statement with named parameters becomes PREPARE and EXECUTE text."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from webhooks.core.prepared import PreparedStatement, generic
from webhooks.models import Attempt


def test_parameters_become_positions_in_declared_order() -> None:
    statement = PreparedStatement(
        "probe",
        "SELECT CAST(:b AS text), :a::int, :b || 'x' WHERE t.c = :a",
        (("a", "integer"), ("b", "text")),
    )
    assert statement._prepare == (
        "PREPARE probe (integer, text) AS "
        "SELECT CAST($2 AS text), $1::int, $2 || 'x' WHERE t.c = $1"
    )
    assert statement._execute == "EXECUTE probe (%(a)s, %(b)s)"


@pytest.mark.parametrize(
    "declared",
    [(("a", "integer"),), (("a", "integer"), ("b", "text"), ("c", "text"))],
)
def test_a_parameter_missing_or_extra_is_an_error_at_import(
    declared: tuple[tuple[str, str], ...],
) -> None:
    with pytest.raises(ValueError, match="probe: parameters"):
        PreparedStatement("probe", "SELECT :a, :b", declared)


def test_a_generic_plan_is_postgres_only_elsewhere_the_query_runs_as_it_is() -> None:
    query = select(Attempt).where(Attempt.endpoint_id == "ep_1")
    with Session(create_engine("sqlite://")) as session:
        assert generic(session, query) is query
