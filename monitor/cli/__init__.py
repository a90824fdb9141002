"""The `commwatch` command: its parser and one handler per command."""
