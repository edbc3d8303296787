"""The producer side of the broker and the dead-letter hook: configuration, not traffic."""

from __future__ import annotations

import pytest

from webhooks.broker import publishing as broker
from webhooks.broker.publishing import DeliveryRef, celery_config
from webhooks.core.errors import ConfigurationError
from webhooks.delivery.dead_letter import load_handler


def test_queues_and_routes() -> None:
    config = celery_config("redis://127.0.0.1:6379/0")
    assert set(config["task_queues"]) == {"deliveries", "retries", "dead_letter", "sweep"}
    assert config["task_routes"]["webhooks.deliver"] == {"queue": "deliveries"}
    assert config["task_routes"]["webhooks.dead_letter"] == {"queue": "dead_letter"}
    assert config["task_serializer"] == "json" and config["accept_content"] == ["json"]


def test_the_sweep_waits_behind_no_delivery_and_outlives_a_busy_minute() -> None:
    """A retry storm fills ``retries``; the sweep, on a queue of its own, still runs."""
    from workers.app import SWEEP_EXPIRES, SWEEP_INTERVAL, app

    assert celery_config("redis://127.0.0.1:6379/0")["task_routes"]["webhooks.sweep"] == {
        "queue": "sweep"
    }
    sweep = app.conf.beat_schedule["sweep"]
    assert sweep["options"]["expires"] == max(SWEEP_EXPIRES, SWEEP_INTERVAL)
    assert SWEEP_EXPIRES >= 60  # a minute of a busy worker: not one sweep interval
    assert "queue" not in sweep["options"]  # routed by the task's name, as the producer does


def test_redis_visibility_timeout_outlasts_every_countdown() -> None:
    options = celery_config("redis://127.0.0.1:6379/0")["broker_transport_options"]
    assert options["visibility_timeout"] >= 3600 > broker.MAX_COUNTDOWN


def test_other_brokers_get_no_redis_options() -> None:
    assert "broker_transport_options" not in celery_config("sqla+sqlite:///var/broker.sqlite3")


def test_first_attempts_and_retries_use_separate_queues() -> None:
    assert DeliveryRef("d", "e", "t", attempts=0).queue == "deliveries"
    assert DeliveryRef("d", "e", "t", attempts=2).queue == "retries"


def test_a_slot_holder_rides_the_retries_queue() -> None:
    """Not behind the rest of its endpoint's backlog, queued on ``deliveries``."""
    assert DeliveryRef("d", "e", "t", attempts=0, delay=0.5, admitted=True).queue == "retries"


def test_dead_letter_handler_is_imported_once() -> None:
    handler = load_handler("json:dumps")
    assert handler is load_handler("json:dumps")


@pytest.mark.parametrize("spec", ["json", "json:nope", "no_such_module:f", ":f", "json:__doc__"])
def test_bad_dead_letter_handler_is_a_configuration_error(spec: str) -> None:
    with pytest.raises(ConfigurationError, match="WEBHOOKS_DEAD_LETTER_HANDLER"):
        load_handler(spec)


class _BrokenRelease:
    """A producer whose release fails, after its one message was handed over."""

    def send_task(self, *args: object, **kwargs: object) -> None:
        return None

    def producer_or_acquire(self) -> _BrokenRelease:
        return self

    def __enter__(self) -> _BrokenRelease:
        return self

    def __exit__(self, *exc: object) -> None:
        raise ConnectionError("connection reset while releasing the producer")


def test_a_failed_single_publish_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(broker, "celery_app", _BrokenRelease)
    ref = DeliveryRef("dlv_1", "ep_1", "booking.created")
    broker.publish([ref])
    [record] = [r for r in caplog.records if r.name == "webhooks.broker"]
    assert "dlv_1" in record.getMessage() and record.exc_info is not None
