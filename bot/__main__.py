"""`python -m bot` and the `atelier` console script."""

from __future__ import annotations

import sys

from bot.cli import main as _cli_main


def main() -> None:
    sys.exit(_cli_main())


if __name__ == "__main__":
    main()
