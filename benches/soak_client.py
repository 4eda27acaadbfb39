"""Load for benches/soak.sh: pub/sub subscribers with churn and slow consumers, or a publisher.

  python3 benches/soak_client.py subscribe --listen 127.0.0.1:19301 --conns 4750 --topics 4 \
      --slow-share 0.02 --churn 0.01 --sources 127.0.0.2,127.0.0.3 --hard-stop 900
  python3 benches/soak_client.py publish --admin 127.0.0.1:19391 --topics 4 --rate 8 \
      --payload 1024 --hard-stop 900

subscribe: holds --conns WebSocket connections to `ringws serve --app pubsub`. A normal
subscriber holds one topic (`soak-<i mod topics>`), reads every frame, answers pings and close
frames. A slow consumer (--slow-share of the connections) subscribes to every topic, sets a small
receive buffer and never reads after the 101; it sends a ping every 15 s so that the server's
heartbeat does not close it first, and checks its TCP state every 2 s to notice that the server
cut it off. Every second --churn of the normal subscribers close (close frame 1000, then the
socket once the server's close frame arrived or after 2 s) and new ones take their place; any
connection lost for another reason is replaced too, keeping the slow share. Writes one JSON line
of counters every 10 s and on exit to stdout.

publish: POSTs --payload bytes to /publish/soak-<k> on the admin listener (one connection per
request, as the admin listener answers one request per connection), --rate requests per second
spread evenly over the topics, and a JSON line of counters every 10 s.

Both stop on SIGTERM/SIGINT, and by themselves after --hard-stop seconds, so nothing outlives a
killed driver for long.
"""
import argparse, asyncio, base64, json, os, random, signal, socket, struct, sys, time

TCP_INFO_STATE_ESTABLISHED = 1
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


def masked(op, payload=b""):
    """A masked client frame (payload up to 125 bytes)."""
    key = os.urandom(4)
    body = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | op, 0x80 | len(payload)) + key + body


class Stats:
    def __init__(self):
        self.c = dict(opened=0, connect_errors=0, refused=0, churned=0, server_closed=0,
                      lost=0, slow_opened=0, slow_cut=0, messages=0, bytes=0, pings=0)

    def __getitem__(self, k):
        return self.c[k]

    def add(self, k, n=1):
        self.c[k] += n


class Sub(asyncio.Protocol):
    def __init__(self, pool, slow):
        self.pool, self.slow = pool, slow
        self.transport = None
        self.buf = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.closing = False  # we sent a close frame
        self.got_close = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if not self.upgraded.done():
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end])
            del self.buf[:end + 4]
            ok = head.startswith(b"HTTP/1.1 101")
            self.upgraded.set_result(ok)
            if not ok:
                self.pool.stats.add("refused")
                self.transport.close()
                return
            if self.slow:
                self.transport.pause_reading()
                return
        self.parse()

    def parse(self):
        buf, st = self.buf, self.pool.stats
        pos, n = 0, len(buf)
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            ln, hl = b1 & 0x7F, 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hl = (buf[pos + 2] << 8) | buf[pos + 3], 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hl = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if n - pos < hl + ln:
                break
            op = b0 & 0x0F
            if op in (0x0, 0x1, 0x2):
                if b0 & 0x80:
                    st.c["messages"] += 1
                st.c["bytes"] += ln
            elif op == 0x9:
                self.transport.write(masked(0xA, bytes(buf[pos + hl:pos + hl + ln])))
            elif op == 0x8:
                self.got_close = True
                if not self.closing:
                    st.add("server_closed")
                    self.transport.write(masked(0x8, bytes(buf[pos + hl:pos + hl + min(ln, 2)])))
                self.transport.close()
                pos = n
                break
            pos += hl + ln
        del buf[:pos]

    def eof_received(self):
        return False  # close our side too

    def connection_lost(self, exc):
        if not self.upgraded.done():
            self.upgraded.set_result(False)
        if not self.closed.done():
            self.closed.set_result(exc)


