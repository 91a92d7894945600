"""Holders' SMS replies: reading their keywords, and acting on a reply a sender forwards.

Keywords are read after NFKC, trimming and case folding (SPEC §4, ``classify``);
``handle_reply`` acts on a holder's reply to a sender's address: an opt-out
is recorded (consent/optouts.py), a "Y" or "START" only recorded as a claim.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from registry.config import Settings
from registry.consent import claims
from registry.consent.models import CHANNELS
from registry.consent.optouts import record_optout
from registry.events.services import Actor
from registry.senders.services import SenderRef
from registry.subscribers.models import Subscriber

OPT_OUT = {"stop", "unsubscribe", "cancel", "end", "quit", "revoke", "optout", "td", "t"}
OPT_OUT_ALL = {"stopall"}
OPT_IN = {"start", "unstop"}
CONFIRM = {"y", "yes", "是", "同意", "是的", "同意的"}
HELP = {"help", "info", "帮助"}
# Chinese keywords are found inside a run of Chinese text (no spaces between words).
CJK_OPT_OUT = ("退订", "取消", "拒收")
CJK_OPT_OUT_ALL = ("全部退订", "退订全部", "全部拒收")
CJK_HELP = ("帮助",)

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*|[\u3400-\u9fff]+")
_STRIP = re.compile(r"[\s\W_]+")


def normalize(text: str) -> str:
    """Return the text as the keyword rules read it: NFKC, trimmed, case-folded."""
    return unicodedata.normalize("NFKC", text).replace("\u2019", "'").strip().casefold()


def classify(text: str) -> str:
    """Return the action a reply asks for: opt_out, opt_out_all, opt_in, confirm, help or none.

    A refusal wins over anything else in the same message ("Yes, stop" stops),
    and a confirmation must be the whole reply: consent is never inferred from
    a longer message that merely contains "yes".
    """
    norm = normalize(text)
    tokens = _TOKEN.findall(norm)
    words = set(tokens)
    cjk = "".join(t for t in tokens if not t.isascii())
    if words & OPT_OUT_ALL or any(k in cjk for k in CJK_OPT_OUT_ALL):
        return "opt_out_all"
    for a, b in itertools.pairwise(tokens):
        if a in ("stop", "unsubscribe", "optout") and b == "all":
            return "opt_out_all"
    if words & OPT_OUT or any(k in cjk for k in CJK_OPT_OUT):
        return "opt_out"
    if words & OPT_IN:
        return "opt_in"
    if _STRIP.sub("", norm) in CONFIRM:
        return "confirm"
    if words & HELP or any(k in cjk for k in CJK_HELP):
        return "help"
    return "none"


# A reference after the keyword, in a reply to the registry's own number: the
# code of a confirmation text ("Y 4821", "是4821"), a sender's port or number
# ("TD 10690001", "START +862160000001") or a sender's code ("Y acme-cards").
_DIGITS_AFTER = re.compile(r"(?P<word>.*?)[\s#:：,，]*(?P<ref>\+?[0-9]{3,20})[\s.。!！]*")
_WORD_AFTER = re.compile(r"(?P<word>\S+)\s+(?P<ref>[a-z0-9][a-z0-9_.-]{1,63})[\s.。!！]*")


def split_reference(text: str) -> tuple[str, str | None]:
    """Return (action, reference or None) of a reply to the registry's own number.

    The action is read as ``classify`` reads it, from the words before the
    reference; "STOP ALL" is STOPALL, never STOP with a reference "all".
    """
    whole = classify(text)
    if whole == "opt_out_all":
        return whole, None
    norm = normalize(text)
    for pattern in (_DIGITS_AFTER, _WORD_AFTER):
        m = pattern.fullmatch(norm)
        if m and m["word"] and (action := classify(m["word"])) not in ("none", "help"):
            return action, m["ref"]
    return whole, None


# Replies a sender's port sends back ({sender}: its name; {port}: the address
# the holder wrote to; {registry}: the registry's own number).
REPLIES = {
    "zh_CN": {
        "opt_out": "【{sender}】您已退订，我们不会再联系您。如需恢复，发送 START {port} 到 {registry}。",
        "opt_out_all": "【{sender}】您已退订本机构的全部发送方。如需拒收所有营销短信，发送 全部退订 到 {registry}。",
        "claim_confirm": "【{sender}】您的回复已记录，但同意须由您本人确认：请回复 Y 到 {registry}，或登录安宁网站。",
        "claim_opt_in": "【{sender}】您的回复已记录。如需恢复接收，请发送 START {port} 到 {registry}，或登录安宁网站。",
        "help": "【{sender}】这是 {sender} 的信息。回复 TD 退订本发送方；发送 全部退订 到 {registry} 拒收所有营销短信。",
        "none": "【{sender}】回复 TD 退订，回复 帮助 获取帮助。",
    },
    "en": {
        "opt_out": "{sender}: you are unsubscribed and will not be contacted again. To undo, text START {port} to {registry}.",
        "opt_out_all": "{sender}: you are unsubscribed from all our senders. To stop all marketing texts, text STOPALL to {registry}.",
        "claim_confirm": "{sender}: your reply is noted, but only you can confirm a consent: reply Y to {registry}, or use the Anning site.",
        "claim_opt_in": "{sender}: your reply is noted. To receive our messages again, text START {port} to {registry}, or use the Anning site.",
        "help": "{sender}: messages from {sender}. Reply STOP to opt out of this sender; text STOPALL to {registry} to stop all marketing texts.",
        "none": "{sender}: reply STOP to opt out, HELP for help.",
    },
}

# Replies from the registry's own number ({sender}: a sender's name; {ref}: a
# reference; {refs}: the pending requests, each with its reference).
REGISTRY_REPLIES = {
    "zh_CN": {
        "confirm": "【Anning】已确认：{sender} 现在可以按您同意的方式联系您。回复 TD {ref} 可随时退订。",
        "confirm_none": "【Anning】没有待您确认的请求。",
        "choose": "【Anning】您有多个待确认的请求：{refs}。请回复 Y 加编号确认，或 TD 加编号拒绝。",
        "unknown": "【Anning】没有找到“{ref}”对应的请求或发送方。请回复编号或发送方号码，例如 TD 10690001。",
        "opt_out": "【Anning】已为您退订 {sender}，它不会再向您发送营销信息。",
        "opt_out_which": "【Anning】请告诉我们退订哪个发送方：回复 TD 加编号或发送方号码；回复 全部退订 拒收所有营销短信。",
        "opt_out_all": "【Anning】已为您开启短信免打扰，所有营销短信将不再发送给您。",
        "opt_in": "【Anning】您已恢复接收 {sender} 的短信。回复 TD {ref} 可随时退订。",
        "opt_in_which": "【Anning】请告诉我们恢复哪个发送方：回复 START 加发送方号码，例如 START 10690001。",
        "help": "【Anning】安宁登记处。回复 Y 加编号确认请求；TD 加发送方号码退订一个发送方；全部退订 拒收所有营销短信。",
    },
    "en": {
        "confirm": "Anning: confirmed. {sender} may now contact you as you agreed. Reply STOP {ref} to opt out at any time.",
        "confirm_none": "Anning: there is nothing waiting for your confirmation.",
        "choose": "Anning: several requests wait for you: {refs}. Reply Y and the code to confirm one, or STOP and the code to refuse it.",
        "unknown": "Anning: we found no request or sender for \u201c{ref}\u201d. Reply with its code or the sender's number, e.g. STOP 10690001.",
        "opt_out": "Anning: you are unsubscribed from {sender}; it may no longer send you marketing.",
        "opt_out_which": "Anning: tell us which sender to stop: reply STOP and its code or number; STOPALL stops all marketing texts.",
        "opt_out_all": "Anning: do-not-disturb is on for texts; no marketing texts will be sent to you.",
        "opt_in": "Anning: you will receive texts from {sender} again. Reply STOP {ref} to opt out at any time.",
        "opt_in_which": "Anning: tell us which sender to hear from again: reply START and its number, e.g. START 10690001.",
        "help": "Anning registry. Reply Y and a code to confirm a request; STOP and a sender's number to stop one sender; STOPALL to stop all marketing texts.",
    },
}


def reply_text(action: str, language: str | None, **names: str) -> str:
    """Return the text a sender's port sends back, in the holder's language when known, else zh-CN."""
    table = REPLIES["en"] if language == "en" else REPLIES["zh_CN"]
    return table[action].format(**names)


def registry_reply(action: str, language: str | None, **names: str) -> str:
    """Return the text the registry's own number sends back, in the holder's language."""
    table = REGISTRY_REPLIES["en"] if language == "en" else REGISTRY_REPLIES["zh_CN"]
    return table[action].format(**names)


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """What an inbound SMS reply did, and the text to send back."""

    action: str
    reply: str
    consents: tuple[int, ...] = ()
    claimed: str | None = None  # the keyword a recorded claim stands for
    opted_out: tuple[str, ...] = ()  # codes of the senders the reply refused


def handle_reply(
    session: Session,
    settings: Settings,
    actor: Actor,
    sender: SenderRef,
    phone: str,
    text: str,
    received_at: datetime,
    *,
    port: str,
    reach: list[SenderRef] | None = None,
) -> ReplyOutcome:
    """Act on a holder's reply to one of a sender's addresses (SPEC §4 inbound SMS, §8).

    The sender forwards it, so only what narrows its own reach is acted on:
    an opt-out refuses the sender on every channel (a holder who texts STOP
    wants the sender to stop, not to switch to calling), STOPALL every sender
    in ``reach`` (its organization's, see ``senders.services.optout_reach``).
    A "Y" or "START" is the holder's statement about the sender that the sender
    could have made up: it is recorded as a claim (``consent.claims``) and
    activates nothing. Global do-not-disturb is never turned on from here.
    """
    action = classify(text)
    holder = session.get(Subscriber, phone)
    language = holder.language if holder is not None else None
    names = {"sender": sender.name, "port": port, "registry": settings.sms_number}
    via_sms = Actor(actor.label, "sms", actor.org_id, actor.agent_id)
    if action in ("opt_out", "opt_out_all"):
        refused = (reach or [sender]) if action == "opt_out_all" else [sender]
        for each in refused:
            record_optout(
                session, via_sms, each, phone, list(CHANNELS), "sms_reply", received_at, text
            )
        codes = tuple(each.code for each in refused)
        return ReplyOutcome(action, reply_text(action, language, **names), opted_out=codes)
    if action in ("confirm", "opt_in"):
        claims.record_claim(session, via_sms, sender, phone, action, text, port, received_at)
        return ReplyOutcome(
            "claim_recorded", reply_text(f"claim_{action}", language, **names), claimed=action
        )
    return ReplyOutcome(action, reply_text(action, language, **names))
