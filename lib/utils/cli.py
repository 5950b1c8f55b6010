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
