"""review5: reproducers of "accepted means readable, forever, exactly, on both stores;
otherwise the write refuses it at the door"."""

from __future__ import annotations

import random
import string

import pytest

from ledger import InvalidInput, Ledger, RegisterProfile


def test_a_long_user_data_dir_is_accepted_on_every_store_or_refused_at_the_door(
    store_url: str,
) -> None:
    """``user_data_dir`` accepts up to 4096 characters (``ledger._domain.model.Directory``).
    4,000 ASCII characters are kept on SQLite; on PostgreSQL the registration fails with
    ``StoreUnavailable`` (exit 6, "index row size 4016 exceeds btree version 4 maximum 2704
    for index custody_directories_dir"), neither kept nor refused as bad input."""
    rnd = random.Random(5)
    directory = "/" + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(4000))
    command = RegisterProfile(
        profile_id="p1", account_id="a1", proxy_id="x1", user_data_dir=directory
    )
    with Ledger.open(store_url) as ledger:
        try:
            ledger.handle(command)
        except InvalidInput:
            pytest.skip("refused at the door, as bad input: the promise holds")
        assert ledger.view("p1").record.user_data_dir == directory
