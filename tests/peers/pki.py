"""The test PKI is the demo lab's (`monitor.lab.pki`), re-exported so tests keep importing it
from their peers, and what only tests need on top: certificates that point at a revocation
service."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID

from monitor.lab.pki import Issued, make_ca, make_leaf, server_context

__all__ = ["Issued", "make_ca", "make_leaf", "revocation_urls", "server_context"]


def revocation_urls(
    ocsp_url: str | None = None, crl_url: str | None = None
) -> list[x509.ExtensionType]:
    """The extensions that tell a client where to ask about revocation: an Authority Information
    Access entry for the OCSP responder and a CRL distribution point, for `make_leaf`."""
    extensions: list[x509.ExtensionType] = []
    if ocsp_url is not None:
        location = x509.UniformResourceIdentifier(ocsp_url)
        extensions.append(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(AuthorityInformationAccessOID.OCSP, location)]
            )
        )
    if crl_url is not None:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)
        extensions.append(x509.CRLDistributionPoints([point]))
    return extensions
