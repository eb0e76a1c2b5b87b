"""Multi-process training: the real ``cockpit run --nproc 2`` (torchrun, DDP, gloo on CPU).

Every run here is a subprocess started from a scratch folder with a config that
imports ``tests/toys.py`` and adds a ``Recorder`` hook. On every rank the hook appends
``{rank, event, iter, lr, status}`` lines to ``<work_dir>/rank<r>.jsonl`` (after each
train iteration and each validation), writes its pid to ``<work_dir>/rank<r>.pid``,
logs every atomic file write (checkpoints, ``last_checkpoint``) with the writing rank
to ``<work_dir>/writes.jsonl``, and sleeps ``$DIST_TEST_SLEEP`` seconds per iteration
so a test can slow a run down to steer it. Output goes to files (a pipe nobody reads
would block a long run); every process started, and every worker it spawned, is
killed by its pid in a ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from support import child_env, write_child_config

from cockpit.channel.auth import CONNECTION_FILE
from cockpit.channel.client import RunClient
from cockpit.checkpoint import load_checkpoint, read_pointer

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "demos" / "digits.py"

EPOCHS, ITERS_PER_EPOCH = 3, 4  # 64 samples, 8 per rank and batch, 2 ranks
TOTAL_ITERS = EPOCHS * ITERS_PER_EPOCH

RECORDER = """
import json
import os
import time

from cockpit import Hook


class Recorder(Hook):
    \"\"\"What each rank sees, in <work_dir>/rank<r>.jsonl; its pid; every file write, with its rank.\"\"\"

    def __init__(self):
        self.sleep = float(os.environ.get("DIST_TEST_SLEEP", "0"))

    def _record(self, runner, **values):
        values = dict(rank=runner.rank, status=runner.message_hub.status, **values)
        with open(runner.work_dir / f"rank{runner.rank}.jsonl", "a") as file:
            file.write(json.dumps(values) + "\\n")

    def before_run(self, runner):
        runner.work_dir.mkdir(parents=True, exist_ok=True)
        (runner.work_dir / f"rank{runner.rank}.pid").write_text(str(os.getpid()))
        import cockpit.checkpoint as ckpt

        original, rank, log = ckpt.atomic_write, runner.rank, runner.work_dir / "writes.jsonl"

        def recorded(path, write, faults=False):
            result = original(path, write, faults=faults)
            with open(log, "a") as file:
                file.write(json.dumps(dict(rank=rank, path=str(path))) + "\\n")
            return result

        ckpt.atomic_write = recorded

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self._record(runner, event="iter", iter=runner.iter + 1, lr=runner.optim_wrapper.param_groups[0]["lr"])
        if self.sleep:
            time.sleep(self.sleep)

    def after_val_epoch(self, runner, metrics=None):
        self._record(runner, event="val", iter=runner.iter, metrics=dict(metrics or {}))


custom_hooks.append(dict(type=Recorder))
"""

#: A run that goes on until it is stopped: no periodic saves, no validation of its own, and epochs of
#: 2,500 iterations, so a test that steers it never crosses an epoch boundary.
ENDLESS = ["train_cfg.max_epochs=100000", "train_cfg.val_interval=1000000", "default_hooks.checkpoint.interval=-1",
           "default_hooks.logger.interval=100", "train_dataloader.dataset.size=40000"]


# --- processes ------------------------------------------------------------------------------------
def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (torchrun's workers below the cockpit process)."""
    parents, found, frontier = _parents(), set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


