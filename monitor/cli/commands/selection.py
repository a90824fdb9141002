"""What every command over an inventory does first: load it (its faults printed, nothing run),
and for those that run checks, select them (a --site or --tag that names nothing is a typo to
answer with the valid names, not an empty selection)."""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import sys
from dataclasses import dataclass

from monitor.config.inventory import Check, Inventory, InventoryErrors
from monitor.config.loader import load_inventory
from monitor.core.text import bounded_message

_LISTED_IDS = 20  # an inventory of 500 sites must not answer a typo with 500 ids


@dataclass(frozen=True)
class Selection:
    inventory: Inventory
    checks: tuple[Check, ...]  # in inventory order, never empty


def load(path: str) -> Inventory | None:
    """The inventory at `path`, or None with every fault printed."""
    try:
        return load_inventory(path)
    except InventoryErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{path}: {len(exc.errors)} problem(s); nothing was run", file=sys.stderr)
        return None


def selection(args: argparse.Namespace) -> Selection | None:
    """The inventory `args` name and the checks they select, or None with the reason printed."""
    inventory = load(args.inventory)
    if inventory is None:
        return None
    problem = unknown_selection(inventory, args)
    if problem is not None:
        print(f"commwatch: {problem}", file=sys.stderr)
        return None
    checks = select_checks(inventory, args)
    if not checks:
        print("commwatch: no check matches the selection", file=sys.stderr)
        return None
    return Selection(inventory, checks)


def unknown_selection(inventory: Inventory, args: argparse.Namespace) -> str | None:
    """What is wrong with a --site or --tag that names nothing in the inventory, listing the
    valid ones: a typo must not read as "nothing matches"."""
    known = {
        "site": sorted(site.id for site in inventory.sites),
        "tag": sorted({tag for check in inventory.checks for tag in check.ref.tags}),
    }
    for flag, valid in known.items():
        for wanted in getattr(args, flag) or ():
            if wanted not in valid:
                close = difflib.get_close_matches(wanted, valid, n=3)
                guess = f"did you mean {' or '.join(close)}? " if close else ""
                listed = ", ".join(valid[:_LISTED_IDS]) if valid else "none"
                if len(valid) > _LISTED_IDS:
                    listed += f" and {len(valid) - _LISTED_IDS} more"
                return bounded_message(
                    f"no {flag} {wanted!r} in {inventory.path} ({guess}{flag}s: {listed})",
                    limit=1000,
                )
    return None


def select_checks(inventory: Inventory, args: argparse.Namespace) -> tuple[Check, ...]:
    def wanted(check: Check) -> bool:
        ref = check.ref
        own_id = ref.check_id.rsplit("/", 1)[-1]
        return (
            (
                not args.only
                or any(
                    fnmatch.fnmatchcase(ref.check_id, p) or fnmatch.fnmatchcase(own_id, p)
                    for p in args.only
                )
            )
            and (not args.site or ref.site_id in args.site)
            and (not args.tag or any(tag in ref.tags for tag in args.tag))
            and (not args.kind or ref.kind in args.kind)
        )

    return tuple(check for check in inventory.checks if wanted(check))
