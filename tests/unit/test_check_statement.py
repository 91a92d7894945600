"""The single check's statement stays inside psycopg's query cache, with or without ``from``.

psycopg converts a query's ``%(name)s`` placeholders once per distinct query
text, and caches the conversion only for texts up to MAX_CACHED_STATEMENT_LENGTH
bytes; above it, every execute converts again (measured: 647k instructions a
check against 182k). The facts query is the longest statement of a check.
"""

from __future__ import annotations

import pytest
from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH
from sqlalchemy.dialects import postgresql

from registry.checks import facts


@pytest.mark.parametrize(("verify", "address"), list(facts._ONE))
def test_single_check_statement_is_cached_by_psycopg(verify: bool, address: bool) -> None:
    text = str(facts._ONE[verify, address].statement.compile(dialect=postgresql.psycopg.dialect()))
    assert len(text.encode()) <= MAX_CACHED_STATEMENT_LENGTH, (verify, address, len(text))
