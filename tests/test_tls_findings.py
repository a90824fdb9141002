"""TLS findings read as words wherever a person sees them: the summary (table and plugin line),
`commwatch probe`'s verdict list and the dashboard's Info column, against real TLS and HTTPS
peers on 127.0.0.1."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from monitor.config.checks import adhoc_check
from monitor.core.model import ProbeResult, Severity
from monitor.engine.runner import run_check
from monitor.output.plugin import nagios_line
from monitor.output.tables import verdict_list
from probes.base import SharedResources
from tests.peers.http_peers import http_server
from tests.peers.pki import make_leaf, server_context
from tests.peers.tls_peers import LOOPBACK
from tests.test_tls_probe import NAME, Pki, days, leaf, pki, probe, serve
from tui.present import info_text

__all__ = ["pki", "serve"]  # fixtures, used by name

BOOLEAN_WORD = re.compile(r"\b(True|False)\b")


def texts_for_people(result: ProbeResult) -> list[str]:
    return [
        result.summary(),
        nagios_line(result).split(" | ")[0],
        info_text(result, result.started_at),
        *(v.describe() for v in result.verdicts),
        *(v.reason for v in result.verdicts),
    ]


async def test_ok_summary_is_short_and_telling(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    with serve(leaf(pki, not_after=days(89.5))) as port:
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert result.severity is Severity.OK
    assert result.summary() == f"TLSv1.3, cert expires in 89d (#0 CN={LOOPBACK})"
    # The whole verdict list stays in `commwatch probe` and in JSON.
    listed = verdict_list(result, colour=False)
    assert f"chain verified by {pki.root_file}: OK" in listed
    assert f"name matches: {LOOPBACK} in the leaf's subjectAltName: OK" in listed


async def test_info_column_names_why_a_tls_row_is_not_ok(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    with serve(leaf(pki)) as port:
        target = f"{LOOPBACK}:{port}"
        untrusted = await probe(shared, target=target, ca_file=pki.other_root_file)
        mismatch = await probe(shared, target=target, ca_file=pki.root_file, server_name="x.test")
    with serve(leaf(pki, not_after=days(9.5))) as port:
        expiring = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert info_text(untrusted, untrusted.started_at) == "untrusted root"
    assert info_text(mismatch, mismatch.started_at) == "name mismatch"
    assert re.fullmatch(r"expires in 9\.[45]d", info_text(expiring, expiring.started_at))


async def test_https_row_names_the_reason_beside_the_status(
    pki: Pki, tmp_path: Path, shared: SharedResources
) -> None:
    expiring = make_leaf(pki.intermediate, [LOOPBACK, NAME], not_after=days(9.5))
    async with http_server(server_context(expiring, tmp_path, (pki.intermediate,))) as peer:
        ok_status = await run_check(
            adhoc_check("http", {"target": f"{peer.url}/ok", "ca_file": pki.root_file}), shared
        )
        refused = await run_check(
            adhoc_check("http", {"target": f"{peer.url}/ok", "ca_file": pki.other_root_file}),
            shared,
        )

    assert re.fullmatch(
        r"expires in 9\.[45]d · HTTP 200", info_text(ok_status, ok_status.started_at)
    )
    # Refused for its certificate: the error, and why in the certificate's own words.
    assert refused.error is not None
    assert re.fullmatch(
        r"expires in 9\.[45]d · untrusted root · tls: TLS certificate verify failed: .*",
        info_text(refused, refused.started_at),
    )
    assert refused.summary().startswith("tls: TLS certificate verify failed: ")
    assert "; untrusted root: CN=commwatch test root" in refused.summary()


async def test_no_verdict_reads_as_true_or_false(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    with serve(leaf(pki, (), common_name=LOOPBACK), ()) as port:
        target = f"{LOOPBACK}:{port}"
        broken = await probe(shared, target=target, ca_file=pki.other_root_file)
        fine_but_cn = await probe(shared, target=target, ca_file=pki.root_file)
    with serve(leaf(pki)) as port:
        good = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert broken.severity is Severity.CRIT and good.severity is Severity.OK
    for result in (broken, fine_but_cn, good):
        for text in texts_for_people(result):
            assert not BOOLEAN_WORD.search(text), text


async def test_info_column_says_a_reason_once(
    pki: Pki, serve: Any, shared: SharedResources
) -> None:
    with serve(leaf(pki), ()) as port:  # no intermediate sent: untrusted and incomplete
        result = await probe(shared, target=f"{LOOPBACK}:{port}", ca_file=pki.root_file)

    assert {v.condition for v in result.failing()} == {"trusted", "chain_complete"}
    assert info_text(result, result.started_at) == "incomplete chain"
