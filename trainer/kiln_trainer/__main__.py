"""CLI: `train --spec FILE`, `generate --spec FILE`, `caption --spec FILE`,
`pretrain-tiny --out DIR`, `build-tiny-captioner --out DIR`, `plan --gpu-memory-gib N ...`.

Contract with the supervisor: stdout carries only JSON events; exit 0 only after a
`completed` or `cancelled` event, 2 for spec errors, 1 for everything else."""

import argparse
import errno
import logging
import os
import signal
import stat
import sys
import threading
import traceback

from . import events, spec as specmod
from .events import emit, error

log = logging.getLogger("kiln")

# How a write the disk refused reads once a library has wrapped the OSError: safetensors keeps
# the words ("IoError(Os { code: 28, kind: StorageFull, message: \"No space left on device\" })");
# torch's writer loses them, so train.torch_save raises an OSError of its own.
DISK_REFUSALS = ("No space left on device", "Disk quota exceeded", "StorageFull")

# An orphan gets as long to stop at a checkpoint as a cancelled trainer gets before its SIGKILL.
ORPHAN_GRACE_SECONDS = 8.0


def install_stop_handlers(stop, watch_stdin):
    def on_term(signum, frame):
        if stop.is_set():
            os._exit(143)  # second SIGTERM: the operator means it
        log.warning("SIGTERM: stopping at the next step boundary")
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, lambda s, f: os._exit(130))
    if watch_stdin:

        def watch():
            # the supervisor holds our stdin open; EOF means it died, so don't train for nobody
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass
            log.warning("stdin closed: supervisor gone, stopping")
            stop.set()
            # Nobody will SIGKILL an orphan, and the stop flag is only read between steps: a
            # trainer still loading (or stuck) would outlive its lease and overlap the rescued
            # attempt. Checkpoints are written to a temp dir and renamed, so a cut save is lost, not torn.
            deadline = threading.Timer(ORPHAN_GRACE_SECONDS, lambda: os._exit(143))
            deadline.daemon = True  # a trainer that stops in time exits normally
            deadline.start()

        threading.Thread(target=watch, daemon=True, name="stdin-watch").start()


def stdin_is_pipe():
    # Python's subprocess gives a FIFO, Node's child_process (libuv) a socketpair
    try:
        mode = os.fstat(0).st_mode
        return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
    except OSError:
        return False


def checked(convert, ok, what):
    """An argparse type: `convert`, then `ok`, else a usage error that says what was expected."""

    def parse(raw):
        try:
            value = convert(raw)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {raw!r}")
        return value

    return parse


