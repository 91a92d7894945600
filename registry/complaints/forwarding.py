"""Read an unwanted text the holder forwarded to the registry's own number.

People forward in the formats their phone makes easy, so the parser is
tolerant: the sender's number (port) first or last, with or without "来自" /
"from", separated by a space, a colon or a comma; full-width digits and
punctuation (NFKC); the forwarded text quoted (“…”, 「…」, "…") or not.

``parse`` returns None for what is no forward at all: a keyword reply
("TD 10690001", "Y 4821", "全部退订") is the existing reply path's business
(registry/consent/gateway.py). A text long enough to be a forwarded message
but without any sender number is a ``Forward`` with ``address`` None: the
registry keeps it as a complaint and asks for the number.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from registry.consent.replies import classify

# Shorter than this, what follows a number is a command ("10690001 TD"), not a message.
MIN_BODY = 6
_QUOTES = "\"'“”‘’「」『』《》<>«»"
_NUMBER = r"\+?\d(?:[\d -]{2,22})\d"
_LEAD = r"(?:(?:from|来自|发件人|发信人|号码|转发)\s*[:：]?\s*)?"
_SEP = r"[\s:：,，、;；|/\-—]+"
_FIRST = re.compile(rf"{_LEAD}(?P<number>{_NUMBER}){_SEP}(?P<body>.+)", re.S | re.I)
_LAST = re.compile(
    rf"(?P<body>.+?)(?:{_SEP}|(?<=[\u3000-\u303f\uff00-\uffef\u3400-\u9fff]))"
    rf"[(\[【]?{_LEAD}(?P<number>{_NUMBER})[)\]】]?[\s.。]*",
    re.S | re.I,
)


_SIGNED = re.compile(r"【[^】]{1,30}】")


@dataclass(frozen=True, slots=True)
class Forward:
    """A forwarded text: the sender's number (None when the holder gave none) and the message."""

    address: str | None
    body: str


def _unquote(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.strip(_QUOTES + " ").strip()


def _digits(number: str) -> str:
    return number.replace(" ", "").replace("-", "")


def parse(text: str) -> Forward | None:
    """Return the forward ``text`` is, or None when it is no forward (a keyword, a short word)."""
    norm = unicodedata.normalize("NFKC", text).strip()
    unquoted = _unquote(norm)
    for pattern in (_FIRST, _LAST):
        m = pattern.fullmatch(unquoted)
        if m is None:
            continue
        body = _unquote(m["body"])
        if len(body) >= MIN_BODY and len(_digits(m["number"])) <= 20:
            return Forward(_digits(m["number"]), body[:2000])
    # Without a number: a longer text that asks for nothing, or that carries the
    # 【signature】 every commercial SMS in China must (a forward, even when its
    # footer says "回T退订"); a short "退订" stays a refusal.
    if len(unquoted) >= 2 * MIN_BODY and (classify(unquoted) == "none" or _SIGNED.search(unquoted)):
        return Forward(None, unquoted[:2000])
    return None


REPLIES = {
    "zh_CN": {
        "filed": "【安宁】已收到您的投诉，编号 {ref}。处理进展请登录安宁网站查看。",
        "no_number": "【安宁】已保存您转发的短信（编号 {ref}），但未找到发送方号码。"
        "请再次转发，并在开头写上对方号码，例如：10690001 短信内容。",
        "duplicate": "【安宁】这条短信已投诉过（编号 {ref}），我们会在原投诉中处理。",
    },
    "en": {
        "filed": "Anning: complaint received, reference {ref}. Follow it on the Anning site.",
        "no_number": "Anning: we kept the text you forwarded (reference {ref}) but found no "
        "sender number in it. Forward it again with the number first, e.g. 10690001 <the text>.",
        "duplicate": "Anning: this text was already complained of ({ref}); we follow it there.",
    },
}


def reply_text(key: str, language: str | None, ref: str) -> str:
    """Return the registry's reply to a forward, in the holder's language (zh-CN by default)."""
    lang = "en" if (language or "").startswith("en") else "zh_CN"
    return REPLIES[lang][key].format(ref=ref)
