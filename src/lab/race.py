"""The lost-update race of `socketeer lab race`, in CPython.

Usage: python3 -c "$(cat race.py)" THREADS COUNT
Prints one JSON line about the interpreter, then one per variant.
"""
import json
import platform
import sys
import threading
import time

counter = 0
lock = threading.Lock()


def plus_equals(count):
    global counter
    for _ in range(count):
        counter += 1


def same(value):
    return value


def read_call_write(count):
    # The same read-modify-write as +=, with a function call between the read
    # and the write: CPython may switch threads at a call.
    global counter
    for _ in range(count):
        seen = counter
        seen = same(seen)
        counter = seen + 1


def read_call_write_locked(count):
    global counter
    for _ in range(count):
        with lock:
            seen = counter
            seen = same(seen)
            counter = seen + 1


def run(variant, work, threads, count, interval):
    global counter
    counter = 0
    sys.setswitchinterval(interval)
    workers = [threading.Thread(target=work, args=(count,)) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.perf_counter() - started
    line = {"variant": variant, "switch_interval": interval, "got": counter, "seconds": seconds}
    print(json.dumps(line), flush=True)


def main():
    threads, count = int(sys.argv[1]), int(sys.argv[2])
    default = sys.getswitchinterval()
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    print(json.dumps({"version": platform.python_version(), "gil": gil, "switch_interval": default}), flush=True)
    run("+=", plus_equals, threads, count, default)
    run("+=", plus_equals, threads, count, 1e-6)
    run("read, call, write", read_call_write, threads, count, default)
    run("with lock", read_call_write_locked, threads, count, default)


main()
