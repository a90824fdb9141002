"""The `commwatch` command line: its subcommands, their flags and help.

Every subcommand is listed by name and one line of help; its flags are declared (by its function
below) only when it is chosen, so `commwatch --help` declares none and `commwatch probe tcp`
declares tcp's alone (see monitor.cli.parsing.LazySubcommands). The flags of `probe KIND` are the
kind's inventory keys (monitor.cli.probe_flags).
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

from monitor.cli import values
from monitor.cli.parsing import VERSION, CommandParser, subcommands
from probes.registry import REGISTRY

DEFAULT_INVENTORY = "inventory.yaml"


def build_parser() -> CommandParser:
    parser = CommandParser(
        prog="commwatch",
        description="Watch emergency-communication links: availability, TLS certificate health "
        "and SNMP status, from an inventory of sites, links and checks.",
        epilog="Exit codes follow the monitoring-plugin convention: 0 OK, 1 WARN, 2 CRIT, "
        "3 UNKNOWN (including usage errors and unreadable inventories). Durations are written "
        "250ms, 30s, 5m, 1h, 1d or 1m30s; a bare number is seconds.",
    )
    parser.add_argument("-V", "--version", action="version", version=VERSION)
    commands = subcommands(parser, "command", "COMMAND", required=False)
    commands.declare("check", _check, help="validate an inventory and summarise it")
    commands.declare("run", _run, help="run the checks headless and emit JSON")
    commands.declare(
        "audit",
        _audit,
        help="audits: `audit certs` reports certificate expiry and chain findings",
    )
    commands.declare(
        "report", _report, help="availability per check, link and group, from the history store"
    )
    commands.declare("tui", _tui, help="the live dashboard (the default on a terminal)")
    commands.declare(
        "web", _web, help="the dashboard of a running engine in a browser (textual-serve)"
    )
    commands.declare(
        "demo", _demo, help="start a lab on loopback and watch it: the dashboard, or headless"
    )
    commands.declare(
        "probe",
        _probe,
        help="run one check with no inventory (usable as a monitoring plugin)",
        plugin="COMMWATCH",
    )
    commands.declare(
        "agent",
        _agent,
        help="probe here and publish the results to NATS JetStream for a central engine",
    )
    commands.declare(
        "central",
        _central,
        help="judge what agents publish to NATS JetStream: state, history, alerts, the API",
    )
    return parser


def _check(check: CommandParser) -> None:
    check.description = (
        "Validate an inventory; exit 0 when valid, 2 when not, listing every fault as "
        "file:line:column. Where links declare `risks:`, it also lists as findings (not faults: "
        "the exit code stays 0) each shared risk whose loss alone would take a group below "
        "min_up, and risks spelled alike that count as two."
    )
    check.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)


def _run(run: CommandParser) -> None:
    run.description = (
        "Run every selected check. With --once: one sweep, one JSON document, exit code = "
        "worst severity. Without: run continuously, one JSON line per result, until "
        "interrupted (SIGINT/SIGTERM)."
    )
    run.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    run.add_argument("--once", action="store_true", help="one sweep, then exit")
    _add_workers_flag(run, "feeding the one engine here")
    _add_engine_flags(
        run, "continuous run: ", "serving the engine (continuous runs only, not --once)"
    )
    _add_traps_flag(run)
    _add_filters(run)


def _central(central: CommandParser) -> None:
    central.description = (
        "Run the engine on the results agents publish to the results stream on NATS "
        "JetStream (commwatch agent), through a durable consumer: the state engine, history, "
        "alerts, one JSON line per result and state change, and the API as `run` serves it; "
        "no probe runs here. Several centrals may run at once, each judging every result: "
        "the one holding the leader lease (cluster: lease_ttl:) sends the notifications. A "
        "restart resumes where the last run stopped. Runs until SIGINT/SIGTERM. Needs the "
        "cluster extra: pip install 'commwatch[cluster]'."
    )
    central.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    _add_nats_flag(central)
    central.add_argument(
        "--name",
        type=values.vantage_name,
        help="this central's name, unique among the centrals (lower-case letters, digits, "
        "'-' and '_'; default: the host name): its durable consumer is central-NAME, and the "
        "leader lease and the log name it",
    )
    _add_engine_flags(central, "", "serving the engine")
    _add_filters(central)


def _add_workers_flag(parser: argparse.ArgumentParser, feeding: str) -> None:
    parser.add_argument(
        "--workers",
        type=values.workers,
        metavar="N",
        help=f"probe in N processes of this machine (sharded by target host, the global "
        f"concurrency cap divided among them), {feeding}, so that TLS handshakes use every "
        "core; 1: probe in this process. Default: the cores this process may use "
        f"({values.usable_cores()} here), or 1 for fewer than {values.WORKERS_FROM_CHECKS} "
        "checks",
    )


def _add_nats_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nats",
        type=values.nats_url,
        metavar="URL",
        help="the NATS server, nats://HOST:PORT or tls://HOST:PORT, or the nodes of a NATS "
        "cluster comma-separated (overrides cluster: nats: url:; credentials never go in the "
        "URL, only in cluster: nats: credentials:)",
    )
    parser.add_argument(
        "--js-domain",
        type=values.jetstream_domain,
        metavar="DOMAIN",
        help="the JetStream domain of the servers that keep the results stream, for a NATS leaf "
        "node without JetStream of its own between here and them (overrides cluster: domain:)",
    )


def _add_engine_flags(parser: argparse.ArgumentParser, scope: str, api_title: str) -> None:
    """The flags of a continuous engine (`run`, `central`): its sinks and its API."""
    parser.add_argument(
        "--no-history",
        action="store_true",
        help=f"{scope}do not store results and events (the inventory's history: block says "
        "where they go)",
    )
    parser.add_argument("--no-alerts", action="store_true", help=f"{scope}send no notifications")
    _add_stream_format(parser, "json (default) for machines, table for people")
    _add_listen_flags(
        parser,
        api_title,
        "The inventory's api: section sets the listener's TLS, tokens and limits.",
        "serve the HTTP API (health, state, events, history, metrics, commands) on this "
        "IP address and port, e.g. 127.0.0.1:9110 (port 0: any free one, printed at start); "
        "overrides api: listen",
    )


def _add_listen_flags(
    parser: argparse.ArgumentParser, title: str, description: str, serves: str
) -> None:
    listener = parser.add_argument_group(title, description)
    listener.add_argument("--listen", type=values.listen, metavar="HOST:PORT", help=serves)
    listener.add_argument(
        "--allow-insecure-remote",
        action="store_true",
        help="listen beyond loopback without TLS or tokens (anyone on the network could read "
        "the tokens, or reach the API without one)",
    )


def _add_traps_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--traps",
        type=values.listen,
        metavar="HOST:PORT",
        help="listen for SNMP traps and informs on this IP address and port (overrides traps: "
        "listen:, default 127.0.0.1:1162; 162 needs root): a linkDown, linkUp, coldStart or "
        "warmStart from a watched device is a result of its checks at once, and a re-poll. "
        "The inventory's traps: section says whose to accept (communities, SNMPv3 users)",
    )


def _agent(agent: CommandParser) -> None:
    agent.description = (
        "Run the selected checks continuously and publish every result to the results stream "
        "on NATS JetStream, for a central engine to judge; no state, history or alerts here. "
        "While NATS cannot be reached, probing goes on and results wait in a spool on disk "
        "(bounded by the inventory's cluster: spool:), replayed in order on reconnection. "
        "Runs until SIGINT/SIGTERM. Needs the cluster extra: pip install 'commwatch[cluster]'."
    )
    agent.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    _add_nats_flag(agent)
    agent.add_argument(
        "--name",
        required=True,
        type=values.vantage_name,
        help="this vantage point's name, unique among the agents (lower-case letters, digits, "
        "'-' and '_'): it is in every result's subject and message id",
    )
    agent.add_argument(
        "--pool",
        action="append",
        type=values.vantage_name,
        metavar="POOL",
        help="a pool this agent is in (repeatable; default: the pool 'default'): it shares the "
        "checks whose vantage: names the pool with the pool's other live agents",
    )
    agent.add_argument(
        "--leaf-domain",
        type=values.jetstream_domain,
        metavar="DOMAIN",
        help="the JetStream domain of this site's NATS leaf node, which has JetStream of its "
        "own: results go to the stream of that name there, which keeps them through a WAN "
        "outage and which the hub's stream sources (the central's cluster: leaf_domains: must "
        "name it); needs the hub's domain, cluster: domain: or --js-domain",
    )
    agent.add_argument(
        "--spool",
        type=Path,
        metavar="PATH",
        help="the spool file (overrides cluster: spool: path:; default "
        "$XDG_STATE_HOME/commwatch/spool-NAME.sqlite3)",
    )
    _add_listen_flags(
        agent,
        "serving health and metrics",
        "The inventory's api: section sets the listener's TLS, tokens and limits (its listen: "
        "is the central's, not taken here).",
        "serve /healthz (no token needed) and /metrics (a viewer token of api: tokens:) on "
        "this IP address and port, e.g. 127.0.0.1:9111 (port 0: any free one, printed at "
        "start)",
    )
    _add_filters(agent)


def _audit(audit: CommandParser) -> None:
    audit.description = "Scheduled audits for cron or a systemd timer."
    audits = subcommands(audit, "audit", "AUDIT")
    audits.declare(
        "certs",
        _audit_certs,
        help="every certificate on every TLS-bearing check, soonest expiry first, and what "
        "is wrong with each endpoint's chain",
    )


def _audit_certs(certs: CommandParser) -> None:
    # The audit's report module is that command's own: it loads only when the audit is chosen.
    from monitor.output.audit_formats import FORMATS

    certs.description = (
        "Probe every TLS-bearing check (tls, https) and report every certificate seen, leaf and "
        "chain, once per fingerprint with every endpoint that serves it, soonest expiry first; "
        "then, per endpoint, its trust, name, chain, malformed-certificate, pin and revocation "
        "findings, in the words of the check's own verdicts. Both count in the exit code: 0 "
        "all good, 1 warnings (or endpoints that could not be read), 2 critical, 3 nothing "
        "could be checked."
    )
    certs.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    certs.add_argument(
        "--within",
        type=values.days,
        metavar="DAYS",
        help="list only certificates expiring within DAYS (all are judged)",
    )
    certs.add_argument(
        "--warn",
        type=values.days,
        metavar="DAYS",
        help="WARN below this many days, overriding each check's warn_days",
    )
    certs.add_argument(
        "--crit",
        type=values.days,
        metavar="DAYS",
        help="CRIT below this many days, overriding each check's crit_days",
    )
    certs.add_argument("--format", choices=FORMATS, default="table", help="(default table)")
    certs.add_argument(
        "--output", metavar="FILE", help="write the report to FILE (atomically) instead of stdout"
    )
    _add_workers_flag(certs, "their findings reported here")
    _add_filters(certs)


def _report(report: CommandParser) -> None:
    # The availability report's module is that command's own: it loads only when it is chosen.
    from monitor.output.report_formats import FORMATS

    report.description = (
        "Availability over a period from the recorded history: time in each state the live "
        "view showed, outages and mean time to recover, per group, link and check. Only "
        "observed time counts (commwatch running, the subject's first state known); "
        "maintenance is left out. The store says which subjects there were; with an INVENTORY, "
        "its subjects are listed even when nothing was recorded, its maintenance windows "
        "count too, and a diversity section names, per group, the single shared risks "
        "(`risks:`) that would take it below min_up. Exit 0 (a report is not a check), 3 when "
        "the history cannot be read."
    )
    report.add_argument("inventory", nargs="?", default=None)
    report.add_argument(
        "--since",
        type=values.duration_flag,
        default="7d",
        metavar="DURATION",
        help="the period up to now to report on (default 7d)",
    )
    report.add_argument("--format", choices=FORMATS, default="table", help="(default table)")
    report.add_argument(
        "--db",
        metavar="PATH",
        help="the history database (default: the INVENTORY's history path, else "
        "$XDG_STATE_HOME/commwatch/history.sqlite3, XDG_STATE_HOME being ~/.local/state "
        "when unset)",
    )


def _tui(tui: CommandParser) -> None:
    tui.description = (
        "Run the selected checks on their intervals and show them live: sites, links and "
        "checks, problems explained, keys listed by '?'."
    )
    tui.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    tui.add_argument(
        "--no-history",
        action="store_true",
        help="do not store results and events, nor show what was stored before",
    )
    tui.add_argument("--no-alerts", action="store_true", help="send no notifications")
    tui.add_argument(
        "--connect",
        metavar="URL",
        help="show the engine serving URL (`commwatch run --listen`) instead of running checks "
        "here: no probe and no notification runs in this process; run now, pause and "
        "acknowledge go to the engine (with an operator token)",
    )
    _add_traps_flag(tui)
    _add_attach_flags(tui)
    _add_filters(tui)


def _web(web: CommandParser) -> None:
    web.description = (
        "Serve the dashboard of a running engine to browsers: every tab is a `commwatch tui "
        "--connect URL` of its own, attached to the one engine. Needs textual-serve "
        "(pip install 'commwatch[web]')."
    )
    web.add_argument(
        "--connect", metavar="URL", required=True, help="the engine (`commwatch run --listen`)"
    )
    web.add_argument(
        "--listen",
        metavar="HOST:PORT",
        type=values.listen,
        default="127.0.0.1:8110",
        help="where browsers connect (default 127.0.0.1:8110, this machine only: put a TLS "
        "reverse proxy with authentication in front before opening it wider)",
    )
    web.add_argument(
        "--allow-remote",
        action="store_true",
        help="listen beyond loopback (the served dashboard has no login of its own)",
    )
    _add_attach_flags(web)
    _add_filters(web)  # each tab shows that selection of the engine's checks


def _demo(demo: CommandParser) -> None:
    demo.description = (
        "Start the built-in demo lab on loopback (HTTP, TLS, DNS, SNMP peers with varied and "
        "changing conditions) and watch it with an inventory written for it. Stops cleanly on "
        "SIGINT/SIGTERM."
    )
    mode = demo.add_mutually_exclusive_group()
    mode.add_argument(
        "--headless",
        action="store_true",
        help="the continuous headless run (as `commwatch run`) instead of the dashboard",
    )
    mode.add_argument(
        "--lab-only",
        action="store_true",
        help="only the lab, until Ctrl-C: point `commwatch run --once inventory.yaml` at it",
    )
    _add_stream_format(demo, "headless output: json lines (default) or a table for people")
    demo.add_argument(
        "--port-offset",
        type=values.port_offset,
        default=0,
        metavar="N",
        help="shift every lab port by N, to run a second lab beside one already running "
        "(the shipped inventory.yaml names the unshifted ports)",
    )
    demo.set_defaults(no_history=False, no_alerts=True, listen=None, allow_insecure_remote=False)


def _probe(probe: CommandParser) -> None:
    # A kind's flags are its options: declaring them imports the kind, so only the chosen
    # kind's are declared, and the code that declares them loads only for `probe`.
    from monitor.cli.probe_flags import PLUGIN_EPILOG, declare_probe_kind

    probe.description = (
        "Run one check from the command line. Every inventory key of the kind is a flag "
        "(latency_warn -> --latency-warn). Secrets only by reference (*-env, *-file)."
    )
    probe.add_argument(
        "--from",
        dest="source",
        nargs=2,
        metavar=("URL", "CHECK_ID"),
        help="no probing: the last result of CHECK_ID (site/link/check) from the engine "
        "serving URL; UNKNOWN when the engine cannot say",
    )
    probe.add_argument(
        "--nagios", action="store_true", help="with --from: one monitoring-plugin status line"
    )
    _add_attach_flags(probe)
    kinds = subcommands(probe, "kind", "KIND", required=False)
    for kind in REGISTRY:
        summary = REGISTRY.summary(kind)
        kinds.declare(
            kind,
            functools.partial(declare_probe_kind, kind),
            help=summary,
            description=summary,
            epilog=PLUGIN_EPILOG,
            add_help=False,
            plugin=kind.upper(),
        )


def _add_attach_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("attaching to an engine (with --connect / --from)")
    token = group.add_mutually_exclusive_group()
    token.add_argument(
        "--token-env",
        metavar="NAME",
        help="the bearer token is in this environment variable (a viewer token looks, an "
        "operator token may also run, pause and acknowledge)",
    )
    token.add_argument("--token-file", metavar="PATH", help="the bearer token is in this file")
    group.add_argument(
        "--ca-file",
        metavar="PEM",
        help="trust the engine's certificate when this CA signed it (a private CA); the "
        "system's CAs otherwise. The certificate is always verified",
    )


def _add_stream_format(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--format", choices=("json", "table"), default="json", help=help)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection (repeat a flag for any of several values)")
    group.add_argument(
        "--only",
        action="append",
        metavar="ID",
        help="check id or glob, full (site/link/check) or the check's own id",
    )
    group.add_argument("--site", action="append", metavar="ID", help="checks of this site")
    group.add_argument("--tag", action="append", metavar="TAG", help="checks with this tag")
    group.add_argument(
        "--kind",
        action="append",
        metavar="KIND",
        choices=sorted(REGISTRY),
        help="checks of this kind",
    )
