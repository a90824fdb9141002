"""The DNSSEC keys of the dns kind: `dnssec`, `trust_anchor`, `rrsig_warn`/`rrsig_crit` and
`dnssec_insecure`. The dns options dataclass inherits them, so each is declared, parsed and
flagged (`--dnssec`, `--trust-anchor`, ...) once.

Why the RRSIG defaults are 2 and 1 days: signers refresh signatures well before they expire,
but not all equally early. OpenDNSSEC's default policy refreshes 3 days ahead (with 12 hours of
jitter), BIND's default dnssec-policy 5 days ahead of a 14-day validity, Knot DNS and PowerDNS
7 days or more. A healthy zone of any of them never shows less than about 2.5 days, so 2 days
left means its signer stopped; 1 day left is one day before every validating resolver answers
SERVFAIL. A zone whose signer refreshes earlier can be held to that: for BIND's default policy
`rrsig_warn: 4` hears of a stuck signer days sooner.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.name

from monitor.core.options import OptionError, boolean, choice, number, option
from probes.support.dnssec_anchor import load_anchors, trust_anchor_file

INSECURE_OUTCOMES = ("ok", "warn", "crit")


@dataclass(frozen=True, kw_only=True)
class DnssecOptions:
    dnssec: bool = option(
        False,
        parse=boolean,
        metavar="BOOL",
        help="validate the answer's chain of trust from trust_anchor (asks with the DO bit and "
        "EDNS0, 1232 bytes; each DS and DNSKEY from the same server)",
    )
    trust_anchor: str | None = option(
        None,
        parse=trust_anchor_file,
        metavar="PATH",
        help="DS or DNSKEY records (zone-file syntax, as unbound's trust-anchor-file) to "
        "validate from; none is built in",
    )
    rrsig_warn: float = option(
        2.0,
        parse=number(0),
        metavar="DAYS",
        help="WARN when a signature along the chain expires in fewer days",
    )
    rrsig_crit: float = option(
        1.0,
        parse=number(0),
        metavar="DAYS",
        help="CRIT when a signature along the chain expires in fewer days",
    )
    dnssec_insecure: str = option(
        "warn",
        parse=choice(*INSECURE_OUTCOMES),
        metavar="SEVERITY",
        help="what a provably unsigned answer (a delegation without DS) is: ok, warn or crit",
    )

    def validate_dnssec(self, target: str) -> None:
        if self.trust_anchor is not None and not self.dnssec:
            raise OptionError(
                "trust_anchor is set but dnssec is not",
                "add dnssec: true to validate, or drop trust_anchor",
                key="trust_anchor",
            )
        if self.dnssec and self.trust_anchor is None:
            raise OptionError(
                "dnssec: true needs a trust_anchor",
                "name a file of DS or DNSKEY records of the zone (or the root) to validate "
                "from; commwatch has none built in (docs/root-anchors.zone is the root's)",
                key="dnssec",
            )
        if self.rrsig_crit > self.rrsig_warn:
            raise OptionError(
                "rrsig_crit is above rrsig_warn",
                "the warning must come first: make rrsig_crit <= rrsig_warn",
                key="rrsig_crit",
            )
        if self.trust_anchor is not None:
            anchors = load_anchors(self.trust_anchor)
            if anchors.covering(dns.name.from_text(target)) is None:
                raise OptionError(
                    f"the trust anchor file names {anchors.names()}, which does not cover {target}",
                    "anchor a zone at or above the name (the root covers every name)",
                    key="trust_anchor",
                )
