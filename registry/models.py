"""Import every table model so that the metadata (and Alembic) sees them all."""

from registry.access.models import AddressProof, Connection
from registry.admin.models import StaffUser
from registry.audit.models import StaffAudit
from registry.checks.models import CheckBatch, CheckLog, ContactTally, FactChange
from registry.complaints.models import Complaint, ComplaintMessage, ComplaintSubmission
from registry.consent.models import Consent, ConsentKey, ConsentRequest, OptOut
from registry.events.models import Event
from registry.lookup.models import LookupLog
from registry.numbers.models import Disconnection, NumberRange
from registry.orgs.models import (
    ApiKey,
    Delegation,
    DelegationFiling,
    DelegationFilingAddress,
    DelegationSender,
    Organization,
)
from registry.sanctions.models import PublicReview, Sanction
from registry.scrubs.models import ScrubChunk, ScrubJob
from registry.senders.models import Sender, SenderAddress
from registry.sms.models import SmsMessage
from registry.stats.models import StatDaily, StatGap, StatWatermark
from registry.subscribers.models import CapExemption, HolderSession, RefusalNotice, Subscriber
from registry.sync.models import Watch, Webhook

__all__ = [
    "AddressProof",
    "ApiKey",
    "CapExemption",
    "CheckBatch",
    "CheckLog",
    "Complaint",
    "ComplaintMessage",
    "ComplaintSubmission",
    "Connection",
    "Consent",
    "ConsentKey",
    "ConsentRequest",
    "ContactTally",
    "Delegation",
    "DelegationFiling",
    "DelegationFilingAddress",
    "DelegationSender",
    "Disconnection",
    "Event",
    "FactChange",
    "HolderSession",
    "LookupLog",
    "NumberRange",
    "OptOut",
    "Organization",
    "PublicReview",
    "RefusalNotice",
    "Sanction",
    "ScrubChunk",
    "ScrubJob",
    "Sender",
    "SenderAddress",
    "SmsMessage",
    "StaffAudit",
    "StaffUser",
    "StatDaily",
    "StatGap",
    "StatWatermark",
    "Subscriber",
    "Watch",
    "Webhook",
]  # fmt: skip
