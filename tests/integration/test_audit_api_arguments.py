"""The Python API's audit functions given their digests as a caller holds them: a ``Digest``
or a digest file's bytes, as ``digest(previous=...)`` takes them; anything else is one
``InvalidInput`` naming the argument, said before the log is read, on every store."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import event_count, register

from ledger import InvalidInput, Ledger
from ledger.audit import digest, generate_key, verify


def test_verify_takes_a_digest_or_its_bytes_alike(ledger: Ledger) -> None:
    """rev41: ``verify(against=bytes)`` raised AttributeError ('bytes' object has no
    attribute 'heads'); the bytes of a digest file are now read as that digest, and a check
    against them (with ``since``, and a signature) answers as against the ``Digest``."""
    private, public = generate_key()
    register(ledger, "p1")
    earlier = digest(ledger, key=private)
    register(ledger, "p2")
    later = digest(ledger, previous=earlier.to_bytes(), key=private)
    as_digests = verify(ledger, against=later, since=earlier, public_key=public)
    as_bytes = verify(
        ledger, against=later.to_bytes(), since=bytearray(earlier.to_bytes()), public_key=public
    )
    assert as_bytes.holds
    assert as_bytes.proof
    assert as_bytes == as_digests
    # Keys as any bytes-like the library loads (fixrev 292: a memoryview was refused once
    # keys were checked to be bytes; it was taken before).
    signed = digest(ledger, key=memoryview(private))
    viewed = verify(ledger, against=signed, public_key=memoryview(public))
    assert viewed.holds


@pytest.mark.parametrize(
    ("argument", "given", "said"),
    [
        ("since", "yesterday", "invalid since: must be a Digest or the bytes of a digest file"),
        ("against", {"tree": {}}, "invalid against: must be a Digest or the bytes of a digest"),
        ("against", b"\x00\x01garbage", "invalid against: is not a custody digest"),
        ("since", b"[]", "invalid since: is not a custody digest"),
    ],
)
def test_verify_names_a_digest_argument_it_cannot_read(
    ledger: Ledger, argument: str, given: Any, said: str
) -> None:
    """A digest argument that is neither a ``Digest`` nor a digest file's bytes (a date, a
    mapping), or bytes that are not a digest: ``InvalidInput`` naming it, never an
    ``AttributeError`` from inside the check."""
    register(ledger, "p1")
    good = digest(ledger)
    arguments = {"against": good, argument: given}
    with pytest.raises(InvalidInput, match=said):
        verify(ledger, **arguments)


def test_digest_names_a_previous_digest_given_as_text(ledger: Ledger) -> None:
    """``digest(previous=...)`` takes the previous digest file's bytes (its hash is recorded):
    its text (a ``str``) is ``InvalidInput`` naming ``previous``, not a ``TypeError`` from the
    hash."""
    register(ledger, "p1")
    text = digest(ledger).to_bytes().decode()
    with pytest.raises(InvalidInput, match="invalid previous: must be the bytes of a digest"):
        digest(ledger, previous=text)  # type: ignore[arg-type]


@pytest.mark.parametrize("given", ["public", 5, "text", b"xx"], ids=["pem", "int", "str", "junk"])
def test_verify_refuses_a_public_key_with_no_digest_to_check_it_on(
    ledger: Ledger, given: Any
) -> None:
    """rev48: ``verify(public_key=...)`` without ``against`` took anything (5, a ``str``,
    ``b"xx"``) and ignored it, so a caller could believe a signature was checked. Now one
    ``InvalidInput`` naming ``public_key``, as the command line refuses ``--public-key``
    without ``--digest``: the key's own fault when it has one, else that it needs a digest."""
    private, public = generate_key()
    register(ledger, "p1")
    key = public if given == "public" else public.decode() if given == "text" else given
    before = event_count(ledger)
    with pytest.raises(InvalidInput) as refused:
        verify(ledger, public_key=key)
    assert refused.value.field == "public_key"
    said = {
        "public": "needs against: the digest whose signature it checks",
        b"xx": "is not a PEM public key",
    }.get(given, "must be PEM bytes, not")
    assert said in str(refused.value)
    assert event_count(ledger) == before
    # A digest to check it on, given as ``since`` alone, is one: the key is checked on it.
    signed = digest(ledger, key=private)
    assert verify(ledger, since=signed, public_key=public).holds
    assert not verify(ledger, since=signed, public_key=generate_key()[1]).holds


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda led, priv, pub, d: digest(led, key=priv.decode()), "key"),
        (lambda led, priv, pub, d: digest(led, key=5), "key"),
        (lambda led, priv, pub, d: verify(led, against=d, public_key=pub.decode()), "public_key"),
        (lambda led, priv, pub, d: verify(led, against=d, public_key=5), "public_key"),
    ],
    ids=["digest-key-str", "digest-key-int", "verify-public-key-str", "verify-public-key-int"],
)
def test_a_key_that_is_not_pem_bytes_is_named(ledger: Ledger, call: Any, field: str) -> None:
    """rev48: a key given as its PEM text (a ``str``) raised a raw ``TypeError`` ("cannot use
    a bytes pattern on a string-like object"); a key of any type but bytes is one
    ``InvalidInput`` naming the argument, nothing written."""
    private, public = generate_key()
    register(ledger, "p1")
    made = digest(ledger, key=private)
    before = event_count(ledger)
    with pytest.raises(InvalidInput, match=f"invalid {field}: must be PEM bytes, not") as refused:
        call(ledger, private, public, made)
    assert refused.value.field == field
    assert event_count(ledger) == before
