"""The ORM model, one module per table."""

from webhooks.models.attempt import Attempt
from webhooks.models.attempt_hour import AttemptHour
from webhooks.models.base import Base
from webhooks.models.console_session import ConsoleSession
from webhooks.models.delivery import OPEN_STATUSES, Delivery, DeliveryStatus, Hold
from webhooks.models.endpoint import Endpoint
from webhooks.models.event import Event
from webhooks.models.event_type import EventType
from webhooks.models.portal_link import PortalLink
from webhooks.models.rolled_up_hour import RolledUpHour
from webhooks.models.tenant import Tenant
from webhooks.models.token import ApiToken

__all__ = [
    "OPEN_STATUSES",
    "ApiToken",
    "Attempt",
    "AttemptHour",
    "Base",
    "ConsoleSession",
    "Delivery",
    "DeliveryStatus",
    "Endpoint",
    "Event",
    "EventType",
    "Hold",
    "PortalLink",
    "RolledUpHour",
    "Tenant",
]
