#!/usr/bin/env python3
"""A process from the inside, as Linux shows it in /proc/self: its memory map
(code, data, heap, stack, shared libraries) and what the kernel keeps about it.

    python3 examples/python/process_anatomy.py
    socketeer lab anatomy                # the Rust twin: addresses of a static, a heap value, a local

A process is a program loaded into memory and running: the loader mapped the
program file's code and data, the C library and other shared libraries; the
heap grows as the program allocates; the stack holds each call's local
variables. The kernel keeps a record for each process (its process control
block): its id, parent, state, threads, memory use, open files and the saved
registers of each thread when it is not running.
"""

import os
import re
import resource
import sys
import threading


def regions() -> list[tuple[int, int, str, str]]:
    """(start, end, permissions, what) for each mapping of this process."""
    out = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            out.append((start, end, fields[1], fields[5].strip() if len(fields) > 5 else ""))
    return out


def kind(perms: str, path: str, program: str) -> str:
    if path == "[heap]":
        return "heap"
    if path == "[stack]":
        return "stack (the main thread's)"
    if path == program:
        if "x" in perms:
            return "the program's code"
        return "the program's data" if "w" in perms else "the program's read-only data"
    if ".so" in path:
        return "shared libraries"
    if path.startswith("["):
        return f"kernel helpers {path}"
    return "anonymous (thread stacks, big allocations, Python's arenas)" if not path else "other files"


def summary(maps, program: str) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for start, end, perms, path in maps:
        k = kind(perms, path, program)
        sizes[k] = sizes.get(k, 0) + end - start
    return sizes


def status(fields: list[str]) -> dict[str, str]:
    with open("/proc/self/status") as f:
        pairs = (line.split(":", 1) for line in f)
        return {k: re.sub(r"\s+", " ", v.strip()) for k, v in pairs if k in fields}


def main() -> None:
    program = os.path.realpath(sys.executable)
    maps = regions()
    print(f"memory map of process {os.getpid()} ({program}), by kind:")
    for what, size in sorted(summary(maps, program).items(), key=lambda kv: -kv[1]):
        print(f"  {size / 1024:>10,.0f} KiB  {what}")
    where = id(maps)  # in CPython, id() is the object's address
    home = next((kind(p, path, program) for s, e, p, path in maps if s <= where < e), "?")
    print(f"a list made just now lives at {where:#x}: {home}")

    fields = ["Name", "State", "Pid", "PPid", "Threads", "VmSize", "VmRSS", "voluntary_ctxt_switches"]
    print("what the kernel keeps about it (part of /proc/self/status):")
    for key, value in status(fields).items():
        print(f"  {key}: {value}")

    release = threading.Event()
    started = threading.Event()

    def wait_a_moment() -> None:
        started.set()
        release.wait()

    worker = threading.Thread(target=wait_a_moment)
    worker.start()
    started.wait()
    with_thread = regions()
    before = {(start, end) for start, end, _, _ in maps}
    added = [(e - s, p) for s, e, p, _ in with_thread if (s, e) not in before]
    stack_limit = resource.getrlimit(resource.RLIMIT_STACK)[0]
    print(f"with a second thread: Threads: {status(['Threads'])['Threads']}, and new mappings:")
    for size, perms in sorted(added, reverse=True):
        if size == stack_limit and "w" in perms:
            what = "the new thread's own stack"
        elif perms.startswith("---") and size == 4096:
            what = "a guard page (touching it is a crash, not a silent overflow)"
        else:
            what = "memory the C library reserves for the thread's allocations, or changed neighbours"
        print(f"  {size / 1024:>10,.0f} KiB {perms}  {what}")
    release.set()
    worker.join()


if __name__ == "__main__":
    main()
