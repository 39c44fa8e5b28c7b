"""Machine-readable events: one JSON object per line on the original stdout.

The supervisor parses stdout, so nothing else may ever land there. `claim_stdout` moves
the real stdout to a private fd and points fd 1 at stderr, so stray prints and progress
bars from libraries end up in the human log instead of corrupting the event stream.
"""

import json
import logging
import math
import os
import sys
import threading

log = logging.getLogger("kiln")
_out = sys.stdout
_lock = threading.Lock()


def claim_stdout():
    global _out
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _out = os.fdopen(fd, "w", buffering=1, encoding="utf-8")


def setup_logging():
    logging.basicConfig(
        level=os.environ.get("KILN_LOG_LEVEL", "INFO"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # bitsandbytes (imported by diffusers) warns on every start that an optional hub kernel for
    # 4-bit CPU matmuls is missing; a quantized CPU run uses its torch fallback instead
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN/inf; the supervisor sees null
    return v


def emit(type_, **fields):
    write({"type": type_, **fields})


def write(obj):
    line = json.dumps({k: _clean(v) for k, v in obj.items()})
    with _lock:
        try:
            _out.write(line + "\n")
            _out.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # supervisor is gone; the stdin watcher will stop us


def error(kind, message, where=""):
    log.error("%s error at %s: %s", kind, where or "-", message)
    emit("error", kind=kind, message=message, where=where)
