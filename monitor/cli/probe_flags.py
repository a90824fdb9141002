"""The flags of `commwatch probe KIND`: the plugin's reserved options, then every inventory key of
the kind, from the kind's own declarations (latency_warn -> --latency-warn), and how flag text is
read back into the values an inventory would hold."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from monitor.cli.parsing import CommandParser, PluginHelp
from monitor.cli.values import duration_flag
from monitor.core import yamlnodes
from monitor.core.options import OptionError, OptionSpec, boolean, format_number, option_specs
from probes.registry import REGISTRY

# The options every `probe KIND` has: the plugin guidelines reserve -h, -V and -t. An inventory
# key of the same name gets its kind as a prefix on the command line (`--snmp-version`).
_PROBE_FLAGS = ("help", "version", "timeout", "state-dir", "format", "nagios")

PLUGIN_EPILOG = (
    "As a monitoring plugin (--nagios) every outcome prints one status line on stdout; a usage "
    "error prints one whatever the format. Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (usage "
    "errors, -h and -V too). Durations are written 250ms, 30s, 5m, 1h or 1m30s; a bare number "
    "is seconds (a latency threshold takes a bare number up to 30 only: write 500ms, not 500)."
)


def flag_name(kind: str, key: str) -> str:
    """The command-line flag of an inventory key of `kind`."""
    dashed = key.replace("_", "-")
    return f"--{kind}-{dashed}" if dashed in _PROBE_FLAGS else f"--{dashed}"


def declare_probe_kind(kind: str, parser: CommandParser) -> None:
    """The flags of `commwatch probe KIND` on its `parser`."""
    probe_kind = REGISTRY[kind]
    parser.add_argument(
        "target",
        metavar=probe_kind.target_help.replace(" ", "_"),
        help=f"what to check: {probe_kind.target_help}",
    )
    _add_plugin_flags(parser)
    for spec in option_specs(probe_kind.options):
        if spec.name != "target":
            _add_option_flag(parser, kind, spec)


def _add_plugin_flags(parser: CommandParser) -> None:
    parser.add_argument("-h", "--help", action=PluginHelp, help="show this help and exit 3")
    parser.add_argument(
        "-V",
        "--version",
        action=PluginHelp,
        show_version=True,
        help="show the version and exit 3",
    )
    parser.add_argument(
        "-t",
        "--timeout",
        metavar="DURATION",
        type=duration_flag,
        default="10s",
        help="give up after this long; a bare number is seconds (default 10s)",
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="keep what the probe remembers between runs (SNMP counters for rates, uptime "
        "for reboots, the TLS leaf last seen) in DIR (default $XDG_STATE_HOME/commwatch/"
        "probe, XDG_STATE_HOME being ~/.local/state when unset; with no home, a private "
        "folder in the temporary folder)",
    )
    output_group = parser.add_mutually_exclusive_group()
    output_group.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default) or json, the same object `run` emits",
    )
    output_group.add_argument(
        "--nagios", action="store_true", help="one monitoring-plugin status line with perfdata"
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


def option_values(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """The check's option and schedule keys as the inventory would hold them, from the flags."""
    values: dict[str, Any] = {"target": args.target}
    for spec in option_specs(REGISTRY[kind].options):
        raw = getattr(args, spec.name, None)
        if spec.name != "target" and raw is not None:
            values[spec.name] = flag_value(spec, raw)
    values["timeout"] = args.timeout
    return values


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
