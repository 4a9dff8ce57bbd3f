"""b2store._atomic reads the umask without changing it (thread-safe), so files other threads
create meanwhile get the permissions the umask gives them.

``os.umask(0); os.umask(mask)`` set the umask to 0 for a moment: a file another thread created
in that moment got mode 0666 (1061 of 3000 files while a thread read the umask in a loop).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from b2store import _atomic
from b2store._atomic import _proc_umask, _umask, part_path


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
def test_umask_reads_the_process_umask(mask: int) -> None:
    old = os.umask(mask)
    try:
        assert _umask() == mask
        assert os.umask(mask) == mask  # left as it was
    finally:
        os.umask(old)


def test_files_created_while_another_thread_reads_the_umask_keep_their_mode(
    umask_022: None, tmp_path: Path
) -> None:
    stop = threading.Event()

    def read_umask_in_a_loop() -> None:
        while not stop.is_set():
            _umask()

    reader = threading.Thread(target=read_umask_in_a_loop, daemon=True)
    reader.start()
    modes = []
    try:
        for i in range(2000):
            path = tmp_path / str(i)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o666))
            modes.append(path.stat().st_mode & 0o777)
    finally:
        stop.set()
        reader.join(timeout=10)
    wrong = [oct(m) for m in modes if m != 0o644]
    assert not wrong, f"{len(wrong)} of {len(modes)} files got another mode: {wrong[:5]}"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status is Linux's")
def test_linux_reads_the_umask_from_proc_without_setting_it(
    umask_022: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _proc_umask() == 0o022

    def refuse(mask: int) -> int:
        raise AssertionError(f"os.umask({mask:#o}) called: it changes the umask of every thread")

    monkeypatch.setattr(_atomic.os, "umask", refuse)
    assert _umask() == 0o022


def test_status_without_a_umask_line_falls_back(umask_022: None, tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tpython3\nPid:\t1\n")  # a kernel older than 4.7
    assert _proc_umask(str(status)) is None
    assert _proc_umask(str(tmp_path / "missing")) is None
    status.write_text("Umask:\t0027\n")
    assert _proc_umask(str(status)) == 0o027


def test_part_path_gives_the_umask_permissions(umask_022: None, tmp_path: Path) -> None:
    with part_path(str(tmp_path), "out.zarr", directory=True) as folder:
        assert os.stat(folder).st_mode & 0o777 == 0o755
    with part_path(str(tmp_path), "out.json") as file:
        assert os.stat(file).st_mode & 0o777 == 0o644