class Pool:
    def __init__(self, a):
        self.a = a
        self.stats = Stats()
        host, port = a.listen.rsplit(":", 1)
        self.addr = (host, int(port))
        self.sources = a.sources.split(",") if a.sources else [None]
        self.src_i = 0
        self.normal, self.slow = set(), set()
        self.opening = 0
        self.opening_slow = 0
        self.n_slow_target = round(a.conns * a.slow_share)
        self.stop = asyncio.Event()
        self.stopping = False
        self.tasks = set()

    def spawn(self, coro):
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def open_one(self, slow, i):
        loop = asyncio.get_running_loop()
        self.opening += 1
        self.opening_slow += slow
        sock = None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            if slow:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            src = self.sources[self.src_i % len(self.sources)]
            self.src_i += 1
            if src:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((src, 0))
            await asyncio.wait_for(loop.sock_connect(sock, self.addr), 10)
            if slow:
                q = "&".join(f"topic=soak-{k}" for k in range(self.a.topics))
            else:
                q = f"topic=soak-{i % self.a.topics}"
            _, proto = await loop.create_connection(lambda: Sub(self, slow), sock=sock)
            sock = None
            key = base64.b64encode(os.urandom(16)).decode()
            proto.transport.write(
                f"GET /ws?{q} HTTP/1.1\r\nHost: {self.a.listen}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode())
            ok = await asyncio.wait_for(asyncio.shield(proto.upgraded), 15)
            if not ok:
                proto.transport.abort()
                return False
            self.stats.add("opened")
            if slow:
                self.stats.add("slow_opened")
                self.slow.add(proto)
                self.spawn(self.watch_slow(proto))
            else:
                self.normal.add(proto)
            self.spawn(self.watch(proto))
            return True
        except (OSError, asyncio.TimeoutError):
            self.stats.add("connect_errors")
            if sock is not None:
                sock.close()
            return False
        finally:
            self.opening -= 1
            self.opening_slow -= slow

    async def watch(self, proto):
        await proto.closed
        self.normal.discard(proto)
        self.slow.discard(proto)
        if not (proto.closing or proto.got_close or proto.slow or self.stopping):
            self.stats.add("lost")

    async def watch_slow(self, proto):
        """A slow consumer never reads: ping now and then, and look at the TCP state."""
        sock = proto.transport.get_extra_info("socket")
        last_ping = time.monotonic()
        while not proto.closed.done() and not self.stop.is_set():
            await asyncio.sleep(2)
            if proto.closed.done():
                break
            try:
                state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]
            except OSError:
                state = 0
            if state != TCP_INFO_STATE_ESTABLISHED:
                self.stats.add("slow_cut")
                proto.transport.abort()
                break
            if time.monotonic() - last_ping >= 15:
                last_ping = time.monotonic()
                self.stats.add("pings")
                proto.transport.write(masked(0x9, b"soak"))

    async def churn_one(self, proto):
        proto.closing = True
        self.normal.discard(proto)
        self.stats.add("churned")
        proto.transport.write(masked(0x8, struct.pack("!H", 1000)))
        try:
            await asyncio.wait_for(asyncio.shield(proto.closed), 2)
        except asyncio.TimeoutError:
            proto.transport.abort()

    async def run(self):
        a = self.a
        sem = asyncio.Semaphore(a.concurrency)
        counter = 0
        churn_acc = 0.0
        last_churn = time.monotonic()
        last_report = time.monotonic()
        start = time.monotonic()
        ready_said = False

        async def opener(slow, i):
            async with sem:
                ok = await self.open_one(slow, i)
            if not ok:
                await asyncio.sleep(0.5)  # back off before this slot is retried

        pending = set()
        while not self.stop.is_set():
            now = time.monotonic()
            if now - start > a.hard_stop:
                break
            have = len(self.normal) + len(self.slow) + len(pending)
            want = a.conns - have
            slow_have = len(self.slow) + sum(1 for s in pending if s[0])
            for _ in range(max(0, want)):
                slow = slow_have < self.n_slow_target
                slow_have += slow
                counter += 1
                tag = (slow, counter)
                pending.add(tag)
                t = asyncio.get_running_loop().create_task(opener(slow, counter))
                t.add_done_callback(lambda _t, tag=tag: pending.discard(tag))
            if not ready_said and len(self.normal) + len(self.slow) >= a.conns:
                ready_said = True
                self.report("ready", start)
            if ready_said and a.churn > 0 and now - last_churn >= 1:
                churn_acc += a.churn * (a.conns - self.n_slow_target) * (now - last_churn)
                last_churn = now
                k = min(int(churn_acc), len(self.normal))
                churn_acc -= k
                for p in random.sample(list(self.normal), k):
                    self.spawn(self.churn_one(p))
            elif not ready_said:
                last_churn = now
            if now - last_report >= 10:
                last_report = now
                self.report("sample", start)
            try:
                await asyncio.wait_for(self.stop.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
        self.stopping = True
        open_at_stop = (len(self.normal) + len(self.slow), len(self.slow))
        for p in list(self.normal) + list(self.slow):
            p.transport.abort()
        await asyncio.sleep(0.2)  # let connection_lost run
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.report("final", start, open_at_stop)

    def report(self, what, start, counts=None):
        n, slow = counts or (len(self.normal) + len(self.slow), len(self.slow))
        line = dict(event=what, pid=os.getpid(), t=round(time.monotonic() - start, 1),
                    open=n, slow_open=slow, **self.stats.c)
        print(json.dumps(line), flush=True)


async def subscribe(a):
    pool = Pool(a)
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, pool.stop.set)
    await pool.run()


