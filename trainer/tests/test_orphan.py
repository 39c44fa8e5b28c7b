import subprocess
import time

from conftest import Proc, cli_env, train_spec, write_json
from kiln_trainer.__main__ import ORPHAN_GRACE_SECONDS


def test_an_orphan_that_cannot_reach_a_step_boundary_exits_by_the_deadline(tmp_path):
    """A trainer whose supervisor died stops at its next step boundary; one that cannot get there
    (loading, or in a step that runs long) must still be gone before its lease could be rescued,
    or the next attempt's trainer would run beside it."""
    spec = train_spec(tmp_path, steps=1000)
    # Every step takes at least a minute: the stop flag is not read again before the deadline.
    env = cli_env(KILN_FAULT_STEP_SECONDS="60")
    p = Proc("train", write_json(tmp_path / "spec.json", spec), stdin=subprocess.PIPE, env=env)
    assert p.wait_for(lambda e: e["type"] == "started"), p.stderr
    t = time.time()
    p.p.stdin.close()
    rc = p.wait(timeout=60)
    took = time.time() - t
    assert rc == 143, p.stderr[-2000:]
    assert ORPHAN_GRACE_SECONDS - 1 < took < ORPHAN_GRACE_SECONDS + 5, took
    assert not p.of("step")
