"""The `commwatch` command line: its subcommands, their flags and help. Every inventory key of a
probe kind becomes a flag of `commwatch probe KIND` here, from the kind's own declarations."""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from monitor.core import yamlnodes
from monitor.core.model import Severity
from monitor.core.options import (
    OptionError,
    OptionSpec,
    boolean,
    duration,
    format_number,
    option_specs,
)
from monitor.lab.layout import SERVICES
from monitor.output import audit as audit_report
from monitor.output import render as output
from monitor.output import report as availability
from probes.registry import REGISTRY

DEFAULT_INVENTORY = "inventory.yaml"
EXIT_UNKNOWN = Severity.UNKNOWN.value
# The options every `probe KIND` has: the plugin guidelines reserve -h, -V and -t. An inventory
# key of the same name gets its kind as a prefix on the command line (`--snmp-version`).
_PROBE_FLAGS = ("help", "version", "timeout", "state-dir", "format", "nagios")


def version() -> str:
    try:
        return importlib.metadata.version("commwatch")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout never installed
        return "unknown"


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 3 (UNKNOWN), as monitoring plugins do: 2 would read as CRITICAL.

    A bad flag gets the usage of the subcommand it was given to. A `probe` parser is a plugin:
    its usage errors also print a plugin status line on stdout, so a monitoring system shows
    what is wrong rather than "(No output returned from plugin)"."""

    def __init__(self, *args: Any, plugin: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin = plugin
        self.set_defaults(_parser=self)

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # The deepest subcommand chosen set `_parser` last: its usage is the one wanted.
            parser = getattr(parsed, "_parser", self)
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def error(self, message: str) -> NoReturn:
        if self.plugin is not None:
            print(output.plugin_status_line(self.plugin, Severity.UNKNOWN, message))
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"{self.prog}: error: {message}\n")


class _PluginHelp(argparse.Action):
    """-h and -V of a plugin exit 3 (UNKNOWN), as the monitoring plugins' own do."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        self.show_version = kwargs.pop("show_version", False)
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        if self.show_version:
            print(f"commwatch {version()}")
        else:
            parser.print_help()
        parser.exit(EXIT_UNKNOWN)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="commwatch",
        description="Watch emergency-communication links: availability, TLS certificate health "
        "and SNMP status, from an inventory of sites, links and checks.",
        epilog="Exit codes follow the monitoring-plugin convention: 0 OK, 1 WARN, 2 CRIT, "
        "3 UNKNOWN (including usage errors and unreadable inventories). Durations are written "
        "250ms, 30s, 5m, 1h, 1d or 1m30s; a bare number is seconds.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"commwatch {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    check = commands.add_parser(
        "check",
        help="validate an inventory and summarise it",
        description="Validate an inventory; exit 0 when valid, 2 when not, listing every fault "
        "as file:line:column.",
    )
    check.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)

    run = commands.add_parser(
        "run",
        help="run the checks headless and emit JSON",
        description="Run every selected check. With --once: one sweep, one JSON document, exit "
        "code = worst severity. Without: run continuously, one JSON line per result, until "
        "interrupted (SIGINT/SIGTERM).",
    )
    run.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    run.add_argument("--once", action="store_true", help="one sweep, then exit")
    run.add_argument(
        "--no-history",
        action="store_true",
        help="continuous run: do not store results and events (the inventory's history: block "
        "says where they go)",
    )
    run.add_argument(
        "--no-alerts", action="store_true", help="continuous run: send no notifications"
    )
    run.add_argument(
        "--format",
        choices=("json", "table"),
        default="json",
        help="json (default) for machines, table for people",
    )
    _add_filters(run)

    audit = commands.add_parser(
        "audit",
        help="audits: `audit certs` reports certificate expiry and chain findings",
        description="Scheduled audits for cron or a systemd timer.",
    )
    audits = audit.add_subparsers(
        dest="audit", metavar="AUDIT", required=True, parser_class=_Parser
    )
    certs = audits.add_parser(
        "certs",
        help="every certificate on every TLS-bearing check, soonest expiry first, and what "
        "is wrong with each endpoint's chain",
        description="Probe every TLS-bearing check (tls, https) and report every certificate "
        "seen, leaf and chain, once per fingerprint with every endpoint that serves it, "
        "soonest expiry first; then, per endpoint, its trust, name, chain, malformed-"
        "certificate, pin and revocation findings, in the words of the check's own verdicts. "
        "Both count in the exit code: 0 all good, 1 warnings (or endpoints that could not be "
        "read), 2 critical, 3 nothing could be checked.",
    )
    certs.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    certs.add_argument(
        "--within",
        type=_days,
        metavar="DAYS",
        help="list only certificates expiring within DAYS (all are judged)",
    )
    certs.add_argument(
        "--warn",
        type=_days,
        metavar="DAYS",
        help="WARN below this many days, overriding each check's warn_days",
    )
    certs.add_argument(
        "--crit",
        type=_days,
        metavar="DAYS",
        help="CRIT below this many days, overriding each check's crit_days",
    )
    certs.add_argument(
        "--format", choices=audit_report.FORMATS, default="table", help="(default table)"
    )
    certs.add_argument(
        "--output", metavar="FILE", help="write the report to FILE (atomically) instead of stdout"
    )
    _add_filters(certs)

    report = commands.add_parser(
        "report",
        help="availability per check, link and group, from the history store",
        description="Availability over a period from the recorded history: time in each state "
        "the live view showed, outages and mean time to recover, per group, link and check. "
        "Only observed time counts (commwatch running, the subject's first state known); "
        "maintenance is left out. The store says which subjects there were; with an INVENTORY, "
        "its subjects are listed even when nothing was recorded and its maintenance windows "
        "count too. Exit 0 (a report is not a check), 3 when the history cannot be read.",
    )
    report.add_argument("inventory", nargs="?", default=None)
    report.add_argument(
        "--since",
        type=_duration_flag,
        default="7d",
        metavar="DURATION",
        help="the period up to now to report on (default 7d)",
    )
    report.add_argument(
        "--format", choices=availability.FORMATS, default="table", help="(default table)"
    )
    report.add_argument(
        "--db",
        metavar="PATH",
        help="the history database (default: the INVENTORY's history path, else "
        "$XDG_STATE_HOME/commwatch/history.sqlite3, XDG_STATE_HOME being ~/.local/state "
        "when unset)",
    )

    tui = commands.add_parser(
        "tui",
        help="the live dashboard (the default on a terminal)",
        description="Run the selected checks on their intervals and show them live: sites, "
        "links and checks, problems explained, keys listed by '?'.",
    )
    tui.add_argument("inventory", nargs="?", default=DEFAULT_INVENTORY)
    tui.add_argument(
        "--no-history",
        action="store_true",
        help="do not store results and events, nor show what was stored before",
    )
    tui.add_argument("--no-alerts", action="store_true", help="send no notifications")
    _add_filters(tui)

    demo = commands.add_parser(
        "demo",
        help="start a lab on loopback and watch it: the dashboard, or headless",
        description="Start the built-in demo lab on loopback (HTTP, TLS, DNS, SNMP peers with "
        "varied and changing conditions) and watch it with an inventory written for it. "
        "Stops cleanly on SIGINT/SIGTERM.",
    )
    demo_mode = demo.add_mutually_exclusive_group()
    demo_mode.add_argument(
        "--headless",
        action="store_true",
        help="the continuous headless run (as `commwatch run`) instead of the dashboard",
    )
    demo_mode.add_argument(
        "--lab-only",
        action="store_true",
        help="only the lab, until Ctrl-C: point `commwatch run --once inventory.yaml` at it",
    )
    demo.add_argument(
        "--format",
        choices=("json", "table"),
        default="json",
        help="headless output: json lines (default) or a table for people",
    )
    demo.add_argument(
        "--port-offset",
        type=_port_offset,
        default=0,
        metavar="N",
        help="shift every lab port by N, to run a second lab beside one already running "
        "(the shipped inventory.yaml names the unshifted ports)",
    )
    demo.set_defaults(no_history=False, no_alerts=True)

    probe = commands.add_parser(
        "probe",
        help="run one check with no inventory (usable as a monitoring plugin)",
        description="Run one check from the command line. Every inventory key of the kind is a "
        "flag (latency_warn -> --latency-warn). Secrets only by reference (*-env, *-file).",
        plugin="COMMWATCH",
    )
    kinds = probe.add_subparsers(dest="kind", metavar="KIND", required=True, parser_class=_Parser)
    for kind, probe_kind in REGISTRY.items():
        sub = kinds.add_parser(
            kind,
            help=probe_kind.summary,
            description=probe_kind.summary,
            epilog=_PLUGIN_EPILOG,
            add_help=False,
            plugin=kind.upper(),
        )
        sub.add_argument(
            "target",
            metavar=probe_kind.target_help.replace(" ", "_"),
            help=f"what to check: {probe_kind.target_help}",
        )
        sub.add_argument("-h", "--help", action=_PluginHelp, help="show this help and exit 3")
        sub.add_argument(
            "-V",
            "--version",
            action=_PluginHelp,
            show_version=True,
            help="show the version and exit 3",
        )
        sub.add_argument(
            "-t",
            "--timeout",
            metavar="DURATION",
            type=_duration_flag,
            default="10s",
            help="give up after this long; a bare number is seconds (default 10s)",
        )
        sub.add_argument(
            "--state-dir",
            metavar="DIR",
            type=Path,
            help="keep what the probe remembers between runs (SNMP counters for rates, uptime "
            "for reboots, the TLS leaf last seen) in DIR (default $XDG_STATE_HOME/commwatch/"
            "probe, XDG_STATE_HOME being ~/.local/state when unset; with no home, a private "
            "folder in the temporary folder)",
        )
        output_group = sub.add_mutually_exclusive_group()
        output_group.add_argument(
            "--format",
            choices=("text", "json"),
            default="text",
            help="text (default) or json, the same object `run` emits",
        )
        output_group.add_argument(
            "--nagios", action="store_true", help="one monitoring-plugin status line with perfdata"
        )
        for spec in option_specs(probe_kind.options):
            if spec.name != "target":
                _add_option_flag(sub, kind, spec)
    return parser


