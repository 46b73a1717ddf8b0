"""A PostgreSQL store over TLS: the URL's ``sslmode`` and ``sslrootcert`` reach every session
custody opens (the direct connection each command opens first, the library's pool, LISTEN, the
pandas read path), against a real server that takes encrypted connections only and a
certificate authority made for the test (``ledger._stores.settings.TLS_OPTIONS``).

Every process here runs with ``PGSSLMODE=disable``: a session that lost the URL's parameters
would fall back to it and be turned away by the server, where libpq's own default (``prefer``)
would quietly encrypt without checking whom it speaks to.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pg_cluster import PostgresCluster, create_database

from ledger._stores.listen import ListeningWakeups
from ledger._stores.settings import StoreSettings

REPO = Path(__file__).resolve().parents[2]
DATABASE = "custody_tls"


@dataclass(frozen=True)
class TlsServer:
    url: str  # the store's database, without TLS parameters
    admin_url: str  # the server's superuser over TLS (the server takes nothing else)
    ca: Path  # the authority that signed the server's certificate
    stranger: Path  # an authority that did not


def _authority(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _server_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> tuple[bytes, bytes]:
    """A certificate for 127.0.0.1 signed by ``ca``, and its key, as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """A server of its own (the session's cluster speaks plain TCP to every other test):
    TLS on, and every TCP connection without it rejected by pg_hba.conf."""
    here = tmp_path_factory.mktemp("tls")
    ca_key, ca = _authority("custody test CA")
    _, stranger = _authority("someone else's CA")
    (here / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (here / "stranger.pem").write_bytes(stranger.public_bytes(serialization.Encoding.PEM))
    cluster = PostgresCluster.start()
    try:
        url = create_database(cluster.admin_url, DATABASE)
        assert cluster.base_dir is not None
        data = cluster.base_dir / "data"
        owner = data.stat()
        cert_pem, key_pem = _server_certificate(ca_key, ca)
        for name, pem in (("server.crt", cert_pem), ("server.key", key_pem)):
            (data / name).write_bytes(pem)
            os.chown(data / name, owner.st_uid, owner.st_gid)
            (data / name).chmod(0o600)
        hba = data / "pg_hba.conf"
        hba.write_text("hostnossl all all 0.0.0.0/0 reject\n" + hba.read_text())
        with psycopg.connect(cluster.admin_url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET ssl = on")
            conn.execute("SELECT pg_reload_conf()")
        admin_url = f"{cluster.admin_url}?sslmode=require"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert row.fetchone() == (True,)
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(cluster.admin_url, sslmode="disable").close()
        yield TlsServer(url, admin_url, here / "ca.pem", here / "stranger.pem")
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _no_tls_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "disable")


def _custody(store: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CUSTODY_STORE": store, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "custody", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def _events(server: TlsServer) -> int:
    with psycopg.connect(server.admin_url, dbname=DATABASE) as conn:
        (count,) = conn.execute("SELECT count(*) FROM custody_events").fetchone() or (0,)
        return int(count)


def test_every_session_a_store_opens_speaks_tls_when_its_url_asks(tls_server: TlsServer) -> None:
    store = f"{tls_server.url}?sslmode=verify-full&sslrootcert={tls_server.ca}"
    for args in (  # each opens a direct connection first; a write takes one from the pool
        ("init",),
        ("register", "profile_tls", "--account", "account_tls", "--proxy", "proxy_tls"),
        ("checkout", "profile_tls", "--worker", "w1", "--run", "r1", "--task", "t1"),
        ("--json", "usage", "--account", "account_tls"),  # the pandas read path (ADBC)
    ):
        done = _custody(store, *args)
        assert done.returncode == 0, (args, done.stderr)
    assert [row["status"] for row in json.loads(done.stdout)] == ["active"]
    settings = StoreSettings.from_url(store)
    said: list[str] = []
    wakeups = ListeningWakeups(settings, "custody_events", 1.0, said.append)
    try:
        assert wakeups.listen(), said
    finally:
        wakeups.close()


def test_a_url_without_tls_is_turned_away_in_one_line_naming_why(tls_server: TlsServer) -> None:
    done = _custody(tls_server.url, "status")
    assert done.returncode == 6, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("custody: store postgresql://")
    assert "no encryption" in line


def test_a_server_the_url_does_not_trust_is_refused_and_nothing_is_written(
    tls_server: TlsServer,
) -> None:
    trusted = f"{tls_server.url}?sslmode=verify-full&sslrootcert={tls_server.ca}"
    assert _custody(trusted, "init").returncode == 0
    before = _events(tls_server)
    distrusting = f"{tls_server.url}?sslmode=verify-full&sslrootcert={tls_server.stranger}"
    done = _custody(distrusting, "register", "profile_untrusted", "--account", "a", "--proxy", "x")
    assert done.returncode == 6, done.stderr
    (line,) = done.stderr.splitlines()
    assert "certificate verify failed" in line
    assert _events(tls_server) == before
