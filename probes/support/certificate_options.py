"""The certificate options every TLS-bearing probe shares (tls, and http for https URLs).

Their options dataclasses inherit `CertificateOptions`, so each key (`ca_file`, `warn_days`,
`pin`, `ocsp`, `client_cert`, ...) is declared, parsed, checked and flagged once.
"""

from __future__ import annotations

import base64
import functools
import os
import ssl
from dataclasses import dataclass
from typing import Any

from monitor.core.options import (
    OptionError,
    boolean,
    duration,
    each,
    integer,
    number,
    option,
    readable_file,
    text,
)
from monitor.core.secrets import SecretRef, secret_env, secret_file


def ca_file(value: Any) -> str:
    """A PEM bundle of CA certificates, checked by loading it the way a handshake will."""
    path = readable_file(value)
    stat = os.stat(path)
    problem = _ca_file_problem(path, stat.st_mtime_ns, stat.st_size)
    if problem is not None:
        raise OptionError(
            f"file {path} holds no usable CA certificate ({problem})",
            "give a PEM file with one or more CA certificates",
        )
    return path


@functools.lru_cache(maxsize=256)
def _ca_file_problem(path: str, _mtime_ns: int, _size: int) -> str | None:
    """Loading a bundle costs about a millisecond; an inventory names the same few bundles on
    thousands of checks. Keyed on the file's mtime and size so an edited file is read again."""
    try:
        ssl.create_default_context(cafile=path)
    except (OSError, ValueError) as exc:
        return str(exc)
    return None


def pin(value: Any) -> str:
    """`sha256/BASE64` of a SubjectPublicKeyInfo, as HPKP and curl write it."""
    raw = text(value).strip()
    hint = "write sha256/ followed by the base64 SHA-256 of the public key (SPKI)"
    prefix, _, encoded = raw.partition("/")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except ValueError:
        digest = b""
    if prefix.lower() != "sha256" or len(digest) != 32:
        raise OptionError(f"{raw!r} is not a sha256/BASE64 pin", hint)
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, kw_only=True)
class CertificateOptions:
    """The certificate keys of every TLS-bearing probe (tls, and http for https URLs). Their
    options dataclasses inherit these, so each key is declared, parsed and flagged once."""

    ca_file: str | None = option(
        None,
        parse=ca_file,
        metavar="PATH",
        help="PEM CA bundle to verify against instead of the system store (a device's own "
        "self-signed certificate, to accept it)",
    )
    warn_days: float = option(
        30.0,
        parse=number(0),
        metavar="DAYS",
        help="WARN when a certificate (leaf or intermediate) expires in fewer days",
    )
    crit_days: float = option(
        14.0,
        parse=number(0),
        metavar="DAYS",
        help="CRIT when a certificate (leaf or intermediate) expires in fewer days",
    )
    max_validity_days: int | None = option(
        None,
        parse=integer(1),
        metavar="DAYS",
        help="CRIT when the leaf's validity period is longer (a publicly trusted leaf is "
        "held to the CA/B Forum's dated maximum anyway, as a WARN)",
    )
    renewal_due: float = option(
        0.67,
        parse=number(0.01, 1.0),
        metavar="FRACTION",
        help="WARN 'renewal overdue' once this fraction of the leaf's validity has passed and "
        "no newer certificate was seen at the endpoint (0.67: two thirds, as ACME clients renew)",
    )
    pin: tuple[str, ...] = option(
        (),
        parse=each(pin),
        metavar="sha256/BASE64",
        repeatable=True,
        help="CRIT unless the leaf or a chain element has one of these SPKI SHA-256 pins; "
        "tls checks trust a pinned leaf key, self-signed or not",
    )
    ocsp: bool = option(
        False,
        parse=boolean,
        metavar="BOOL",
        help="ask the leaf's OCSP responder whether it is revoked",
    )
    crl: bool = option(
        False,
        parse=boolean,
        metavar="BOOL",
        help="check the leaf against its CRL (after OCSP, when both are on)",
    )
    revocation_timeout: float = option(
        "5s", parse=duration, metavar="DURATION", help="time allowed for each OCSP or CRL exchange"
    )
    client_cert: str | None = option(
        None,
        parse=readable_file,
        metavar="PATH",
        help="PEM client certificate (and chain) for servers that demand one",
    )
    client_key: str | None = option(
        None, parse=readable_file, metavar="PATH", help="PEM private key of client_cert"
    )
    client_key_passphrase_env: SecretRef | None = option(
        None,
        parse=secret_env,
        metavar="NAME",
        help="environment variable holding the passphrase of client_key",
    )
    client_key_passphrase_file: SecretRef | None = option(
        None, parse=secret_file, metavar="PATH", help="file holding the passphrase of client_key"
    )

    def validate_certificates(self) -> None:
        validate_certificate_options(self)


def validate_certificate_options(options: Any) -> None:
    """Cross-field checks of the shared certificate keys."""
    if options.crit_days > options.warn_days:
        raise OptionError(
            "crit_days is above warn_days",
            "the warning must come first: make crit_days <= warn_days",
            key="crit_days",
        )
    if (options.client_cert is None) != (options.client_key is None):
        raise OptionError(
            "client_cert and client_key go together",
            "give both the certificate and its private key",
            key="client_cert" if options.client_cert is None else "client_key",
        )
    if options.client_key_passphrase_env and options.client_key_passphrase_file:
        raise OptionError(
            "two passphrases for client_key",
            "keep one of client_key_passphrase_env and client_key_passphrase_file",
            key="client_key_passphrase_file",
        )
    if (
        options.client_key_passphrase_env or options.client_key_passphrase_file
    ) and options.client_key is None:
        raise OptionError(
            "a passphrase without client_key",
            "give client_cert and client_key, or drop the passphrase",
            key="client_key_passphrase_env"
            if options.client_key_passphrase_env
            else "client_key_passphrase_file",
        )


def load_client_certificate(context: ssl.SSLContext, options: Any) -> None:
    """Present the configured client certificate; the passphrase is read only here."""
    if options.client_cert is None:
        return
    secret: SecretRef | None = (
        options.client_key_passphrase_env or options.client_key_passphrase_file
    )
    context.load_cert_chain(
        options.client_cert,
        options.client_key,
        password=None if secret is None else secret.reveal,
    )


def trust_source(options: Any) -> str:
    """The CA store a check verifies against, as findings name it."""
    return options.ca_file or "the system CA store"
