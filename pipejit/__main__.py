"""``python -m pipejit serve ...`` (also the ``pipejit`` console script)."""

from __future__ import annotations

import sys

COMMANDS = ("serve",)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        raise SystemExit(f"usage: pipejit {{{','.join(COMMANDS)}}} ... (see pipejit serve --help)")
    from pipejit.server.cli import main as serve

    serve(argv[1:])


if __name__ == "__main__":
    main()
