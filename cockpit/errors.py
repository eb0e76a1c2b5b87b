"""Errors a user can act on: each names what is wrong, where, and how to fix it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config file, key or value is wrong.

    Args:
        message: what is wrong.
        file: the config file it came from, if known.
        key: the dotted key path (``optim_wrapper.optimizer.type``), if known.
        fix: how to fix it, in a sentence.
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None, fix: str | None = None):
        self.message = message
        self.file = file
        self.key = key
        self.fix = fix
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.key) if part)
        text = f"{where}: {self.message}" if where else self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: missing, truncated, corrupt, foreign or unsafe."""