class Job:
    """One started command, its output in files, and every pid it is known to have spawned."""

    def __init__(self, command: list[str], cwd: Path, name: str, work_dir: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.out_path, self.err_path = cwd / f"{name}.out", cwd / f"{name}.err"
        self.work_dir = work_dir
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.process = subprocess.Popen(command, cwd=cwd, env=child_env(**(env or {})),
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.pids = {self.process.pid}

    @property
    def out(self) -> str:
        return self.out_path.read_text()

    @property
    def err(self) -> str:
        return self.err_path.read_text()

    def note_workers(self) -> None:
        if self.process.poll() is None:
            self.pids |= descendants(self.process.pid)
        if self.work_dir is not None:
            self.pids |= {pid for rank in (0, 1) if (pid := worker_pid(self.work_dir, rank)) is not None}

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"still running after {timeout:.0f} s\n{self.tail()}")
            self.note_workers()
            time.sleep(0.1)
        return self.process.returncode

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"the run ended (exit {self.process.returncode}) before {what}\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {timeout:.0f} s for {what} in vain\n{self.tail()}")
            self.note_workers()
            time.sleep(0.05)
        self.note_workers()

    def tail(self) -> str:
        return f"--- stdout ---\n{self.out[-3000:]}\n--- stderr ---\n{self.err[-5000:]}"

    def kill(self) -> None:
        self.note_workers()
        for pid in sorted(self.pids - {self.process.pid}) + [self.process.pid]:
            if alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


@contextlib.contextmanager
def started(command: list[str], cwd: Path, name: str, work_dir: Path | None = None,
            env: dict[str, str] | None = None) -> Iterator[Job]:
    job = Job(command, cwd, name, work_dir, env)
    try:
        yield job
    finally:
        job.kill()


def cockpit_run(config: Path, work_dir: Path, *options: str, nproc: int = 2) -> list[str]:
    command = [sys.executable, "-m", "cockpit.cli", "run", str(config), "--no-tui", "--work-dir", str(work_dir)]
    return command + (["--nproc", str(nproc)] if nproc > 1 else []) + list(options)


TEARDOWN_ABORT = "terminate called without an active exception"


def assert_exit_0(job: Job, code: int, name: str) -> None:
    why = ""
    if code != 0 and TEARDOWN_ABORT in job.err:
        why = (" because a worker aborted in its interpreter's teardown after the run had ended "
               "(torch's gloo threads; cockpit.launch could leave with os._exit)")
    assert code == 0, f"{name} exited with {code}{why}\n{job.tail()}"


def run_to_end(command: list[str], cwd: Path, name: str, work_dir: Path | None, timeout: float = 150,
               env: dict[str, str] | None = None) -> Job:
    with started(command, cwd, name, work_dir, env) as job:
        assert_exit_0(job, job.wait(timeout), name)
    return job


# --- reading a run ----------------------------------------------------------------------------------
def write_config(folder: Path, epochs: int = EPOCHS) -> Path:
    return write_child_config(folder, name="toy.py", max_epochs=epochs, momentum=0.9, log_interval=2, seed=5,
                              body_extra=RECORDER)


def records(work_dir: Path, rank: int) -> list[dict]:
    """The complete lines rank ``rank``'s Recorder wrote so far."""
    path = work_dir / f"rank{rank}.jsonl"
    if not path.exists():
        return []
    lines = path.read_text().split("\n")[:-1]  # the last piece is empty or still being written
    return [json.loads(line) for line in lines]


def iters(work_dir: Path, rank: int) -> list[dict]:
    return [r for r in records(work_dir, rank) if r["event"] == "iter"]


def last_iter(work_dir: Path, rank: int) -> int:
    done = iters(work_dir, rank)
    return done[-1]["iter"] if done else 0


def worker_pid(work_dir: Path, rank: int) -> int | None:
    """The pid rank ``rank``'s Recorder wrote, once the file is complete."""
    try:
        return int((work_dir / f"rank{rank}.pid").read_text())
    except (OSError, ValueError):
        return None


def run_folders(work_dir: Path) -> list[Path]:
    return sorted(p for p in work_dir.iterdir() if p.is_dir())


def connection_ready(work_dir: Path) -> bool:
    return any(work_dir.glob(f"*/{CONNECTION_FILE}"))


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["state_dict"]


def assert_close_states(actual: dict, expected: dict, what: str) -> None:
    assert actual.keys() == expected.keys(), f"{what}: different keys"
    for name, tensor in expected.items():
        assert torch.allclose(actual[name], tensor, atol=1e-5), (
            f"{what}: {name} differs by up to {(actual[name] - tensor).abs().max().item():.3g}")