async def publish(a):
    host, port = a.admin.rsplit(":", 1)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    c = dict(published=0, failed=0, subscribers=0, dropped=0)
    body = (b"soak " * (a.payload // 5 + 1))[:a.payload]
    start = time.monotonic()
    last_report = start
    k = 0

    async def one(topic):
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
            w.write(f"POST /publish/{topic} HTTP/1.1\r\nHost: {a.admin}\r\n"
                    f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            resp = await asyncio.wait_for(r.read(), 5)
            w.close()
            head, _, payload = resp.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                c["failed"] += 1
                return
            j = json.loads(payload)
            c["published"] += 1
            c["subscribers"] += j.get("subscribers", 0)
            c["dropped"] += j.get("dropped", 0)
        except (OSError, asyncio.TimeoutError, ValueError):
            c["failed"] += 1

    tasks = set()
    while not stop.is_set() and time.monotonic() - start < a.hard_stop:
        due = start + k / a.rate
        now = time.monotonic()
        if due > now:
            try:
                await asyncio.wait_for(stop.wait(), due - now)
            except asyncio.TimeoutError:
                pass
            continue
        t = loop.create_task(one(f"soak-{k % a.topics}"))
        tasks.add(t)
        t.add_done_callback(tasks.discard)
        k += 1
        if now - last_report >= 10:
            last_report = now
            print(json.dumps(dict(event="sample", t=round(now - start, 1), **c)), flush=True)
    for t in list(tasks):
        t.cancel()
    print(json.dumps(dict(event="final", t=round(time.monotonic() - start, 1), **c)), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("subscribe")
    s.add_argument("--listen", required=True)
    s.add_argument("--conns", type=int, required=True)
    s.add_argument("--topics", type=int, default=4)
    s.add_argument("--slow-share", type=float, default=0.02)
    s.add_argument("--churn", type=float, default=0.01, help="share of normal subscribers replaced per second")
    s.add_argument("--sources", default="")
    s.add_argument("--concurrency", type=int, default=200)
    s.add_argument("--hard-stop", type=float, required=True)
    q = sub.add_parser("publish")
    q.add_argument("--admin", required=True)
    q.add_argument("--topics", type=int, default=4)
    q.add_argument("--rate", type=float, default=8)
    q.add_argument("--payload", type=int, default=1024)
    q.add_argument("--hard-stop", type=float, required=True)
    a = p.parse_args()
    asyncio.run(subscribe(a) if a.mode == "subscribe" else publish(a))


if __name__ == "__main__":
    sys.exit(main())
