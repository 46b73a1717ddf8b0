"""Store URLs: ``sqlite:///path/custody.db`` (the default), ``postgresql://user@host:port/db``,
or ``memory://NAME`` (this process only: tests and notebooks)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict

from ledger.domain.errors import InvalidInput

DEFAULT_SQLITE_FILE = "custody.db"
STORE_ENV_VAR = "CUSTODY_STORE"
APPLICATION_NAME = "custody"


class StoreSettings(BaseModel):
    """A parsed store URL. Passwords never appear in ``describe()``."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["sqlite", "postgresql", "memory"]
    path: str = ""
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""
    connect_timeout: int = 5

    @classmethod
    def resolve(cls, store_url: str | None) -> StoreSettings:
        """The explicit URL, else ``$CUSTODY_STORE``, else an SQLite file in the working dir."""
        url = store_url or os.environ.get(STORE_ENV_VAR) or f"sqlite:///{DEFAULT_SQLITE_FILE}"
        return cls.from_url(url)

    @classmethod
    def from_url(cls, url: str) -> StoreSettings:
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            path = unquote(parts.path)[1:] if parts.path.startswith("/") else ""
            if parts.netloc or not path:
                raise InvalidInput("store", f"expected sqlite:///path/to/file.db, got {url!r}")
            return cls(kind="sqlite", path=path)
        if parts.scheme == "memory":
            name = parts.netloc + parts.path
            if not name:
                raise InvalidInput("store", f"expected memory://NAME, got {url!r}")
            return cls(kind="memory", path=name)
        if parts.scheme in ("postgresql", "postgres"):
            dbname = unquote(parts.path.lstrip("/"))
            try:
                port = parts.port or 5432
            except ValueError:
                raise InvalidInput("store", f"malformed port in {url!r}") from None
            if not parts.hostname or not dbname or not parts.username:
                raise InvalidInput(
                    "store", "expected postgresql://user[:password]@host[:port]/dbname"
                )
            return cls(
                kind="postgresql",
                host=parts.hostname,
                port=port,
                user=unquote(parts.username),
                password=unquote(parts.password or ""),
                dbname=dbname,
            )
        raise InvalidInput(
            "store", f"unsupported scheme in {url!r}: use sqlite:// or postgresql://"
        )

    def describe(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        if self.kind == "memory":
            return f"memory://{self.path}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def sqlite_file(self) -> Path:
        return Path(self.path)

    def environment(self, *, create_table: bool) -> dict[str, str]:
        """The eventsourcing environment for this store (never read from ``os.environ``)."""
        create = "y" if create_table else "n"
        if self.kind == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.path,
                "SQLITE_LOCK_TIMEOUT": "30",
                "CREATE_TABLE": create,
            }
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.dbname,
            "POSTGRES_HOST": self.host,
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_USER": self.user,
            "POSTGRES_PASSWORD": self.password,
            "POSTGRES_CONNECT_TIMEOUT": str(self.connect_timeout),
            "POSTGRES_POOL_SIZE": "2",
            "POSTGRES_MAX_OVERFLOW": "4",
            "POSTGRES_PRE_PING": "y",
            "CREATE_TABLE": create,
        }
