"""Run in a fresh process: restore ``[[name, state], ...]`` from stdin, print the digests.

Each state is restored in a fresh pipeline of that name (see ``resume_sources``) and
the digest of the rest of its stream is printed.
"""

from __future__ import annotations

import json
import sys

from resume_sources import build

from harness import stream_digest

if __name__ == "__main__":
    out = []
    for name, state in json.loads(sys.stdin.read()):
        it = iter(build(name))
        it.set_state(state)
        out.append(stream_digest(it))
    print(json.dumps(out))
