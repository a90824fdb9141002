"""The private parts of Python's `ssl` that the TLS probes rely on, and nothing else.

Python's `ssl` has no public way to see the handshake messages a server sends, nor to get
OpenSSL's own reading of each certificate it served (Python 3.13 added the chains as DER bytes
only). Both exist privately, as CPython's own tests use them: the C context's message callback,
and the chain methods of an SSLObject's C object. tests/test_ssl_compat.py pins exactly the
behaviour used here against a real TLS server, so a Python upgrade that changes it fails there,
naming what changed, before a probe misreads a server.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any, Protocol, cast

from probes.support.certificate_reader import Served

# TLS record content type and handshake message type (RFC 8446, 5.1 and 4).
HANDSHAKE = 22
CERTIFICATE_REQUEST = 13

# (the SSLObject, "read" or "write", protocol version, content type, message type, raw bytes),
# all numbers as the C layer gives them.
MessageCallback = Callable[[ssl.SSLObject, str, int, int, int, bytes], None]


def _private(owner: Any, name: str, used_for: str) -> Any:
    """A private attribute, or an error at import that says what is gone and what needs it."""
    try:
        return getattr(owner, name)
    except AttributeError:
        raise ImportError(
            f"this Python's ssl has no {owner.__name__}.{name} (used to {used_for}):"
            " probes/support/ssl_compat.py must be adapted to it"
        ) from None


_C_LAYER = _private(ssl, "_ssl", "reach OpenSSL's C layer")
# The C type's own descriptor: Python's `SSLContext._msg_callback` property wraps every call in
# a function that builds three enum members per TLS message, a measurable share of a sweep's CPU.
_MESSAGE_CALLBACK = _private(
    _private(_C_LAYER, "_SSLContext", "reach the C context"),
    "_msg_callback",
    "see the server's CertificateRequest",
)
_ENCODING_DER: int = _private(_C_LAYER, "ENCODING_DER", "read served certificates as DER")


class ChainCertificate(Protocol):
    """A certificate as `_ssl` gives it from a connection's chain."""

    def public_bytes(self, format: int = ..., /) -> bytes | str: ...

    def get_info(self) -> dict[str, Any]: ...


def watch_handshake_messages(context: ssl.SSLContext, callback: MessageCallback) -> None:
    """Have `callback` see every TLS message of every connection made with `context`."""
    _MESSAGE_CALLBACK.__set__(context, callback)


def served_chain(ssl_object: ssl.SSLObject) -> tuple[list[Served], list[bytes]]:
    """(served chain, with OpenSSL's reading of each certificate; verified chain as DER), leaf
    first. The verified chain is empty when nothing was verified (CERT_NONE)."""
    source = ssl_object._sslobj  # type: ignore[attr-defined]  # the C object, see module doc
    served = cast("list[ChainCertificate]", source.get_unverified_chain() or [])
    verified: list[ChainCertificate] = []
    if ssl_object.context.verify_mode != ssl.CERT_NONE:
        verified = source.get_verified_chain() or []
    return (
        [Served(_der(c), c.get_info) for c in served],
        [_der(c) for c in verified],
    )


def _der(certificate: ChainCertificate) -> bytes:
    return cast(bytes, certificate.public_bytes(_ENCODING_DER))
