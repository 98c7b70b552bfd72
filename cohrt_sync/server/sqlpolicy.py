"""What direct SQL (``POST /edge/database``) may do: the SQLite authorizer policy.

Direct SQL runs on its own connection to the tenant's file, and this policy
is installed on it for good: every statement, cached or not, was authorized
when it was prepared, and the policy never changes, so a cached statement
can't carry a decision made under other rules. SQLite asks the authorizer at
prepare time, for each action a statement would take; one denial fails the
whole statement, so nothing of it runs.

Every decision, with the reason (the surface is that of Debian's libsqlite3
3.40, built with FTS3/FTS4 and ``FTS3_TOKENIZER``, FTS5, RTREE, DBSTAT_VTAB,
STMTVTAB, LOAD_EXTENSION, MATH_FUNCTIONS and JSON):

====================================  ========  ==========================================
Action                                Decision  Why
====================================  ========  ==========================================
ATTACH, DETACH (so ``VACUUM INTO``)   refused   other files are outside the tenant
BEGIN/COMMIT/ROLLBACK/END, SAVEPOINT  refused   each statement commits on its own; an open
/RELEASE/ROLLBACK TO                            transaction would hold the file's write
                                                lock between requests
``fts3_tokenizer()``, both forms      refused   the two-argument form installs a native
                                                pointer as a tokenizer (SIGSEGV on use);
                                                the one-argument form leaks an address
``fts5()``                            refused   hands out a C pointer to FTS5's API
``load_extension()``                  refused   loads native code into the server
``rtreenode()``, ``rtreedepth()``,    refused   parse raw R*Tree node blobs; R*Tree is not
``rtreecheck()``                                offered (below), so they have no use
``matchinfo()``, ``offsets()``,       refused   FTS3/FTS4 helpers; those tables are
``optimize()``                                  refused, so they have no use
every other function                  allowed   core, date, JSON, math, window, FTS5
                                                auxiliaries (bm25, highlight, snippet);
                                                the size of what they build is bounded by
                                                ``SQLITE_LIMIT_LENGTH`` where Python can
                                                set it, their time by the time limit
CREATE VIRTUAL TABLE ... USING m      only fts5 D1 offers FTS5; fts3, fts4, fts4aux,
                                      fts5vocab fts3tokenize (custom tokenizers), rtree,
                                                dbstat, sqlite_stmt, sqlite_dbpage, json_*
                                                and the rest are refused
writes to fts5 shadow tables          allowed   FTS5's own writes to them reach the
(``x_data``, ``x_idx``, ...)          before    authorizer in the same form; from Python
                                      3.12      3.12, SQLITE_DBCONFIG_DEFENSIVE refuses
                                                them (SQLite's FTS5 treats a corrupt
                                                shadow table as SQLITE_CORRUPT_VTAB)
reading eponymous virtual tables      allowed   json_each/json_tree, dbstat and
                                                sqlite_stmt show this connection's own
                                                database and statements only
``sqlite_dbpage``, read or write      refused   raw pages: reads around the authorizer,
                                                writes corrupt the file (not compiled into
                                                Debian's build; refused by name anyway)
CREATE TEMP TABLE/VIEW/TRIGGER/INDEX  refused   temp objects outlive the request on the
and anything created in ``temp``                connection and escape the storage quota
CREATE TRIGGER on realtime_messages   refused   a trigger could drop or alter a row after
                                                the server acknowledged it
anything naming the idempotency or    refused   they hold the server's replay records and
usage table (read, write, drop,                 the tier's publish counts; see
alter, index, trigger, pragma)                  :data:`HIDDEN_TABLES` (ANALYZE may count
                                                their rows, as a plain ANALYZE does)
PRAGMA in :data:`SAFE_PRAGMAS`        allowed   read-only introspection, also as
                                                table-valued ``pragma_*()`` functions,
                                                which SQLite authorizes as the pragma;
                                                assigning is refused except for
                                                ``user_version``
every other PRAGMA                    refused   journal mode, quota, paths, writable
                                                schema and the like are the server's
a database other than main/temp       refused   defence in depth behind ATTACH; plain
                                                VACUUM is refused too (it attaches a
                                                scratch database)
everything else                       allowed   ordinary DDL and DML on the tenant's own
                                                tables, including realtime_messages
====================================  ========  ==========================================
"""

from __future__ import annotations

import sqlite3
from typing import Optional

#: Read-only pragmas direct SQL may use; the rest could change journal mode,
#: the quota, point the database at other files or otherwise break the
#: server's contract.
SAFE_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "user_version",
        "data_version",
        "page_count",
        "page_size",
        "freelist_count",
        "compile_options",
        "function_list",
        "pragma_list",
    }
)

#: Pragmas that take a value when assigned (``PRAGMA x = v``) rather than an
#: argument naming a table or index; only ``user_version`` may be assigned.
_VALUE_PRAGMAS = frozenset(
    {"user_version", "data_version", "page_count", "page_size", "freelist_count"}
)
_ASSIGNABLE_PRAGMAS = frozenset({"user_version"})

