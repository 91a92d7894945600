"""Sector desks: which regulator handles complaints about which industries.

A complaint whose sender's category falls in a sector is referred to that
sector's desk (the staff accounts with ``StaffUser.sector``), which answers in
the complaint's own thread. The table is the one place the mapping lives.
"""

from __future__ import annotations

# sector -> the sender categories (registry/senders/models.py CATEGORIES) it covers
SECTORS: dict[str, tuple[str, ...]] = {
    "financial": ("finance", "insurance"),
    "housing": ("real_estate",),
    "health": ("health",),
    "education": ("education",),
    "employment": ("employment",),
    "travel": ("travel",),
}


def sector_of(category: str | None) -> str | None:
    """Return the sector whose desk handles a sender of ``category``, if any."""
    for sector, categories in SECTORS.items():
        if category in categories:
            return sector
    return None
