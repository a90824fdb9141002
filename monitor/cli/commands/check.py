"""`commwatch check`: validate an inventory and summarise it, with what its declared risks leave
to chance (findings, not faults: the exit code says the inventory is valid)."""

from __future__ import annotations

import argparse
from collections import Counter

from monitor.cli.commands.selection import load
from monitor.config.diversity import inventory_findings
from monitor.core.text import printable

EXIT_INVALID = 2  # what `check --help` promises for an inventory with faults


def run(args: argparse.Namespace) -> int:
    inventory = load(args.inventory)
    if inventory is None:
        return EXIT_INVALID
    kinds = Counter(check.kind for check in inventory.checks)
    roles = Counter(link.role for link in inventory.links)
    print(f"{inventory.path}: valid")
    print(
        f"  {len(inventory.sites)} sites, {len(inventory.links)} links "
        f"({', '.join(f'{n} {role}' for role, n in sorted(roles.items()))}), "
        f"{len(inventory.checks)} checks"
    )
    for kind, count in sorted(kinds.items()):
        print(f"  {count:>5} {kind}")
    if any(link.risks for link in inventory.links):
        findings = inventory_findings(inventory)
        print(f"  shared risks: {len(findings) or 'no'} finding{'' if len(findings) == 1 else 's'}")
        for finding in findings:
            print(f"    {printable(finding)}")
    return 0
