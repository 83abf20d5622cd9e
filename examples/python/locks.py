#!/usr/bin/env python3
"""A race condition and the Lock that prevents it.

    python3 examples/python/locks.py
    socketeer lab race                 # the same race in Rust, where it loses far more

Four threads each add 1 to a shared counter many times. `counter += 1` is
three steps: read the value, add one, write it back. If another thread writes
between this thread's read and its write, that update is lost. The steps from
the read to the write are a CRITICAL SECTION: a stretch of code that must not
run in two threads at once. A Lock makes it so.

CPython switches threads only every few milliseconds (sys.getswitchinterval),
so a plain `counter += 1` loses updates rarely and a naive test may never see
it. The "unlucky" variant yields between the read and the write (sleep(0)),
which is what a busy machine does at the worst moment anyway.
"""

import argparse
import sys
import threading
import time

counter = 0
lock = threading.Lock()


def plain(times: int) -> None:
    global counter
    for _ in range(times):
        counter += 1


def unlucky(times: int) -> None:
    global counter
    for _ in range(times):
        value = counter
        time.sleep(0)  # another thread may run here
        counter = value + 1


def locked(times: int) -> None:
    global counter
    for _ in range(times):
        with lock:  # acquire(); ...; release(), even if the body raises
            value = counter
            time.sleep(0)
            counter = value + 1


def explicit(times: int) -> None:
    """The same as `with lock:`, spelled out: release in a finally block,
    or an exception leaves the lock held and every other thread stuck."""
    global counter
    for _ in range(times):
        lock.acquire()
        try:
            value = counter
            time.sleep(0)
            counter = value + 1
        finally:
            lock.release()


def run(work, threads: int, times: int) -> int:
    global counter
    counter = 0
    workers = [threading.Thread(target=work, args=(times,)) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return counter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--count", type=int, default=2000, help="increments per thread")
    args = parser.parse_args()
    expected = args.threads * args.count
    print(f"{args.threads} threads x {args.count} increments = {expected} expected "
          f"(switch interval {sys.getswitchinterval() * 1000:.0f} ms)")
    for name, work in [("plain +=", plain), ("unlucky", unlucky), ("with lock", locked), ("acquire/release", explicit)]:
        got = run(work, args.threads, args.count)
        print(f"{name:16} got {got:8}  lost {expected - got}")


if __name__ == "__main__":
    main()
