"""piker's private certificate authority: `piker certs init|issue|revoke`.

tractor has no authentication: anyone who can reach a port can call any
exposed function. Between hosts piker therefore speaks mutual TLS (`_tls`),
and every peer proves itself with a certificate signed by *this* CA, which
never leaves the machine it was made on. Layout of `<config dir>/certs/`:

- `ca.pem` (public) and `ca.key` (0600): the CA;
- `crl.pem`: the certificate revocation list, signed by the CA, checked at
  every TLS handshake (re-read when the file changes); `init` writes an
  empty one, `revoke NAME` adds NAME's serial;
- `issued/NAME.pem`: a copy of every certificate issued (to revoke by name);
- `bundles/NAME/`: what `issue NAME` makes for a host or client: `ca.pem`,
  `crl.pem`, `cert.pem`, `cert.key` (0600). Copy that directory to the
  other machine's `<config dir>/certs/` (`--install` uses it here);
- `cert.pem` / `cert.key`: this machine's own identity (see `_tls`).

Keys are EC P-256 (fast handshakes); every file is written atomically and
keys are created 0600 before a byte of them is written.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..config import get_config_dir
from ._registry import ServiceError

CA_DAYS = 3650
CERT_DAYS = 825
_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$')


class CertError(ServiceError):
    """A `piker certs` operation cannot be done (clear message)."""


def certs_dir(config_dir: Path | None = None) -> Path:
    return (config_dir or get_config_dir()) / 'certs'


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write(path: Path, data: bytes, secret: bool = False) -> None:
    """Atomically write `path`; a secret is 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp')
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_ca(d: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((d / 'ca.pem').read_bytes())
        key = serialization.load_pem_private_key((d / 'ca.key').read_bytes(), None)
    except FileNotFoundError:
        raise CertError(f'no CA in {d}: run `piker certs init` first '
                        '(on the machine that keeps the CA)') from None
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _sign_crl(d: Path, serials: list[int]) -> None:
    ca, key = _load_ca(d)
    now = _now()
    b = (x509.CertificateRevocationListBuilder()
         .issuer_name(ca.subject)
         .last_update(now)
         .next_update(now + dt.timedelta(days=CA_DAYS)))
    for serial in serials:
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial)
            .revocation_date(now).build())
    _write(d / 'crl.pem', b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def revoked_serials(d: Path) -> list[int]:
    try:
        crl = x509.load_pem_x509_crl((d / 'crl.pem').read_bytes())
    except FileNotFoundError:
        return []
    return [r.serial_number for r in crl]


def init_ca(d: Path, name: str = 'piker CA') -> Path:
    """Create the CA and an empty CRL in `d`; refuses to overwrite one."""
    if (d / 'ca.key').exists():
        raise CertError(f'a CA already exists in {d} (ca.key): not overwriting it')
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write(d / 'ca.key', _key_pem(key), secret=True)
    _write(d / 'ca.pem', cert.public_bytes(serialization.Encoding.PEM))
    _sign_crl(d, [])
    return d / 'ca.pem'


def _san(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def issue(d: Path, name: str, hosts: list[str], *, install: bool = False) -> Path:
    """Issue a certificate for host/client `name`; returns its bundle dir.

    `hosts` (IPs and DNS names) go in the subjectAltName: a peer connecting
    *to* this one checks its address against them. A pure client may have
    none.
    """
    if not _NAME.match(name):
        raise CertError(f'bad certificate name {name!r}: letters, digits, ".", "_", "-"')
    old = d / 'issued' / f'{name}.pem'
    if old.exists() and (x509.load_pem_x509_certificate(old.read_bytes()).serial_number
                         not in revoked_serials(d)):
        raise CertError(f'{name!r} was already issued (not revoked): '
                        f'`piker certs revoke {name}` first')
    ca, ca_key = _load_ca(d)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
         .issuer_name(ca.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage(
             [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    if hosts:
        b = b.add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    pem = cert.public_bytes(serialization.Encoding.PEM)
    bundle = d / 'bundles' / name
    _write(bundle / 'cert.key', _key_pem(key), secret=True)
    _write(bundle / 'cert.pem', pem)
    _write(bundle / 'ca.pem', (d / 'ca.pem').read_bytes())
    _write(bundle / 'crl.pem', (d / 'crl.pem').read_bytes())
    _write(d / 'issued' / f'{name}.pem', pem)
    if install:
        install_bundle(bundle, d)
    return bundle


def install_bundle(bundle: Path, d: Path) -> None:
    """Make `bundle` this machine's identity (`d/cert.pem`, `d/cert.key`)."""
    for f in ('cert.pem', 'cert.key', 'ca.pem', 'crl.pem'):
        src, dst = bundle / f, d / f
        if src.resolve() != dst.resolve():
            _write(dst, src.read_bytes(), secret=f.endswith('.key'))
    shutil.copymode(bundle / 'cert.key', d / 'cert.key')


def revoke(d: Path, name: str) -> int:
    """Add `name`'s serial to the CRL; returns the serial."""
    try:
        cert = x509.load_pem_x509_certificate((d / 'issued' / f'{name}.pem').read_bytes())
    except FileNotFoundError:
        raise CertError(f'no certificate named {name!r} was issued from {d}') from None
    serials = revoked_serials(d)
    if cert.serial_number not in serials:
        _sign_crl(d, serials + [cert.serial_number])
    return cert.serial_number
