"""Certificates the tests make with ``cryptography``: a private CA and a server certificate for
127.0.0.1 (the service's ``--tls-cert``), and self-signed client certificates (management
certificates, as the guide's were: ``makecert`` made self-signed ones)."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Made:
    """A certificate and its key, as PEM files (``both`` holds the two, as classic clients
    take them)."""

    cert: Path
    key: Path
    both: Path

    @property
    def pem(self) -> str:
        """The certificate alone."""
        return self.cert.read_text()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(directory: Path, stem: str, cert: x509.Certificate,
           key: ec.EllipticCurvePrivateKey) -> Made:
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    paths = Made(directory / f"{stem}.crt", directory / f"{stem}.key", directory / f"{stem}.pem")
    paths.cert.write_bytes(cert_pem)
    paths.key.write_bytes(key_pem)
    paths.key.chmod(0o600)
    paths.both.write_bytes(cert_pem + key_pem)
    paths.both.chmod(0o600)
    return paths


def _builder(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey,
             days: int) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


def server_pair(directory: Path) -> tuple[Made, Made]:
    """(a CA, a server certificate for 127.0.0.1 and localhost signed by it)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (_builder("vmimage test CA", "vmimage test CA", ca_key, 2)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder("127.0.0.1", "vmimage test CA", key, 2)
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return _write(directory, "ca", ca, ca_key), _write(directory, "server", cert, key)


def client_certificate(directory: Path, name: str, days: int = 2) -> Made:
    """A self-signed client certificate (a management certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (_builder(name, name, key, days)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return _write(directory, name, cert, key)
