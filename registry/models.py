"""Import every table model so that the metadata (and Alembic) sees them all."""

from registry.checks.models import CheckBatch, CheckLog
from registry.consent.models import Consent, ConsentEvent, ConsentRequest, OptOut
from registry.numbers.models import Disconnection
from registry.orgs.models import ApiKey, Delegation, DelegationSender, Organization
from registry.senders.models import Sender, SenderAddress
from registry.sms.models import SmsMessage
from registry.subscribers.models import Subscriber

__all__ = [
    "ApiKey", "CheckBatch", "CheckLog", "Consent", "ConsentEvent", "ConsentRequest",
    "Delegation", "DelegationSender", "Disconnection", "OptOut", "Organization",
    "Sender", "SenderAddress", "SmsMessage", "Subscriber",
]  # fmt: skip
