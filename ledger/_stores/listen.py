"""PostgreSQL pushes: LISTEN on the events table's channel, with polling as the fallback.

Every append NOTIFYs the channel named after the events table (``custody_events``) in a
transaction of its own that the server runs right after the append's COMMIT, in the append's
round trip (``ledger._stores.postgres``), so the notification is delivered once the events are
committed, never before and never for a failed append. A dedicated autocommit connection
(``application_name`` ``custody-listen``) LISTENs, and ``wait`` returns as soon as a
notification arrives.

What push cannot promise, polling covers: ``wait`` returns at the latest after the interval,
so a listening connection that died without a word (a network that drops packets) delays a
catch-up by one interval at most; TCP keepalives then find it dead. A connection that fails
(a server restart, ``pg_terminate_backend``, a broken network) is reported in one line; the
wake-ups poll meanwhile and reconnect with a doubling backoff. The first ``wait`` after a
(re)connection returns at once: what was committed while nobody listened sent no wake-up.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from psycopg import sql

from ledger._stores.connections import postgres_connection
from ledger._stores.settings import StoreSettings
from ledger._stores.wakeups import Announce, Wakeups

APPLICATION_NAME = "custody-listen"
# How often a wait looks at its stop event: a signal does not cut a wait on the socket short.
STOP_CHECK_SECONDS = 0.2
FIRST_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS = 0.5, 30.0
# A peer that stopped answering is found dead after about idle + interval * count seconds.
_KEEPALIVES = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


class ListeningWakeups(Wakeups):
    """Wake-ups pushed by NOTIFY on ``channel``, polling every ``interval`` as the fallback."""

    def __init__(
        self, settings: StoreSettings, channel: str, interval: float, announce: Announce
    ) -> None:
        super().__init__(interval)
        self._settings = settings
        self._channel = channel
        self._announce = announce
        self._conn: Any = None
        self._backoff = FIRST_BACKOFF_SECONDS
        self._retry_at = 0.0  # monotonic time of the next connection attempt
        self._caught_up = False  # the loop has caught up since the last (re)connection

    def listen(self) -> bool:
        """Connect and LISTEN now (a failure is announced, and retried by ``wait``); True if
        listening. Call it before the first catch-up, so nothing falls between the two."""
        if self._conn is None:
            self._connect(first=True)
        return self._conn is not None

    def wait(self, stop: threading.Event) -> bool:
        deadline = time.monotonic() + self.interval
        while not stop.is_set():
            if self._conn is not None and not self._caught_up:
                self._caught_up = True
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._conn is None:
                self._poll(stop, left)
            elif self._notified(min(left, STOP_CHECK_SECONDS)):
                return True
        return False

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _poll(self, stop: threading.Event, left: float) -> None:
        """Wait without a connection until the next attempt (or the deadline), then try."""
        until_retry = self._retry_at - time.monotonic()
        stop.wait(min(left, max(until_retry, 0.0), STOP_CHECK_SECONDS))
        if time.monotonic() >= self._retry_at and not stop.is_set():
            self._connect(first=False)

    def _notified(self, timeout: float) -> bool:
        """Whether a notification arrived within ``timeout``; those queued behind it are
        drained too, since one catch-up applies everything committed before it."""
        try:
            got = any(True for _ in self._conn.notifies(timeout=timeout, stop_after=1))
            if got:
                for _ in self._conn.notifies(timeout=0):
                    pass
        except (psycopg.Error, OSError) as e:
            self._lost(e)
            return False
        return got

    def _connect(self, *, first: bool) -> None:
        try:
            conn = postgres_connection(
                self._settings, application_name=APPLICATION_NAME, **_KEEPALIVES
            )
            if conn.info.server_version >= IDLE_SESSION_TIMEOUT_SINCE:
                # Idle by design between notifications: a database's idle_session_timeout
                # cut it every few seconds, two lines each (rev33).
                conn.execute("SET idle_session_timeout = 0")
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
        except (psycopg.Error, OSError) as e:
            if first:
                self._announce(
                    f"polling every {self.interval:g} s: cannot listen for new events "
                    f"({_first_line(e)}); retrying in {self._backoff:g} s"
                )
            self._schedule_retry()
            return
        # The first connection is made before the loop's first catch-up, which covers it.
        self._conn, self._caught_up = conn, first
        self._backoff = FIRST_BACKOFF_SECONDS
        self._announce(
            f"push: listening for new events on channel {self._channel} "
            f"(polling every {self.interval:g} s as the fallback)"
        )

    def _lost(self, error: BaseException) -> None:
        self.close()
        self._announce(
            f"polling every {self.interval:g} s: lost the listening connection "
            f"({_first_line(error)}); reconnecting in {self._backoff:g} s"
        )
        self._schedule_retry()

    def _schedule_retry(self) -> None:
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)


# The server version from which idle_session_timeout exists (PostgreSQL 14).
IDLE_SESSION_TIMEOUT_SINCE = 140000


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