def momenta(checkpoint: dict) -> list[torch.Tensor]:
    state = checkpoint["optimizer"]["state"]
    return [state[key]["momentum_buffer"] for key in sorted(state)]


# --- shared runs ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_config(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("config"))


@pytest.fixture(scope="module")
def two_processes(toy_config, tmp_path_factory) -> tuple[Path, Job]:
    """A complete 3-epoch run on 2 processes (batch 8 per rank)."""
    folder = tmp_path_factory.mktemp("two")
    work = folder / "w"
    job = run_to_end(cockpit_run(toy_config, work), folder, "two", work)
    return work, job


@pytest.fixture(scope="module")
def one_process(toy_config, tmp_path_factory) -> Path:
    """The same run on 1 process with the same global batch (16)."""
    folder = tmp_path_factory.mktemp("one")
    work = folder / "w"
    run_to_end(cockpit_run(toy_config, work, "--cfg-options", "train_dataloader.batch_size=16", nproc=1),
               folder, "one", work)
    return work


# --- the same training as one process -----------------------------------------------------------
def test_two_processes_train_the_same_weights_as_one_with_the_same_global_batch(two_processes, one_process):
    work2, _ = two_processes
    for epoch in range(1, EPOCHS + 1):
        two = load_checkpoint(work2 / f"epoch_{epoch}.pth")
        one = load_checkpoint(one_process / f"epoch_{epoch}.pth")
        assert two["meta"]["world_size"] == 2 and one["meta"]["world_size"] == 1
        assert two["meta"]["iter"] == one["meta"]["iter"] == epoch * ITERS_PER_EPOCH
        assert_close_states(two["state_dict"], one["state_dict"], f"epoch {epoch}: 2 processes against 1")
        for a, b in zip(momenta(two), momenta(one), strict=True):
            assert torch.allclose(a, b, atol=1e-5), f"epoch {epoch}: the optimizer states differ"
    # Both ranks trained every iteration, with the same learning rate.
    for rank in (0, 1):
        assert [r["iter"] for r in iters(work2, rank)] == list(range(1, TOTAL_ITERS + 1))


def test_checkpoints_logs_and_scalars_are_written_once_by_rank_0(two_processes):
    work, job = two_processes
    expected = {f"epoch_{e}.pth" for e in range(1, EPOCHS + 1)}
    files = {p.name for p in work.iterdir() if p.is_file()}
    assert files == expected | {"last_checkpoint", "writes.jsonl", "rank0.jsonl", "rank1.jsonl", "rank0.pid",
                                "rank1.pid"}, f"unexpected files (duplicates or temporaries?): {sorted(files)}"
    assert read_pointer(work) == work / f"epoch_{EPOCHS}.pth"
    for name in expected:
        load_checkpoint(work / name)

    writes = [json.loads(line) for line in (work / "writes.jsonl").read_text().splitlines()]
    assert {w["rank"] for w in writes} == {0}, f"rank 1 wrote files: {[w for w in writes if w['rank'] != 0]}"
    written = [Path(w["path"]).name for w in writes]
    for name in expected:
        assert written.count(name) == 1, f"{name} was written {written.count(name)} times"
    assert written.count("last_checkpoint") == EPOCHS

    (folder,) = run_folders(work)  # every rank agreed on one run folder
    assert [p.name for p in folder.glob("*.log")] == [f"{folder.name}.log"]
    assert list(work.rglob("scalars.json")) == [folder / "vis_data" / "scalars.json"]
    lines = (folder / "vis_data" / "scalars.json").read_text().splitlines()
    assert len(lines) == len(set(lines)), "scalars.json has duplicated lines"
    rows = [json.loads(line) for line in lines]
    train_steps = [r["step"] for r in rows if "lr" in r]
    val_steps = [r["step"] for r in rows if "accuracy/top1" in r]
    assert train_steps == list(range(2, TOTAL_ITERS + 1, 2)), "train scalars are missing or written twice"
    assert val_steps == list(range(1, EPOCHS + 1)), "val scalars missing or written twice"  # at the epoch
    log = (folder / f"{folder.name}.log").read_text()
    for epoch in range(1, EPOCHS + 1):
        assert log.count(f"Saving checkpoint at {epoch} epochs") == 1
    assert job.out.count("cockpit: finished") == 1, "more than one rank spoke"


