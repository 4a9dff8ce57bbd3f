"""Running scripts that may hang in a subprocess with a timeout, and the fork-test epilogues
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


#: Epilogue of a script that defines ``work()``: runs it in a forked child (multiprocessing's
#: "fork" context) and prints what it returned, or the repr of what it raised; the parent
#: waits 20 s at most for the answer.
READ_IN_FORKED_CHILD = """
import multiprocessing as _mp

def _child(q):
    try:
        q.put(work())
    except BaseException as exc:
        q.put(repr(exc))

_ctx = _mp.get_context("fork")
_q = _ctx.Queue()
_p = _ctx.Process(target=_child, args=(_q,))
_p.start()
print(_q.get(timeout=20))
_p.join(5)
"""


#: Epilogue of a script that defines ``child()`` and ``parent()``: runs ``child`` in a forked
#: child (which must exit 0 within 20 s), then ``parent`` in the parent, and prints
#: "parent <seconds it took>".
PARENT_AFTER_FORKED_CHILD = """
import multiprocessing as _mp, time as _time

_p = _mp.get_context("fork").Process(target=child)
_p.start()
_p.join(20)
assert _p.exitcode == 0, _p.exitcode
_t = _time.monotonic()
parent()
print("parent", round(_time.monotonic() - _t))
"""


def run_script(script: str, *args: str, timeout: float = 30) -> str:
    """The standard output of ``python -c script args``, which must exit 0 within ``timeout``."""
    res = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout
