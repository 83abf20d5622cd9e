#!/usr/bin/env python3
"""The GIL, measured: one CPU-bound job run three times one after another, in
three threads, and in three processes.

    python3 examples/python/gil.py
    socketeer lab cpu --python          # the same job in Rust and in Python, side by side

CPython's global interpreter lock lets one thread at a time run Python code.
Threads still help a program that WAITS (for the network, the disk, a sleep):
the lock is released while waiting. They do not help a program that COMPUTES:
three computing threads take turns and finish no sooner than one thread doing
all three jobs. Processes each have their own interpreter and their own lock,
so they compute in parallel, at the cost of starting and of sending results
back (they share no memory).
"""

import argparse
import math
import os
import sys
import threading
import time
from multiprocessing import Pool


def job(count: int) -> float:
    # The notes' job: math.sqrt(number**2), summed so the work cannot be skipped.
    total = 0.0
    for n in range(count):
        total += math.sqrt(n**2)
    return total


def sequential(count: int, jobs: int) -> list[float]:
    return [job(count) for _ in range(jobs)]


def in_threads(count: int, jobs: int) -> list[float]:
    results = [0.0] * jobs

    def work(i: int) -> None:
        results[i] = job(count)  # threads share memory: write the result in place

    threads = [threading.Thread(target=work, args=(i,)) for i in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def in_processes(count: int, jobs: int) -> list[float]:
    # Start AND join every process: timing p1 alone, as a classic version of
    # this exercise does, measures one job out of three. A Pool starts the
    # workers, hands each a job, and sends the results back through a pipe.
    with Pool(processes=jobs) as pool:
        return pool.map(job, [count] * jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5_000_000, help="like the notes' numbers = 5000000")
    parser.add_argument("--jobs", type=int, default=3)
    args = parser.parse_args()
    expected = args.count * (args.count - 1) / 2  # sqrt(n**2) is n, exactly, at these sizes
    gil = "on" if getattr(sys, "_is_gil_enabled", lambda: True)() else "off"
    print(f"python {sys.version.split()[0]}, GIL {gil}, {os.cpu_count()} cores; "
          f"{args.jobs} jobs of sqrt(n**2) for n below {args.count:,}")
    baseline = None
    for name, variant in [("sequential", sequential), ("threads", in_threads), ("processes", in_processes)]:
        started = time.perf_counter()
        sums = variant(args.count, args.jobs)
        elapsed = time.perf_counter() - started
        baseline = baseline or elapsed
        exact = all(s == expected for s in sums)
        print(f"{name:10}  {elapsed:7.3f} s  speedup {baseline / elapsed:4.2f}x  sums exact: {exact}")


# The guard matters: on systems that start processes by "spawn" (Windows,
# macOS), each child imports this file, and without the guard would start
# children of its own.
if __name__ == "__main__":
    main()
