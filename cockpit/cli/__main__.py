"""``python -m cockpit.cli``: the ``cockpit`` command."""

import sys

from cockpit.cli.entry import main

sys.exit(main())
