"""The emulator's certificate authority: one CA per emulator, and the certificates it signs.

Clients trust the CA (functions through AWS_CA_BUNDLE and NODE_EXTRA_CA_CERTS, the
operator's commands through the state's CA bundle), so any name the emulator answers for
can be served over TLS with a certificate made for it on the spot: the gateway's own
names (localhost, the --host name, the API's execute-api host name) and every AWS host
name a function dials (the front door, frontdoor.py). Keys are EC P-256, certificates
last 30 days, and the CA key never leaves the emulator's folder (owner-only).
"""

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

VALIDITY = datetime.timedelta(days=30)


class Authority:
    """A CA made for one emulator run, in `folder`: ca.pem (to trust) and the signing key in memory."""

    def __init__(self, folder: Path):
        # cryptography is heavy and only `local up` needs it (`local down` imports this package too)
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._key = ec.generate_private_key(ec.SECP256R1())
        # One key for every certificate this CA issues: a certificate is then a signature
        # (about a millisecond), not a key generation, when a new host name is first dialled.
        self._leaf_key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wsctl local emulator CA")])
        public = self._key.public_key()
        cert = (self._builder(self._name, public)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
                .sign(self._key, _sha256()))
        self._cert = cert
        self.cert_path = self.folder / "ca.pem"
        self.cert_path.write_bytes(_pem(cert))
        self._leaf_key_path = self.folder / "key.pem"
        _write_private(self._leaf_key_path, self._leaf_key)

    def _builder(self, subject, public_key):
        from cryptography import x509

        now = datetime.datetime.now(datetime.timezone.utc)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(self._name).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + VALIDITY))

    def issue(self, hosts: list[str], file_name: str) -> Path:
        """A server certificate for `hosts` (DNS names or IP addresses), written to file_name in the
        CA's folder; its key is the CA's one leaf key (key_path)."""
        from cryptography import x509
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        names = []
        for host in dict.fromkeys(hosts):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64])])
        cert = (self._builder(subject, self._leaf_key.public_key())
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                               critical=False)
                .sign(self._key, _sha256()))
        path = self.folder / file_name
        # the chain: leaf then CA, so a client that trusts the CA needs nothing else
        path.write_bytes(_pem(cert) + _pem(self._cert))
        return path

    @property
    def key_path(self) -> Path:
        return self._leaf_key_path

    def server_context(self, hosts: list[str], file_name: str) -> ssl.SSLContext:
        """A TLS server context presenting a certificate for `hosts`."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2  # API Gateway accepts TLS 1.2 and 1.3 only
        context.load_cert_chain(self.issue(hosts, file_name), self.key_path)
        return context

    def bundle(self) -> Path:
        """The default CA bundle plus this CA, so a client can reach both real AWS and the emulator."""
        from botocore.httpsession import get_cert_path  # heavy too

        bundle = self.folder / "ca-bundle.pem"
        default = Path(get_cert_path(True))
        bundle.write_bytes(default.read_bytes() + b"\n" + self.cert_path.read_bytes())
        return bundle


def _sha256():
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def _pem(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, key) -> None:
    from cryptography.hazmat.primitives import serialization

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
