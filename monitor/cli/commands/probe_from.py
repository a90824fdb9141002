"""`commwatch probe --from URL CHECK_ID`: a check's last result as the engine serving URL has
it, as a monitoring plugin reports it, so a Nagios or Icinga poll costs the engine one request
and the gear no extra probe.

Every outcome is a status line with the plugin convention's exit code: the result's own, or
UNKNOWN with the reason when the engine cannot say (not reachable, token refused, no such
check, no result yet, or a result so old that the engine has stopped looking: paused, or
stalled).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from monitor.api.client import ApiClient, ApiError
from monitor.api.readers import RecordError, inventory_from_document, result_from_record
from monitor.cli.commands import attach
from monitor.cli.parsing import EXIT_UNKNOWN, plugin_status
from monitor.config.inventory import Check
from monitor.core.model import ProbeResult
from monitor.output import plugin, tables, terminal

PLUGIN = "COMMWATCH"
# A result older than this many intervals (plus the timeout) is not the check's state any more.
STALE_INTERVALS = 3


def run(args: argparse.Namespace) -> int:
    url_text, check_id = args.source
    try:
        # The URL as written is not repeated: it may hold a password.
        url = attach.target(url_text)
    except attach.AttachError as exc:
        return _unknown(f"--from: {exc}")
    try:
        token = attach.token(args)
        document = asyncio.run(_state(url, token, args.ca_file))
        check, result, paused = _last_result(document, check_id, str(url))
    except (attach.AttachError, ApiError, RecordError, OSError) as exc:
        return _unknown(f"{url}: {exc}")
    except LookupError as exc:
        return _unknown(str(exc.args[0]))
    age = time.time() - (result.started_at + result.duration_ms / 1000)
    if age > STALE_INTERVALS * check.interval + check.timeout:
        why = "paused on the engine" if paused else "the engine has not run it since"
        return _unknown(f"{check_id}: last result is {age:.0f}s old ({why})")
    if args.nagios:
        print(plugin.nagios_line(result))
    else:
        print(tables.verdict_list(result, terminal.use_colour(sys.stdout)))
    return result.severity.value


async def _state(url: Any, token: str | None, ca_file: str | None) -> dict[str, Any]:
    async with ApiClient(url, token=token, ca_file=ca_file) as client:
        return await client.state()


def _last_result(
    document: dict[str, Any], check_id: str, source: str
) -> tuple[Check, ProbeResult, bool]:
    inventory = inventory_from_document(document, source)
    check = next((c for c in inventory.checks if c.ref.check_id == check_id), None)
    if check is None:
        raise LookupError(f"{check_id}: no such check on the engine (ids are site/link/check)")
    entry = next((e for e in document.get("checks", ()) if e.get("check_id") == check_id), None)
    if entry is None or entry.get("last_result") is None:
        raise LookupError(f"{check_id}: no result yet (the engine has just started)")
    return check, result_from_record(entry["last_result"], check.ref), bool(entry.get("paused"))


def _unknown(message: str) -> int:
    print(plugin_status(PLUGIN, message))
    return EXIT_UNKNOWN
