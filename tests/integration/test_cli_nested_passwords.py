"""The ledger's door refuses a URL carrying another URL with a password in it, as it refuses
one with a password in its own userinfo, on the command line and on each store (rev43).

Found by a review: a login page's ``?next=http://bob:hunter2@intranet/`` went past the door
(its rule read the URL's own authority only) and into the append-only log, where every role
reads it, while the same URL in a failure's reason had its password left out.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import register

from ledger import Checkout, Ledger

REFUSED = "custody: invalid {field}: must not carry a password (user:password@)"
NESTED = [
    "https://shop.example/login?next=http://bob:hunter2@intranet.example/admin",
    "https://shop.example/login?next=http%3A%2F%2Fbob%3Ahunter2%40intranet.example%2Fadmin",
    "https://shop.example/login?next=https%3A%2F%2Fsso%2F%3Fnext%3Dhttp%253A%252F%252Fbob"
    "%253Ahunter2%2540intranet",  # a redirect's redirect, encoded twice
    "https://shop.example/go#to=ws://bob:hunter2@intranet.example/",
    # rev47: without its scheme (a browser follows it with the page's), as written and encoded
    "https://shop.example/login?next=//bob:hunter2@intranet.example/admin",
    "https://shop.example/login?next=%2F%2Fbob%3Ahunter2%40intranet.example%2Fadmin",
    # rev48: a tab between the slashes, which a browser drops (http://bob:hunter2@intranet...)
    "https://shop.example/login?next=http%3A%2F%09%2Fbob%3Ahunter2%40intranet.example%2Fadmin",
]


def _custody(store_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "custody", "--store", store_url, *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    "url",
    NESTED,
    ids=[
        "as-written",
        "encoded",
        "twice",
        "fragment",
        "schemeless",
        "schemeless-encoded",
        "tab-between-slashes",
    ],
)
def test_a_url_nesting_a_password_is_refused_and_nothing_written(store_url: str, url: str) -> None:
    """A heartbeat's URL and a release's final URL that carry a nested URL with a password:
    exit 2, one line naming the field and not the password, nothing written; the same URL
    without it (as the worker SDKs record it) is taken, and so is a query's own token."""
    with Ledger.open(store_url) as ledger:
        pid = register(ledger)
        lease = ledger.handle(Checkout(profile_id=pid, worker_id="w1", run_id="r", task_type="t"))
        events = len(ledger.history(pid))
    held = (lease.lease_id, "--token", str(lease.fencing_token))
    for field, command in (
        ("url", ("heartbeat", *held, "--step", "login", "--url", url)),
        ("final_url", ("release", *held, "--outcome", "success", "--final-url", url)),
    ):
        said = _custody(store_url, *command)
        assert (said.returncode, said.stdout, said.stderr) == (
            2,
            "",
            REFUSED.format(field=field) + "\n",
        )
    with Ledger.open(store_url) as ledger:
        assert len(ledger.history(pid)) == events
    kept = url.replace("bob:hunter2@", "").replace("bob%3Ahunter2%40", "")
    kept = kept.replace("bob%253Ahunter2%2540", "") + "&access_token=ya29.T0KEN"
    said = _custody(store_url, "heartbeat", *held, "--url", kept)
    assert said.returncode == 0, said.stderr
    with Ledger.open(store_url) as ledger:
        assert getattr(ledger.history(pid)[-1], "url", None) == kept
