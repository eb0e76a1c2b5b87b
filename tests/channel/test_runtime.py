"""The private folder of a run's sockets (issue 12, item 6): squatted names are passed over, never trusted.

The first test needs a second local user (created with ``useradd``, removed afterwards), so it runs
as root only; it squats the usual folder name in a sticky, world-writable folder that stands in for
``/tmp`` (``TMPDIR`` points the run there), then starts a real run. The others call
``socket_folder`` in this process.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import write_child_config

from channel.helpers import Child
from cockpit.channel import ConnectionError_
from cockpit.channel.runtime import socket_folder

root_only = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None,
                               reason="needs root and useradd, to act as a second local user")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder like /tmp: world-writable and sticky, with a short path (Unix sockets go in it)."""
    folder = Path(tempfile.mkdtemp(prefix="ct-", dir="/tmp"))
    folder.chmod(0o1777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def other_user() -> Iterator[tuple[str, int, int]]:
    """A second local user, ``(name, uid, gid)``, removed afterwards."""
    name = f"cockpit-squat-{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--user-group", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        ids = subprocess.run(["id", "-u", name], check=True, capture_output=True, text=True).stdout, \
            subprocess.run(["id", "-g", name], check=True, capture_output=True, text=True).stdout
        yield name, int(ids[0]), int(ids[1])
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@pytest.fixture
def in_tmp(monkeypatch, shared_tmp: Path) -> Path:
    """This process uses ``shared_tmp`` as its temporary folder and has no ``XDG_RUNTIME_DIR``."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    return shared_tmp


def as_user(user: tuple[str, int, int], *command: str) -> subprocess.CompletedProcess:
    _, uid, gid = user
    return subprocess.run(command, user=uid, group=gid, extra_groups=[], capture_output=True, text=True)


def private_to_me(folder: Path) -> bool:
    info = folder.lstat()
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700


@root_only
def test_a_run_passes_over_a_socket_folder_squatted_by_another_user(shared_tmp, other_user, tmp_path):
    usual = shared_tmp / f"cockpit-{os.getuid()}"
    made = as_user(other_user, "mkdir", "-m", "0777", str(usual))
    assert made.returncode == 0, made.stderr
    config = write_child_config(tmp_path, max_epochs=10 ** 5, seconds=0.02, val_interval=None,
                                checkpoint_interval=10 ** 6)
    child = Child(tmp_path, config, env={"TMPDIR": str(shared_tmp), "XDG_RUNTIME_DIR": None})
    try:
        control = child.connection["control"]
        folder = Path(control.removeprefix("ipc://")).parent
        # A fresh folder of the run's own, beside the squatted one (never inside it), closed to others.
        assert folder.parent == shared_tmp and folder.name.startswith(f"cockpit-{os.getuid()}-")
        assert private_to_me(folder)
        assert as_user(other_user, "ls", str(folder)).returncode != 0, "the other user can look inside"
        assert not any(usual.iterdir()), "the run put something in the squatted folder"
        # The run says what happened, naming the folder and whose it is.
        log = child.run_log()
        assert f"{usual} belongs to user '{other_user[0]}' (uid {other_user[1]}), not to you" in log
        assert f"sockets in {folder}" in log
        with child.connect() as client:
            assert client.ping()["pid"] == child.pid
    finally:
        child.end()
    assert child.process.returncode == 0, child.log()[-3000:]
    assert not folder.exists(), "the run left its socket folder behind"


@pytest.mark.parametrize("squat", ["symlink", "file", "foreign folder"])
def test_a_squatted_name_is_never_followed(in_tmp, squat, tmp_path):
    usual = in_tmp / f"cockpit-{os.getuid()}"
    target = tmp_path / "elsewhere"
    target.mkdir()
    if squat == "symlink":
        usual.symlink_to(target)
        why = f"{usual} is a symlink"
    elif squat == "file":
        usual.write_text("")
        why = f"{usual} is not a folder"
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to give a folder to another user")
        usual.mkdir()
        os.chown(usual, 65534, 65534)  # nobody
        why = f"{usual} belongs to"
    warnings: list[str] = []
    folder = socket_folder(warn=warnings.append)
    try:
        assert folder.parent == in_tmp and folder.name.startswith(f"cockpit-{os.getuid()}-")
        assert private_to_me(folder)
        assert not any(target.iterdir())
        assert len(warnings) == 1 and why in warnings[0] and str(folder) in warnings[0]
    finally:
        folder.rmdir()


def test_the_usual_folder_is_used_and_closed_when_it_is_ours(in_tmp):
    usual = in_tmp / f"cockpit-{os.getuid()}"
    usual.mkdir(mode=0o755)
    usual.chmod(0o755)
    warnings: list[str] = []
    folder = socket_folder(warn=warnings.append)
    assert folder.parent == usual and private_to_me(folder) and private_to_me(usual)
    assert warnings == []


def test_xdg_runtime_dir_is_preferred_when_it_is_ours(monkeypatch, in_tmp, tmp_path):
    runtime = tmp_path / "run-user"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    folder = socket_folder()
    assert folder.parent == runtime / "cockpit" and private_to_me(folder)
    if os.geteuid() == 0:
        os.chown(runtime, 65534, 65534)  # someone else's (an XDG_RUNTIME_DIR left over from `su`)
        warnings: list[str] = []
        elsewhere = socket_folder(warn=warnings.append)
        assert elsewhere.parent == in_tmp / f"cockpit-{os.getuid()}"
        assert f"XDG_RUNTIME_DIR={runtime} belongs to" in warnings[0]


def test_when_no_private_folder_can_be_made_the_error_says_what_and_how_to_fix_it(monkeypatch, in_tmp):
    usual = in_tmp / f"cockpit-{os.getuid()}"
    usual.symlink_to("/")

    def refuse(*args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(ConnectionError_) as failed:
        socket_folder()
    message = str(failed.value)
    assert message.startswith("cannot make a private folder for the run's sockets: ")
    assert f"{usual} is a symlink" in message and f"cannot create a folder in {in_tmp}: Permission denied" in message
    assert "Fix: set XDG_RUNTIME_DIR (or TMPDIR) to a folder of yours that only you can enter" in message