# --- resuming ----------------------------------------------------------------------------------------
def test_a_stopped_two_process_run_resumes_on_two_processes_where_it_stopped(toy_config, two_processes, tmp_path):
    reference, _ = two_processes
    work = tmp_path / "w"
    with started(cockpit_run(toy_config, work), tmp_path, "first", work, env={"DIST_TEST_SLEEP": "0.2"}) as job:
        job.wait_for(lambda: connection_ready(work) and last_iter(work, 0) >= 1, "a first iteration")
        with RunClient.connect(work) as client:
            outcome = client.command("stop", timeout=60)
        assert outcome["outcome"] == "applied", outcome
        assert_exit_0(job, job.wait(60), "the run")
    stopped = read_pointer(work)
    stopped_at = load_checkpoint(stopped)["meta"]["iter"]
    assert 1 <= stopped_at < TOTAL_ITERS, f"the stop landed at iter {stopped_at}, not midway"
    assert stopped.name == f"iter_{stopped_at}.pth"
    assert [last_iter(work, rank) for rank in (0, 1)] == [stopped_at, stopped_at]
    seen = [len(records(work, rank)) for rank in (0, 1)]

    job = run_to_end(cockpit_run(toy_config, work, "--resume"), tmp_path, "resumed", work)
    assert "resumed from" in job.out
    for rank in (0, 1):
        after = [r["iter"] for r in records(work, rank)[seen[rank]:] if r["event"] == "iter"]
        assert after == list(range(stopped_at + 1, TOTAL_ITERS + 1)), f"rank {rank} did not continue in step"
    assert_close_states(weights(work / f"epoch_{EPOCHS}.pth"), weights(reference / f"epoch_{EPOCHS}.pth"),
                        "resumed against uninterrupted")


# --- commands -------------------------------------------------------------------------------------
def test_commands_from_a_client_are_applied_on_both_ranks(toy_config, tmp_path):
    work = tmp_path / "w"
    command = cockpit_run(toy_config, work, "--cfg-options", *ENDLESS)
    with started(command, tmp_path, "steered", work, env={"DIST_TEST_SLEEP": "0.02"}) as job:
        job.wait_for(lambda: connection_ready(work) and min(last_iter(work, r) for r in (0, 1)) >= 3,
                     "training on both ranks")
        workers = {rank: worker_pid(work, rank) for rank in (0, 1)}
        with RunClient.connect(work) as client:

            def apply(*words: str) -> dict:
                outcome = client.command(*words, timeout=60)
                assert outcome["outcome"] == "applied", outcome
                return outcome

            # save: one new checkpoint file, written once, named by last_checkpoint
            before = set(work.glob("*.pth"))
            apply("save")
            new = set(work.glob("*.pth")) - before
            assert len(new) == 1, f"save made {sorted(new)}"
            (saved,) = new
            assert read_pointer(work) == saved
            load_checkpoint(saved)
            writes = [json.loads(line) for line in (work / "writes.jsonl").read_text().splitlines()]
            assert [w["rank"] for w in writes if Path(w["path"]) == saved] == [0]

            # val: both ranks validate, at the same iteration, with the same (gathered) metrics
            apply("val")
            job.wait_for(lambda: all(any(r["event"] == "val" for r in records(work, k)) for k in (0, 1)),
                         "a validation on both ranks")
            vals = [[r for r in records(work, rank) if r["event"] == "val"] for rank in (0, 1)]
            assert len(vals[0]) == len(vals[1]) == 1
            assert vals[0][0]["iter"] == vals[1][0]["iter"] > 0
            assert vals[0][0]["metrics"] == vals[1][0]["metrics"] and "accuracy/top1" in vals[0][0]["metrics"]

            # pause: neither rank advances while the client sees 'paused'
            apply("pause")
            time.sleep(0.3)
            held = [last_iter(work, rank) for rank in (0, 1)]
            assert held[0] == held[1], f"the ranks paused at different iterations: {held}"
            assert client.snapshot()["status"] == "paused"
            time.sleep(1.5)
            assert [last_iter(work, rank) for rank in (0, 1)] == held, "a rank trained on while paused"
            assert client.snapshot()["status"] == "paused"

            # continue: both advance again
            apply("continue")
            job.wait_for(lambda: min(last_iter(work, r) for r in (0, 1)) >= held[0] + 3, "progress after continue")
            assert client.snapshot()["status"] == "running"

            # set lr: both ranks train with it from the same iteration on
            apply("set", "lr=0.05")
            job.wait_for(lambda: all(any(math.isclose(r["lr"], 0.05) for r in iters(work, k)) for k in (0, 1)),
                         "the new learning rate on both ranks", timeout=30)
            switch = []
            for rank in (0, 1):
                lrs = [(r["iter"], r["lr"]) for r in iters(work, rank)]
                first = next(i for i, lr in lrs if math.isclose(lr, 0.05))
                assert all(math.isclose(lr, 0.1 if i < first else 0.05) for i, lr in lrs), f"rank {rank}: {lrs}"
                switch.append(first)
            assert switch[0] == switch[1], f"the ranks changed lr at different iterations: {switch}"

            # stop: both processes end, exit 0, with a final checkpoint
            apply("stop")
        assert_exit_0(job, job.wait(60), "the run")
    assert not any(alive(pid) for pid in workers.values()), "a worker outlived the run"
    final = read_pointer(work)
    assert final is not None and final.name.startswith("iter_")
    stopped_at = load_checkpoint(final)["meta"]["iter"]
    assert [last_iter(work, rank) for rank in (0, 1)] == [stopped_at, stopped_at]
    assert "stopped (command 'stop')" in job.out


