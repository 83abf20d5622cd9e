"""The job of `socketeer lab cpu` in Python: sequentially, in threads, in processes.

Usage: python3 -c "$(cat cpu.py)" COUNT JOBS
Prints one JSON line about the interpreter, then one per variant.
"""
import json
import math
import multiprocessing
import platform
import sys
import threading
import time


def job(count):
    total = 0.0
    for n in range(count):
        total += math.sqrt(n * n)
    return total


def report(variant, workers, started, sums):
    seconds = time.perf_counter() - started
    line = {"variant": variant, "workers": workers, "seconds": seconds, "sums": sums}
    print(json.dumps(line), flush=True)


def main():
    count, jobs = int(sys.argv[1]), int(sys.argv[2])
    # Free-threaded builds (3.13t and later) can run without the GIL.
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(json.dumps({"version": platform.python_version(), "gil": gil}), flush=True)

    started = time.perf_counter()
    report("sequential", 1, started, [job(count) for _ in range(jobs)])

    started = time.perf_counter()
    sums = [0.0] * jobs

    def work(i):
        sums[i] = job(count)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report("threads", jobs, started, sums)

    # fork: the script has no file, so spawn/forkserver could not import `job`.
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        sums = pool.map(job, [count] * jobs)
    report("processes", jobs, started, sums)


main()
