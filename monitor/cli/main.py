"""The `commwatch` entry point: parse the command line, then run the chosen command's module.

The dispatch table names modules, imported only once their command is chosen: `--help`,
`--version` and usage errors end in the parser, having loaded no command's code, and each
command loads only its own (`probe tcp` no dashboard, no TLS, no SNMP).
"""

from __future__ import annotations

import importlib
import os
import sys
from argparse import Namespace
from collections.abc import Callable, Sequence

from monitor.cli.parser import build_parser
from monitor.cli.parsing import EXIT_UNKNOWN, chosen, plugin_status

COMMANDS: dict[str, str] = {
    "check": "monitor.cli.commands.check",
    "run": "monitor.cli.commands.run",
    "audit": "monitor.cli.commands.audit",
    "report": "monitor.cli.commands.report",
    "tui": "monitor.cli.commands.tui",
    "web": "monitor.cli.commands.web",
    "demo": "monitor.cli.commands.demo",
    "probe": "monitor.cli.commands.probe",
    "agent": "monitor.cli.commands.agent",
    "central": "monitor.cli.commands.central",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            parser.print_help()
            return EXIT_UNKNOWN
        args = parser.parse_args(["tui"])
    # Logging is set up only for a command that runs: the parser's exits never log.
    from monitor.core import logs

    logs.configure()
    try:
        command: Callable[[Namespace], int] = importlib.import_module(COMMANDS[args.command]).run
        return command(args)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as command-line tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        plugin = chosen(args, parser).plugin
        if plugin is not None:  # a plugin's every outcome is a status line
            print(plugin_status(plugin, "interrupted"))
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
