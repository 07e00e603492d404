"""``settlement pki`` makes a local CA, a server certificate and terminal certificates that name their
hospital and terminal; keys are private to their owner and nothing is ever overwritten."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from settlement.cli import EXIT_OK, EXIT_USAGE, main


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_a_ten_year_p256_ca_with_a_private_key(tmp_path: Path) -> None:
    folder = tmp_path / "pki"
    assert main(["pki", "init", "--dir", str(folder)]) == EXIT_OK
    ca = certificate(folder / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    public_key = ca.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.curve.name == "secp256r1"
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert dt.timedelta(days=3650) <= lifetime <= dt.timedelta(days=3651)
    assert mode(folder / "ca.key") == 0o600


def test_init_refuses_to_overwrite_an_existing_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "init", "--dir", str(tmp_path)]) == EXIT_OK
    before = (tmp_path / "ca.key").read_bytes()
    assert main(["pki", "init", "--dir", str(tmp_path)]) == EXIT_USAGE
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "ca.key").read_bytes() == before


def test_issue_server_names_every_dns_name_and_ip_address(tmp_path: Path) -> None:
    assert main(["pki", "init", "--dir", str(tmp_path)]) == EXIT_OK
    assert main(["pki", "issue-server", "--dir", str(tmp_path), "--name", "localhost", "--name", "127.0.0.1"]) == 0
    server = certificate(tmp_path / "server.crt")
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert server.issuer == certificate(tmp_path / "ca.crt").subject
    assert mode(tmp_path / "server.key") == 0o600


def test_issue_terminal_names_hospital_and_terminal_in_a_uri_san(tmp_path: Path) -> None:
    assert main(["pki", "init", "--dir", str(tmp_path)]) == EXIT_OK
    command = ["pki", "issue-terminal", "--dir", str(tmp_path), "--hospital", "H001", "--terminal", "T01"]
    assert main([*command, "--days", "30"]) == EXIT_OK
    terminal = certificate(tmp_path / "terminals" / "H001" / "T01.crt")
    names = terminal.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        "clinic-settlement://hospital/H001/terminal/T01"
    ]
    assert terminal.subject.rfc4514_string() == "CN=T01"
    usage = terminal.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    lifetime = terminal.not_valid_after_utc - terminal.not_valid_before_utc
    assert dt.timedelta(days=30) <= lifetime <= dt.timedelta(days=31)
    assert mode(tmp_path / "terminals" / "H001" / "T01.key") == 0o600
    assert main(command) == EXIT_USAGE  # the same terminal again: refused, not overwritten


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        (["issue-terminal", "--hospital", "H/../1", "--terminal", "T01"], "hospital id"),
        (["issue-terminal", "--hospital", "H001", "--terminal", "T01", "--days", "0"], "at least 1 day"),
        (["issue-server", "--name", "not a name"], "neither an IP address nor a DNS name"),
    ],
)
def test_malformed_names_and_validities_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], complaint: str
) -> None:
    assert main(["pki", "init", "--dir", str(tmp_path)]) == EXIT_OK
    assert main(["pki", arguments[0], "--dir", str(tmp_path), *arguments[1:]]) == EXIT_USAGE
    assert complaint in capsys.readouterr().err


def test_issuing_without_a_ca_says_to_run_init_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pki", "issue-server", "--dir", str(tmp_path), "--name", "localhost"]) == EXIT_USAGE
    assert "settlement pki init" in capsys.readouterr().err
