"""`python -m monitor.cli`: the `commwatch` command."""

import sys

from monitor.cli.main import main

sys.exit(main())