_PLUGIN_EPILOG = (
    "As a monitoring plugin (--nagios) every outcome prints one status line on stdout; a usage "
    "error prints one whatever the format. Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (usage "
    "errors, -h and -V too). Durations are written 250ms, 30s, 5m, 1h or 1m30s; a bare number "
    "is seconds (a latency threshold takes a bare number up to 30 only: write 500ms, not 500)."
)


def flag_name(kind: str, key: str) -> str:
    """The command-line flag of an inventory key of `kind`."""
    dashed = key.replace("_", "-")
    return f"--{kind}-{dashed}" if dashed in _PROBE_FLAGS else f"--{dashed}"


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


def _add_option_flag(parser: argparse.ArgumentParser, kind: str, spec: OptionSpec) -> None:
    flag = flag_name(kind, spec.name)
    shown = _show_default(flag, spec)
    default = "" if shown is None else f" (default {shown})"
    if spec.parse is boolean:
        parser.add_argument(
            flag,
            dest=spec.name,
            action=argparse.BooleanOptionalAction,
            default=None,
            help=spec.help + default,
        )
    else:
        parser.add_argument(
            flag,
            dest=spec.name,
            metavar=spec.metavar,
            default=None,
            action="append" if spec.repeatable else "store",
            help=spec.help + (" (repeatable)" if spec.repeatable else "") + default,
        )


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days") from None
    if days < 0:
        raise argparse.ArgumentTypeError("days cannot be negative")
    return days


