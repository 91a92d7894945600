"""Import every table model so that the metadata (and Alembic) sees them all."""

from registry.checks.models import CheckBatch, CheckLog
from registry.consent.models import Consent, ConsentRequest, OptOut
from registry.events.models import Event
from registry.numbers.models import Disconnection
from registry.orgs.models import ApiKey, Delegation, DelegationSender, Organization
from registry.senders.models import Sender, SenderAddress
from registry.sms.models import SmsMessage
from registry.subscribers.models import Subscriber
from registry.sync.models import Watch, Webhook

__all__ = [
    "ApiKey",
    "CheckBatch",
    "CheckLog",
    "Consent",
    "ConsentRequest",
    "Delegation",
    "DelegationSender",
    "Disconnection",
    "Event",
    "OptOut",
    "Organization",
    "Sender",
    "SenderAddress",
    "SmsMessage",
    "Subscriber",
    "Watch",
    "Webhook",
]  # fmt: skip
