"""Django's SQLite backend on SQLCipher: the embedded database, encrypted page by page.

The stock backend is bound to the standard library's `sqlite3` module; SQLCipher's
binding (`sqlcipher3`) has the same DB-API, so this backend swaps the module, keys
each new connection before its first statement, and otherwise changes nothing. The
key is derived from careloop's master key (careloop.security.crypto.derive).
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping
from itertools import tee
from typing import Any

from django.db.backends.sqlite3 import base as _sqlite_base
from django.db.backends.sqlite3._functions import (  # type: ignore[import-untyped]
    register as register_functions,
)
from sqlcipher3 import dbapi2 as Database

# The stock backend's helpers are untyped module internals; reuse them as they are.
sqlite_base: Any = _sqlite_base

Database.register_converter("bool", b"1".__eq__)
Database.register_converter("date", sqlite_base.decoder(sqlite_base.parse_date))
Database.register_converter("time", sqlite_base.decoder(sqlite_base.parse_time))
Database.register_converter("datetime", sqlite_base.decoder(sqlite_base.parse_datetime))
Database.register_converter("timestamp", sqlite_base.decoder(sqlite_base.parse_datetime))
Database.register_adapter(decimal.Decimal, str)
Database.register_adapter(datetime.date, sqlite_base.adapt_date)
Database.register_adapter(datetime.datetime, sqlite_base.adapt_datetime)


class SQLCipherCursorWrapper(Database.Cursor):  # type: ignore[misc]
    """The stock cursor wrapper's behaviour (format-style params), on SQLCipher's cursor."""

    convert_query = sqlite_base.SQLiteCursorWrapper.convert_query

    def execute(self, query: str, params: Any = None) -> Any:
        if params is None:
            return super().execute(query)
        names = list(params) if isinstance(params, Mapping) else None
        return super().execute(self.convert_query(query, param_names=names), params)

    def executemany(self, query: str, param_list: Any) -> Any:
        peekable, param_list = tee(iter(param_list))
        first = next(peekable, None)
        names = list(first) if first and isinstance(first, Mapping) else None
        return super().executemany(self.convert_query(query, param_names=names), param_list)


def page_key() -> str:
    from careloop.security.crypto import derive

    return derive(b"sqlcipher-page-key").hex()


class WrongKeyError(Database.OperationalError):  # type: ignore[misc]
    """The file is not a database this master key opens."""


class DatabaseWrapper(_sqlite_base.DatabaseWrapper):
    Database = Database

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        conn = Database.connect(**conn_params)
        # SQLCipher logs decryption failures to stderr itself; we report them ourselves.
        conn.execute("PRAGMA cipher_log_level = NONE")
        # The key must be the first statement that touches the database. PRAGMA takes no
        # parameters; the value is hex digits from our own key derivation.
        conn.execute(f"PRAGMA key = \"x'{page_key()}'\"")  # nosemgrep: careloop-no-string-built-sql
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except Database.DatabaseError:
            conn.close()
            raise WrongKeyError(
                f"The database file {self.settings_dict['NAME']} cannot be opened with this "
                "master key (it was made with another key, or it is not a careloop database)."
            ) from None
        register_functions(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA legacy_alter_table = OFF")
        for init_command in self.init_commands:  # type: ignore[attr-defined]
            if init_command := init_command.strip():
                conn.execute(init_command)
        return conn

    def create_cursor(self, name: str | None = None) -> Any:
        return self.connection.cursor(factory=SQLCipherCursorWrapper)
