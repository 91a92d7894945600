"""Locale choice: the holder's remembered choice, else Accept-Language, else zh-CN."""

from __future__ import annotations

from flask import request, session

LOCALES = ("zh_CN", "en")


def select_locale() -> str:
    """Return the locale for this request."""
    chosen = session.get("lang") if request else None
    if chosen in LOCALES:
        return str(chosen)
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"]) if request else None
    if best and best.startswith("en"):
        return "en"
    return "zh_CN"
