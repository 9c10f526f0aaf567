#!/usr/bin/env python3
"""TCP proxy that adds latency: each chunk read from one side is written to
the other side DELAY milliseconds later, in order, in both directions, so a
request/response turn costs 2 x DELAY more (the round-trip time of a WAN
link). Bandwidth is left to the link behind it (tc tbf on a veth pair, see
lib-wan.sh); netem, the usual delay qdisc, is missing from some kernels.

What it does not model: a real link's round-trip time also caps one TCP
connection's throughput at window / RTT; here the TCP connections on both
sides see no added delay, so only request turnarounds pay it.

Usage: delay-proxy.py LISTEN-PORT-FILE UPSTREAM-HOST UPSTREAM-PORT DELAY-MS
Listens on 127.0.0.1 (a free port, written to LISTEN-PORT-FILE).
"""

import asyncio
import os
import sys

CHUNK = 64 * 1024
QUEUE = 64  # chunks in flight per direction: bounds the proxy's memory


async def pump(reader, writer, delay):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue(QUEUE)

    async def release():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.create_task(release())
    try:
        while True:
            data = await reader.read(CHUNK)
            await queue.put((loop.time() + delay, data or None))
            if not data:
                break
        await sender
    except (OSError, asyncio.CancelledError):
        sender.cancel()


async def serve(port_file, host, port, delay):
    async def client(creader, cwriter):
        try:
            ureader, uwriter = await asyncio.open_connection(host, port)
        except OSError:
            cwriter.close()
            return
        try:
            await asyncio.gather(pump(creader, uwriter, delay), pump(ureader, cwriter, delay))
        finally:
            for w in (cwriter, uwriter):
                try:
                    w.close()
                except OSError:
                    pass

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % server.sockets[0].getsockname()[1])
    os.rename(port_file + ".tmp", port_file)
    async with server:
        await server.serve_forever()


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: delay-proxy.py LISTEN-PORT-FILE UPSTREAM-HOST UPSTREAM-PORT DELAY-MS")
    asyncio.run(serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) / 1000.0))


if __name__ == "__main__":
    main()
