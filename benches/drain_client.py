#!/usr/bin/env python3
"""WebSocket clients that reconnect when the server closes them, for benches/drain.sh.

Opens --conns upgraded connections to --url (through a load balancer), spread over the
--sources addresses, holds them, and answers every close frame, then connects again at once,
as a browser client of a fleet would. Every close (time, code, reason) and every successful
reconnect (time) is recorded; on SIGTERM or after --max-seconds it writes them as JSON to --out
and exits. Prints "connected N" once the first --conns are all open.

Standard library only (asyncio); each connection is one coroutine.
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import struct
import sys
import time

REQUEST = (
    "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Run:
    def __init__(self):
        self.closes = []  # (time, code, reason)
        self.reconnects = []  # time of each 101 after a close
        self.connect_failures = 0
        self.open = 0
        self.stop = asyncio.Event()


def masked(opcode, payload):
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


async def upgrade(host, port, path, source):
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(REQUEST.format(path=path, host=f"{host}:{port}", key=key).encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"101":
        writer.close()
        raise ConnectionError(f"status {status.decode(errors='replace')}")
    return reader, writer


async def read_frame(reader):
    h = await reader.readexactly(2)
    n = h[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return h[0] & 0x0F, await reader.readexactly(n)


async def client(run, args, source, connected):
    host, port = args.host, args.port
    first = True
    while not run.stop.is_set():
        try:
            reader, writer = await upgrade(host, port, args.path, source)
        except (OSError, ConnectionError, asyncio.IncompleteReadError):
            run.connect_failures += 1
            await asyncio.sleep(0.1)
            continue
        if first:
            first = False
            connected.release()
        else:
            run.reconnects.append(time.time())
        run.open += 1
        try:
            while True:
                opcode, payload = await read_frame(reader)
                if opcode == 0x9:  # ping
                    writer.write(masked(0xA, payload))
                elif opcode == 0x8:  # close: answer it, then connect again
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    run.closes.append((time.time(), code, payload[2:].decode(errors="replace")))
                    writer.write(masked(0x8, payload[:2]))
                    await writer.drain()
                    break
        except (OSError, asyncio.IncompleteReadError):
            run.closes.append((time.time(), None, "connection lost"))
        finally:
            run.open -= 1
            writer.close()


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True, help="ws://HOST:PORT/PATH")
    p.add_argument("--conns", type=int, required=True)
    p.add_argument("--sources", default="127.0.0.1", help="comma-separated source addresses")
    p.add_argument("--out", required=True)
    p.add_argument("--max-seconds", type=float, default=300)
    args = p.parse_args()
    rest = args.url.removeprefix("ws://")
    hostport, _, path = rest.partition("/")
    args.host, port = hostport.rsplit(":", 1)
    args.port, args.path = int(port), "/" + path
    sources = args.sources.split(",")

    run = Run()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, run.stop.set)
    connected = asyncio.Semaphore(0)
    tasks = []
    for i in range(args.conns):
        tasks.append(asyncio.create_task(client(run, args, sources[i % len(sources)], connected)))
        if i % 200 == 199:
            await asyncio.sleep(0.01)  # do not overrun the listen backlogs
    started = time.time()
    for _ in range(args.conns):
        await connected.acquire()
    print(f"connected {args.conns} in {time.time() - started:.1f}s", flush=True)
    try:
        await asyncio.wait_for(run.stop.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        print("max-seconds reached", file=sys.stderr)
    with open(args.out, "w") as f:
        json.dump(
            {
                "closes": run.closes,
                "reconnects": run.reconnects,
                "connect_failures": run.connect_failures,
                "open_at_end": run.open,
            },
            f,
        )
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main())
