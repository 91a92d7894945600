"""Reading holders' SMS replies: keywords after NFKC, trimming and case folding (SPEC §4)."""

from __future__ import annotations

import itertools
import re
import unicodedata

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


REPLIES = {
    "zh_CN": {
        "opt_out": "【{sender}】您已退订，我们不会再联系您。如需恢复，回复 START。",
        "opt_out_all": "【Anning】已为您开启短信免打扰，所有营销短信将不再发送给您。",
        "opt_in": "【{sender}】您已恢复接收我们的信息。回复 TD 可随时退订。",
        "confirm": "【{sender}】感谢确认，您的同意已生效。回复 TD 可随时退订。",
        "confirm_none": "【{sender}】没有待确认的请求。回复 TD 可退订。",
        "help": "【{sender}】这是 {sender} 的信息。回复 TD 退订本发送方，回复 全部退订 拒收所有营销短信。",
        "none": "【{sender}】回复 TD 退订，回复 帮助 获取帮助。",
    },
    "en": {
        "opt_out": "{sender}: you are unsubscribed and will not be contacted again. Reply START to undo.",
        "opt_out_all": "Anning: do-not-disturb is on for texts; no marketing texts will be sent to you.",
        "opt_in": "{sender}: you will receive our messages again. Reply STOP to opt out at any time.",
        "confirm": "{sender}: thank you, your consent is now active. Reply STOP to opt out at any time.",
        "confirm_none": "{sender}: there is nothing to confirm. Reply STOP to opt out.",
        "help": "{sender}: messages from {sender}. Reply STOP to opt out of this sender, STOPALL to stop all marketing texts.",
        "none": "{sender}: reply STOP to opt out, HELP for help.",
    },
}


def reply_text(action: str, sender_name: str, language: str | None) -> str:
    """Return the text to send back, in the holder's language when known, else zh-CN."""
    table = REPLIES["en"] if language == "en" else REPLIES["zh_CN"]
    return table[action].format(sender=sender_name)
