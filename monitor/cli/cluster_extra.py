"""What the cluster commands (`agent`, `central`) share. They need nats-py, which the default
install leaves out (the `cluster` extra): without it they say the one command that installs
it, rather than a traceback. Both read the inventory's `cluster:` section, `--nats` and
`--js-domain` over it."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys

from monitor.cli.commands.selection import Selection, selection
from monitor.cli.parsing import EXIT_UNKNOWN
from monitor.config.cluster import ClusterConfig
from monitor.config.inventory import Inventory


def cluster_selection(
    command: str, args: argparse.Namespace
) -> tuple[Selection, ClusterConfig] | int:
    """What `agent` and `central` start from: nats-py there, the inventory loaded and its
    checks selected, and its `cluster:` section with `--nats` and `--js-domain` over it; or the
    exit code, what is wrong already said."""
    missing = missing_nats(command)
    if missing is not None:
        return missing
    selected = selection(args)
    if selected is None:
        return EXIT_UNKNOWN
    config = cluster_config(selected.inventory, args)
    missing = missing_nkeys(command, config)
    if missing is not None:
        return missing
    return selected, config


def missing_nats(command: str) -> int | None:
    """EXIT_UNKNOWN, with the line saying how to install nats-py, when it cannot be imported;
    None when it can."""
    try:
        import nats  # noqa: F401
    except ImportError:
        print(
            f"commwatch {command} needs nats-py: pip install 'commwatch[cluster]'", file=sys.stderr
        )
        return EXIT_UNKNOWN
    return None


def missing_nkeys(command: str, config: ClusterConfig) -> int | None:
    """EXIT_UNKNOWN, with the line saying how to install it, when the credentials are an NKey
    seed or a `.creds` file and nats-py's nkeys package (which signs the server's nonce)
    cannot be imported: nats-py would fail at every connection attempt, looking like NATS
    is away."""
    credentials = config.nats.credentials
    if credentials is None:
        return None
    if credentials.nkey_file is not None:
        kind = "an NKey seed file"
    elif credentials.creds_file is not None:
        kind = "a .creds file"
    else:
        return None
    try:
        found = importlib.util.find_spec("nkeys") is not None
    except ImportError:
        found = False
    if not found:
        print(
            f"commwatch {command} authenticates with {kind}, which needs the nkeys package: "
            "pip install 'commwatch[cluster]'",
            file=sys.stderr,
        )
        return EXIT_UNKNOWN
    return None


def cluster_config(inventory: Inventory, args: argparse.Namespace) -> ClusterConfig:
    """The inventory's `cluster:` section (its defaults without one), `--nats URL` and
    `--js-domain DOMAIN` over it."""
    cluster = inventory.cluster or ClusterConfig()
    if args.nats is not None:
        nats = dataclasses.replace(cluster.nats, url=args.nats)
        cluster = dataclasses.replace(cluster, nats=nats)
    if args.js_domain is not None:
        cluster = dataclasses.replace(cluster, domain=args.js_domain)
    return cluster