def main(argv=None):
    ap = argparse.ArgumentParser(prog="kiln_trainer")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("train", "generate", "caption"):
        p = sub.add_parser(name)
        p.add_argument("--spec", required=True)
        p.add_argument(
            "--watch-stdin",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="stop when stdin reaches EOF (default: on when stdin is a pipe or socket)",
        )
    sub.add_parser("build-tiny-captioner").add_argument("--out", required=True)
    p = sub.add_parser(
        "pretrain-tiny",
        help="pretrain builtin:tiny-flux (about 30 min on 2 cores)",
        description="Options left out take the values the shipped model was made with (its provenance.json).",
    )
    p.add_argument("--out", required=True)
    for flag in ("--seed", "--vae-steps", "--flow-steps", "--batch", "--scenes"):
        p.add_argument(flag, type=int)
    p = sub.add_parser(
        "plan",
        help="the memory plan for a training run on a card of N GiB, as JSON",
        description="Prints {feasible, quantize, gradient_checkpointing, optimizer, estimated_peak_gib, reason, ...}.",
    )
    p.add_argument("--gpu-memory-gib", type=checked(float, lambda v: v > 0, "a number of GiB > 0"), required=True)
    p.add_argument(
        "--resolution", type=checked(int, lambda v: v >= 32 and v % 16 == 0, "a multiple of 16, >= 32"), default=1024
    )
    p.add_argument("--rank", type=checked(int, lambda v: 1 <= v <= 256, "an integer in 1..256"), default=16)
    p.add_argument("--training-type", choices=("LORA", "FULL"), default="LORA")
    p.add_argument("--batch", type=checked(int, lambda v: v >= 1, "an integer >= 1"), default=1)
    p.add_argument("--optimizer", choices=specmod.OPTIMIZERS, default="adamw8bit")
    p.add_argument("--quantize", choices=specmod.QUANTIZE, default="auto")
    p.add_argument("--gradient-checkpointing", choices=("auto", "on", "off"), default="auto")
    p.add_argument(
        "--model",
        type=checked(
            str,
            lambda v: os.path.isfile(os.path.join(v, "transformer", "config.json")),
            "a diffusers FLUX folder (with transformer/config.json)",
        ),
        help="a diffusers FLUX folder (default: FLUX.1-dev's published config)",
    )
    args = ap.parse_args(argv)

    events.claim_stdout()
    events.setup_logging()
    stop = threading.Event()
    if args.cmd in ("train", "generate", "caption"):
        install_stop_handlers(stop, stdin_is_pipe() if args.watch_stdin is None else args.watch_stdin)
    try:
        if args.cmd == "build-tiny-captioner":
            from . import tiny_captioner

            emit("completed", path=tiny_captioner.build(args.out))
            return 0
        if args.cmd == "pretrain-tiny":
            from . import pretrain

            given = {k: getattr(args, k) for k in ("seed", "vae_steps", "flow_steps", "batch", "scenes")}
            path, provenance = pretrain.run(
                os.path.abspath(args.out), **{k: v for k, v in given.items() if v is not None}
            )
            emit("completed", path=path, **provenance)
            return 0
        if args.cmd == "plan":
            events.write(plan(args))
            return 0
        spec = specmod.load(args.spec, args.cmd)
        if args.cmd == "caption":
            from . import caption

            done = caption.run(spec, stop)
            if stop.is_set():
                emit("cancelled", step=done)
            return 0
        if args.cmd == "generate":
            from . import sampling

            sampling.generate(spec, stop)
            return 0
        from . import train

        try:
            train.run(spec, stop)
        except train.Cancelled as c:
            emit("cancelled", step=c.args[0])
        return 0
    except specmod.SpecError as e:
        for field, msg in e.problems:
            error("spec", f"{field}: {msg}" if field else msg, f"spec.{field}" if field else "spec")
        return 2
    except Exception as e:
        return report(e, args.cmd)


def plan(args):
    from . import memory

    ckpt = {"auto": "auto", "on": True, "off": False}[args.gradient_checkpointing]
    return memory.plan(
        **memory.model_inputs(args.model, args.rank),
        gpu_memory_gib=args.gpu_memory_gib,
        resolution=args.resolution,
        training_type=args.training_type,
        optimizer=args.optimizer,
        batch=args.batch,
        quantize=args.quantize,
        gradient_checkpointing=ckpt,
    )


def disk_refused(e):
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(words in str(e) for words in DISK_REFUSALS)


def report(e, command):
    from . import data, fp8, lora, memory, models, numerics

    traceback.print_exc()
    if isinstance(e, data.DatasetError):
        error("dataset", str(e), e.where)
    elif isinstance(e, numerics.NonFinite):
        error("numerics", str(e), "train")
    elif isinstance(e, fp8.Unsupported):
        error("spec", f"quantize: {e}", "spec.quantize")
    elif isinstance(e, lora.InitLoraError):
        error("spec", f"init_lora: {e}", "spec.init_lora")
    elif isinstance(e, memory.DoesNotFit):
        error("memory", str(e), "spec")
    elif isinstance(e, models.ModelError):
        error("model", str(e), e.where)
    elif disk_refused(e):
        error("disk", str(e).splitlines()[0], command)
    elif type(e).__name__ == "OutOfMemoryError" or "CUDA out of memory" in str(e):
        # The facts only: the service words the advice in the API's own fields (batch_size, rank).
        error("oom", str(e).splitlines()[0] if str(e) else "CUDA out of memory", command)
    else:
        error("internal", f"{type(e).__name__}: {e}", "internal")
    return 1


if __name__ == "__main__":
    sys.exit(main())
