"""The paths a newcomer takes on the command line (issue 13), and the command line's own hardening
(issue 12): each test runs the real ``cockpit`` in subprocesses, from folders of its own, and reads
what a person would read (its output, ``cockpit ls``) and what it left on disk.

Runs that a test needs alive wait for a file the test creates (``gate``, ``release``, or a hook
that holds the run at its end), never for a time.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support import child_env, free_port_pair, wait_for, write_child_config

from cockpit.checkpoint import load_checkpoint

from .helpers import Lines, cockpit, end, hold_at_the_end, record, run_folders, start, stop_pid

REPO = Path(__file__).resolve().parents[2]
EPOCH = 8  # iterations an epoch in write_child_config's toy problem


def finished_run(folder: Path, work: Path, *options: str, max_epochs: int = 2, **config) -> Path:
    """Train a short run to its end in ``work``; returns its config."""
    config_path = write_child_config(folder, max_epochs=max_epochs, **config)
    result = cockpit("run", str(config_path), "--no-tui", "--work-dir", str(work), *options, cwd=folder)
    assert result.returncode == 0, result.stdout + result.stderr
    return config_path


# --- 1. resuming: the printed command, the run folder, a config that differs ---------------------------
def test_the_printed_resume_command_continues_the_same_run_with_its_overrides(tmp_path):
    gate = tmp_path / "gate"
    config = write_child_config(tmp_path / "configs", max_epochs=2, gate=gate)
    work = tmp_path / "runs" / "a"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    process = start("run", str(config), "--no-tui", "--work-dir", str(work), "--cfg-options",
                    "train_cfg.max_epochs=3", cwd=tmp_path)
    try:
        out = Lines(process)
        run_dir = Path(out.wait_for(r"^cockpit: run folder (\S+)$").group(1))
        wait_for(lambda: record(run_dir).get("status") == "running", what="the run to train")
        process.send_signal(signal.SIGTERM)  # as Ctrl-C, a closed terminal or a cluster's time limit do
        gate.touch()
        hint = out.wait_for(r"^cockpit: stopped \(received SIGTERM\) at epoch \d+, iter (\d+); resume with: (.+)$")
        assert process.wait(60) == 0
    finally:
        end(process)
    stopped_at, command = int(hint.group(1)), hint.group(2)
    assert command == f"cockpit run --resume {run_dir}"
    assert (work / f"iter_{stopped_at}.pth").is_file()

    # Followed literally, from another folder: the same work dir, the same overrides (3 epochs, not 2).
    resumed = cockpit(*shlex.split(command)[1:], cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from {work / f'iter_{stopped_at}.pth'}: epoch" in resumed.stdout
    assert f"cockpit: finished; checkpoints in {work}" in resumed.stdout
    assert load_checkpoint(work / "epoch_3.pth")["meta"]["iter"] == 3 * EPOCH
    assert not (elsewhere / "work_dirs").exists()
    assert len(run_folders(work)) == 2


def test_a_resume_whose_config_differs_is_refused_naming_the_keys(tmp_path):
    work = tmp_path / "w"
    config = finished_run(tmp_path, work)
    before = run_folders(work)
    refused = cockpit("run", str(config), "--no-tui", "--work-dir", str(work), "--resume", "--cfg-options",
                      "model.dropout=0.5", "train_cfg.max_epochs=3", "optim_wrapper.optimizer.lr=0.2", cwd=tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "resume refused: the config differs from the one epoch_2.pth was trained with:" in refused.stderr
    assert "model.dropout: 0.0 in the checkpoint, 0.5 now" in refused.stderr
    assert "optim_wrapper.optimizer.lr: 0.1 in the checkpoint, 0.2 now" in refused.stderr
    assert "max_epochs" not in refused.stderr.split("hint:")[0]  # the length may change: that is training further
    assert f"cockpit run --resume {before[0]}" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert run_folders(work) == before

    forced = cockpit("run", str(config), "--no-tui", "--work-dir", str(work), "--resume", "--force",
                     "--cfg-options", "model.dropout=0.5", "train_cfg.max_epochs=3", cwd=tmp_path)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "differs from epoch_2.pth's (--force)" in forced.stderr
    assert (work / "epoch_3.pth").is_file()


# --- 2. bare checkpoint names: the work dir and out_dir, on the command line and live -------------------
def test_a_bare_checkpoint_name_is_found_in_the_work_dir_and_in_out_dir(tmp_path):
    work = tmp_path / "w"
    config = finished_run(tmp_path, work, max_epochs=2)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = cockpit("run", str(config), "--no-tui", "--work-dir", str(work), "--resume", "epoch_1.pth", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from {work / 'epoch_1.pth'}: epoch 1, iter {EPOCH}" in resumed.stdout

    missing = cockpit("run", str(config), "--no-tui", "--work-dir", str(work), "--resume", "epoch_9.pth", cwd=elsewhere)
    assert missing.returncode == 2
    assert f"checkpoint epoch_9.pth does not exist (looked in {work} and the current folder)" in missing.stderr
    assert "hint: the work dir holds epoch_1.pth, epoch_2.pth; --resume alone takes the newest" in missing.stderr

    out_dir = tmp_path / "out"
    config = write_child_config(tmp_path / "o", max_epochs=2, body_extra=f"""
        default_hooks['checkpoint']['out_dir'] = {str(out_dir)!r}
        """)
    work_o = tmp_path / "wo"
    first = cockpit("run", str(config), "--no-tui", "--work-dir", str(work_o), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (out_dir / "wo" / "epoch_1.pth").is_file() and not (work_o / "epoch_1.pth").exists()
    resumed = cockpit("run", str(config), "--no-tui", "--work-dir", str(work_o), "--resume", "epoch_1.pth",
                      cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed from {out_dir / 'wo' / 'epoch_1.pth'}" in resumed.stdout


def test_ctl_resume_finds_a_bare_name_in_the_runs_work_dir(tmp_path):
    release = tmp_path / "release"
    config = write_child_config(tmp_path, max_epochs=1000, seconds=0.05, release=release,
                                body_extra=hold_at_the_end(release))
    work = tmp_path / "w"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    started = cockpit("run", str(config), "--detach", "--work-dir", str(work), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    run_dir = Path(re.search(r"run folder: (\S+)", started.stdout).group(1))
    pid = record(run_dir)["pid"]
    try:
        wait_for(lambda: (work / "epoch_2.pth").is_file(), 120, "two epochs' checkpoints")
        bare = cockpit("ctl", str(run_dir), "resume", "epoch_1.pth", cwd=elsewhere)
        assert bare.returncode == 0, bare.stderr
        assert re.fullmatch(r"resume: applied: resumed from epoch_1\.pth: iter \d+ -> 8 \(epoch 1\)\n", bare.stdout)
        relative = cockpit("ctl", str(run_dir), "resume", "w/epoch_2.pth", cwd=tmp_path)  # a path from here
        assert relative.returncode == 0, relative.stderr
        assert "resumed from epoch_2.pth" in relative.stdout
    finally:
        stop_pid(pid)


# --- 3. a finished run: complete, and how to train further ----------------------------------------------
def test_resuming_a_finished_run_says_it_is_complete_and_how_to_train_further(tmp_path):
    work = tmp_path / "w"
    finished_run(tmp_path, work)
    run_dir = run_folders(work)[0]
    result = cockpit("run", "--resume", str(run_dir), "--no-tui", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "cockpit: the run is complete: epoch_2.pth is at epoch 2 of 2 (iter 16), the end of the run" in result.stdout
    command = result.stdout.strip().splitlines()[-1].strip()
    assert command == f"cockpit run --resume {run_dir} --cfg-options train_cfg.max_epochs=4"
    assert run_folders(work) == [run_dir]  # nothing started, nothing left

    further = cockpit(*shlex.split(command)[1:], cwd=tmp_path)
    assert further.returncode == 0, further.stdout + further.stderr
    assert load_checkpoint(work / "epoch_4.pth")["meta"]["iter"] == 4 * EPOCH


# --- 6. the view and CLI processes do not import torch -----------------------------------------------------
def test_the_cli_and_its_views_import_no_torch_and_the_api_still_loads():
    code = """
