"""Run examples/train_checkpointed.py with a hook that makes it stop where a test kills it.

Usage: ``python ckpt_example_child.py [--block-after-step K] [--block-in-write S] -- ARGS``

- ``--block-after-step K``: after printing ``step K``, print ``blocked`` and sleep.
- ``--block-in-write S``: when the datarax item of checkpoint ``S`` is written (on
  Orbax's background thread), print ``writing checkpoint S`` and sleep instead.

Either way the process waits to be killed; ARGS go to the example.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_checkpointed.py"


def load_example():
    spec = importlib.util.spec_from_file_location("train_checkpointed", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--block-after-step", type=int)
    parser.add_argument("--block-in-write", type=int)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    theirs = argv[split + 1 :]
    example = load_example()

    if args.block_after_step is not None:
        report = example.report_step

        def report_then_block(step: int, loss: float) -> None:
            report(step, loss)
            if step == args.block_after_step:
                print("blocked", flush=True)
                time.sleep(3600)

        example.report_step = report_then_block

    if args.block_in_write is not None:
        from datarax.checkpoint import snapshot

        write = snapshot.write_snapshot

        def slow_write(directory, snap) -> None:
            step = Path(str(directory)).parent.name.split(".")[0]
            if step == str(args.block_in_write):
                # One write call: a line printed from this thread never splits the
                # training loop's lines (print writes the text and the newline apart).
                sys.stdout.write(f"writing checkpoint {step} in {directory}\n")
                sys.stdout.flush()
                time.sleep(3600)
            write(directory, snap)

        snapshot.write_snapshot = slow_write

    return example.main(theirs)


if __name__ == "__main__":
    sys.exit(main())