def test_commands_and_a_stop_signal_on_rank_1_take_effect_promptly_after_an_epoch_ends(toy_config, tmp_path):
    """The ranks agree about every 50 ms: an epoch boundary must not stretch that to hundreds of iterations.

    With iterations of over 50 ms every safe point is an agreement, so each epoch end is one.
    """
    work = tmp_path / "w"
    command = cockpit_run(toy_config, work, "--cfg-options", "train_cfg.max_epochs=100000",
                          "train_cfg.val_interval=1000000", "default_hooks.checkpoint.interval=-1",
                          "default_hooks.logger.interval=100")
    with started(command, tmp_path, "prompt", work, env={"DIST_TEST_SLEEP": "0.06"}) as job:
        job.wait_for(lambda: connection_ready(work) and last_iter(work, 1) > 2 * ITERS_PER_EPOCH,
                     "two epochs on both ranks")
        with RunClient.connect(work) as client:
            sent = time.monotonic()
            outcome = client.command("save", timeout=6)
            took = time.monotonic() - sent
        assert outcome["outcome"] == "applied", (
            f"'save' sent at iter {last_iter(work, 0)} was not applied within 6 s (iterations take ~65 ms): {outcome}")
        assert took < 3, f"'save' took {took:.1f} s"

        # A stop signal that reaches only rank 1 (a preempted process, say) stops every rank, with a checkpoint.
        os.kill(worker_pid(work, 1), signal.SIGTERM)
        signalled_at = last_iter(work, 1)
        assert_exit_0(job, job.wait(15), "the run")
    assert "another rank received a stop signal" in job.out
    stopped_at = load_checkpoint(read_pointer(work))["meta"]["iter"]
    assert stopped_at <= signalled_at + 10, f"signalled at iter {signalled_at}, stopped at {stopped_at}"


