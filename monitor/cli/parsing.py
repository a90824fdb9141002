"""How commwatch's parsers behave, whatever their flags: usage errors exit 3 as a monitoring
plugin's do, a `probe` usage error is a plugin status line too, and a subcommand's flags are
declared only when that subcommand is chosen.

The last is what keeps start-up cheap: the flags of `probe tcp` are the tcp probe's options, so
declaring them imports the probe; `commwatch --help` needs every command's name and one-line help
and none of their flags. This module imports no commwatch code but its version.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from monitor import __version__

# The monitoring-plugin convention's UNKNOWN (monitor.core.model.Severity.UNKNOWN), written
# here as the number the convention fixes: a usage error must not import the model to exit.
EXIT_UNKNOWN = 3
VERSION = f"commwatch {__version__}"


def plugin_status(plugin: str, message: str) -> str:
    """The UNKNOWN status line a plugin prints for an outcome that is not a probe's result."""
    # Imported here, on the way out, so that parsing a command line imports no output code.
    from monitor.core.model import Severity
    from monitor.output.plugin import plugin_status_line

    return plugin_status_line(plugin, Severity.UNKNOWN, message)


class CommandParser(argparse.ArgumentParser):
    """Usage errors exit 3 (UNKNOWN), as monitoring plugins do: 2 would read as CRITICAL.

    A bad flag gets the usage of the subcommand it was given to. A parser with a `plugin` name
    (`probe` and its kinds) is a plugin: its usage errors also print a plugin status line on
    stdout, so a monitoring system shows what is wrong rather than "(No output returned from
    plugin)"."""

    def __init__(self, *args: Any, plugin: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin = plugin
        self.set_defaults(_parser=self)

    def parse_args(  # type: ignore[override]  # narrower: commwatch never passes a namespace type
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> argparse.Namespace:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            # The deepest subcommand chosen set `_parser` last: its usage is the one wanted.
            chosen(parsed, self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def error(self, message: str) -> NoReturn:
        if self.plugin is not None:
            print(plugin_status(self.plugin, message))
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"{self.prog}: error: {message}\n")


def chosen(args: argparse.Namespace, default: CommandParser) -> CommandParser:
    """The parser of the deepest subcommand `args` were parsed by."""
    parser = getattr(args, "_parser", default)
    assert isinstance(parser, CommandParser)
    return parser


Declaration = Callable[[CommandParser], None]

if TYPE_CHECKING:  # generic in the type stubs only
    _SubParsers = argparse._SubParsersAction[CommandParser]
else:
    _SubParsers = argparse._SubParsersAction


class LazySubcommands(_SubParsers):
    """Subcommands known by name and help from the start, their flags declared when chosen.

    Made by `subcommands()`, then `declare(name, declaration, ...)` for each: the parser is made
    at once (so help lists it and a typo is answered with the valid names), and
    `declaration(parser)` runs only once `name` is on the command line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._declarations: dict[str, Declaration] = {}

    def declare(self, name: str, declaration: Declaration, **kwargs: Any) -> None:
        self.add_parser(name, **kwargs)
        self._declarations[name] = declaration

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, list) and values  # argparse: the name, then what follows it
        declaration = self._declarations.pop(values[0], None)
        if declaration is not None:
            declaration(self._name_parser_map[values[0]])
        super().__call__(parser, namespace, values, option_string)


def subcommands(
    parser: CommandParser, dest: str, metavar: str, *, required: bool = True
) -> LazySubcommands:
    """The subcommands of `parser`, each declared (LazySubcommands.declare) by its name."""
    action = parser.add_subparsers(
        dest=dest,
        metavar=metavar,
        required=required,
        parser_class=CommandParser,
        action=LazySubcommands,
    )
    assert isinstance(action, LazySubcommands)
    return action


class PluginHelp(argparse.Action):
    """-h and -V of a plugin exit 3 (UNKNOWN), as the monitoring plugins' own do."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        self.show_version = kwargs.pop("show_version", False)
        super().__init__(option_strings, dest=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        if self.show_version:
            print(VERSION)
        else:
            parser.print_help()
        parser.exit(EXIT_UNKNOWN)
