"""Telling someone outside the run: a shell command and a webhook, run in the background.

A ``Notifier`` is handed an alert (plain JSON-ready data) and delivers it without
ever blocking the caller: each delivery runs in a daemon thread with a short
timeout, and a failure is logged, never raised.

- ``command``: an argv list, run without a shell; the alert comes as JSON on
  stdin and in the environment (``COCKPIT_ALERT_KIND``, ``COCKPIT_ALERT_MESSAGE``,
  ``COCKPIT_ALERT_STEP``, ``COCKPIT_ALERT_JSON``).
- ``webhook``: a URL that receives a ``POST`` with the alert as its JSON body
  (``urllib`` from the standard library).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Notifier"]


class Notifier:
    """Delivers alerts to a command and/or a webhook, each in a background thread.

    Args:
        command: argv of a program to run per alert (no shell), or None.
        webhook: an ``http(s)://`` URL to POST the alert to, or None.
        timeout: seconds a command or a request may take before it is given up.
        logger: where failures are reported.
    """

    def __init__(self, command: Sequence[str] | None = None, webhook: str | None = None, timeout: float = 5.0,
                 logger: logging.Logger | None = None) -> None:
        if command is not None and (isinstance(command, str) or not all(isinstance(a, str) for a in command)
                                    or not command):
            raise ValueError(f"the notify command must be a non-empty list of strings (argv, no shell), "
                             f"got {command!r}")
        if webhook is not None and (not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))):
            raise ValueError(f"the webhook must be an http:// or https:// URL, got {webhook!r}")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"the notify timeout must be a positive number of seconds, got {timeout!r}")
        self.command = list(command) if command is not None else None
        self.webhook = webhook
        self.timeout = float(timeout)
        self.logger = logger or logging.getLogger("cockpit.notify")

    @property
    def active(self) -> bool:
        """Whether there is anywhere to deliver to."""
        return self.command is not None or self.webhook is not None

    def notify(self, alert: Mapping[str, Any]) -> list[threading.Thread]:
        """Start delivering ``alert``; returns the started threads (tests join them; callers need not)."""
        body = json.dumps(dict(alert), default=str)
        threads = []
        if self.command is not None:
            threads.append(threading.Thread(target=self._run_command, args=(alert, body), daemon=True,
                                            name="cockpit-notify-command"))
        if self.webhook is not None:
            threads.append(threading.Thread(target=self._post, args=(body,), daemon=True,
                                            name="cockpit-notify-webhook"))
        for thread in threads:
            thread.start()
        return threads

    def _run_command(self, alert: Mapping[str, Any], body: str) -> None:
        env = {**os.environ, "COCKPIT_ALERT_KIND": str(alert.get("kind", "")),
               "COCKPIT_ALERT_MESSAGE": str(alert.get("message", "")),
               "COCKPIT_ALERT_STEP": str(alert.get("step", "")), "COCKPIT_ALERT_JSON": body}
        try:
            result = subprocess.run(self.command, input=body, env=env, capture_output=True, text=True,
                                    timeout=self.timeout, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            self.logger.warning(f"the alert command {self.command} failed: {type(error).__name__}: {error}")
            return
        if result.returncode != 0:
            self.logger.warning(f"the alert command {self.command} exited with {result.returncode}: "
                                f"{result.stderr.strip()[-500:]}")

    def _post(self, body: str) -> None:
        request = urllib.request.Request(self.webhook, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "cockpit-health-guard"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - the user's URL
                response.read(1024)
        except Exception as error:  # noqa: BLE001 - a webhook never ends or blocks a run
            self.logger.warning(f"the alert webhook {self.webhook} failed: {type(error).__name__}: {error}")