def test_ctrl_c_stops_a_two_process_run_as_it_stops_one_process(toy_config, tmp_path):
    """A terminal's Ctrl-C reaches the cockpit process only (torchrun starts its workers in sessions of
    their own), which passes it on: the workers save and stop, and the command ends as a one-process
    run does (exit 0, "stopped", no traceback), its resume hint keeping the number of processes."""
    work = tmp_path / "w"
    command = cockpit_run(toy_config, work, "--cfg-options", *ENDLESS)
    with started(command, tmp_path, "interrupted", work, env={"DIST_TEST_SLEEP": "0.02"}) as job:
        job.wait_for(lambda: connection_ready(work) and min(last_iter(work, r) for r in (0, 1)) >= 3,
                     "training on both ranks")
        signalled_at = last_iter(work, 0)
        job.process.send_signal(signal.SIGINT)
        code = job.wait(30)
    stopped = read_pointer(work)
    assert stopped is not None and stopped.name.startswith("iter_"), "no checkpoint of the interrupted position"
    stopped_at = load_checkpoint(stopped)["meta"]["iter"]
    assert signalled_at <= stopped_at <= signalled_at + 20
    assert [last_iter(work, rank) for rank in (0, 1)] == [stopped_at, stopped_at]
    assert "stopped (received SIGINT)" in job.out
    hints = [line for line in job.out.splitlines() if "--resume" in line]
    assert hints and all("--nproc 2" in hint for hint in hints), f"a resume hint without --nproc 2: {hints}"
    assert code == 0 and "Traceback" not in job.err, f"exit {code}: {job.err[-1500:]}"


# --- a worker dies ----------------------------------------------------------------------------------
def test_killing_one_rank_ends_the_job_with_a_resume_hint_and_a_good_checkpoint(toy_config, tmp_path):
    work = tmp_path / "w"
    command = cockpit_run(toy_config, work, "--cfg-options", "train_cfg.max_epochs=100000",
                          "train_cfg.val_interval=1000000", "default_hooks.logger.interval=100")
    with started(command, tmp_path, "killed", work, env={"DIST_TEST_SLEEP": "0.02"}) as job:
        job.wait_for(lambda: worker_pid(work, 1) is not None and read_pointer(work) is not None, "a checkpoint")
        victim = worker_pid(work, 1)
        assert victim in descendants(job.process.pid), "rank 1 is not a worker of the started run"
        assert environ(victim).get("RANK") == "1"
        survivor = worker_pid(work, 0)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        code = job.wait(60)
        took = time.monotonic() - killed_at
        assert code != 0, job.tail()
        assert took < 60
        err = job.err
        assert "rank 1" in err and "--resume" in err and "--nproc 2" in err, job.tail()
        assert not alive(survivor), "rank 0 outlived the job"
    pointer = read_pointer(work)
    assert pointer is not None and pointer.is_file(), "last_checkpoint names no file"
    checkpoint = load_checkpoint(pointer)
    assert checkpoint["meta"]["iter"] > 0 and checkpoint["state_dict"]
    assert not list(work.glob(".tmp-*"))


# --- the demo, and torchrun by hand ------------------------------------------------------------------
def test_the_digits_demo_learns_on_two_processes(tmp_path):
    work = tmp_path / "w"
    run_to_end([sys.executable, "-m", "cockpit.cli", "run", str(DIGITS), "--nproc", "2", "--no-tui",
                "--work-dir", str(work)], tmp_path, "digits", None)
    (folder,) = run_folders(work)
    rows = [json.loads(line) for line in (folder / "vis_data" / "scalars.json").read_text().splitlines()]
    accuracy = [r["accuracy/top1"] for r in rows if "accuracy/top1" in r]
    assert len(accuracy) == 10, accuracy
    assert accuracy[-1] > 0.9, accuracy


def test_torchrun_with_cockpit_launch_trains(toy_config, two_processes, tmp_path):
    reference, _ = two_processes
    work = tmp_path / "w"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "cockpit.launch", str(toy_config), "--work-dir", str(work)]
    run_to_end(command, tmp_path, "torchrun", work)
    assert len(run_folders(work)) == 1, "the ranks chose different run folders"
    assert read_pointer(work) == work / f"epoch_{EPOCHS}.pth"
    assert [last_iter(work, rank) for rank in (0, 1)] == [TOTAL_ITERS, TOTAL_ITERS]
    assert_close_states(weights(work / f"epoch_{EPOCHS}.pth"), weights(reference / f"epoch_{EPOCHS}.pth"),
                        "torchrun + cockpit.launch against cockpit run --nproc 2")
