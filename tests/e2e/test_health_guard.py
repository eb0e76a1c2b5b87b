"""The health guard across processes: the real ``cockpit run --no-tui`` in a subprocess.

A run whose loss goes NaN at a known iteration pauses; the fallback (after a short timeout) or
``cockpit ctl ... guard-rollback`` rolls it back and it finishes. The alert reaches a webhook (an
``http.server`` in the test) and a command. On 2 processes (torchrun, gloo), a rank slowed by a
sleeping hook is flagged in the published per-rank health.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support import wait_for, write_child_config

from .helpers import Lines, cockpit, end, start
from .test_distributed import assert_exit_0, cockpit_run, started

#: A model whose loss is NaN at its ``nan_at``-th training forward (once: a roll-back goes past it).
NAN_MODEL = """
from toys import ToyNet as _ToyNet


class NanNet(_ToyNet):
    def __init__(self, nan_at=12):
        super().__init__()
        self.nan_at, self.forwards = nan_at, 0

    def forward(self, inputs, data_samples=None, mode="tensor"):
        out = super().forward(inputs, data_samples, mode)
        if mode == "loss":
            self.forwards += 1
            if self.forwards == self.nan_at:
                out = {"loss": out["loss"] * float("nan")}
        return out


model = dict(type=NanNet, nan_at=12)
"""


@pytest.fixture
def webhook() -> Iterator[tuple[str, queue.Queue]]:
    """A local HTTP server; each POST's path and JSON body land in the queue."""
    received: queue.Queue = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.put((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()


def nan_config(folder: Path, guard: dict) -> Path:
    return write_child_config(folder, max_epochs=3, val_interval=None,
                              body_extra=NAN_MODEL + f"\nhealth_guard = {guard!r}\n")


def test_a_nan_loss_pauses_notifies_and_the_fallback_rolls_back(tmp_path, webhook):
    url, received = webhook
    noted = tmp_path / "noted.json"
    script = ("import json, os, sys; data = json.load(sys.stdin); data['env_kind'] = os.environ['COCKPIT_ALERT_KIND']; "
              f"open({str(noted)!r}, 'w').write(json.dumps(data))")
    config = nan_config(tmp_path, dict(answer_timeout=1.0, notify_webhook=url,
                                       notify_command=[sys.executable, "-c", script]))
    process = start("run", str(config), "--no-tui", "--work-dir", str(tmp_path / "w"), cwd=tmp_path)
    try:
        lines = Lines(process)
        lines.wait_for(r"health guard tripped \(nonfinite\) at iter 12: the loss is nan. The run is PAUSED")
        path, content_type, body = received.get(timeout=60)
        assert (path, content_type) == ("/alerts", "application/json")
        assert (body["kind"], body["step"], body["fallback"]) == ("nonfinite", 11, "rollback")
        assert set(body["choices"]) == {"guard-continue", "guard-rollback", "guard-stop"}
        lines.wait_for(r"nobody answered the nonfinite alert in 1 s; applying the fallback: guard-rollback")
        lines.wait_for(r"rolled back \(nonfinite alert\): resumed from epoch_1.pth: iter 12 -> 8")
        rest = lines.rest()
        assert process.wait(timeout=60) == 0, rest[-3000:]
        data = json.loads(wait_for(lambda: noted.exists() and noted.read_text(), 30, "the notify command's file"))
        assert data["kind"] == data["env_kind"] == "nonfinite"
    finally:
        end(process)


def test_the_rollback_command_over_ctl_resumes_and_the_run_finishes(tmp_path):
    config = nan_config(tmp_path, dict(answer_timeout=300.0))
    work = tmp_path / "w"
    process = start("run", str(config), "--no-tui", "--work-dir", str(work), cwd=tmp_path)
    try:
        lines = Lines(process)
        lines.wait_for(r"health guard tripped \(nonfinite\)")
        result = cockpit("ctl", str(work), "guard-rollback", "*0.5", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "resumed from epoch_1.pth" in result.stdout + result.stderr
        lines.wait_for(r"lr 0.1 -> 0.05")
        rest = lines.rest()
        assert process.wait(timeout=60) == 0, rest[-3000:]
        assert "nobody answered" not in rest
    finally:
        end(process)


STRAGGLER = """
import json
import time

from cockpit import Hook


class SlowRankOne(Hook):
    \"\"\"Rank 1 sleeps after each iteration; rank 0 writes the published per-rank health once a rank straggles.\"\"\"

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.rank == 1:
            time.sleep(0.05)
        health = runner.message_hub.get_info("rank_health")
        if runner.rank == 0 and health and any(row["straggler"] for row in health):
            (runner.work_dir / "rank_health.json").write_text(json.dumps(health))


custom_hooks.append(dict(type=SlowRankOne))
"""


def test_a_slow_rank_is_flagged_in_the_published_rank_health(tmp_path):
    config = write_child_config(tmp_path, max_epochs=12, val_interval=None, checkpoint_interval=100,
                                body_extra=STRAGGLER)
    work = tmp_path / "w"
    with started(cockpit_run(config, work), tmp_path, "straggler", work) as job:
        job.wait_for(lambda: (work / "rank_health.json").exists(), "a straggler in rank_health", timeout=150)
        assert_exit_0(job, job.wait(150), "the straggler run")
    health = json.loads((work / "rank_health.json").read_text())
    assert [row["rank"] for row in health] == [0, 1]
    assert [row["straggler"] for row in health] == [False, True], health
    assert health[1]["own_time"] > 1.3 * health[0]["own_time"]
    assert all(row["heartbeat"] > 0 and row["memory_mb"] > 0 and row["iter"] >= 1 for row in health)
    assert "health guard: rank 1 straggles" in job.out + job.err


HUNG = """
import time
from pathlib import Path

from cockpit import Hook


class HangRankOne(Hook):
    \"\"\"Rank 1 stops at iteration 20 until the test writes the release file; the others wait for it.\"\"\"

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.rank == 1 and runner.iter == 19:
            release = Path(runner.work_dir).parent / "release"
            deadline = time.monotonic() + 600
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.05)


custom_hooks.append(dict(type=HangRankOne))
health_guard = dict(stall_factor=3.0, stall_min_seconds=5.0, answer_timeout=600.0)
"""


def test_a_hung_rank_is_named_while_the_others_wait_for_it(tmp_path):
    config = write_child_config(tmp_path, max_epochs=40, val_interval=None, checkpoint_interval=100, body_extra=HUNG)
    work = tmp_path / "w"
    with started(cockpit_run(config, work), tmp_path, "hung", work) as job:
        job.wait_for(lambda: "health guard tripped (stall)" in job.out + job.err, "the stall alert", timeout=150)
        log = job.out + job.err
        line = next(line for line in log.splitlines() if "tripped (stall)" in line)
        # Rank 0 names rank 1, where its training thread is, and that rank 0 itself waits in a collective.
        assert "rank 1 holds the others up" in line and "at iter 20," in line, line
        assert "in HangRankOne.after_train_iter (cfg.py:" in line, line
        assert "rank 0 waits in a collective" in line, line
        assert "rank 0 holds" not in line, line
        (tmp_path / "release").touch()
        result = cockpit("ctl", str(work), "guard-continue", cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert_exit_0(job, job.wait(150), "the run after the hung rank came back")
