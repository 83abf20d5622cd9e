#!/usr/bin/env python3
"""Processes: the course's second exercise (two workers count to 5, one second
apart) in processes instead of threads, and what processes do not share.

    python3 examples/python/processes.py                 # about 5 s, like the threads
    python3 examples/python/processes.py --delay 0.1
    socketeer lab processes                              # the Rust twin, with start-up costs

A process is a running program: its own memory, its own process id, at least
one thread. A child that changes a global variable changes ITS copy: the
parent never sees it. What a child has to say comes back through a channel
the operating system provides, here a multiprocessing.Queue (a pipe underneath).
"""

import argparse
import os
import sys
import time
from multiprocessing import Process, Queue

counted = 0  # every process has its own copy of this


def count(label: str, upto: int, delay: float, started: float, results: Queue) -> None:
    global counted
    for n in range(1, upto + 1):
        line = f"{time.monotonic() - started:6.2f} s  {label}  pid={os.getpid()} parent={os.getppid()}: {n}"
        # Both processes write to the same pipe. print() may write the text
        # and its newline in two calls, and the other process's line can land
        # between them; one write() of the whole line (shorter than the pipe's
        # atomic size, 4 KiB) always arrives in one piece.
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        counted += 1
        time.sleep(delay)
    results.put((label, os.getpid(), counted))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()
    started = time.monotonic()
    results: Queue = Queue()
    workers = [Process(target=count, args=(f"worker-{i}", args.count, args.delay, started, results))
               for i in (1, 2)]
    for w in workers:
        w.start()
    reports = [results.get() for _ in workers]  # read before join: a full pipe would block the child
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    for label, pid, theirs in sorted(reports):
        print(f"{label} (pid {pid}) counted {theirs}; its exit code {workers[int(label[-1]) - 1].exitcode}")
    print(f"the parent (pid {os.getpid()}) still has counted = {counted}: processes share no memory")
    print(f"2 processes, {2 * args.count} lines in {elapsed:.2f} s (one after the other: {2 * args.count * args.delay:.2f} s)")


if __name__ == "__main__":
    main()
