"""Hook priorities, with MMEngine's names and values."""

from __future__ import annotations

from enum import IntEnum


class Priority(IntEnum):
    """Hook priority levels: a lower value runs earlier.

    Any int from 0 to 100 is a valid priority too.
    """

    HIGHEST = 0
    VERY_HIGH = 10
    HIGH = 30
    ABOVE_NORMAL = 40
    NORMAL = 50
    BELOW_NORMAL = 60
    LOW = 70
    VERY_LOW = 90
    LOWEST = 100


def get_priority(priority: int | str | Priority) -> int:
    """Return the integer value of ``priority``.

    Args:
        priority: a ``Priority``, its name (``'NORMAL'``, any case) or an int in [0, 100].

    Raises:
        ValueError: for an int out of range or an unknown name.
        TypeError: for anything else.
    """
    if isinstance(priority, Priority):
        return int(priority)
    if isinstance(priority, bool):
        raise TypeError(f"priority must be an int, a str or a Priority, not {priority!r}")
    if isinstance(priority, int):
        if not 0 <= priority <= 100:
            raise ValueError(f"priority must be between 0 and 100, got {priority}")
        return priority
    if isinstance(priority, str):
        try:
            return int(Priority[priority.upper()])
        except KeyError:
            names = ", ".join(p.name for p in Priority)
            raise ValueError(f"unknown priority {priority!r}; use one of {names} or an int 0-100") from None
    raise TypeError(f"priority must be an int, a str or a Priority, not {type(priority).__name__}")


def priority_name(priority: int | str | Priority) -> str:
    """The ``Priority`` name for a value, or the number itself when it has no name."""
    value = get_priority(priority)
    try:
        return Priority(value).name
    except ValueError:
        return str(value)
