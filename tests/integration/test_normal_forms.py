"""The same letters in two Unicode forms (composed, NFC, as most keyboards send them;
decomposed, NFD, as macOS writes them) are two texts to the ledger, which compares what was
stored byte for byte. A refusal that names both must say how they differ, or it reads as
"account 'Café_shop', not 'Café_shop'", which nobody can act on (rev27)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import Checkout, CheckoutDenied, Forbidden, Heartbeat, Ledger, RegisterProfile

COMPOSED = "Caf\u00e9_shop"
DECOMPOSED = "Cafe\u0301_shop"
FORMS = "the same letters in two Unicode forms: decomposed (NFD), then composed (NFC)"


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    opened = Ledger.init(f"sqlite:///{tmp_path / 'custody.db'}")
    opened.handle(
        RegisterProfile(profile_id="p1", account_id=DECOMPOSED, proxy_id="prox\u0065\u0301")
    )
    return opened


def test_an_account_in_the_other_form_is_denied_saying_so(ledger: Ledger) -> None:
    with ledger, pytest.raises(CheckoutDenied) as denied:
        ledger.handle(
            Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t", account_id=COMPOSED)
        )
    assert FORMS in denied.value.denial.message
    assert "as stored: 'Cafe\\u0301_shop', then 'Café_shop'" in denied.value.denial.message


def test_a_proxy_in_the_other_form_is_denied_saying_so(ledger: Ledger) -> None:
    with ledger, pytest.raises(CheckoutDenied) as denied:
        ledger.handle(
            Checkout(
                profile_id="p1", worker_id="w", run_id="r", task_type="t", proxy_id="prox\u00e9"
            )
        )
    assert FORMS in denied.value.denial.message


def test_a_worker_in_the_other_form_is_refused_saying_so(ledger: Ledger) -> None:
    """Two spellings of José are two workers: the one that does not hold the lease is refused,
    told why the two names that read alike are not the same."""
    with ledger:
        lease = ledger.handle(
            Checkout(profile_id="p1", worker_id="Jose\u0301", run_id="r", task_type="t")
        )
        with pytest.raises(Forbidden) as refused:
            ledger.handle(
                Heartbeat(
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    worker_id="Jos\u00e9",
                )
            )
    assert FORMS in str(refused.value)


def test_texts_that_differ_otherwise_are_denied_as_before(ledger: Ledger) -> None:
    with ledger, pytest.raises(CheckoutDenied) as denied:
        ledger.handle(
            Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t", account_id="other")
        )
    assert denied.value.denial.message == f"profile belongs to account {DECOMPOSED!r}, not 'other'"
