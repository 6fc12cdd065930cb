"""The parser's pieces every verb shares: the parser class, `--json`/`--repo`, and the argument types."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

from cockpit.core.errors import UsageError
from cockpit.core.states import State

Runner = Callable[[argparse.Namespace], Awaitable[int] | int]


class ArgParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def common_parser() -> ArgParser:
    common = ArgParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    common.add_argument("--repo", metavar="PATH",
                        help="the repository (default: the one around the current dir)")
    return common


def task_id(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"task id must be a whole number, not {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("task ids start at 1")
    return number


def seconds_arg(value: str) -> float:
    """A finite number of seconds, 0 or more: `nan` or `inf` never reach a timer."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, 0 or more, not {value!r}")
    return number


def state_arg(value: str) -> str:
    if value not in {s.value for s in State}:
        names = ", ".join(s.value for s in State)
        raise argparse.ArgumentTypeError(f"unknown state {value!r}; states: {names}")
    return value


def read_text_arg(value: str) -> str:
    return sys.stdin.read() if value == "-" else value
