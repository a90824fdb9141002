"""One module per `commwatch` command, each with `run(args) -> exit code`; monitor.cli.main
imports only the one chosen. Their flags are declared in monitor.cli.parser."""
