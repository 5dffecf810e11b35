"""The Python app of the multiline tests: numbered lines on stdout (from a
thread) and stderr, and between them real tracebacks printed by
traceback.print_exc(): chained by "raise ... from" (direct cause), raised
while handling another (context), and exception groups. It ends with an
uncaught chained exception.

    python3 app.py EXCEPTIONS LINES RATE
"""
import sys
import threading
import time
import traceback

n, lines, rate = (int(a) for a in sys.argv[1:4])
step = 2.0 / rate  # each stream gets half of the rate


def pace(nxt):
    nxt += step
    wait = nxt - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    return nxt


done = threading.Event()


def stdout_lines():
    nxt = time.monotonic()
    i = 0
    while not done.is_set():
        print(f"seq={i:06d} stream=stdout lang=python", flush=True)
        i += 1
        nxt = pace(nxt)


class OrderError(Exception):
    pass


def parse_quantity(text):
    return int(text)


def place(i):
    try:
        parse_quantity(f"boom-{i}")
    except ValueError as e:
        if i % 2:
            raise OrderError(f"order boom-{i} failed") from e
        raise KeyError(f"boom-{i}")


t = threading.Thread(target=stdout_lines)
t.start()
seq = 0
nxt = time.monotonic()


def normal():
    global seq, nxt
    for _ in range(lines):
        print(f"seq={seq:06d} stream=stderr lang=python", file=sys.stderr, flush=True)
        seq += 1
        nxt = pace(nxt)


for i in range(n):
    normal()
    try:
        if i % 5 == 4:
            raise ExceptionGroup(f"batch boom-{i}", [ValueError(f"boom-{i} a"), TypeError(f"boom-{i} b")])
        place(i)
    except Exception:
        traceback.print_exc()
        sys.stderr.flush()
normal()
done.set()
t.join()
place(n + 1)
