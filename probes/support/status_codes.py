"""Status codes and ranges as checks write them, for the protocols that answer with three-digit
codes: HTTP (100-599) and SIP (100-699). `200`, `"200-299"`, `"200, 301"` or a list of those."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from monitor.core.options import OptionError, is_number, type_name

StatusRanges = tuple[tuple[int, int], ...]

_HINT = "write a code such as 200, a range such as 200-299, or a list of them"
_RANGE = re.compile(r"\s*([0-9]{3})\s*(?:-\s*([0-9]{3})\s*)?")


def status_ranges_parser(code_name: str, highest: int) -> Callable[[Any], StatusRanges]:
    """The parser of a key holding status codes and ranges from 100 to `highest`, each one
    `code_name` ("an HTTP status code") as errors call it."""

    def code(number: int) -> int:
        if not 100 <= number <= highest:
            raise OptionError(f"{number} is not {code_name}", f"codes run from 100 to {highest}")
        return number

    def one(item: Any) -> tuple[int, int]:
        if is_number(item, whole=True):
            return code(item), code(item)
        match = _RANGE.fullmatch(item) if isinstance(item, str) else None
        if match is None:
            raise OptionError(f"{type_name(item)} {item!r} is not a status or range", _HINT)
        low = code(int(match.group(1)))
        high = code(int(match.group(2) or match.group(1)))
        if low > high:
            raise OptionError(
                f"status range {low}-{high} is backwards",
                f"write the lower code first: {high}-{low}",
            )
        return low, high

    def parse(value: Any) -> StatusRanges:
        items = value if isinstance(value, list) else [value]
        if isinstance(value, str):
            items = value.split(",")
        if not items:
            raise OptionError("the list of statuses is empty", _HINT)
        return tuple(one(item) for item in items)

    return parse


def describe_statuses(ranges: StatusRanges) -> str:
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in ranges)


def covers(ranges: StatusRanges, code: object) -> bool:
    """Whether `code` (an observation: anything) is a whole number within one of `ranges`."""
    return is_number(code, whole=True) and any(low <= code <= high for low, high in ranges)
