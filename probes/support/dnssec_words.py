"""The words of DNSSEC validation, light to import: a dns check without `dnssec: true` (and
`commwatch probe dns`, started thousands of times an hour) never loads dnspython's DNSSEC code
or the cryptography library; probes/support/dnssec_chain.py loads them when a check needs them.
"""

from __future__ import annotations

import time

import dns.dnssectypes
import dns.name
import dns.rdatatype
import dns.rrset

# RFC 4033 5: what validation concludes.
SECURE, INSECURE, BOGUS, INDETERMINATE = "secure", "insecure", "bogus", "indeterminate"
EDNS_PAYLOAD = 1232  # DNS Flag Day 2020: no fragmented UDP; larger answers come over TCP


def show(name: dns.name.Name) -> str:
    """A name as people write it: no final dot, the root as "."."""
    return name.to_text(omit_final_dot=True)


def what(rrset: dns.rrset.RRset) -> str:
    return f"{show(rrset.name)} {dns.rdatatype.to_text(rrset.rdtype)}"


def when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(moment))


def algorithm_name(number: int) -> str:
    return dns.dnssectypes.Algorithm.to_text(number)
