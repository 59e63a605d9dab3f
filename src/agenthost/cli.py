"""The ``agenthost`` command line. Each subcommand lives in ``agenthost.commands.<name>``.

A command module defines ``HELP`` (one line), ``configure(parser)`` to add its
flags, and ``run(args) -> int`` (the exit status). An error a command does not
handle itself is one line on stderr (``AGENTHOST_LOG_LEVEL=debug`` adds the
traceback), never a traceback alone.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from agenthost import __version__
from agenthost.errors import AgentHostError, ConfigError

COMMANDS = ("serve", "chat", "sessions", "demo", "migrate", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agenthost",
        description="Serve one agent to many users with isolated, persistent sessions.",
    )
    parser.add_argument("--version", action="version", version=f"agenthost {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"agenthost.commands.{name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except AgentHostError as exc:
        print(f"agenthost {args.command}: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    except Exception as exc:
        if os.environ.get("AGENTHOST_LOG_LEVEL", "").lower() == "debug":
            traceback.print_exception(exc, file=sys.stderr)
            hint = ""
        else:
            hint = " (AGENTHOST_LOG_LEVEL=debug shows the traceback)"
        print(f"agenthost {args.command}: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
