"""A local certificate authority for terminals and the server, for demos, tests and small sites.

Owns: EC P-256 keys, the self-signed CA, server certificates (DNS/IP SANs, serverAuth) and terminal
certificates whose URI SAN ``clinic-settlement://hospital/<H>/terminal/<T>`` names the terminal
(clientAuth, CN = terminal), and the layout of a PKI folder. Private keys are written 0600 and nothing
is ever overwritten. Must never be the only guard of a production CA: a hospital with its own PKI issues
certificates with the same URI SAN and points the server at its CA instead.

The ``make_*`` functions build certificates in memory with explicit validity, so tests can make an
expired certificate or one from another CA without touching the disk.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

URI_SCHEME = "clinic-settlement"
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
TERMINAL_URI = re.compile(
    rf"{URI_SCHEME}://hospital/(?P<hospital>{IDENTIFIER.pattern})/terminal/(?P<terminal>{IDENTIFIER.pattern})"
)

CA_VALIDITY_DAYS = 3650
SERVER_VALIDITY_DAYS = 825  # the longest server-certificate life browsers and most tools still accept
TERMINAL_VALIDITY_DAYS = 365
CLOCK_SKEW_ALLOWANCE = dt.timedelta(minutes=5)  # a terminal whose clock runs a little slow still connects

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
TERMINALS_DIR = "terminals"


class PkiError(Exception):
    """A refused PKI operation (a file would be overwritten, a name is malformed, the CA is missing)."""


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    certificate_pem: bytes
    key_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)


@dataclass(frozen=True)
class Authority:
    """A CA certificate with its key, able to sign."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def terminal_uri(hospital_id: str, terminal_id: str) -> str:
    _check_identifier("hospital", hospital_id)
    _check_identifier("terminal", terminal_id)
    return f"{URI_SCHEME}://hospital/{hospital_id}/terminal/{terminal_id}"


# ---- in memory -------------------------------------------------------------------------------------


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def validity(days: int, *, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """From a few minutes ago (clock skew) to ``days`` from now."""
    if days < 1:
        raise PkiError(f"validity must be at least 1 day, got {days}")
    start = (now or dt.datetime.now(dt.UTC)) - CLOCK_SKEW_ALLOWANCE
    return start, start + CLOCK_SKEW_ALLOWANCE + dt.timedelta(days=days)


def make_authority(
    common_name: str = "Clinic Settlement Local CA", *, not_before: dt.datetime, not_after: dt.datetime
) -> Authority:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        _builder(name, name, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing_certificates=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def make_server(
    authority: Authority, names: Sequence[str], *, not_before: dt.datetime, not_after: dt.datetime
) -> Issued:
    if not names:
        raise PkiError("a server certificate needs at least one --name (a DNS name or an IP address)")
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    certificate = (
        _builder(subject, authority.certificate.subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([_general_name(name) for name in names]), critical=False)
        .add_extension(_authority_key_id(authority), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return Issued(certificate.public_bytes(serialization.Encoding.PEM), key_pem(key))


def make_terminal(
    authority: Authority,
    hospital_id: str,
    terminal_id: str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> Issued:
    uri = terminal_uri(hospital_id, terminal_id)
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, terminal_id)])
    certificate = (
        _builder(subject, authority.certificate.subject, key.public_key(), not_before, not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=False)
        .add_extension(_authority_key_id(authority), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return Issued(certificate.public_bytes(serialization.Encoding.PEM), key_pem(key))


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, signing_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signing_certificates,
        crl_sign=signing_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_id(authority: Authority) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key())


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})", name):
        raise PkiError(f"--name {name!r} is neither an IP address nor a DNS name")
    return x509.DNSName(name)


def _check_identifier(kind: str, value: str) -> None:
    if not IDENTIFIER.fullmatch(value):
        raise PkiError(
            f"{kind} id {value!r} must be 1-64 characters of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )


# ---- on disk ---------------------------------------------------------------------------------------


def init_authority(directory: Path, *, days: int = CA_VALIDITY_DAYS) -> Authority:
    """Create ``ca.key`` and ``ca.crt`` in ``directory``; refuse if either exists."""
    directory.mkdir(parents=True, exist_ok=True)
    _refuse_existing(directory / CA_CERT, directory / CA_KEY)
    not_before, not_after = validity(days)
    authority = make_authority(not_before=not_before, not_after=not_after)
    _write_private(directory / CA_KEY, key_pem(authority.key))
    _write_public(directory / CA_CERT, authority.certificate_pem)
    return authority


def load_authority(directory: Path) -> Authority:
    try:
        certificate = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
        key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    except FileNotFoundError as error:
        raise PkiError(f"{error.filename}: no CA here; run `settlement pki init --dir {directory}` first") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{directory / CA_KEY}: not an EC private key")
    return Authority(certificate, key)


def issue_server(directory: Path, names: Sequence[str], *, days: int = SERVER_VALIDITY_DAYS) -> tuple[Path, Path]:
    """Write ``server.crt`` / ``server.key`` signed by the CA in ``directory``; returns (cert, key) paths."""
    authority = load_authority(directory)
    cert_path, key_path = directory / SERVER_CERT, directory / SERVER_KEY
    _refuse_existing(cert_path, key_path)
    not_before, not_after = validity(days)
    issued = make_server(authority, names, not_before=not_before, not_after=not_after)
    _write_private(key_path, issued.key_pem)
    _write_public(cert_path, issued.certificate_pem)
    return cert_path, key_path


def terminal_paths(directory: Path, hospital_id: str, terminal_id: str) -> tuple[Path, Path]:
    """Where a terminal's certificate and key live: ``terminals/<H>/<T>.crt`` and ``.key``."""
    _check_identifier("hospital", hospital_id)
    _check_identifier("terminal", terminal_id)
    folder = directory / TERMINALS_DIR / hospital_id
    return folder / f"{terminal_id}.crt", folder / f"{terminal_id}.key"


def issue_terminal(
    directory: Path, hospital_id: str, terminal_id: str, *, days: int = TERMINAL_VALIDITY_DAYS
) -> tuple[Path, Path]:
    """Write a terminal's certificate and key under ``terminals/<H>/``; returns (cert, key) paths."""
    authority = load_authority(directory)
    cert_path, key_path = terminal_paths(directory, hospital_id, terminal_id)
    _refuse_existing(cert_path, key_path)
    not_before, not_after = validity(days)
    issued = make_terminal(authority, hospital_id, terminal_id, not_before=not_before, not_after=not_after)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(key_path, issued.key_pem)
    _write_public(cert_path, issued.certificate_pem)
    return cert_path, key_path


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise PkiError(f"{path}: already exists; refusing to overwrite (move it away first)")


def _write_private(path: Path, data: bytes) -> None:
    # O_EXCL: never replace a key; mode 0600 from the first byte, not chmod'ed afterwards.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _write_public(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
