"""A digest: what the whole log was at one moment, small enough to keep outside the database
(a file, an object store, a ticket): the Merkle tree's size and root, every profile's head,
the time, and the hash of the digest before it. With an Ed25519 key it is signed, so nobody
with the database alone can forge one.

The signature covers the digest's canonical JSON without the signature itself. A digest file
is that JSON, indented for a person; ``load`` reads it back and ``file_hash`` is what the next
digest names as its previous one.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError

from ledger._domain.errors import InvalidInput
from ledger._domain.model import Frozen

# A SHA-256 hash as a digest writes it: 64 lower-case hex digits.
Hex256 = Annotated[str, StringConstraints(pattern="^[0-9a-f]{64}$")]


class TreeHead(Frozen):
    """The log's Merkle tree (RFC 9162) over every event's hash in log order: how many
    events, its root, and the position of the last one."""

    size: int = Field(ge=0)
    root: Hex256
    position: int = Field(ge=0)


class Head(Frozen):
    """A profile's chain at the digest's moment: its last version and that event's hash."""

    version: int = Field(ge=1)
    hash: Hex256


class Digest(Frozen):
    """What the log was; ``key`` and ``signature`` (hex) only when signed."""

    format: Literal["custody-digest/1"] = "custody-digest/1"
    store: str
    at: datetime
    tree: TreeHead
    heads: dict[str, Head]
    previous: str | None = None
    key: str | None = None
    signature: str | None = None

    def signed_bytes(self) -> bytes:
        """What the signature covers: the canonical JSON of everything but the signature."""
        return _canonical(self.model_dump(mode="json", exclude={"signature"}))

    def to_bytes(self) -> bytes:
        """The digest as a file holds it."""
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def file_hash(data: bytes) -> str:
    """The hash the next digest names this one by (hex SHA-256 of the file's bytes)."""
    return hashlib.sha256(data).hexdigest()


def load(data: bytes, name: str) -> Digest:
    """A digest from a file's bytes; ``InvalidInput`` naming ``name`` when it is not one (and
    for anything but bytes: a digest's file hash, ``file_hash``, is taken of its bytes)."""
    if not isinstance(data, bytes | bytearray):
        raise InvalidInput(name, f"must be the bytes of a digest file, not {type(data).__name__}")
    # Strict: a value of another type that would read as the same (a size written "12", 12.0
    # or true) is an altered file, not the digest that was signed (rev44: such a signed digest
    # passed --public-key, its signature checked against the lenient reading). Every field a
    # digest is written with must be there, those with defaults too (a "format" dropped).
    try:
        digest = Digest.model_validate_json(data, strict=True)
    except ValidationError as e:
        problem = e.errors()[0]
        where = ".".join(str(p) for p in problem["loc"]) or "the file"
        raise InvalidInput(name, f"is not a custody digest ({where}: {problem['msg']})") from None
    try:  # a key given twice: two readers may take different ones (review 250)
        given = json.loads(data, object_pairs_hook=_once)
    except _GivenTwice as twice:
        raise InvalidInput(name, f"is not a custody digest ({twice}: given twice)") from None
    missing = [field for field in Digest.model_fields if field not in given]
    if missing:
        raise InvalidInput(name, f"is not a custody digest ({missing[0]}: Field required)")
    return digest


class _GivenTwice(Exception):
    pass


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _GivenTwice(key)
        found[key] = value
    return found


def sign(digest: Digest, private_pem: bytes) -> Digest:
    """The digest signed with an Ed25519 private key (PEM, as ``generate_key`` writes)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = _load_private(private_pem)
    assert isinstance(key, Ed25519PrivateKey)
    public = key.public_key().public_bytes_raw().hex()
    unsigned = digest.model_copy(update={"key": public, "signature": None})
    return unsigned.model_copy(update={"signature": key.sign(unsigned.signed_bytes()).hex()})


def signature_problem(digest: Digest, public_pem: bytes | None) -> str | None:
    """What is wrong with the digest's signature, or None. With ``public_pem`` the digest
    must be signed by that key; without, a signed digest must verify with the key it names
    (which proves it unaltered, not who made it)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    # The key is read first, whatever the digest: an unusable key (an empty file too) is bad
    # input, never taken for "no key given", which would pass an unsigned forgery.
    expected = _public_hex(public_pem) if public_pem is not None else None
    if digest.signature is None or digest.key is None:
        return None if expected is None else "is not signed, but a public key was given to check it"
    if expected is not None and expected != digest.key:
        return "is signed by another key than the one given: forged, or not this custody's"
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(digest.key))
        public.verify(bytes.fromhex(digest.signature), digest.signed_bytes())
    except (InvalidSignature, ValueError):
        return "does not verify with its key: it was altered or forged after it was signed"
    return None


def generate_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key pair as PEM: (private, public)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


_BEGINS = re.compile(rb"^-----BEGIN ", re.MULTILINE)


def _one_key(pem: bytes, field: str) -> bytes:
    """``InvalidInput`` naming ``field`` for what is not bytes (rev48: a PEM given as a
    ``str`` raised a raw ``TypeError`` from the pattern below; a ``memoryview`` is taken as
    its bytes, as the library takes it), and for a file of more than
    one PEM block: the library loads the first and ignores the rest (review 266: a file of
    two keys signed with the first, and a verifier given the public keys the other way round
    was told of a forgery, exit 5, not of its file). Text outside the block is allowed, as
    RFC 7468 allows it, a note naming a "-----BEGIN " line too: a block begins a line."""
    if not isinstance(pem, bytes | bytearray | memoryview):  # what the library loads
        hint = " (encode it: .encode())" if isinstance(pem, str) else ""
        raise InvalidInput(field, f"must be PEM bytes, not {type(pem).__name__}{hint}")
    pem = bytes(pem)
    blocks = len(_BEGINS.findall(pem))
    if blocks > 1:
        msg = f"holds {blocks} PEM blocks, not one key: give a file holding only the key"
        raise InvalidInput(field, msg)
    return pem


def _load_private(pem: bytes) -> Any:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = _one_key(pem, "key")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    # UnsupportedAlgorithm: a key this OpenSSL cannot load (an EC curve such as brainpoolP160r1)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise InvalidInput("key", f"is not a PEM private key ({e})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput("key", "is not an Ed25519 key")
    return key


def public_pem(private_pem: bytes) -> bytes:
    """The public half of an Ed25519 private key (PEM), as PEM (``InvalidInput`` naming
    ``key`` for one custody cannot use)."""
    from cryptography.hazmat.primitives import serialization

    return bytes(
        _load_private(private_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _public_hex(pem: bytes) -> str:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pem = _one_key(pem, "public_key")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise InvalidInput("public_key", f"is not a PEM public key ({e})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput("public_key", "is not an Ed25519 key")
    return key.public_bytes_raw().hex()
