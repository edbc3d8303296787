"""flask-smorest's Blueprint with our JSON parser, and typed for ``mypy --strict``.

flask-smorest ships no type information, so each decorator is re-declared here with its type:
views stay type-checked instead of becoming untyped behind an untyped decorator.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, cast

import flask_smorest

from api.bodies import JSONParser

V = TypeVar("V")


class Decorator(Protocol):
    """What each decorator is: it returns the view (function or class) it was given."""

    def __call__(self, view: V, /) -> V: ...


class Blueprint(flask_smorest.Blueprint):  # type: ignore[misc]  # untyped base
    ARGUMENTS_PARSER = JSONParser()

    def route(self, rule: str, **options: Any) -> Decorator:
        return cast(Decorator, super().route(rule, **options))

    def arguments(self, schema: Any, **options: Any) -> Decorator:
        return cast(Decorator, super().arguments(schema, **options))

    def response(self, status_code: int, schema: Any = None, **options: Any) -> Decorator:
        return cast(Decorator, super().response(status_code, schema, **options))

    def alt_response(self, status_code: int, **options: Any) -> Decorator:
        return cast(Decorator, super().alt_response(status_code, **options))

    def doc(self, **options: Any) -> Decorator:
        return cast(Decorator, super().doc(**options))
