"""What the worker SDK's integration tests share: a store in memory with the profiles they
lease, the worker's settings, a clock the test moves, and the profile's history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledger import Ledger, RegisterProfile
from ledger._domain import events as ev
from workers import DIRECT, BrowserSettings, ProfileLeases


class FakeClock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def sdk_store(tmp_path: Path) -> str:
    """A new SQLite store: p1 (a directory, proxy px), p_nodir (no directory) and
    p_unknown_proxy (a proxy the worker cannot resolve)."""
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    with Ledger.init(url) as ledger:
        ledger.handle(
            RegisterProfile(
                profile_id="p1", account_id="a", proxy_id="px", user_data_dir=str(tmp_path / "p1")
            )
        )
        ledger.handle(RegisterProfile(profile_id="p_nodir", account_id="a", proxy_id="px"))
        ledger.handle(
            RegisterProfile(
                profile_id="p_unknown_proxy",
                account_id="a",
                proxy_id="py",
                user_data_dir=str(tmp_path / "py"),
            )
        )
    return url


def sdk_settings(tmp_path: Path) -> BrowserSettings:
    return BrowserSettings(proxies={"px": DIRECT}, evidence_dir=tmp_path / "evidence")


def leases_on(store: str, settings: BrowserSettings, **kw: Any) -> ProfileLeases:
    return ProfileLeases.open(store, worker_id="worker_03", settings=settings, **kw)


def history(store: str, profile_id: str = "p1") -> list[ev.ProfileEvent]:
    with Ledger.open(store, create=False) as ledger:
        return ledger.history(profile_id)
