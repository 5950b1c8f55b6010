"""What the thin tools share for their errors: one line `tool.py: message`, exit 2 for a wrong command line."""
import argparse


class ToolError(Exception):
    """An error to report as one line `<tool>: message`, with exit status ``status`` (1: bad data, 2: usage)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line `<prog>: message` and exit status 2 (not a usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, '{}: {}\n'.format(self.prog, message))


def run_tool(prog: str, main, argv=None, data_errors: tuple = (ValueError, OSError, KeyError)) -> int:
    """``main(argv)`` for the command line: a ToolError or one of ``data_errors`` (bad data: status 1) ends in one
    line `<prog>: message` on stderr; returns the exit status."""
    import sys
    try:
        main(argv)
    except ToolError as e:
        print('{}: {}'.format(prog, e), file=sys.stderr)
        return e.status
    except data_errors as e:
        print('{}: {}'.format(prog, str(e).strip() or type(e).__name__), file=sys.stderr)
        return 1
    return 0
