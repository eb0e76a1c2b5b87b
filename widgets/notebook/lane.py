"""``ClickLane``: a kernel subshell that handles the cockpit's clicks while another cell runs.

A widget's clicks reach the kernel as ``comm_msg`` messages on its shell channel. Before
ipykernel 7 one thread handled that channel, so a click made while a cell ran waited for the
cell to end (a Pause applied 22.5 s late). ipykernel 7 has subshells (JEP 91): more threads
that each handle shell messages, and it routes a comm's messages to the subshell its
``_reply_subshell_for`` names. The lane starts one subshell per cockpit and routes the
messages of the cockpit's buttons and fields there, so a click is handled at once even while
a cell (``time.sleep(60)``, ``cockpit.wait()``) keeps the main shell busy. The buttons only
send a command over the run's channel, which is thread-safe (``RunLink``).

Elsewhere (not in a kernel, an older ipykernel), or when the cockpit does not ask for it,
the lane stays closed and ``reason`` says why; clicks then wait for the busy cell, and the
widget says so. It is not asked for by default: in JupyterLab 4.6 a tab reloaded while the
subshell was open did not draw the widget again (seen twice in the browser test; the cause
is not known yet), so the default keeps a reload working.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

#: ``ClickLane.reason`` outside a kernel (plain Python, tests): there are no clicks to route.
NOT_IN_A_KERNEL = "not running in a Jupyter kernel"
#: ``ClickLane.reason`` when the cockpit did not ask for one (``clicks_while_busy=False``).
NOT_WANTED = "clicks_while_busy is off"
#: Seconds to wait for the kernel's shell-channel thread to start a subshell.
START_TIMEOUT = 5.0


def _kernel() -> Any:
    """The ipykernel kernel this code runs in, or None."""
    try:
        from ipykernel.kernelbase import Kernel
    except ImportError:
        return None
    return Kernel.instance() if Kernel.initialized() else None


class ClickLane:
    """One kernel subshell for one cockpit's clicks, or a closed lane with the reason.

    Attributes:
        subshell_id: the subshell the clicks go to (None: the lane is closed).
        reason: why the lane is closed ("" when open).
    """

    def __init__(self, wanted: bool = True) -> None:
        self.subshell_id: str | None = None
        self.reason = ""
        self._kernel = _kernel()
        thread = getattr(self._kernel, "shell_channel_thread", None)
        if self._kernel is None:
            self.reason = NOT_IN_A_KERNEL
        elif not wanted:
            self.reason = NOT_WANTED
        elif thread is None:
            self.reason = "this kernel has no subshells (ipykernel 7 has them)"
        else:
            self._start(thread)

    @property
    def open(self) -> bool:
        return self.subshell_id is not None

    def route(self, widget: Any) -> None:
        """Handle ``widget``'s messages from the browser (clicks, typing) in the lane's subshell."""
        comm = getattr(widget, "comm", None)
        if self.subshell_id is None or comm is None or not hasattr(comm, "_reply_subshell_for"):
            return
        kernels_choice = comm._reply_subshell_for

        def choose(data: Any, default: str | None) -> str | None:
            # Read at each message: once the lane is closed, the kernel's own choice again.
            subshell_id = self.subshell_id
            return subshell_id if subshell_id is not None else kernels_choice(data, default)

        comm._reply_subshell_for = choose

    def waited(self) -> float:
        """Seconds the browser message being handled now waited for the kernel (0 when unknown)."""
        if self._kernel is None:
            return 0.0
        date = self._kernel.get_parent().get("header", {}).get("date")
        if isinstance(date, str):
            try:
                date = datetime.fromisoformat(date)
            except ValueError:
                return 0.0
        if not isinstance(date, datetime) or date.tzinfo is None:
            return 0.0
        return max(0.0, (datetime.now(UTC) - date).total_seconds())

    def close(self) -> None:
        """End the subshell (its routed widgets go back to the main shell)."""
        subshell_id, self.subshell_id = self.subshell_id, None
        if subshell_id is None:
            return
        manager = self._kernel.shell_channel_thread.manager
        self._kernel.shell_channel_thread.io_loop.add_callback(lambda: self._delete(manager, subshell_id))

    # --- inside ----------------------------------------------------------------------------
    def _start(self, thread: Any) -> None:
        # The subshell manager may be made only from the kernel's main thread, and it creates
        # subshells only in the shell-channel thread: ask that thread, and wait for its answer.
        try:
            manager = thread.manager
        except AssertionError:
            self.reason = "a cockpit made outside the kernel's main thread cannot start a subshell"
            return
        created = threading.Event()
        answer: dict[str, Any] = {}

        def create() -> None:
            try:
                answer["id"] = manager._create_subshell()
            except Exception as error:  # noqa: BLE001 - reported as the lane's reason
                answer["error"] = error
            created.set()

        thread.io_loop.add_callback(create)
        if not created.wait(START_TIMEOUT):
            self.reason = f"the kernel did not start a subshell within {START_TIMEOUT:g} s"
        elif "error" in answer:
            self.reason = f"the kernel could not start a subshell: {answer['error']}"
        else:
            self.subshell_id = answer["id"]

    @staticmethod
    def _delete(manager: Any, subshell_id: str) -> None:
        try:
            manager._delete_subshell(subshell_id)
        except Exception:  # noqa: BLE001, S110 - the kernel is shutting down, or it went already
            pass
