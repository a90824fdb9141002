"""Which of a zone's DNSKEYs its DS records vouch for (RFC 4035 5.2), and which algorithms and
digests RFC 8624 no longer wants signers to use, said per zone ("RSASHA1 at example.net")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dns.dnssec
import dns.exception
import dns.name
from dns.rdtypes.ANY.DNSKEY import DNSKEY
from dns.rdtypes.ANY.DS import DS

from probes.support.dnssec_verify import validates
from probes.support.dnssec_words import algorithm_name, show

# RFC 8624 3.1: signing with RSAMD5, DSA, DSA-NSEC3-SHA1 and ECC-GOST MUST NOT be done any
# more, with RSASHA1 and RSASHA1-NSEC3-SHA1 it is NOT RECOMMENDED (and validators drop them:
# a SHA-1 signature fails on RHEL 9's default crypto policy). 3.3: no SHA-1 or GOST DS.
DEPRECATED_ALGORITHMS = frozenset({1, 3, 5, 6, 7, 12})
DEPRECATED_DIGESTS = {1: "SHA-1", 3: "GOST"}
_DIGESTS = frozenset({1, 2, 4})  # SHA-1, SHA-256, SHA-384: what dnspython computes


def usable(ds_records: Iterable[DS]) -> list[DS]:
    """The DS records a validator can use: a digest it computes, an algorithm it verifies.
    None at all means the zone counts as unsigned (RFC 4035 5.2, RFC 6840 5.2)."""
    return [
        ds
        for ds in ds_records
        if ds.digest_type in _DIGESTS
        and dns.dnssec.default_policy.ok_to_validate_ds(ds.digest_type)
        and validates(ds.algorithm)
    ]


def algorithms_of(ds_records: Iterable[DS]) -> str:
    return ", ".join(sorted({algorithm_name(ds.algorithm) for ds in ds_records}))


def vouched(
    name: dns.name.Name, keys: Iterable[DNSKEY], ds_records: Sequence[DS]
) -> tuple[list[DNSKEY], list[DS]]:
    """The keys of `name` some DS record matches, and the DS records that matched."""
    pairs = [(key, ds) for key in keys for ds in ds_records if _matches(name, ds, key)]
    keys_found = list({id(key): key for key, _ in pairs}.values())
    return keys_found, list({id(ds): ds for _, ds in pairs}.values())


def _matches(name: dns.name.Name, ds: DS, key: DNSKEY) -> bool:
    if key.key_id() != ds.key_tag or key.algorithm != ds.algorithm:
        return False
    try:
        made = dns.dnssec.make_ds(name, key, ds.digest_type, validating=True)
    except (dns.exception.UnsupportedAlgorithm, dns.exception.DeniedByPolicy, ValueError):
        return False
    return made.digest == ds.digest


def deprecations(
    zone: dns.name.Name, algorithms: Iterable[int], ds_records: Iterable[DS]
) -> list[str]:
    """What `zone` relies on that RFC 8624 deprecates, in words."""
    found = [
        f"{algorithm_name(number)} at {show(zone)}"
        for number in sorted(set(algorithms))
        if number in DEPRECATED_ALGORITHMS
    ]
    found += [
        f"DS digest {DEPRECATED_DIGESTS[ds.digest_type]} for {show(zone)}"
        for ds in ds_records
        if ds.digest_type in DEPRECATED_DIGESTS
    ]
    return found
