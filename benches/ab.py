#!/usr/bin/env python3
"""Interleaved A/B of backfill pulls: two or more builds of defender-ingest
against one held sandbox tenant, run by turns so that the machine's drift
hits them alike. Prints the median wall time, user and system CPU and peak
RSS of each; the first round is not counted (warm-up).

    python3 benches/ab.py N chunked|sized RUNS BIN_A BIN_B [BIN ...]

e.g. build the baseline into another worktree, copy both binaries out, and

    python3 benches/ab.py 10000 chunked 15 /tmp/base /tmp/new

It starts `cargo bench --bench pull -- --sizes N --hold --bodies MODE` and
stops it at the end. Not a test: nothing here asserts on time.
"""
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time


def main():
    if len(sys.argv) < 6 or sys.argv[2] not in ("chunked", "sized"):
        sys.exit(__doc__)
    n, bodies, runs, bins = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bench = subprocess.Popen(
        ["cargo", "bench", "--bench", "pull", "--", "--sizes", n, "--hold", "--bodies", bodies],
        cwd=root, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )
    try:
        hold = next((l.strip() for l in bench.stderr if l.strip().startswith("cp ")), None)
        if hold is None:
            sys.exit("the bench did not print how to pull from the held tenant")
        pristine, state, rest = re.match(r"cp (\S+) (\S+) && env -i (.*)", hold).groups()
        words = rest.split()
        env = {"PATH": os.environ["PATH"]}
        while "=" in words[0]:
            k, v = words.pop(0).split("=", 1)
            if k != "PATH":
                env[k] = v
        out_dir = tempfile.mkdtemp()
        out = os.path.join(out_dir, "out.jsonl")
        args = [out if w == "/tmp/out.jsonl" else w for w in words[1:]]
        results = {b: [] for b in bins}
        for r in range(runs + 1):
            for b in bins:
                shutil.copy(pristine, state)
                if os.path.exists(out):
                    os.unlink(out)
                t0 = time.monotonic()
                child = subprocess.Popen([b] + args, env=env, stderr=subprocess.DEVNULL)
                _, status, ru = os.wait4(child.pid, 0)
                wall = time.monotonic() - t0
                if status != 0:
                    sys.exit(f"{b} failed (wait status {status})")
                if r > 0:
                    results[b].append((wall, ru.ru_utime, ru.ru_stime, ru.ru_maxrss / 1024))
        shutil.rmtree(out_dir)
    finally:
        os.killpg(bench.pid, signal.SIGTERM)
    for b, rs in results.items():
        med = lambda k: statistics.median(x[k] for x in rs)
        cpu = statistics.median(x[1] + x[2] for x in rs)
        print(
            f"{b}: wall {med(0) * 1e3:.0f} ms, user {med(1) * 1e3:.0f} ms, "
            f"sys {med(2) * 1e3:.0f} ms, cpu {cpu * 1e3:.0f} ms, peak RSS {med(3):.0f} MiB (n={len(rs)})"
        )


if __name__ == "__main__":
    main()
