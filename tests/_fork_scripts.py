"""Running scripts that may hang in a subprocess with a timeout, and the fork-test epilogue
(for tests/hdf5/test_b2h5_hangs.py and tests/caterva2/test_hangs.py): a regression fails
instead of hanging the suite."""

from __future__ import annotations

import subprocess
import sys

#: Epilogue of a script that forked child ``pid``: prints "child <exit code>", or kills it and
#: prints "child hung" when it has not ended within 7.5 s.
WAIT_FOR_CHILD = """
for _ in range(150):
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print("child", os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("child hung")
os._exit(0)
"""


def run_script(script: str, *args: str, timeout: float = 30) -> str:
    """The standard output of ``python -c script args``, which must exit 0 within ``timeout``."""
    res = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout
