#!/usr/bin/env python3
"""Open N keep-alive connections, send one GET on each, read the responses, hold them open,
and sample the VmRSS of PID while they are held.

Usage: hold_conns.py HOST PORT PID [N=1000] [HOLD_S=5]
Prints: opened=<n> ok=<n 200 responses> failed=<n> rss_kb=<max VmRSS while held>
"""
import asyncio
import sys

HOST, PORT, PID = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
N = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
HOLD = float(sys.argv[5]) if len(sys.argv) > 5 else 5.0
REQ = f"GET / HTTP/1.1\r\nHost: {HOST}:{PORT}\r\nConnection: keep-alive\r\n\r\n".encode()


def rss_kb():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def one(sem):
    async with sem:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, PORT), 10)
    writer.write(REQ)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if length:
        await asyncio.wait_for(reader.readexactly(length), 10)
    return status, writer


async def main():
    sem = asyncio.Semaphore(100)  # connect in waves so the listen backlog never overflows
    results = await asyncio.gather(*(one(sem) for _ in range(N)), return_exceptions=True)
    writers = [r[1] for r in results if not isinstance(r, BaseException)]
    ok = sum(1 for r in results if not isinstance(r, BaseException) and r[0] == 200)
    failed = N - len(writers)
    peak = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + HOLD
    while loop.time() < end:
        peak = max(peak, rss_kb())
        await asyncio.sleep(0.25)
    # Still open? A closed connection would read EOF immediately.
    for w in writers:
        w.close()
    print(f"opened={len(writers)} ok={ok} failed={failed} rss_kb={peak}")


asyncio.run(main())
