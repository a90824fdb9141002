"""The lab's certificates: a lab CA whose certificate ships with commwatch, and fresh leaves at
every start for each TLS case (healthy, expiring, expired, wrong host, untrusted).

Why the CA certificate ships: the example inventory names it in `ca_file`, and inventories are
validated at load time, file included, so `commwatch check inventory.yaml` must find it even
when no lab has ever run. The CA's key is therefore derived from a published constant (no key
file in the repository for a secret scanner to flag, and none needed): anyone can sign with it,
so it is worth nothing outside the lab, and its name constraints limit it to loopback addresses
and names under example.net even for someone who trusts it by mistake. Leaves are made at each
start so "expires in 20 days" stays true.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from monitor.lab.layout import Behaviour
from monitor.lab.pki import Issued, make_ca, make_leaf, server_context

LAB_CA_FILE = Path(__file__).with_name("lab-ca.pem")
_LAB_CA_SEED = b"commwatch demo lab CA: this key is public; never trust it outside the lab"
# P-256 group order: a derived private value must lie in [1, order - 1].
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
EXPIRING_DAYS = 20  # between the default warn_days (30) and crit_days (14): a WARN
EXPIRED_DAYS_AGO = 3


def lab_ca_key() -> ec.EllipticCurvePrivateKey:
    value = int.from_bytes(hashlib.sha256(_LAB_CA_SEED).digest(), "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(value, ec.SECP256R1())


def lab_ca() -> Issued:
    """The shipped CA certificate with its derived key (tests/test_demo_lab.py shows how the
    certificate was made, and checks the file still is that certificate)."""
    return Issued(x509.load_pem_x509_certificate(LAB_CA_FILE.read_bytes()), lab_ca_key())


def _days(n: float) -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=n)


def _leaf(behaviour: Behaviour, ca: Issued, address: str) -> tuple[Issued, list[Issued]]:
    """The certificate a case serves and the chain after it. The DNS name comes first: it
    becomes the subject CN, which OpenSSL may hold against the CA's DNS name constraint."""
    match behaviour:
        case Behaviour.TLS_HEALTHY:
            return make_leaf(ca, ["cad.psap-north.example.net", address]), []
        case Behaviour.TLS_EXPIRING:
            # A 90-day certificate as ACME issues them, whose renewal (due at two thirds)
            # silently failed: what a certificate that expires this month usually is.
            return make_leaf(
                ca,
                ["paging.dispatch.example.net", address],
                not_before=_days(EXPIRING_DAYS - 90),
                not_after=_days(EXPIRING_DAYS),
            ), []
        case Behaviour.TLS_EXPIRED:
            return make_leaf(
                ca,
                ["rfss.radio-ridge.example.net", address],
                not_before=_days(-90),
                not_after=_days(-EXPIRED_DAYS_AGO),
            ), []
        case Behaviour.TLS_WRONG_HOST:
            return make_leaf(ca, ["vsat-old.radio-ridge.example.net"]), []
        case Behaviour.TLS_UNTRUSTED:
            # A vendor's own root, sent along as such gear does: complete, but trusted by nobody.
            factory = make_ca("LTE router factory CA")
            return make_leaf(factory, ["lte-gw.psap-north.example.net", address]), [factory]
    raise ValueError(f"{behaviour} is not a TLS behaviour")


def server_contexts(
    wanted: list[tuple[Behaviour, str]],
) -> dict[tuple[Behaviour, str], ssl.SSLContext]:
    """A server context per (behaviour, address). Keys touch the disk only for as long as
    OpenSSL takes to load them."""
    ca = lab_ca()
    contexts = {}
    with tempfile.TemporaryDirectory(prefix="commwatch-lab-") as folder:
        for behaviour, address in wanted:
            leaf, chain = _leaf(behaviour, ca, address)
            contexts[(behaviour, address)] = server_context(leaf, Path(folder), chain)
    return contexts
