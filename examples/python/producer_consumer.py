#!/usr/bin/env python3
"""Producers and consumers over a bounded queue.Queue.

    python3 examples/python/producer_consumer.py
    python3 examples/python/producer_consumer.py --slow consumer
    socketeer lab producer-consumer            # the Rust twin: a queue built from a Mutex and a Condvar

queue.Queue does the locking for you: put() waits while the queue is full,
get() waits while it is empty. The waiting is the point: a producer faster
than its consumers is held back instead of filling the memory (back-pressure).

Two things the simple versions get wrong:
- They never end (`while True`). Here the main thread, once every producer
  has finished, puts one sentinel (None) per consumer: each consumer takes
  exactly one, and no item comes after it.
- A list guarded by a Lock with `if buffer: buffer.pop()` does not wait: a
  consumer that finds the list empty just skips, and the item it should have
  taken is taken by no one or by a later round. A queue makes the consumer wait.
"""

import argparse
import queue
import threading
import time
from collections import Counter


def produce(q: queue.Queue, producer: int, count: int, delay: float, waits: Counter, lock: threading.Lock) -> None:
    for n in range(count):
        item = (producer, n)
        if q.full():
            with lock:  # the counters are shared too: += is not atomic
                waits["producers found the queue full"] += 1
        q.put(item)  # waits while the queue is full
        time.sleep(delay)


def consume(q: queue.Queue, taken: list, delay: float, waits: Counter, lock: threading.Lock) -> None:
    while True:
        if q.empty():
            with lock:
                waits["consumers found the queue empty"] += 1
        item = q.get()  # waits while the queue is empty
        if item is None:
            return
        with lock:  # a list shared by the consumers: append under the lock
            taken.append(item)
        time.sleep(delay)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--producers", type=int, default=2)
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--capacity", type=int, default=5, help="like the notes' Queue(maxsize=5)")
    parser.add_argument("--count", type=int, default=200, help="items per producer")
    parser.add_argument("--slow", choices=["producer", "consumer", "neither"], default="neither")
    args = parser.parse_args()
    work = 0.001
    produce_delay = work if args.slow == "producer" else 0.0
    consume_delay = work if args.slow == "consumer" else 0.0

    q: queue.Queue = queue.Queue(maxsize=args.capacity)
    taken: list = []
    waits: Counter = Counter()
    lock = threading.Lock()
    started = time.monotonic()
    producers = [threading.Thread(target=produce, args=(q, p, args.count, produce_delay, waits, lock))
                 for p in range(args.producers)]
    consumers = [threading.Thread(target=consume, args=(q, taken, consume_delay, waits, lock))
                 for _ in range(args.consumers)]
    for t in producers + consumers:
        t.start()
    for t in producers:
        t.join()
    for _ in consumers:
        q.put(None)  # one "no more items" for each consumer
    for t in consumers:
        t.join()
    elapsed = time.monotonic() - started

    made = args.producers * args.count
    once = Counter(taken)
    exactly_once = len(once) == made and all(n == 1 for n in once.values())
    print(f"{args.producers} producers, {args.consumers} consumers, capacity {args.capacity}, slow: {args.slow}")
    print(f"{made} items made, {len(taken)} taken in {elapsed:.2f} s; every item exactly once: {exactly_once}")
    for what, n in sorted(waits.items()):
        print(f"{what} {n} times")


if __name__ == "__main__":
    main()
