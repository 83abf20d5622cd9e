#!/usr/bin/env python3
"""A deadlock, made certain, found by a timeout, then cured by a lock order.

    python3 examples/python/deadlock.py
    socketeer lab deadlock             # the Rust twin: a watchdog finds the cycle

Two threads need the same two locks. Thread 1 takes A then B; thread 2 takes
B then A. If each gets its first lock before the other gets its second, both
wait forever: each holds what the other needs. A Barrier makes that timing
certain here; in real programs it happens once in a while, which is worse.

acquire(timeout=...) turns "forever" into a failure you can see. The cure is
one global order: every thread takes A before B, so no cycle of waits can form.
"""

import argparse
import threading

lock_a = threading.Lock()
lock_b = threading.Lock()
locks = {"A": lock_a, "B": lock_b}


def opposite_orders(timeout: float) -> None:
    both_hold_one = threading.Barrier(2)
    outcome = {}

    def worker(name: str, first: str, second: str) -> None:
        with locks[first]:
            both_hold_one.wait()  # now each thread holds one lock
            got = locks[second].acquire(timeout=timeout)
            if got:
                locks[second].release()
            outcome[name] = f"holds {first}, waited {timeout} s for {second}: {'got it' if got else 'gave up'}"

    threads = [threading.Thread(target=worker, args=("worker-1", "A", "B")),
               threading.Thread(target=worker, args=("worker-2", "B", "A"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in sorted(outcome):
        print(f"opposite orders: {name} {outcome[name]}")
    gave_up = [name for name, o in outcome.items() if "gave up" in o]
    if gave_up:
        # Both threads waited at once, each for the lock the other held: a
        # deadlock. Without a timeout they would still be waiting. Giving up
        # released the lock, which let the other thread (if still waiting) on.
        print(f"deadlock: both waited for each other; the timeout broke it ({', '.join(sorted(gave_up))} gave up)")


def one_order(rounds: int) -> None:
    done = {}

    def worker(name: str) -> None:
        for _ in range(rounds):
            with lock_a:  # always A first,
                with lock_b:  # then B
                    done[name] = done.get(name, 0) + 1

    threads = [threading.Thread(target=worker, args=(f"worker-{i}",)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"one order (A then B): {done} rounds done, no deadlock possible")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=0.5, help="how long to wait for the second lock")
    parser.add_argument("--rounds", type=int, default=1000)
    args = parser.parse_args()
    opposite_orders(args.timeout)
    one_order(args.rounds)


if __name__ == "__main__":
    main()
