"""What several vantage points see of one TLS endpoint, compared: the same leaf key and the same
chain from everywhere, or "possible interception between <vantage> and <endpoint>".

An interceptor near one vantage point (a middlebox re-signing TLS, a hijacked route, a
STARTTLS port answered by someone else) shows that vantage point a different leaf key, or the
same key under a different chain, while the others see the real one. Only fresh results are
compared (quorum.freshness: at the same time, as far as the check's interval tells), and only
those that saw a certificate. The leaf's key, not its fingerprint, is what must match: a
certificate reissued for the same key (a renewal that keeps its key) is the same server; the
chain is compared beyond the leaf, so a renewal under a new intermediate seen by one vantage
point before the next poll of the other reads as a chain difference for one interval at most.

The vantage points that saw what most of them saw are taken as the endpoint's own view; the
others are named. When no view has a majority, all are named.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.core.model import CertificateInfo, Severity, VantageResult, Verdict

# What a vantage point saw: the leaf's key and the rest of the chain's fingerprints.
View = tuple[str, tuple[str, ...]]


def _view(chain: Sequence[CertificateInfo]) -> View:
    return chain[0].spki_sha256, tuple(c.fingerprint_sha256 for c in chain[1:])


def _names(items: Sequence[str], conjunction: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _seen(name: str, chain: Sequence[CertificateInfo]) -> str:
    leaf = chain[0]
    return (
        f"{name} saw leaf {leaf.fingerprint_sha256[:16]} (key sha256/{leaf.spki_sha256}, "
        f"issuer {leaf.issuer})"
    )


def interception_verdict(target: str, parts: Sequence[VantageResult]) -> Verdict | None:
    """The comparison of what the fresh vantage points saw of `target`; None when fewer than
    two of them saw a certificate."""
    chains = {
        part.name: part.result.certificates
        for part in parts
        if part.fresh and part.result is not None and part.result.certificates
    }
    if len(chains) < 2:
        return None
    views: dict[View, list[str]] = {}
    for name, chain in chains.items():
        views.setdefault(_view(chain), []).append(name)
    names = list(chains)
    if len(views) == 1:
        return Verdict(
            condition="interception",
            observation="vantage_views",
            value=1,
            threshold="the same leaf key and chain from every vantage point",
            severity=Severity.OK,
            finding=f"same certificate from {_names(names)}",
            reason="same certificate everywhere",
        )
    ranked = sorted(views.values(), key=len, reverse=True)
    majority = ranked[0] if len(ranked[0]) > len(ranked[1]) else []
    odd = [name for name in names if name not in majority]
    keys = {view[0] for view in views}
    what = "leaf keys" if len(keys) > 1 else "chains"
    seen = "; ".join(_seen(name, chains[name]) for name in names)
    # Without a majority any of them may be the one intercepted: "a or b".
    who = _names(odd, "and" if majority else "or")
    return Verdict(
        condition="interception",
        observation="vantage_views",
        value=len(views),
        threshold="the same leaf key and chain from every vantage point",
        severity=Severity.WARN,
        finding=f"possible interception between {who} and {target}: "
        f"different {what} at the same time; {seen}",
        reason=f"possible interception between {who} and {target}",
    )
