#!/usr/bin/env python3
"""Tiny HTTP/1.1 keep-alive upstream that answers every request after a fixed delay.

Usage: slow_upstream.py PORT [DELAY_MS]   (binds 127.0.0.1 only)
"""
import asyncio
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 18002
DELAY = (int(sys.argv[2]) if len(sys.argv) > 2 else 200) / 1000.0
BODY = b'{"ok":true,"items":[1,2,3]}'
RESP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\nConnection: keep-alive\r\n\r\n"
    + BODY
)


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            chunked = False
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v.strip() or 0)
                elif k == b"transfer-encoding" and b"chunked" in v.lower():
                    chunked = True
            if length:
                await reader.readexactly(length)
            elif chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            await asyncio.sleep(DELAY)
            writer.write(RESP)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
