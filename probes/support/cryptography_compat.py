"""The one private part of `cryptography` the certificate reader relies on: an OID's name.

cryptography names the OIDs it knows ("sha256WithRSAEncryption", "subjectAltName") only through
`ObjectIdentifier._name`, and says "Unknown OID" for the others. Findings use the name beside
the dotted form; tests/test_cryptography_compat.py pins it, so an upgrade that renames or
drops it fails there, not in a finding that reads "None".
"""

from __future__ import annotations

from cryptography import x509

_UNKNOWN = "Unknown OID"


def oid_name(oid: x509.ObjectIdentifier) -> str | None:
    """cryptography's name for `oid`; None when it knows none."""
    name = getattr(oid, "_name", None)
    return name if isinstance(name, str) and name != _UNKNOWN else None
