"""``python -m custody`` and the ``custody`` command.

The CLI is imported inside ``run``, so a Ctrl-C while it loads is one line and exit 130, like
one that arrives later, never a traceback.
"""

from __future__ import annotations

import sys
from typing import NoReturn


def run() -> NoReturn:
    from custody import interrupted, keep_interrupts

    keep_interrupts()  # first: every import below runs importlib's callbacks

    try:
        from custody.cli import main

        code = main()
    except KeyboardInterrupt:
        code = interrupted()
    sys.exit(code)


if __name__ == "__main__":
    run()
