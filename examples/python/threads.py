#!/usr/bin/env python3
"""Threads: two ways to give a thread its work, names and idents, is_alive,
join, and the course's exercise (two threads count to 5, one second apart).

    python3 examples/python/threads.py                 # the exercise: about 5 s, not 10
    python3 examples/python/threads.py --delay 0.1     # the same, faster
    socketeer lab threads                              # the Rust twin, measured

A thread runs inside this process and shares its memory; what it does not
share is its own stack (its local variables) and its registers. While one
thread sleeps (or waits for the network) it uses no CPU, so the other runs:
that is why two threads that each wait 5 s finish in 5 s together.
"""

import argparse
import os
import threading
import time

# Standard output is shared too: print() writes the text and the newline
# separately, so two threads printing at once can mix their lines.
print_lock = threading.Lock()


def say(line: str) -> None:
    with print_lock:
        print(line, flush=True)


def count(label: str, upto: int, delay: float, started: float) -> int:
    me = threading.current_thread()
    for n in range(1, upto + 1):
        say(f"{time.monotonic() - started:6.2f} s  {label}  name={me.name} ident={me.ident} "
            f"native_id={me.native_id} pid={os.getpid()}: {n}")
        time.sleep(delay)
    return upto


class Counter(threading.Thread):
    """The other way: subclass Thread and put the work in run(). start()
    calls run() in the new thread; calling run() yourself runs it in yours."""

    def __init__(self, upto: int, delay: float, started: float):
        super().__init__(name="worker-2")
        self.upto, self.delay, self.started = upto, delay, started
        self.result = None

    def run(self) -> None:
        # A Thread cannot return a value through join(): keep it on the object.
        self.result = count("subclass", self.upto, self.delay, self.started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds between numbers")
    args = parser.parse_args()
    started = time.monotonic()

    # target= takes the function itself, not a call: target=count(...) would
    # run it right here, in this thread, and hand Thread its return value.
    first = threading.Thread(target=count, args=("target  ", args.count, args.delay, started), name="worker-1")
    second = Counter(args.count, args.delay, started)
    first.start()
    second.start()
    say(f"right after start: worker-1 alive? {first.is_alive()}; worker-2 alive? {second.is_alive()}")
    first.join()  # blocks until the thread has finished
    second.join()
    print(f"after join: worker-1 alive? {first.is_alive()}; worker-2 returned {second.result}")
    elapsed = time.monotonic() - started
    print(f"2 threads, {2 * args.count} lines in {elapsed:.2f} s "
          f"(one after the other: {2 * args.count * args.delay:.2f} s)")


if __name__ == "__main__":
    main()