def _port_offset(text: str) -> int:
    ports = [s.base_port for s in SERVICES]
    low, high = 1 - min(ports), 65535 - max(ports)
    try:
        offset = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not low <= offset <= high:
        raise argparse.ArgumentTypeError(
            f"{offset} puts lab ports outside 1-65535: use an offset from {low} to {high}"
        )
    return offset


def _duration_flag(text: str) -> float:
    try:
        return duration(text)
    except OptionError as exc:
        raise argparse.ArgumentTypeError(f"{exc}") from None


def _show_default(flag: str, spec: OptionSpec) -> str | None:
    """The default as the user writes it: `15m`, `200-399`, `30`, `--no-ocsp`."""
    value = spec.default
    if spec.written is not None:
        return spec.written
    if value in (None, ()):
        return None
    if isinstance(value, bool):
        return flag if value else "--no-" + flag.removeprefix("--")
    if isinstance(value, int | float):
        return format_number(value)
    return str(getattr(value, "pattern", value))


def flag_value(spec: OptionSpec, raw: Any) -> Any:
    """Flag text as the inventory would hold it: kept as text when the option takes it as
    text, else read as a YAML scalar (so `--port 8443` is a number, `--expect-status 200-299`
    stays text)."""
    if not isinstance(raw, str | list):
        return raw
    try:
        spec.parse(raw)
        return raw
    except OptionError:
        if isinstance(raw, list):
            return [_scalar(item) for item in raw]
        return _scalar(raw)


def _scalar(text: str) -> Any:
    value = yamlnodes.read_value(text)
    return value if isinstance(value, str | int | float | bool) else text


# --- commands ------------------------------------------------------------------------------
