"""Consent records in the standard form: ISO/IEC TS 27560 fields, in the W3C DPV's words.

ISO/IEC TS 27560 (consent record information structure) says what a consent
record holds; the W3C Data Privacy Vocabulary (DPV) names those fields, and
its Annex A example is JSON-LD with DPV terms. This module is the one
definition of that wire format (STYLE.md, habit 12): the holder's download
(``/me/consent-records.json``) and the platforms' export (``GET
/api/v1/consents?format=dpv``) both build their records here. Every field is
described in docs/consent-records.md; the few with no DPV term carry the
``anning:`` prefix.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from registry.consent import holders
from registry.consent import services as consents
from registry.consent.models import Consent, OptOut
from registry.orgs.models import Organization
from registry.timeutil import iso

CONTEXT = {
    "dpv": "https://w3id.org/dpv#",
    "pd": "https://w3id.org/dpv/pd#",
    "loc": "https://w3id.org/dpv/loc#",
    "dct": "http://purl.org/dc/terms/",
    "anning": "https://anning.example/ns#",
}
CONFORMS_TO = "ISO/IEC TS 27560:2023"
# Consent states (SPEC §2) as DPV consent statuses.
STATUSES = {
    "pending": "dpv:ConsentRequested",
    "active": "dpv:ConsentGiven",
    "revoked": "dpv:ConsentWithdrawn",
    "expired": "dpv:ConsentExpired",
    "void": "dpv:ConsentInvalidated",
}


def _party(kind: str, identifier: str, name: str | None) -> dict[str, Any]:
    return {"@type": kind, "dct:identifier": identifier, "name": name}


def _common(
    identifier: str,
    phone: str,
    org: tuple[str, str | None],
    sender: tuple[str, str | None],
    channels: str,
    created: datetime,
) -> dict[str, Any]:
    return {
        "@type": "dpv:ConsentRecord",
        "dct:identifier": identifier,
        "dct:conformsTo": CONFORMS_TO,
        "dct:created": iso(created),
        "dpv:hasDataSubject": {"@type": "dpv:DataSubject", "dpv:hasIdentifier": phone},
        "dpv:hasDataController": _party("dpv:DataController", *org),
        "dpv:hasRecipient": _party("dpv:Recipient", *sender),
        "dpv:hasPersonalData": ["pd:TelephoneNumber"],
        "dpv:hasProcessing": ["dpv:Use"],
        "dpv:hasJurisdiction": "loc:CN",
        "anning:channels": sorted(c for c in channels.split(",") if c),
    }


def consent_record(
    consent: Consent,
    org: tuple[str, str | None],
    sender: tuple[str, str | None],
    events: list[tuple[str, datetime, str | None]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    """Return a consent as a 27560 / DPV record; ``org`` and ``sender`` are (code, name).

    ``events`` (type, time, state after it) become the record's history.
    """
    record = _common(
        f"anning:consent:{consent.id}",
        consent.phone,
        org,
        sender,
        consent.channels,
        consent.created_at,
    )
    record |= {
        "dpv:hasPurpose": {
            "@type": "dpv:DirectMarketing",
            "anning:category": consent.category,
        },
        "dpv:hasConsentStatus": STATUSES.get(consent.status, consent.status),
        "dpv:hasIndicationMethod": consent.evidence_method,
        "dpv:isIndicatedAtTime": iso(consent.evidence_captured_at),
        "dpv:hasNotice": {
            "dct:description": consent.evidence_wording,
            "dct:source": consent.evidence_reference,
            "anning:sha256": consent.evidence_sha256,
        },
        "dpv:hasExpiryTime": iso(consent.expires_at),
        "anning:history": [
            {"dct:type": type_, "dct:date": iso(at), "anning:state": state}
            for type_, at, state in events
        ],
    }
    return record


def refusal_record(
    optout: OptOut, org: tuple[str, str | None], sender: tuple[str, str | None]
) -> dict[str, Any]:
    """Return an opt-out as a 27560 / DPV record of a refused consent."""
    record = _common(
        f"anning:optout:{optout.id}",
        optout.phone,
        org,
        sender,
        optout.channels,
        optout.created_at,
    )
    ended = optout.withdrawn_at
    record |= {
        "dpv:hasPurpose": {"@type": "dpv:DirectMarketing", "anning:category": None},
        # A refusal the holder lifted, or whose chosen end came, no longer refuses.
        "dpv:hasConsentStatus": "dpv:ConsentRefused" if ended is None else "dpv:ConsentWithdrawn",
        "dpv:hasIndicationMethod": optout.source,
        "dpv:isIndicatedAtTime": iso(optout.received_at),
        "dpv:hasExpiryTime": iso(optout.expires_at),
        "anning:endedAt": iso(ended),
    }
    return record


def for_holder(session: Session, phone: str) -> list[dict[str, Any]]:
    """Return every consent and refusal of this number as 27560 / DPV records."""
    out: list[dict[str, Any]] = []
    for row in holders.for_holder(session, phone):
        sender = row["sender"]
        if sender is None:
            continue
        owner = session.get(Organization, sender.organization_id)
        org = (owner.slug, owner.name) if owner is not None else ("", None)
        named = (sender.code, sender.name)
        for consent in row["consents"]:
            history = [(e.type, e.at, e.state) for e in consents.history(session, consent.id or 0)]
            out.append(consent_record(consent, org, named, history))
        out.extend(refusal_record(optout, org, named) for optout in row["optouts"])
    return out


def document(records: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Return records as one JSON-LD document."""
    return {"@context": CONTEXT, **extra, "records": records}


def export(
    session: Session, rows: list[Consent], codes: dict[int, str], following: int | None
) -> dict[str, Any]:
    """Return a page of an organization's consents as 27560 / DPV records, with its cursor."""
    out = []
    orgs: dict[int, tuple[str, str | None]] = {}
    for consent in rows:
        if consent.organization_id not in orgs:
            owner = session.get(Organization, consent.organization_id)
            orgs[consent.organization_id] = (owner.slug, owner.name) if owner else ("", None)
        history = [(e.type, e.at, e.state) for e in consents.history(session, consent.id or 0)]
        sender = (codes[consent.sender_id], None)
        out.append(consent_record(consent, orgs[consent.organization_id], sender, history))
    return document(out, next=following)
