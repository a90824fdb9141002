"""One engine, two `commwatch tui --connect` viewers on terminals of their own, a webhook
receiver: a state change is notified once, by the engine, whoever watches."""

from __future__ import annotations

import asyncio

from tests.peers.webhook_peers import WebhookReceiver
from tests.viewer_support import OPERATOR_ENV, TOKENS, CountingPeer, PtyViewer, running_engine


def notified(receiver: WebhookReceiver) -> list[str]:
    return [e["subject_id"] for r in receiver.requests for e in r.json["events"]]


async def test_each_alert_goes_out_once_with_two_viewers_attached(tmp_path):
    receiver = WebhookReceiver()
    await receiver.start()
    up = CountingPeer()
    await up.start()
    alerts = (
        "alerts:\n"
        "  group_window: 200ms\n"
        "  retry_base: 100ms\n"
        f'  notifiers: [{{id: noc, kind: webhook, url: "{receiver.base_url}/noc"}}]\n'
    )
    viewers: list[PtyViewer] = []
    try:
        async with running_engine(tmp_path, {"fibre": up}, extra=alerts) as engine:
            url = str(engine.url)
            viewers = [
                PtyViewer("tui", "--connect", url, "--token-env", OPERATOR_ENV) for _ in "ab"
            ]
            for viewer in viewers:
                await viewer.start()
            for viewer in viewers:
                await viewer.wait_for("fibre", "OK")

            await up.stop()
            status, _ = await engine.request("POST", "/api/v1/checks/psap/fibre/port/run")
            assert status == 202
            await receiver.wait_for(lambda r: "psap/fibre/port" in notified(r), timeout=10)
            for viewer in viewers:
                await viewer.wait_for("refused")  # the CRIT row's info, only after the change
            # Time for any second sender to show itself: the group window and retries, often.
            await asyncio.sleep(2.0)
            events = [e["event_id"] for r in receiver.requests for e in r.json["events"]]
            assert len(events) == len(set(events))  # each state change notified once
            assert receiver.duplicates == []
            # The site's AT RISK from the start, the link's check CRIT and the site DOWN: each
            # subject once, from the one engine.
            assert notified(receiver).count("psap/fibre/port") == 1
            assert up.accepted == 1  # the engine's first run; no viewer probed
            for viewer in viewers:
                assert TOKENS[OPERATOR_ENV] not in viewer.text()
    finally:
        for viewer in viewers:
            await viewer.stop()
        await up.stop()
        await receiver.stop()