#: Functions no statement may call, and why (see the module's table).
DENIED_FUNCTIONS = {
    "fts3_tokenizer": "fts3_tokenizer() is not allowed (it exposes native pointers)",
    "fts5": "fts5() is not allowed (it exposes a native pointer)",
    "load_extension": "loading extensions is not allowed",
    "rtreenode": "rtreenode() is not allowed",
    "rtreedepth": "rtreedepth() is not allowed",
    "rtreecheck": "rtreecheck() is not allowed",
    "matchinfo": "matchinfo() is not allowed (FTS3/FTS4 tables are not offered)",
    "offsets": "offsets() is not allowed (FTS3/FTS4 tables are not offered)",
    "optimize": "optimize() is not allowed (FTS3/FTS4 tables are not offered)",
}

#: Virtual-table modules CREATE VIRTUAL TABLE may use.
ALLOWED_MODULES = frozenset({"fts5", "fts5vocab"})

#: Tables the messages pipeline writes; no trigger may fire on their inserts.
PROTECTED_TABLES = frozenset({"realtime_messages"})

#: The server's own bookkeeping in the tenant file, out of direct SQL's reach.
IDEMPOTENCY_TABLE = "_cohrt_idempotency_keys"
#: Durable publish counts of the tier's caps, written with the rows they count.
USAGE_TABLE = "_cohrt_usage"
#: A cluster's fencing token: the newest owner that wrote this file (docs/cluster.md).
FENCE_TABLE = "_cohrt_fence"
HIDDEN_TABLES = frozenset({IDEMPOTENCY_TABLE, USAGE_TABLE, FENCE_TABLE})

_TEMP_CREATES = frozenset(
    {
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
    }
)
_CREATES = frozenset(
    {
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_CREATE_VTABLE,
    }
)
_RAW_PAGES = "sqlite_dbpage"
_TRANSACTION_REFUSAL = (
    "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, RELEASE) is not allowed;"
    " each statement commits on its own"
)


class SqlRefused(Exception):
    """Direct SQL tried something the policy refuses; the message says what."""


class SqlPolicy:
    """The authorizer of the direct-SQL connection; remembers why it refused.

    Install :meth:`authorize` with ``set_authorizer``; after a statement
    fails, :attr:`refusal` says why if the policy refused it (reset it with
    :meth:`reset` before each statement).
    """

    def __init__(self) -> None:
        self.refusal: Optional[str] = None

    def reset(self) -> None:
        """Forget the last refusal (call before preparing a statement)."""
        self.refusal = None

    def authorize(
        self,
        action: int,
        arg1: Optional[str],
        arg2: Optional[str],
        dbname: Optional[str],
        source: Optional[str],
    ) -> int:
        """The ``sqlite3`` authorizer callback: SQLITE_OK or SQLITE_DENY."""
        reason = decide(action, arg1, arg2, dbname)
        if reason is None:
            return sqlite3.SQLITE_OK
        if self.refusal is None:
            self.refusal = reason
        return sqlite3.SQLITE_DENY


def decide(
    action: int, arg1: Optional[str], arg2: Optional[str], dbname: Optional[str]
) -> Optional[str]:
    """Why ``action`` is refused, or None when it is allowed (see the module's table)."""
    a1 = (arg1 or "").lower()
    a2 = (arg2 or "").lower()
    if action == sqlite3.SQLITE_FUNCTION:
        return DENIED_FUNCTIONS.get(a2)
    if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
        return _TRANSACTION_REFUSAL
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
        return "ATTACH, DETACH and VACUUM are not allowed"
    if action == sqlite3.SQLITE_ALTER_TABLE:
        # Here arg1 is the database and the last argument a column name.
        dbname = arg1
    if (a1 in HIDDEN_TABLES or a2 in HIDDEN_TABLES) and action != sqlite3.SQLITE_ANALYZE:
        return (
            "the server's own tables (idempotency records, usage counts)"
            " are not accessible to direct SQL"
        )
    if action == sqlite3.SQLITE_PRAGMA:
        return _pragma(a1, arg2)
    if action in _TEMP_CREATES or (action in _CREATES and (dbname or "").lower() == "temp"):
        return "temporary tables, views, triggers and indexes are not allowed"
    if action == sqlite3.SQLITE_CREATE_TRIGGER and a2 in PROTECTED_TABLES:
        return f"triggers on {arg2} are not allowed (they would make publish acks untrue)"
    if action == sqlite3.SQLITE_CREATE_VTABLE and a2 not in ALLOWED_MODULES:
        allowed = ", ".join(sorted(ALLOWED_MODULES))
        return f"virtual table module {arg2!r} is not allowed; use one of: {allowed}"
    if _RAW_PAGES in (a1, a2):
        return "sqlite_dbpage is not allowed"
    if dbname is not None and dbname.lower() not in ("main", "temp"):
        return f"database {dbname!r} is outside this tenant"
    return None


def _pragma(name: str, value: Optional[str]) -> Optional[str]:
    if name not in SAFE_PRAGMAS:
        return f"PRAGMA {name} is not allowed"
    if value is not None and name in _VALUE_PRAGMAS and name not in _ASSIGNABLE_PRAGMAS:
        return f"PRAGMA {name} is read-only here"
    return None