import sys
import cockpit, cockpit.cli, cockpit.views, cockpit.widgets.tui.app
from cockpit.cli import main
main(["ls", "no-such-folder"])
print(sorted(m for m in ("torch", "textual") if m in sys.modules))
from cockpit import Runner, Hook, Config, CheckpointHook, BaseModel, __version__
print("torch" in sys.modules, Runner.__name__, Hook.__name__, bool(__version__))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=child_env())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[-2] == "['textual']", torch_importers("cockpit.cli, cockpit.views, cockpit.widgets.tui.app")
    assert lines[-1] == "True Runner Hook True"


def torch_importers(modules: str) -> list[str]:
    """The Cockpit modules through which ``import <modules>`` imports torch (``-X importtime``: a module is
    listed after what it imported, indented less)."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {modules}"], capture_output=True,
                            text=True, timeout=120, env=child_env())
    rows = [line.split("|")[-1] for line in result.stderr.splitlines() if line.startswith("import time:")]
    names = [(len(row) - len(row.lstrip()), row.strip()) for row in rows]
    found = []
    for index, (depth, name) in enumerate(names):
        if name == "torch":
            importer = next((n for d, n in names[index + 1:] if d < depth and n.startswith("cockpit")), "?")
            found.append(f"{importer} imports torch")
    return found


def test_import_time_of_the_cli_has_no_torch_in_it():
    # What the view process imports: the command line, the plain views and the terminal UI.
    assert torch_importers("cockpit.cli, cockpit.views, cockpit.widgets.tui.app") == []


# --- 8. errors in one line; no hook table on the console ---------------------------------------------------
def test_a_corrupt_checkpoint_is_one_line_with_a_hint_and_leaves_no_run_folder(tmp_path):
    work = tmp_path / "w"
    config = finished_run(tmp_path, work)
    before = run_folders(work)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes((work / "epoch_1.pth").read_bytes()[:1000])
    result = cockpit("run", str(config), "--no-tui", "--work-dir", str(work), "--resume", str(corrupt), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (f"cockpit: checkpoint error: {corrupt} is corrupt or not a checkpoint "
                                             "(it cannot be read as one)")
    assert result.stderr.splitlines()[1].startswith("  hint: resume from another checkpoint")
    assert len(result.stderr.splitlines()) == 2
    for noise in ("Traceback", "weights_only", "miniz", "Hooks will be executed"):
        assert noise not in result.stdout + result.stderr
    assert run_folders(work) == before

    debug = cockpit("run", str(config), "--no-tui", "--work-dir", str(work), "--resume", str(corrupt), "--debug",
                    cwd=tmp_path)
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr


def test_the_hook_table_goes_to_the_log_file_not_the_console(tmp_path):
    work = tmp_path / "w"
    config = write_child_config(tmp_path, max_epochs=1)
    result = cockpit("run", str(config), "--no-tui", "--work-dir", str(work), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Hooks will be executed" not in result.stdout
    assert "Epoch(train)" in result.stdout
    run_dir = run_folders(work)[0]
    assert "Hooks will be executed in the following order" in (run_dir / f"{run_dir.name}.log").read_text()


# --- 9. failed starts leave nothing; ls says why a run failed ------------------------------------------------
def test_failed_starts_leave_no_run_folder(tmp_path):
    work = tmp_path / "w"
    config = finished_run(tmp_path, work)
    before = run_folders(work)
    # A checkpoint that loads but does not fit the model: found only once the run has built and served.
    other = write_child_config(tmp_path / "other", max_epochs=2, body_extra="""
        import torch
        from cockpit import BaseModel

        class Wider(BaseModel):
            def __init__(self):
                super().__init__()
                self.layer = torch.nn.Linear(64, 20)

            def forward(self, inputs, data_samples=None, mode="tensor"):
                logits = self.layer(inputs)
                if mode == "loss":
                    return {"loss": torch.nn.functional.cross_entropy(logits, data_samples)}
                return logits, data_samples

        model = dict(type=Wider)
        """)
    cases = {
        "a checkpoint that does not fit": (["run", str(other), "--no-tui", "--work-dir", str(work), "--resume",
                                            "epoch_1.pth", "--force"], 2),
        "a missing checkpoint, detached": (["run", str(config), "--detach", "--work-dir", str(work), "--resume",
                                            "nope.pth"], 2),
        "an unknown type": (["run", str(write_child_config(tmp_path / "bad", body_extra="model = dict(type='NoNet')")),
                             "--no-tui", "--work-dir", str(work)], 2),
    }
    for what, (args, code) in cases.items():
        result = cockpit(*args, cwd=tmp_path)
        assert result.returncode == code, f"{what}: {result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr, what
        assert run_folders(work) == before, f"{what} left a run folder"
    listed = cockpit("ls", str(work), cwd=tmp_path)
    assert listed.stdout.count("\n") == 2, listed.stdout  # the header and the one run that trained


def test_ls_says_why_a_run_failed(tmp_path):
    work = tmp_path / "w"
    config = write_child_config(tmp_path, max_epochs=2, body_extra="""
        from toys import ToyNet

        class Fragile(ToyNet):
            calls = 0

            def forward(self, inputs, data_samples=None, mode="tensor"):
                Fragile.calls += 1
                if Fragile.calls > 3:
                    raise RuntimeError("forward exploded on purpose")
                return super().forward(inputs, data_samples, mode)

        model = dict(type=Fragile)
        """)
    result = cockpit("run", str(config), "--no-tui", "--work-dir", str(work), cwd=tmp_path)
    assert result.returncode == 1
    assert "RuntimeError: forward exploded on purpose" in result.stderr
    listed = cockpit("ls", str(work), cwd=tmp_path)
    lines = listed.stdout.splitlines()
    assert re.search(r"\sfailed\s", lines[1]), listed.stdout
    assert lines[2] == "  why: RuntimeError: forward exploded on purpose"


# --- 10. --cfg-options values: the override is named, not the file ---------------------------------------------
def test_a_bad_override_value_names_the_override_and_what_it_became(tmp_path):
    config = write_child_config(tmp_path, max_epochs=2)
    result = cockpit("run", str(config), "--no-tui", "--work-dir", str(tmp_path / "w"), "--cfg-options",
                     "train_cfg.max_epochs=abc", cwd=tmp_path)
    assert result.returncode == 2
    first = result.stderr.splitlines()[0]
    assert first.startswith("cockpit: config error: --cfg-options train_cfg.max_epochs=abc: train_cfg.max_epochs: ")
    assert "(the override made train_cfg.max_epochs the str 'abc')" in first
    assert str(config) not in result.stderr
    assert "fix: change the value given on the command line (the config file is not at fault)" in result.stderr
    assert not (tmp_path / "w").exists()


def test_an_unclosed_bracket_in_an_override_is_a_clear_error(tmp_path):
    config = write_child_config(tmp_path)
    result = cockpit("run", str(config), "--no-tui", "--cfg-options", "model.hidden=[64", cwd=tmp_path)
    assert result.returncode == 2
    assert "--cfg-options 'model.hidden=[64': cannot read the value '[64': its brackets are unbalanced" in result.stderr
    assert "e.g. model.hidden=[64]" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "work_dirs").exists()


# --- 11. errors that help ---------------------------------------------------------------------------------
def test_attach_with_no_runs_says_how_to_start_one(tmp_path):
    result = cockpit("attach", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("cockpit: no runs yet")
    assert "cockpit run CONFIG" in result.stderr
    (tmp_path / "work_dirs").mkdir()
    result = cockpit("attach", cwd=tmp_path)
    assert result.returncode == 2 and "no runs yet under work_dirs; start one with: cockpit run CONFIG" in result.stderr


def test_ctl_on_a_finished_run_says_it_finished(tmp_path):
    work = tmp_path / "w"
    finished_run(tmp_path, work)
    run_dir = run_folders(work)[0]
    for target in (run_dir, work):
        result = cockpit("ctl", str(target), "save", cwd=tmp_path)
        assert result.returncode == 2
        assert "finished" in result.stderr, result.stderr
    result = cockpit("ctl", str(run_dir), "save", cwd=tmp_path)
    assert "it takes no more commands. Train it further with: cockpit run --resume" in result.stderr


# --- 12. iteration-based runs count iterations only ------------------------------------------------------------
def test_ls_shows_iterations_only_for_an_iteration_based_run(tmp_path):
    work = tmp_path / "w"
    config = write_child_config(tmp_path, val_interval=None, body_extra="""
        train_cfg = dict(by_epoch=False, max_iters=6)
        default_hooks['checkpoint'] = dict(type='CheckpointHook', interval=3, by_epoch=False)
        """)
    result = cockpit("run", str(config), "--no-tui", "--work-dir", str(work), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    row = cockpit("ls", str(work), cwd=tmp_path).stdout.splitlines()[1]
    assert re.search(r"\sfinished\s+-\s+6/6\s+iter_6\.pth\s", row), row


# --- 13. the make targets, .gitignore, the license ------------------------------------------------------------
def test_make_demo_installs_only_what_the_demo_needs(tmp_path):
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-n", "demo", f"VENV={tmp_path / 'venv'}"], cwd=REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "-e '.[demo]'" in result.stdout and "[demo,test]" not in result.stdout and "[test]" not in result.stdout
    assert "--quiet" not in result.stdout  # pip shows its progress
    assert "runs/" in (REPO / ".gitignore").read_text().splitlines()
    assert 'license = "Apache-2.0"' in (REPO / "pyproject.toml").read_text()


# --- issue 12: the current folder, --listen, hostile run files, stale pids, a second signal --------------------
def test_modules_in_the_current_folder_are_never_imported(tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "zmq.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError('planted')\n")
    for argv in ([sys.executable, "-m", "cockpit.cli", "ls"], [str(Path(sys.executable).parent / "cockpit"), "ls"]):
        env = child_env()
        env["PYTHONPATH"] = str(REPO / "tests")
        result = subprocess.run([*argv, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert not marker.exists(), f"{argv} imported zmq.py from the current folder"


@pytest.mark.parametrize(("value", "message"), [
    ("abc", "the port must be a number from 0 to 65534"),
    ("127.0.0.1:99999", "the port must be a number from 0 to 65534"),
    ("0.0.0.0:5555", "serves on an address other machines may reach; add --listen-remote"),
    ("*:5555", "serves on an address other machines may reach; add --listen-remote"),
    ("bad host!:5555", "is not a host name or an IP address"),
])
def test_bad_listen_values_exit_2_with_a_clear_message(tmp_path, value, message):
    config = write_child_config(tmp_path)
    result = cockpit("run", str(config), "--no-tui", "--listen", value, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "work_dirs").exists()


def test_listen_on_port_0_serves_on_real_ports(tmp_path):
    release = tmp_path / "release"
    config = write_child_config(tmp_path, max_epochs=1000, seconds=0.05, release=release,
                                body_extra=hold_at_the_end(release))
    started = cockpit("run", str(config), "--detach", "--work-dir", str(tmp_path / "w"), "--listen", "127.0.0.1:0",
                      cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    run_dir = Path(re.search(r"run folder: (\S+)", started.stdout).group(1))
    pid = record(run_dir)["pid"]
    try:
        served = json.loads((run_dir / "cockpit.json").read_text())
        ports = [int(address.rsplit(":", 1)[1]) for address in (served["control"], served["events"])]
        assert served["control"].startswith("tcp://127.0.0.1:") and 0 not in ports
        saved = cockpit("ctl", str(run_dir), "save", cwd=tmp_path)
        assert saved.returncode == 0, saved.stderr
    finally:
        stop_pid(pid)


def test_listen_remote_warns_and_serves(tmp_path):
    release = tmp_path / "release"
    config = write_child_config(tmp_path, max_epochs=1000, seconds=0.05, release=release,
                                body_extra=hold_at_the_end(release))
    port = free_port_pair()
    started = cockpit("run", str(config), "--detach", "--work-dir", str(tmp_path / "w"), "--listen",
                      f"0.0.0.0:{port}", "--listen-remote", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    run_dir = Path(re.search(r"run folder: (\S+)", started.stdout).group(1))
    try:
        assert f"cockpit: warning: serving on 0.0.0.0:{port}, which other machines may reach" in started.stderr
        assert cockpit("ctl", str(run_dir), "save", cwd=tmp_path).returncode == 0
    finally:
        stop_pid(record(run_dir).get("pid"))


def test_ls_survives_hostile_run_files_and_shows_the_good_runs(tmp_path):
    work = tmp_path / "w"
    finished_run(tmp_path, work, max_epochs=1)
    good = run_folders(work)[0]
    hostile = {
        "pid-not-a-number": json.dumps({"experiment_name": "x", "status": "running", "pid": "abc"}),
        "a-list": json.dumps([1, 2, 3]),
        "deep": "[" * 200_000 + "]" * 200_000,
        "escapes": json.dumps({"experiment_name": "\x1b[2J\x1b[31mred\x07", "status": "finished\x1b[0m", "pid": 1.5}),
        "not-json": "{{{",
    }
    for name, text in hostile.items():
        (work / name).mkdir()
        (work / name / "run.json").write_text(text)
    result = cockpit("ls", str(work), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b[2J\\x1b[31mred\\x07" in result.stdout
    rows = {line.split()[-1]: line for line in result.stdout.splitlines()[1:] if not line.startswith("  why:")}
    assert re.search(r"\sfinished\s", rows[str(good)])
    for name in ("a-list", "deep", "not-json"):
        assert re.search(r"\sunreadable\s", rows[str(work / name)]), rows[str(work / name)]
    assert "run.json is nested too deeply" in result.stdout and "holds a list" in result.stdout
    assert re.search(r"\sdied\s", rows[str(work / "pid-not-a-number")])


def test_a_stale_pid_reads_as_died_in_ls_and_attach(tmp_path):
    work = tmp_path / "w"
    finished_run(tmp_path, work, max_epochs=1)
    template = json.loads((run_folders(work)[0] / "run.json").read_text())
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    reused = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # a pid a dead run names
    try:
        for name, pid, updated in (("gone", gone.pid, template["updated"]), ("reused", reused.pid, 1_000_000.0)):
            folder = work / name
            folder.mkdir()
            (folder / "run.json").write_text(json.dumps({**template, "status": "running", "pid": pid,
                                                         "updated": updated, "run_dir": str(folder)}))
            (folder / "cockpit.json").write_text("{}")
            (folder / "cockpit.json").chmod(0o600)
        listed = cockpit("ls", str(work), cwd=tmp_path).stdout
        for name, pid in (("gone", gone.pid), ("reused", reused.pid)):
            row = next(line for line in listed.splitlines() if line.endswith(str(work / name)))
            assert re.search(r"\sdied\s", row) and "(live)" not in row, row
            attached = cockpit("attach", str(work / name), cwd=tmp_path)
            assert attached.returncode == 2
            assert f"its process {pid} is gone" in attached.stderr
        assert "why: its process" in listed
    finally:
        reused.kill()
        reused.wait()


def test_a_second_sigterm_exits_at_once_with_its_own_code(tmp_path):
    stopping = tmp_path / "stopping"
    config = write_child_config(tmp_path, max_epochs=2, body_extra=f"""
        import time as _time

        from cockpit import Hook as _Hook

        class StuckIteration(_Hook):
            # An iteration that never ends: only a second signal gets the run out of it.
            def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
                while True:
                    if runner.steering.stop_requested is not None:
                        open({str(stopping)!r}, "w").close()  # the first signal was taken
                    _time.sleep(0.02)

        custom_hooks.append(dict(type=StuckIteration))
        """)
    work = tmp_path / "w"
    process = start("run", str(config), "--no-tui", "--work-dir", str(work), cwd=tmp_path)
    try:
        out = Lines(process)
        run_dir = Path(out.wait_for(r"^cockpit: run folder (\S+)$").group(1))
        wait_for(lambda: record(run_dir).get("status") == "running", what="the run to train")
        process.send_signal(signal.SIGTERM)
        wait_for(stopping.exists, what="the run to take the first SIGTERM")
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 128 + signal.SIGTERM
        text = out.rest()
    finally:
        end(process)
    assert "second SIGTERM" in text and "(without the final save)" in text
    assert f"resume with: cockpit run --resume {run_dir}" in text
    assert "Traceback" not in text


def test_a_second_sigterm_during_the_first_save_exits_with_its_own_code(tmp_path):
    gate, saving, never = tmp_path / "gate", tmp_path / "saving", tmp_path / "never"
    config = write_child_config(tmp_path, max_epochs=2, gate=gate, body_extra=f"""
        import os as _os
        import time as _time

        from cockpit import Hook as _Hook

        class SlowSave(_Hook):
            def before_save_checkpoint(self, runner, checkpoint):
                open({str(saving)!r}, "w").close()
                while not _os.path.exists({str(never)!r}):
                    _time.sleep(0.02)

        custom_hooks.append(dict(type=SlowSave))
        """)
    work = tmp_path / "w"
    process = start("run", str(config), "--no-tui", "--work-dir", str(work), cwd=tmp_path)
    try:
        out = Lines(process)
        run_dir = Path(out.wait_for(r"^cockpit: run folder (\S+)$").group(1))
        wait_for(lambda: record(run_dir).get("status") == "running", what="the run to train")
        process.send_signal(signal.SIGTERM)
        gate.touch()
        wait_for(saving.exists, what="the first save to begin")
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(30)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 128 + signal.SIGTERM, "the second SIGTERM during the save did not end the run"
        assert "second SIGTERM" in out.rest()
    finally:
        never.touch()
        end(process)


def test_exit_codes_are_documented_in_the_help(tmp_path):
    for args in (["--help"], ["run", "--help"]):
        text = cockpit(*args, cwd=tmp_path).stdout
        for line in ("0        done", "1        the training failed", "2        bad usage", "128+N"):
            assert line in text, (args, line)
    assert "cockpit run --resume RUN_FOLDER" in cockpit("run", "--help", cwd=tmp_path).stdout
