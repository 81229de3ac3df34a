"""``python -m dropgz.emulator``: the same as ``dropgz emulator``."""

import sys

from dropgz.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m dropgz.emulator"))
