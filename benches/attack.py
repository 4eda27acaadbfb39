#!/usr/bin/env python3
"""Hostile and slow clients against one ringws binary: the scenarios of issue 12.

    python3 benches/attack.py                  # run through benches/attack.sh, which sets it up
    python3 benches/attack.py --table FILE     # print the Markdown table of a results file

Each scenario starts its own server (`RINGWS serve --app echo --cores 2`, or `--app pubsub`
where the scenario needs it; default settings otherwise), takes a baseline, attacks, lets the
attackers go, waits until the server reports 0 connections open and SETTLE more seconds, and
stops the server by its pid. Memory is the server's own: VmRSS/VmHWM/VmSize from
/proc/PID/status, sampled every 100 ms (VmHWM catches a peak between samples), plus the
machine's Committed_AS from /proc/meminfo. Whether and when the server closed a client is seen
from the client side (a close frame and its code, FIN or RST; for clients that do not read, the
socket's TCP state from TCP_INFO, and the close frame read afterwards), and cross-checked with
the deltas of the server's own *_total counters on /metrics.

Scenarios (names for SCENARIOS=...):
  a  frame header announcing 16 MiB, 16 MiB - 1 payload bytes, then silence
  b  the same but 1 KiB short, then one byte every TRICKLE_PERIOD s (25 s by default)
  c  the 14-byte header plus one byte only; then again under RLIMIT_AS (C_AS_LIMIT, `prlimit --as`)
  d  one 16 MiB echo to a reader taking 2 MiB every 20 s and sending a pong every 10 s
  e  an honest reader of one 16 MiB echo at 430 KB/s that pings every 20 s and answers pings
  f  100 clients each send a 16 MiB message and never read, then all close
  g  16 MiB JSON control messages to the pubsub app; other clients' ping round trips meanwhile
  h  64+ partial admin requests ("GET /metr", reopened when closed) while /healthz is probed
  hfd  the admin listener with the process out of file descriptors (RLIMIT_NOFILE 256):
       server CPU while an admin connection waits to be accepted
  i  strictness: Host missing or twice, Sec-WebSocket-Version twice, admin Content-Length +5 or twice
  oom  the server in a 2 GiB cgroup v1 memory group: 2,000 attackers of (a), 20 honest echo clients

Settings are environment variables (see SETTINGS_SPEC below); QUICK=1 shrinks windows and counts
for a smoke run. Standard library only. Everything runs with a time bound; every server this
script starts is stopped by its pid on exit, and its pid and cgroup are written to
$ATTACK_STATE so that benches/attack.sh can clean up even if this process is killed.
"""

import asyncio
import base64
import collections
import hashlib
import json
import os
import re
import resource
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

MIB = 1 << 20
MB = 1e6
QUICK = os.environ.get("QUICK", "0") not in ("", "0")


def parse_size(text):
    m = re.fullmatch(r"\s*([0-9.]+)\s*([KMG]i?B?)?\s*", str(text))
    if not m:
        raise ValueError(f"not a size: {text!r}")
    mult = {None: 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9,
            "Ki": 1 << 10, "KiB": 1 << 10, "Mi": 1 << 20, "MiB": 1 << 20, "Gi": 1 << 30,
            "GiB": 1 << 30}[m.group(2)]
    return int(float(m.group(1)) * mult)


# name: (full value, QUICK value, parser)
SETTINGS_SPEC = {
    "SCENARIOS": ("a b c d e f g h hfd i oom", "a b c d e f g h hfd i oom", str),
    "CORES": (2, 2, int),
    "SETTLE": (10, 2, float),           # seconds after the last attacker left (0 open) to settled RSS
    "ATTACK_SIZE": ("16MiB", "16MiB", parse_size),  # announced frame length (default max_message_size)
    "A_CONNS": (32, 8, int),
    "A_WINDOW": (60, 8, float),        # seconds from the first header; ends early once all are closed
    "B_CONNS": (32, 8, int),
    "B_WINDOW": (80, 10, float),
    "TRICKLE_PERIOD": (25, 3, float),
    "TRICKLE_RESERVE": (1024, 1024, int),  # payload bytes (b) leaves unsent: trickles never end the frame
    "C_CONNS": (64, 32, int),
    "C_WINDOW": (60, 8, float),
    "C_AS_LIMIT": ("4GiB", "4GiB", parse_size),     # phase 2 under this RLIMIT_AS; 0: no phase 2
    "C_AS_CONNS": (300, 300, int),
    "C_AS_WINDOW": (15, 5, float),
    "D_CONNS": (4, 2, int),
    "D_WINDOW": (100, 10, float),
    "D_READ_PERIOD": (20, 3, float),
    "D_READ_BYTES": ("2MiB", "2MiB", parse_size),
    "D_PONG_PERIOD": (10, 1.5, float),
    "E_SIZE": ("16MiB", "4MiB", parse_size),
    "E_RATE": (430000, 430000, float),  # bytes per second
    "E_PING_PERIOD": (20, 3, float),
    "F_CONNS": (100, 20, int),
    "F_SIZE": ("16MiB", "16MiB", parse_size),
    "F_HOLD": (10, 3, float),
    "F_SEND_WINDOW": (30, 10, float),   # bound on sending the messages (a server may stop reading)
    "G_CLIENTS": (8, 4, int),
    "G_COUNT": (3, 1, int),
    "G_SIZE": ("16MiB", "16MiB", parse_size),
    "G_BASELINE": (3, 2, float),
    "H_CONNS": (70, 70, int),
    "H_WINDOW": (25, 5, float),
    "H_PROBE_PERIOD": (0.25, 0.25, float),
    "HFD_NOFILE": (256, 256, int),
    "HFD_WINDOW": (5, 3, float),
    "OOM_ATTACKERS": (2000, 2000, int),
    "OOM_HONEST": (20, 20, int),
    "OOM_LIMIT": ("2GiB", "2GiB", parse_size),
    "OOM_WINDOW": (60, 15, float),
    "HONEST_TIMEOUT": (5, 5, float),    # an honest echo slower than this counts as a failure
}
S = {}
for _name, (_full, _quick, _kind) in SETTINGS_SPEC.items():
    _raw = os.environ.get(_name)
    S[_name] = _kind(_raw if _raw not in (None, "") else (_quick if QUICK else _full))

RINGWS = os.environ.get("RINGWS", "target/release/ringws")
EXTRA_ARGS = os.environ.get("EXTRA_ARGS", "").split()
STATE_DIR = os.environ.get("ATTACK_STATE", "")
CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"


def now():
    return time.monotonic()


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, file=sys.stderr, flush=True)


def note_state(kind, value):
    if STATE_DIR:
        with open(os.path.join(STATE_DIR, kind), "a") as f:
            f.write(f"{value}\n")


# ---------------------------------------------------------------------------------------------
# WebSocket framing (client side: masked frames out, unmasked frames in)

def mask(data, key):
    n = len(data)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream, "little")).to_bytes(n, "little")


def frame_header(opcode, length, key, fin=True):
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        return bytes([b0, 0x80 | length]) + key
    if length < 65536:
        return bytes([b0, 0x80 | 126]) + struct.pack("!H", length) + key
    return bytes([b0, 0x80 | 127]) + struct.pack("!Q", length) + key


def client_frame(opcode, payload=b""):
    key = os.urandom(4)
    return frame_header(opcode, len(payload), key) + mask(payload, key)


def close_frame(code=1000):
    return client_frame(8, struct.pack("!H", code))


class FrameReader:
    """Incremental parser of server frames. feed() returns events:
    ('ping', payload), ('pong', payload), ('close', code, reason), ('message', opcode, data, length).
    """

    def __init__(self, collect=False, on_data=None):
        self.collect = collect
        self.on_data = on_data
        self.hdr = bytearray()
        self.in_frame = False
        self.need = 0
        self.op = 0
        self.fin = False
        self.ctrl = bytearray()
        self.msg = bytearray()
        self.msg_op = 0
        self.msg_len = 0
        self.data_bytes = 0

    def feed(self, data):
        events = []
        mv = memoryview(data)
        i, n = 0, len(data)
        while True:
            if not self.in_frame:
                if i >= n:
                    break
                want = 2
                if len(self.hdr) >= 2:
                    l7 = self.hdr[1] & 0x7F
                    want = 2 + (2 if l7 == 126 else 8 if l7 == 127 else 0) + (4 if self.hdr[1] & 0x80 else 0)
                if len(self.hdr) < want:
                    take = min(want - len(self.hdr), n - i)
                    self.hdr += mv[i:i + take]
                    i += take
                    continue
                b0, b1 = self.hdr[0], self.hdr[1]
                l7 = b1 & 0x7F
                if l7 == 126:
                    length = struct.unpack("!H", self.hdr[2:4])[0]
                elif l7 == 127:
                    length = struct.unpack("!Q", self.hdr[2:10])[0]
                else:
                    length = l7
                self.op, self.fin, self.need = b0 & 0x0F, bool(b0 & 0x80), length
                self.in_frame = True
                self.hdr = bytearray()
                self.ctrl = bytearray()
                if self.op in (1, 2):
                    self.msg_op, self.msg_len, self.msg = self.op, 0, bytearray()
            if self.need:
                if i >= n:
                    break
                k = min(self.need, n - i)
                chunk = mv[i:i + k]
                i += k
                self.need -= k
                if self.op >= 8:
                    self.ctrl += chunk
                else:
                    self.data_bytes += k
                    self.msg_len += k
                    if self.on_data:
                        self.on_data(chunk)
                    if self.collect:
                        self.msg += chunk
            if self.need == 0:
                self.in_frame = False
                if self.op == 8:
                    code = struct.unpack("!H", self.ctrl[:2])[0] if len(self.ctrl) >= 2 else 1005
                    events.append(("close", code, bytes(self.ctrl[2:]).decode("utf-8", "replace")))
                elif self.op == 9:
                    events.append(("ping", bytes(self.ctrl)))
                elif self.op == 10:
                    events.append(("pong", bytes(self.ctrl)))
                elif self.fin:
                    events.append(("message", self.msg_op, bytes(self.msg) if self.collect else None,
                                   self.msg_len))
        return events


# ---------------------------------------------------------------------------------------------
# Sockets

class Refused(Exception):
    def __init__(self, status, line):
        super().__init__(f"HTTP {status}: {line}")
        self.status = status


async def tcp_connect(port, timeout=5.0):
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (HOST, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return sock


async def ws_connect(port, path="/", timeout=10.0, extra=b""):
    """TCP connect and upgrade; returns (socket, bytes read past the 101 head)."""
    loop = asyncio.get_running_loop()
    deadline = now() + timeout
    sock = await tcp_connect(port, timeout)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               ).encode() + extra + b"\r\n"
        await asyncio.wait_for(loop.sock_sendall(sock, req), max(0.1, deadline - now()))
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), max(0.1, deadline - now()))
            if not data:
                raise ConnectionError("closed during the handshake")
            buf += data
        head, rest = buf.split(b"\r\n\r\n", 1)
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        status = int(line.split()[1])
        if status != 101:
            raise Refused(status, line)
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if accept not in head:
            raise ConnectionError("bad Sec-WebSocket-Accept")
        return sock, rest
    except BaseException:
        sock.close()
        raise


async def send_all(sock, data, progress=None):
    """Writes all of data; progress(n) after each partial write. Cancellable."""
    loop = asyncio.get_running_loop()
    mv = memoryview(data)
    while mv:
        try:
            k = sock.send(mv[:1 << 20])
        except BlockingIOError:
            k = 0
        if k:
            mv = mv[k:]
            if progress:
                progress(k)
            continue
        fut = loop.create_future()
        fd = sock.fileno()
        loop.add_writer(fd, lambda f=fut: f.done() or f.set_result(None))
        try:
            await fut
        finally:
            loop.remove_writer(fd)


def tcp_state(sock):
    """1 ESTABLISHED, 7 CLOSE (reset), 8 CLOSE_WAIT (FIN received), None if unknown."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return None


def drain_nowait(sock, reader, limit=64 * MIB):
    """Reads what is already queued on a socket (after the server closed it) into reader;
    returns 'FIN', 'RST' or None (nothing more queued)."""
    got = 0
    while got < limit:
        try:
            data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except ConnectionResetError:
            return "RST"
        except OSError:
            return "error"
        if not data:
            return "FIN"
        got += len(data)
        reader.feed(data)
    return None


async def http_request(port, raw, timeout=2.0):
    """Sends raw bytes, reads until EOF; returns (status, body)."""
    loop = asyncio.get_running_loop()
    deadline = now() + timeout
    sock = await tcp_connect(port, timeout)
    try:
        await asyncio.wait_for(loop.sock_sendall(sock, raw), max(0.05, deadline - now()))
        buf = b""
        while True:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), max(0.05, deadline - now()))
            if not data:
                break
            buf += data
    finally:
        sock.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head:
        raise ConnectionError("closed without an answer")
    return int(head.split(b"\r\n", 1)[0].split()[1]), body


async def http_get(port, path, timeout=2.0):
    return await http_request(
        port, f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode(), timeout)


LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prom(text):
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        try:
            series, value = line.rsplit(" ", 1)
            value = float(value)
        except ValueError:
            continue
        name, _, labels = series.partition("{")
        pairs = sorted((k, v) for k, v in LABEL_RE.findall(labels) if k != "core")
        key = name + ("{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else "")
        out[key] = out.get(key, 0.0) + value
    return out


def family(m, name):
    return sum(v for k, v in (m or {}).items() if k.split("{", 1)[0] == name)


def counter_delta(m0, m1):
    if not m0 or not m1:
        return None
    out = {}
    for k, v in m1.items():
        if k.split("{", 1)[0].endswith("_total"):
            d = v - m0.get(k, 0.0)
            if d:
                out[k] = int(d) if float(d).is_integer() else round(d, 3)
    return out


# ---------------------------------------------------------------------------------------------
# The server under test

def read_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "VmSize", "VmPeak", "RssAnon"):
                out[k] = int(v.split()[0]) * 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def private_writable(pid):
    """Bytes of the process's private writable mappings: roughly what it adds to the machine's
    Committed_AS (the commit charge), whether or not the pages were ever touched."""
    total = 0
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                fields = line.split()
                if fields[1].startswith("rw") and fields[1][3] == "p":
                    lo, hi = fields[0].split("-")
                    total += int(hi, 16) - int(lo, 16)
    except (OSError, ValueError, IndexError):
        return None
    return total


def committed_as():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Committed_AS:"):
                return int(line.split()[1]) * 1024
    return None


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    live = []

    def __init__(self, app="echo", as_limit=0, cgroup=None, tag="srv", nofile=0):
        self.app, self.as_limit, self.cgroup, self.tag = app, as_limit, cgroup, tag
        self.nofile = nofile
        self.proc = None
        self.samples = []          # (t, VmRSS, VmSize, cpu_s, Committed_AS)
        self.hwm = 0
        self.vmpeak = 0
        self.exit_t = None
        self.sampler = None
        self.logpath = None
        self.commit = None

    async def start(self):
        self.port, self.admin = free_port(), free_port()
        while self.admin == self.port:
            self.admin = free_port()
        args = [RINGWS, "serve", "--listen", f"{HOST}:{self.port}", "--admin-listen",
                f"{HOST}:{self.admin}", "--app", self.app, "--cores", str(S["CORES"]),
                "--log", "warn"] + EXTRA_ARGS
        self.logpath = os.path.join(STATE_DIR or "/tmp", f"ringws-{self.tag}-{os.getpid()}.log")
        as_limit, cgroup, nofile = self.as_limit, self.cgroup, self.nofile

        def in_child():
            if cgroup:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            if as_limit:
                resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        with open(self.logpath, "wb") as logf:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=subprocess.STDOUT, preexec_fn=in_child,
                                         start_new_session=True)
        Server.live.append(self)
        note_state("pids", self.proc.pid)
        self.t_start = now()
        deadline = now() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ringws exited at start ({self.proc.returncode}): {self.log_tail()}")
            try:
                status, _ = await http_get(self.admin, "/healthz", 1.0)
                if status == 200:
                    break
            except (OSError, asyncio.TimeoutError, ValueError, IndexError):
                pass
            if now() > deadline:
                raise RuntimeError("ringws did not answer /healthz within 15 s")
            await asyncio.sleep(0.1)
        self.sampler = asyncio.create_task(self._sample_loop())
        m = await self.metrics()
        for k in (m or {}):
            if k.startswith("ringws_build_info{"):
                found = re.search(r'commit="([^"]*)"', k)
                self.commit = found.group(1) if found else None
        return self

    def alive(self):
        if self.proc is None:
            return False
        if self.proc.poll() is None:
            return True
        if self.exit_t is None:
            self.exit_t = now()
        return False

    def sample(self):
        if not self.alive():
            return None
        try:
            st = read_status(self.proc.pid)
        except (OSError, ValueError, IndexError):
            return None
        if "VmRSS" not in st:
            return None
        self.hwm = max(self.hwm, st.get("VmHWM", 0))
        self.vmpeak = max(self.vmpeak, st.get("VmPeak", 0))
        s = (now(), st["VmRSS"], st["VmSize"], st["cpu_s"], committed_as())
        self.samples.append(s)
        return s

    async def _sample_loop(self):
        while True:
            self.sample()
            if not self.alive():
                return
            await asyncio.sleep(0.1)

    def window(self, t0, t1=None):
        return [s for s in self.samples if s[0] >= t0 and (t1 is None or s[0] <= t1)]

    async def metrics(self, timeout=3.0):
        if not self.alive():
            return None
        try:
            status, body = await http_get(self.admin, "/metrics", timeout)
        except (OSError, asyncio.TimeoutError, ValueError, IndexError):
            return None
        return parse_prom(body.decode("utf-8", "replace")) if status == 200 else None

    async def baseline(self):
        await asyncio.sleep(1.0)
        s = self.sample()
        self.base = s
        self.m0 = await self.metrics()
        return s

    async def settle(self, bound=10.0):
        """After the attackers left: waits (bounded) for 0 connections open, then SETTLE s."""
        t_left = now()
        open_now = None
        while now() - t_left < bound and self.alive():
            m = await self.metrics(2.0)
            open_now = family(m, "ringws_connections_open") if m else None
            if open_now == 0:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(S["SETTLE"])
        m1 = await self.metrics()
        if m1 is not None:
            open_now = family(m1, "ringws_connections_open")
        s = self.sample()
        return {"settled": s, "open_at_settle": None if open_now is None else int(open_now),
                "settled_after_s": round(now() - t_left, 1), "m1": m1}

    def exit_info(self):
        if self.proc is None or self.proc.poll() is None:
            return None
        rc = self.proc.returncode
        return {"returncode": rc, "signal": signal.Signals(-rc).name if rc < 0 else None,
                "after_start_s": round((self.exit_t or now()) - self.t_start, 1),
                "log_tail": self.log_tail()}

    def log_tail(self, n=3):
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").strip().splitlines()
            return " | ".join(lines[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.sampler:
            self.sampler.cancel()
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self in Server.live:
            Server.live.remove(self)


def memory_summary(srv, t0, n, tail):
    base = srv.base
    win = srv.window(t0)
    peak_sampled = max((s[1] for s in win), default=base[1])
    peak = max(peak_sampled, srv.hwm)
    vm_peak = max((s[2] for s in win), default=base[2])
    com = [s[4] for s in win if s[4] is not None]
    settled = tail["settled"] if tail else None
    out = {
        "baseline_rss": base[1], "peak_rss": peak, "settled_rss": settled[1] if settled else None,
        "settled_over_baseline": round(settled[1] / base[1], 2) if settled else None,
        "rss_per_attacker": round((peak - base[1]) / n) if n else None,
        "baseline_vmsize": base[2], "peak_vmsize": max(vm_peak, srv.vmpeak),
        "vmsize_per_attacker": round((max(vm_peak, srv.vmpeak) - base[2]) / n) if n else None,
        "committed_as_growth": (max(com) - base[4]) if com and base[4] else None,
        "server_cpu_s": round(win[-1][3] - base[3], 2) if win else None,
        "open_at_settle": tail["open_at_settle"] if tail else None,
        "settled_after_s": tail["settled_after_s"] if tail else None,
        "server_counters": counter_delta(srv.m0, tail["m1"] if tail else None),
        "server_exit": srv.exit_info(),
        "commit": srv.commit,
    }
    return out


# ---------------------------------------------------------------------------------------------
# Attackers

class Conn:
    def __init__(self, idx):
        self.idx = idx
        self.sock = None
        self.t_start = None        # first attack byte sent
        self.sent = 0
        self.sent_all = False
        self.trickled = 0
        self.t_end = None          # server closed it (close frame, FIN or RST)
        self.end = None            # 'close', 'FIN', 'RST'
        self.code = None
        self.refused = None
        self.error = None
        self.reader = FrameReader()

    def ended(self, kind, code=None):
        if self.t_end is None:
            self.t_end = now()
            self.end = kind
        if code is not None and self.code is None:
            self.code = code

    def label(self):
        if self.code is not None:
            return str(self.code)
        return self.end or "open"

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass


async def watch(c):
    """Reads everything the server sends an attacker until it closes the connection."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await loop.sock_recv(c.sock, 262144)
        except ConnectionResetError:
            c.ended("RST")
            return
        except OSError as e:
            c.ended(f"error {e.errno}")
            return
        if not data:
            c.ended("FIN")
            return
        for ev in c.reader.feed(data):
            if ev[0] == "close":
                c.ended("close", ev[1])


def close_summary(conns, exit_t=None):
    """Who the server closed, when (from the attacker's first byte) and how. With exit_t (the
    server died then), connections that merely ended with the process are counted apart."""
    attacked = [c for c in conns if c.t_start is not None]
    ended = [c for c in attacked if c.t_end is not None]
    died = [c for c in ended if exit_t is not None and c.code is None and c.t_end >= exit_t - 0.5]
    closed = [c for c in ended if c not in died]
    after = sorted(c.t_end - c.t_start for c in closed)
    out = {
        "attackers": len(attacked),
        "closed_by_server": len(closed),
        "close_after_s": ({"min": round(after[0], 1), "median": round(statistics.median(after), 1),
                           "max": round(after[-1], 1)} if after else None),
        "close_codes": dict(collections.Counter(c.label() for c in closed)),
        "sent_all": sum(c.sent_all for c in attacked),
        "refused": dict(collections.Counter(str(c.refused) for c in conns if c.refused)),
        "connect_errors": dict(collections.Counter(c.error for c in conns if c.error)),
    }
    if died:
        out["dropped_when_server_died"] = len(died)
    return out


async def announce_attacker(port, c, sem, deadline, size, payload_bytes, trickle=None):
    """Frame header announcing `size`, then `payload_bytes` of payload, then silence or one
    byte every `trickle` seconds, until the server closes the connection or the deadline."""
    async with sem:
        if now() >= deadline:
            return
        try:
            c.sock, rest = await ws_connect(port, timeout=min(10.0, max(0.5, deadline - now())))
        except Refused as r:
            c.refused = r.status
            return
        except (OSError, asyncio.TimeoutError) as e:
            c.error = type(e).__name__
            return
    for ev in c.reader.feed(rest):
        if ev[0] == "close":
            c.ended("close", ev[1])
    watcher = asyncio.create_task(watch(c))
    try:
        c.t_start = now()

        def more(k):
            c.sent += k
        await asyncio.wait_for(send_all(c.sock, frame_header(2, size, os.urandom(4)), more),
                               max(0.1, deadline - now()))
        await asyncio.wait_for(send_all(c.sock, memoryview(ATTACK)[:payload_bytes], more),
                               max(0.1, deadline - now()))
        c.sent_all = True
        while trickle and not watcher.done() and now() + trickle < deadline:
            await asyncio.wait({watcher}, timeout=trickle)
            if watcher.done():
                break
            await asyncio.wait_for(send_all(c.sock, os.urandom(1)), 5)
            c.trickled += 1
        if not watcher.done():
            await asyncio.wait({watcher}, timeout=max(0.0, deadline - now()))
    except (OSError, asyncio.TimeoutError):
        if not watcher.done():
            await asyncio.wait({watcher}, timeout=min(2.0, max(0.0, deadline - now())))
    finally:
        watcher.cancel()


async def run_attackers(conns, tasks, deadline):
    if tasks:
        await asyncio.wait(tasks, timeout=max(0.0, deadline - now()))
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in conns:
        c.close()


ATTACK = b""


def attack_payload():
    global ATTACK
    if len(ATTACK) < S["ATTACK_SIZE"]:
        ATTACK = os.urandom(max(S["ATTACK_SIZE"], S["F_SIZE"]))
    return ATTACK


# ---------------------------------------------------------------------------------------------
# Scenarios

async def scenario_announce(name, title, n, window, trickle):
    size = S["ATTACK_SIZE"]
    attack_payload()
    srv = await Server("echo", tag=name).start()
    try:
        await srv.baseline()
        t0 = now()
        deadline = t0 + window
        conns = [Conn(i) for i in range(n)]
        sem = asyncio.Semaphore(32)
        # with a trickle, 1 KiB stays unsent so that the trickled bytes never complete the frame
        sent = size - 1 - (S["TRICKLE_RESERVE"] if trickle else 0)
        tasks = [asyncio.create_task(announce_attacker(srv.port, c, sem, deadline, size, sent,
                                                       trickle)) for c in conns]
        await run_attackers(conns, tasks, deadline)
        t_left = now()
        tail = await srv.settle()
        res = {"scenario": name, "title": title, "app": "echo", "attackers_planned": n,
               "window_s": window, "attack_lasted_s": round(t_left - t0, 1)}
        if trickle:
            res["trickle_period_s"] = trickle
            res["trickle_bytes_sent"] = sum(c.trickled for c in conns)
        res.update(close_summary(conns))
        res.update(memory_summary(srv, t0, res["attackers"], tail))
        return res
    finally:
        srv.stop()


async def scenario_a():
    return await scenario_announce(
        "a_announce_silence", "(a) header announcing 16 MiB + 16 MiB - 1 bytes, then silence",
        S["A_CONNS"], S["A_WINDOW"], None)


async def scenario_b():
    return await scenario_announce(
        "b_announce_trickle",
        f"(b) header announcing 16 MiB + 16 MiB - 1 KiB bytes, then 1 byte every {S['TRICKLE_PERIOD']:g} s",
        S["B_CONNS"], S["B_WINDOW"], S["TRICKLE_PERIOD"])


async def scenario_c():
    """Phase 1: C_CONNS attackers send the 14-byte header and one byte and are held for C_WINDOW
    (memory, VmSize, Committed_AS, closes). Phase 2, on a fresh server under RLIMIT_AS =
    C_AS_LIMIT (as `prlimit --as`): C_AS_CONNS such attackers; does the process survive?"""
    n, window = S["C_CONNS"], S["C_WINDOW"]
    as_limit, as_n, as_window = S["C_AS_LIMIT"], S["C_AS_CONNS"], S["C_AS_WINDOW"]
    size = S["ATTACK_SIZE"]
    attack_payload()
    srv = await Server("echo", tag="c").start()
    try:
        await srv.baseline()
        t0 = now()
        deadline = t0 + window
        conns = [Conn(i) for i in range(n)]
        sem = asyncio.Semaphore(16)
        base_pw, base_cas = private_writable(srv.proc.pid), committed_as()
        tasks = [asyncio.create_task(announce_attacker(srv.port, c, sem, deadline, size, 1, None))
                 for c in conns]
        # once every attacker has sent its byte (bounded): the server's commit charge
        while now() < min(deadline, t0 + 20) and sum(
                c.sent_all or bool(c.error or c.refused) for c in conns) < n:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        held_pw, held_cas = private_writable(srv.proc.pid), committed_as()
        held_n = sum(1 for c in conns if c.sent_all and c.t_end is None)
        await run_attackers(conns, tasks, deadline)
        t_left = now()
        tail = await srv.settle() if srv.alive() else None
        res = {"scenario": "c_announce_only",
               "title": "(c) 14-byte header announcing 16 MiB + 1 byte only",
               "app": "echo", "attackers_planned": n, "window_s": window,
               "attack_lasted_s": round(t_left - t0, 1), "attackers_held": held_n,
               "private_writable_growth": (held_pw - base_pw) if held_pw and base_pw else None,
               "private_writable_per_attacker": (round((held_pw - base_pw) / held_n)
                                                 if held_pw and base_pw and held_n else None),
               "committed_as_growth_when_held": (held_cas - base_cas) if held_cas and base_cas else None}
        res.update(close_summary(conns, srv.exit_t))
        res.update(memory_summary(srv, t0, res["attackers"], tail))
    finally:
        srv.stop()
    if not as_limit:
        return res
    srv = await Server("echo", as_limit=as_limit, tag="c-as").start()
    try:
        await srv.baseline()
        t0 = now()
        deadline = t0 + as_window
        conns = [Conn(i) for i in range(as_n)]
        sem = asyncio.Semaphore(16)
        tasks = [asyncio.create_task(announce_attacker(srv.port, c, sem, deadline, size, 1, None))
                 for c in conns]
        # until every attacker has sent its byte, or the server died, or the window ended
        while now() < deadline and srv.alive() and sum(c.sent_all or bool(c.error or c.refused)
                                                       for c in conns) < as_n:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        alive = srv.alive()
        await run_attackers(conns, tasks, now())
        summary = close_summary(conns, srv.exit_t)
        res["rlimit_as"] = {
            "limit": as_limit, "attackers_planned": as_n, "attackers": summary["attackers"],
            "closed_by_server": summary["closed_by_server"], "close_codes": summary["close_codes"],
            "survived": alive, "server_exit": srv.exit_info(),
            "attackers_before_exit": (sum(1 for c in conns if c.t_start is not None
                                          and c.t_start <= srv.exit_t) if srv.exit_t else None),
            "peak_vmsize": max([x[2] for x in srv.samples] + [srv.vmpeak]),
        }
        return res
    finally:
        srv.stop()


async def scenario_d():
    n, window = S["D_CONNS"], S["D_WINDOW"]
    period, chunk, pong_period = S["D_READ_PERIOD"], S["D_READ_BYTES"], S["D_PONG_PERIOD"]
    size = S["ATTACK_SIZE"]
    loop = asyncio.get_running_loop()
    payload = memoryview(attack_payload())[:size]
    srv = await Server("echo", tag="d").start()
    try:
        await srv.baseline()
        t0 = now()
        deadline = t0 + window
        conns = [Conn(i) for i in range(n)]
        received = [0] * n
        pongs = [0] * n

        async def slow_reader(c):
            try:
                c.sock, rest = await ws_connect(srv.port)
            except (Refused, OSError, asyncio.TimeoutError) as e:
                c.error = type(e).__name__
                return
            _Feeder(c).feed(rest)
            c.t_start = now()
            try:
                # zero mask key: the payload goes out as it is, shared by all connections
                await asyncio.wait_for(send_all(c.sock, frame_header(2, size, b"\0\0\0\0")), 5)
                await asyncio.wait_for(send_all(c.sock, memoryview(payload)), max(0.1, deadline - now()))
                c.sent_all = True
            except (OSError, asyncio.TimeoutError):
                pass
            next_read, next_pong = c.t_start + period, c.t_start + pong_period
            while now() < deadline and c.t_end is None:
                st = tcp_state(c.sock)
                if st not in (1, None):
                    c.ended("RST" if st == 7 else "FIN")
                    break
                t = now()
                if t >= next_pong:
                    next_pong += pong_period
                    try:
                        await asyncio.wait_for(send_all(c.sock, client_frame(10)), 2)
                        pongs[c.idx] += 1
                    except (OSError, asyncio.TimeoutError):
                        pass
                if t >= next_read:
                    next_read += period
                    got = 0
                    while got < chunk:
                        try:
                            data = await asyncio.wait_for(loop.sock_recv(c.sock, min(65536, chunk - got)), 1.0)
                        except asyncio.TimeoutError:
                            break
                        except ConnectionResetError:
                            c.ended("RST")
                            break
                        if not data:
                            c.ended("FIN")
                            break
                        got += len(data)
                        for ev in c.reader.feed(data):
                            if ev[0] == "close":
                                c.ended("close", ev[1])
                    received[c.idx] = c.reader.data_bytes
                await asyncio.sleep(0.2)
            if c.t_end is not None and c.code is None:
                drain_nowait(c.sock, _Feeder(c))
                received[c.idx] = c.reader.data_bytes

        tasks = [asyncio.create_task(slow_reader(c)) for c in conns]
        await run_attackers(conns, tasks, deadline + 5)
        t_left = now()
        tail = await srv.settle()
        res = {"scenario": "d_slow_drain",
               "title": f"(d) 16 MiB echo to a reader taking {chunk / MIB:g} MiB every {period:g} s, "
                        f"pong every {pong_period:g} s",
               "app": "echo", "attackers_planned": n, "window_s": window,
               "attack_lasted_s": round(t_left - t0, 1),
               "echo_bytes_read": received, "pongs_sent": pongs}
        res.update(close_summary(conns))
        res.update(memory_summary(srv, t0, res["attackers"], tail))
        return res
    finally:
        srv.stop()


class _Feeder:
    """Feeds drained bytes into a Conn's reader and records its close frame."""

    def __init__(self, c):
        self.c = c

    def feed(self, data):
        for ev in self.c.reader.feed(data):
            if ev[0] == "close" and self.c.code is None:
                self.c.code = ev[1]
        return []


async def scenario_e():
    size, rate, ping_period = S["E_SIZE"], S["E_RATE"], S["E_PING_PERIOD"]
    loop = asyncio.get_running_loop()
    srv = await Server("echo", tag="e").start()
    try:
        await srv.baseline()
        t0 = now()
        deadline = t0 + size / rate * 1.5 + 30
        pattern = os.urandom(size)
        offset = [0]
        mismatched = [0]

        def on_data(chunk):
            o = offset[0]
            if bytes(chunk) != pattern[o:o + len(chunk)]:
                mismatched[0] += 1
            offset[0] = o + len(chunk)

        reader = FrameReader(on_data=on_data)
        out = {"pings_sent": 0, "pongs_received": 0, "ping_rtts_s": [], "server_pings": 0,
               "server_pings_answered": 0, "end": None, "close_code": None, "complete": False}
        sock, rest = await ws_connect(srv.port)
        write_lock = asyncio.Lock()
        pending = {}

        async def write(frame):
            async with write_lock:
                await asyncio.wait_for(send_all(sock, frame), 10)

        def handle(events):
            for ev in events:
                if ev[0] == "ping":
                    out["server_pings"] += 1
                    asyncio.create_task(answer(ev[1]))
                elif ev[0] == "pong" and ev[1] in pending:
                    out["pongs_received"] += 1
                    out["ping_rtts_s"].append(round(now() - pending.pop(ev[1]), 3))
                elif ev[0] == "close":
                    out["close_code"] = ev[1]
                    out["end"] = out["end"] or "close"
                elif ev[0] == "message" and ev[3] == size:
                    out["complete"] = True

        async def answer(payload):
            try:
                await write(client_frame(10, payload))
                out["server_pings_answered"] += 1
            except (OSError, asyncio.TimeoutError):
                pass

        async def pinger():
            seq = 0
            while True:
                await asyncio.sleep(ping_period)
                seq += 1
                key = struct.pack("!Q", seq)
                pending[key] = now()
                try:
                    await write(client_frame(9, key))
                    out["pings_sent"] += 1
                except (OSError, asyncio.TimeoutError):
                    return

        handle(reader.feed(rest))
        sender = asyncio.create_task(write(client_frame(2, pattern)))
        ping_task = asyncio.create_task(pinger())
        tokens, cap, last = 0.0, max(16384.0, rate * 0.1), now()
        t_first = None
        try:
            while now() < deadline and not out["complete"] and out["end"] is None:
                t = now()
                tokens = min(cap, tokens + (t - last) * rate)
                last = t
                if tokens < 4096:
                    await asyncio.sleep(0.01)
                    continue
                try:
                    data = await asyncio.wait_for(loop.sock_recv(sock, int(min(tokens, 65536))),
                                                  max(0.05, min(1.0, deadline - now())))
                except asyncio.TimeoutError:
                    continue
                except ConnectionResetError:
                    out["end"] = "RST"
                    break
                if not data:
                    out["end"] = out["end"] or "FIN"
                    break
                if t_first is None:
                    t_first = now()
                tokens -= len(data)
                handle(reader.feed(data))
            if out["complete"] and out["end"] is None:
                out["end"] = "complete"
                try:
                    await write(close_frame(1000))
                except (OSError, asyncio.TimeoutError):
                    pass
        finally:
            ping_task.cancel()
            sender.cancel()
            sock.close()
        t_done = now()
        tail = await srv.settle()
        got = reader.data_bytes
        res = {"scenario": "e_honest_reader",
               "title": f"(e) honest reader of one {size / MIB:g} MiB echo at {rate / 1000:g} KB/s, "
                        f"pinging every {ping_period:g} s",
               "app": "echo", "honest": True, "connections": 1, "message_bytes": size, "read_rate": rate,
               "received_bytes": got, "received_all": out["complete"] and got == size and not mismatched[0],
               "content_mismatches": mismatched[0],
               "read_s": round(t_done - (t_first or t0), 1),
               "ended_after_s": round(t_done - t0, 1)}
        res.update(out)
        res.update(memory_summary(srv, t0, 1, tail))
        return res
    finally:
        srv.stop()


async def scenario_f():
    n, size, hold = S["F_CONNS"], S["F_SIZE"], S["F_HOLD"]
    payload = memoryview(attack_payload())[:size]
    srv = await Server("echo", tag="f").start()
    try:
        await srv.baseline()
        t0 = now()
        conns = [Conn(i) for i in range(n)]
        sem = asyncio.Semaphore(32)
        send_deadline = t0 + S["F_SEND_WINDOW"]

        async def nonreader(c):
            async with sem:
                try:
                    c.sock, _ = await ws_connect(srv.port)
                except Refused as r:
                    c.refused = r.status
                    return
                except (OSError, asyncio.TimeoutError) as e:
                    c.error = type(e).__name__
                    return
            c.t_start = now()
            try:
                await asyncio.wait_for(send_all(c.sock, frame_header(2, size, b"\0\0\0\0")), 5)
                await asyncio.wait_for(send_all(c.sock, payload), max(0.1, send_deadline - now()))
                c.sent_all = True
            except (OSError, asyncio.TimeoutError):
                pass

        async def poll_states(until):
            while now() < until:
                for c in conns:
                    if c.sock is not None and c.t_end is None and c.t_start is not None:
                        st = tcp_state(c.sock)
                        if st not in (1, None):
                            c.ended("RST" if st == 7 else "FIN")
                await asyncio.sleep(0.5)

        poller = asyncio.create_task(poll_states(send_deadline + hold + 5))
        tasks = [asyncio.create_task(nonreader(c)) for c in conns]
        await asyncio.wait(tasks, timeout=max(0.0, send_deadline - now()))
        for t in tasks:
            t.cancel()
        t_sent = now()
        await asyncio.sleep(hold)
        poller.cancel()
        for c in conns:  # the close frames of those the server closed (others stay unread)
            if c.t_end is not None and c.sock is not None:
                drain_nowait(c.sock, _Feeder(c))
        open_before_close = family(await srv.metrics(), "ringws_connections_open")
        t_peak_end = now()
        for c in conns:
            c.close()
        t_left = now()
        tail = await srv.settle()
        res = {"scenario": "f_nonreading",
               "title": f"(f) {n} non-reading echo clients, one {size / MIB:g} MiB message each, "
                        f"then all close",
               "app": "echo", "attackers_planned": n, "hold_s": hold,
               "send_phase_s": round(t_sent - t0, 1), "open_before_close": open_before_close,
               "attack_lasted_s": round(t_left - t0, 1)}
        res.update(close_summary(conns))
        res.update(memory_summary(srv, t0, res["attackers"], tail))
        res["peak_rss_while_held"] = max((s[1] for s in srv.window(t0, t_peak_end)), default=None)
        return res
    finally:
        srv.stop()


def big_json(size):
    head, tail = b'{"op":"subscribe","topic":"t","pad":[', b"0]}"
    k = (size - len(head) - len(tail)) // 2
    body = head + b"0," * k + b"0]"
    return body + b" " * (size - len(body) - 1) + b"}"


async def scenario_g():
    clients, count, size, base_s = S["G_CLIENTS"], S["G_COUNT"], S["G_SIZE"], S["G_BASELINE"]
    loop = asyncio.get_running_loop()
    srv = await Server("pubsub", tag="g").start()
    try:
        await srv.baseline()
        doc = big_json(size)
        pingers = []
        rtts = []            # (t_sent, rtt or None)
        stop = asyncio.Event()

        async def pinger(i):
            try:
                sock, rest = await ws_connect(srv.port, "/ws?topic=probe")
            except (Refused, OSError, asyncio.TimeoutError):
                rtts.append((now(), None))
                return
            reader = FrameReader(collect=True)
            reader.feed(rest)
            seq = 0
            try:
                while not stop.is_set():
                    seq += 1
                    key = struct.pack("!II", i, seq)
                    t = now()
                    await loop.sock_sendall(sock, client_frame(9, key))
                    got = None
                    try:
                        async with asyncio.timeout(5):
                            while got is None:
                                data = await loop.sock_recv(sock, 65536)
                                if not data:
                                    raise ConnectionError
                                for ev in reader.feed(data):
                                    if ev[0] == "pong" and ev[1] == key:
                                        got = now() - t
                                    elif ev[0] == "ping":
                                        await loop.sock_sendall(sock, client_frame(10, ev[1]))
                    except asyncio.TimeoutError:
                        pass
                    rtts.append((t, got))
                    await asyncio.sleep(0.02)
            except OSError:
                rtts.append((now(), None))
            finally:
                sock.close()

        for i in range(clients):
            pingers.append(asyncio.create_task(pinger(i)))
        await asyncio.sleep(base_s)
        t_attack = now()
        attacker = {"replies": [], "close_code": None, "end": None}
        asock, rest = await ws_connect(srv.port, "/ws")
        areader = FrameReader(collect=True)
        areader.feed(rest)
        cpu0 = srv.sample()[3]
        try:
            for _ in range(count):
                t = now()
                await asyncio.wait_for(send_all(asock, client_frame(1, doc)), 60)
                t_sent = now()
                reply = None
                try:
                    async with asyncio.timeout(30):
                        while reply is None and attacker["end"] is None:
                            data = await loop.sock_recv(asock, 65536)
                            if not data:
                                attacker["end"] = "FIN"
                                break
                            for ev in areader.feed(data):
                                if ev[0] == "message":
                                    reply = ev[2][:120].decode("utf-8", "replace")
                                elif ev[0] == "close":
                                    attacker["close_code"], attacker["end"] = ev[1], "close"
                except asyncio.TimeoutError:
                    reply = "(no reply within 30 s)"
                except ConnectionResetError:
                    attacker["end"] = "RST"
                attacker["replies"].append({"send_s": round(t_sent - t, 2),
                                            "reply_after_s": round(now() - t_sent, 2),
                                            "reply": reply})
                if attacker["end"]:
                    break
        except (OSError, asyncio.TimeoutError) as e:
            attacker["end"] = attacker["end"] or type(e).__name__
        t_attack_end = now()
        s1 = srv.sample()
        cpu_attack = (s1[3] - cpu0) if s1 else None
        asock.close()
        await asyncio.sleep(2.0)
        stop.set()
        await asyncio.wait(pingers, timeout=10)
        for t in pingers:
            t.cancel()
        t_left = now()
        tail = await srv.settle()

        def stats(sel):
            got = sorted(r for _, r in sel if r is not None)
            return {"pings": len(sel), "lost": sum(1 for _, r in sel if r is None),
                    "p50_ms": round(1e3 * statistics.median(got), 1) if got else None,
                    "max_ms": round(1e3 * got[-1], 1) if got else None}

        res = {"scenario": "g_pubsub_json",
               "title": f"(g) {count} x {size / MIB:g} MiB JSON control message to pubsub; "
                        f"{clients} clients' ping round trip",
               "app": "pubsub", "attackers_planned": 1, "messages": count,
               "attacker": attacker,
               "attack_s": round(t_attack_end - t_attack, 2),
               "server_cpu_s_during_attack": round(cpu_attack, 2) if cpu_attack is not None else None,
               "rtt_baseline": stats([r for r in rtts if r[0] < t_attack]),
               "rtt_during_attack": stats([r for r in rtts if t_attack <= r[0] <= t_attack_end]),
               "attackers": 1, "closed_by_server": 1 if attacker["end"] else 0,
               "close_codes": {str(attacker["close_code"] or attacker["end"]): 1} if attacker["end"] else {},
               "attack_lasted_s": round(t_left - t_attack, 1)}
        res.update(memory_summary(srv, t_attack, 1, tail))
        return res
    finally:
        srv.stop()


async def scenario_h():
    n, window, probe_period = S["H_CONNS"], S["H_WINDOW"], S["H_PROBE_PERIOD"]
    loop = asyncio.get_running_loop()
    srv = await Server("echo", tag="h").start()
    try:
        await srv.baseline()
        t0 = now()
        deadline = t0 + window
        held = []            # seconds a partial request was held before the server closed it
        immediate = [0]      # closed within 0.2 s of connecting (refused at accept)
        ends = collections.Counter()        # how held requests ended
        ends_at_accept = collections.Counter()
        opened = [0]

        async def holder():
            while now() < deadline:
                try:
                    sock = await tcp_connect(srv.admin, 1.0)
                except (OSError, asyncio.TimeoutError):
                    await asyncio.sleep(0.1)
                    continue
                opened[0] += 1
                t = now()
                try:
                    await loop.sock_sendall(sock, b"GET /metr")
                    try:
                        data = await asyncio.wait_for(loop.sock_recv(sock, 4096), max(0.01, deadline - now()))
                        kind = "FIN" if not data else "HTTP " + data.split(b" ", 2)[1].decode("latin-1", "replace")
                    except ConnectionResetError:
                        kind = "RST"
                    except asyncio.TimeoutError:
                        kind = None
                    except OSError:
                        kind = "error"
                    if kind is not None:
                        dt = now() - t
                        if dt < 0.2:
                            immediate[0] += 1
                            ends_at_accept[kind] += 1
                            await asyncio.sleep(0.05)
                        else:
                            ends[kind] += 1
                            held.append(dt)
                finally:
                    sock.close()

        holders = [asyncio.create_task(holder()) for _ in range(n)]
        await asyncio.sleep(1.0)     # let them take the slots
        t_probe = now()
        cpu0 = srv.sample()[3]
        probes = []
        while now() < deadline:
            t = now()
            try:
                status, _ = await http_get(srv.admin, "/healthz", 1.0)
                probes.append(status == 200)
            except (OSError, asyncio.TimeoutError, ValueError, IndexError):
                probes.append(False)
            await asyncio.sleep(max(0.0, probe_period - (now() - t)))
        s1 = srv.sample()
        cpu_rate = (s1[3] - cpu0) / (now() - t_probe) if s1 else None
        await asyncio.wait(holders, timeout=3)
        for t in holders:
            t.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        t_left = now()
        tail = await srv.settle()
        held.sort()
        res = {"scenario": "h_admin_partial",
               "title": f"(h) {n} partial admin requests (GET /metr, reopened when closed), /healthz probed",
               "app": "echo", "attackers_planned": n, "window_s": window,
               "healthz_ok": sum(probes), "healthz_probes": len(probes),
               "partial_connections_opened": opened[0],
               "closed_at_accept": immediate[0],
               "held_then_closed": len(held),
               "held_s": ({"min": round(held[0], 1), "median": round(statistics.median(held), 1),
                           "max": round(held[-1], 1)} if held else None),
               "end_kinds_held": dict(ends), "end_kinds_at_accept": dict(ends_at_accept),
               "server_cpu_per_s": round(cpu_rate, 3) if cpu_rate is not None else None,
               "attackers": n, "closed_by_server": len(held),
               "close_after_s": ({"min": round(held[0], 1), "median": round(statistics.median(held), 1),
                                  "max": round(held[-1], 1)} if held else None),
               "close_codes": dict(ends),
               "attack_lasted_s": round(t_left - t0, 1)}
        res.update(memory_summary(srv, t0, n, tail))
        return res
    finally:
        srv.stop()


async def scenario_hfd():
    """The admin listener when the process is out of file descriptors: the server runs with
    RLIMIT_NOFILE = HFD_NOFILE, idle WebSocket clients take every descriptor, then one client
    connects to the admin port and waits in the kernel's accept queue. Server CPU is measured
    before and after that connection: a listener that backs off stays near zero."""
    nofile, window = S["HFD_NOFILE"], S["HFD_WINDOW"]
    srv = await Server("echo", tag="hfd", nofile=nofile).start()
    socks = []
    try:
        await srv.baseline()
        t0 = now()
        sem = asyncio.Semaphore(64)
        timeouts = [0]

        async def idle():
            async with sem:
                try:
                    sock, _ = await ws_connect(srv.port, timeout=2.0)
                    socks.append(sock)
                except (Refused, OSError, asyncio.TimeoutError):
                    timeouts[0] += 1

        await asyncio.gather(*(idle() for _ in range(nofile + 64)))
        await asyncio.sleep(1.0)
        s0, t_a = srv.sample(), now()
        await asyncio.sleep(window)
        s1, t_b = srv.sample(), now()
        admin = await tcp_connect(srv.admin, 2.0)   # waits in the accept queue: no fd for it
        socks.append(admin)
        await asyncio.sleep(window)
        s2, t_c = srv.sample(), now()
        probe = None
        for sock in socks:
            sock.close()
        socks.clear()
        await asyncio.sleep(1.5)                    # fds free up; the listeners accept again
        try:
            probe = (await http_get(srv.admin, "/healthz", 2.0))[0]
        except (OSError, asyncio.TimeoutError, ValueError, IndexError) as e:
            probe = type(e).__name__
        tail = await srv.settle()
        res = {"scenario": "hfd_admin_emfile",
               "title": f"(h, fds) admin accept with the process out of fds (RLIMIT_NOFILE {nofile})",
               "app": "echo", "rlimit_nofile": nofile,
               "ws_clients_upgraded": nofile + 64 - timeouts[0], "ws_clients_not_served": timeouts[0],
               "cpu_per_s_fds_exhausted": round((s1[3] - s0[3]) / (t_b - t_a), 3) if s0 and s1 else None,
               "cpu_per_s_with_admin_pending": round((s2[3] - s1[3]) / (t_c - t_b), 3) if s1 and s2 else None,
               "healthz_after_release": probe}
        res.update(memory_summary(srv, t0, 0, tail))
        return res
    finally:
        for sock in socks:
            sock.close()
        srv.stop()


async def scenario_i():
    srv = await Server("pubsub", tag="i").start()
    try:
        await srv.baseline()
        t0 = now()
        key = base64.b64encode(os.urandom(16)).decode()
        ws_base = (f"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\n")
        cases = {
            "no_host": (srv.port, ws_base + "Sec-WebSocket-Version: 13\r\n\r\n"),
            "two_host": (srv.port, ws_base + f"Host: {HOST}\r\nHost: example.com\r\n"
                                             "Sec-WebSocket-Version: 13\r\n\r\n"),
            "version_twice": (srv.port, ws_base + f"Host: {HOST}\r\nSec-WebSocket-Version: 13\r\n"
                                                  "Sec-WebSocket-Version: 13\r\n\r\n"),
            "admin_content_length_plus": (srv.admin, "POST /publish/t HTTP/1.1\r\nHost: x\r\n"
                                          "Content-Type: text/plain\r\nContent-Length: +5\r\n"
                                          "Connection: close\r\n\r\nhello"),
            "admin_two_content_lengths": (srv.admin, "POST /publish/t HTTP/1.1\r\nHost: x\r\n"
                                          "Content-Type: text/plain\r\nContent-Length: 5\r\n"
                                          "Content-Length: 1\r\nConnection: close\r\n\r\nhello"),
        }
        statuses = {}
        for name, (port, raw) in cases.items():
            try:
                sock = await tcp_connect(port, 2)
                try:
                    await asyncio.get_running_loop().sock_sendall(sock, raw.encode())
                    buf = b""
                    async with asyncio.timeout(2):
                        while b"\r\n" not in buf:
                            data = await asyncio.get_running_loop().sock_recv(sock, 4096)
                            if not data:
                                break
                            buf += data
                    statuses[name] = int(buf.split(b" ", 2)[1]) if buf else "closed"
                finally:
                    sock.close()
            except (OSError, asyncio.TimeoutError, ValueError, IndexError) as e:
                statuses[name] = type(e).__name__
        tail = await srv.settle()
        res = {"scenario": "i_strict", "title": "(i) strictness: Host, Sec-WebSocket-Version, admin Content-Length",
               "app": "pubsub", "statuses": statuses,
               "all_400": all(v == 400 for v in statuses.values())}
        res.update(memory_summary(srv, t0, 0, tail))
        return res
    finally:
        srv.stop()


def cgroup_read(path, name):
    try:
        with open(os.path.join(path, name)) as f:
            return f.read().strip()
    except OSError:
        return None


async def honest_echoers(port, n, max_s, timeout):
    """n clients, each echoing a 1 KiB binary message every 100 ms and checking it, until
    SIGTERM or max_s. Times are wall-clock (time.time()) so that another process can relate
    them to its own. Returns one dict per client."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    clients = [{"ok": [], "failed": None, "failed_at": None} for _ in range(n)]

    async def client(h):
        try:
            sock, rest = await ws_connect(port, timeout=timeout)
        except (Refused, OSError, asyncio.TimeoutError) as e:
            h["failed"], h["failed_at"] = f"connect: {type(e).__name__}", time.time()
            return
        reader = FrameReader(collect=True)
        reader.feed(rest)
        try:
            while not stop.is_set():
                msg = os.urandom(1024)
                t = time.time()
                await asyncio.wait_for(loop.sock_sendall(sock, client_frame(2, msg)), timeout)
                got = None
                async with asyncio.timeout(timeout):
                    while got is None:
                        data = await loop.sock_recv(sock, 65536)
                        if not data:
                            raise ConnectionError("FIN")
                        for ev in reader.feed(data):
                            if ev[0] == "message":
                                got = ev[2]
                            elif ev[0] == "close":
                                raise ConnectionError(f"close {ev[1]}")
                            elif ev[0] == "ping":
                                await loop.sock_sendall(sock, client_frame(10, ev[1]))
                if got != msg:
                    raise ConnectionError("echo mismatch")
                h["ok"].append((round(t, 3), round(time.time() - t, 4)))
                try:
                    await asyncio.wait_for(stop.wait(), 0.1)
                except asyncio.TimeoutError:
                    pass
        except (OSError, asyncio.TimeoutError) as e:
            h["failed"] = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            h["failed_at"] = time.time()
        finally:
            sock.close()

    tasks = [asyncio.create_task(client(h)) for h in clients]
    try:
        await asyncio.wait_for(stop.wait(), max_s)
    except asyncio.TimeoutError:
        stop.set()
    await asyncio.wait(tasks, timeout=timeout + 1)
    for t in tasks:
        t.cancel()
    return clients


async def scenario_oom():
    n, honest_n, limit, window = S["OOM_ATTACKERS"], S["OOM_HONEST"], S["OOM_LIMIT"], S["OOM_WINDOW"]
    timeout = S["HONEST_TIMEOUT"]
    root = "/sys/fs/cgroup/memory"
    res = {"scenario": "oom_cgroup",
           "title": f"OOM: server in a {limit / (1 << 30):g} GiB cgroup v1 memory group, {n} attackers "
                    f"of (a), {honest_n} honest echo clients",
           "app": "echo", "attackers_planned": n, "honest_clients": honest_n, "window_s": window,
           "honest_timeout_s": timeout}
    if os.geteuid() != 0 or not os.path.isfile(os.path.join(root, "memory.limit_in_bytes")):
        res["skipped"] = "needs root and cgroup v1 memory at /sys/fs/cgroup/memory"
        return res
    size = S["ATTACK_SIZE"]
    attack_payload()
    cg = os.path.join(root, f"ringws-attack-{os.getpid()}")
    os.mkdir(cg)
    note_state("cgroups", cg)
    srv = helper = None
    try:
        with open(os.path.join(cg, "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit))
        srv = await Server("echo", cgroup=cg, tag="oom").start()
        await srv.baseline()
        res["cgroup_usage_baseline"] = int(cgroup_read(cg, "memory.usage_in_bytes") or 0)
        # The honest clients run in their own process, so that the attackers' load on this one
        # cannot delay them: what they see is the server's doing.
        helper = await asyncio.create_subprocess_exec(
            sys.executable, os.path.abspath(__file__), "--honest", str(srv.port), str(honest_n),
            str(window + 30), str(timeout), stdout=subprocess.PIPE, start_new_session=True)
        note_state("helpers", helper.pid)
        await asyncio.sleep(2.0)
        t0 = now()
        wall0 = time.time()
        deadline = t0 + window
        conns = [Conn(i) for i in range(n)]
        sem = asyncio.Semaphore(100)
        tasks = [asyncio.create_task(announce_attacker(srv.port, c, sem, deadline, size, size - 1, None))
                 for c in conns]
        while now() < deadline:
            if not srv.alive():
                break
            await asyncio.sleep(0.2)
        died = not srv.alive()
        if died:
            await asyncio.sleep(min(3.0, max(0.0, deadline - now())))
        t_end, wall_end = now(), time.time()
        helper.send_signal(signal.SIGTERM)
        try:
            out, _ = await asyncio.wait_for(helper.communicate(), timeout + 10)
            honest = json.loads(out or b"[]")
        except (asyncio.TimeoutError, ValueError):
            honest = []
        res["cgroup_max_usage"] = int(cgroup_read(cg, "memory.max_usage_in_bytes") or 0)
        res["cgroup_failcnt"] = int(cgroup_read(cg, "memory.failcnt") or 0)
        oom = dict(line.split() for line in (cgroup_read(cg, "memory.oom_control") or "").splitlines()
                   if len(line.split()) == 2)
        res["cgroup_oom_kill"] = int(oom.get("oom_kill", 0))
        res["server_alive_at_end"] = srv.alive()
        res["oom_killed"] = bool(res["cgroup_oom_kill"]) or (
            srv.proc.returncode == -signal.SIGKILL if srv.proc.poll() is not None else False)
        res["server_died_after_s"] = round(srv.exit_t - t0, 1) if srv.exit_t else None
        await run_attackers(conns, tasks, now())
        res.update(close_summary(conns, srv.exit_t))
        res["attackers_before_exit"] = (sum(1 for c in conns if c.t_start is not None
                                            and c.t_start <= srv.exit_t) if srv.exit_t else None)
        during = [lat for h in honest for t, lat in h["ok"] if t >= wall0]
        kept = [h for h in honest if h["failed"] is None and h["ok"] and h["ok"][-1][0] >= wall_end - 2.0]
        res["honest_reported"] = len(honest)
        res["honest_kept_echoing"] = len(kept)
        res["honest_echoes_during_attack"] = len(during)
        res["honest_echo_ms_during_attack"] = ({
            "p50": round(1e3 * statistics.median(during), 1),
            "p99": round(1e3 * sorted(during)[int(0.99 * (len(during) - 1))], 1),
            "max": round(1e3 * max(during), 1)} if during else None)
        res["honest_failures"] = dict(collections.Counter(
            h["failed"].split(":")[0] for h in honest if h["failed"]))
        fails = [h["failed_at"] for h in honest if h["failed_at"]]
        res["honest_first_failure_after_s"] = round(min(fails) - wall0, 1) if fails else None
        res["attack_lasted_s"] = round(t_end - t0, 1)
        tail = await srv.settle() if srv.alive() else None
        res.update(memory_summary(srv, t0, res["attackers"], tail))
        return res
    finally:
        if helper is not None and helper.returncode is None:
            helper.kill()
            await helper.wait()
        if srv is not None:
            srv.stop()
        remove_cgroup(cg)


def remove_cgroup(cg):
    for _ in range(50):
        try:
            os.rmdir(cg)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    log(f"could not remove {cg}")


SCENARIOS = {
    "a": (scenario_a, lambda: S["A_WINDOW"] + S["SETTLE"] + 60),
    "b": (scenario_b, lambda: S["B_WINDOW"] + S["SETTLE"] + 60),
    "c": (scenario_c, lambda: S["C_WINDOW"] + S["C_AS_WINDOW"] + S["SETTLE"] + 60),
    "d": (scenario_d, lambda: S["D_WINDOW"] + S["SETTLE"] + 60),
    "e": (scenario_e, lambda: S["E_SIZE"] / S["E_RATE"] * 1.5 + 30 + S["SETTLE"] + 60),
    "f": (scenario_f, lambda: S["F_SEND_WINDOW"] + S["F_HOLD"] + S["SETTLE"] + 60),
    "g": (scenario_g, lambda: S["G_BASELINE"] + S["G_COUNT"] * 90 + S["SETTLE"] + 60),
    "h": (scenario_h, lambda: S["H_WINDOW"] + S["SETTLE"] + 60),
    "hfd": (scenario_hfd, lambda: 2 * S["HFD_WINDOW"] + S["SETTLE"] + 60),
    "i": (scenario_i, lambda: S["SETTLE"] + 60),
    "oom": (scenario_oom, lambda: S["OOM_WINDOW"] + S["SETTLE"] + 60),
}


# ---------------------------------------------------------------------------------------------
# Report

def mb(x):
    if x is None:
        return "–"
    if abs(x) >= 100 * MB:
        return f"{x / MB:,.0f} MB"
    if abs(x) >= MB:
        return f"{x / MB:.2f} MB"
    return f"{x / 1e3:,.1f} KB"


def signed(x):
    return "–" if x is None else ("+" if x >= 0 else "−") + mb(abs(x))


def closes_cell(r):
    if r.get("skipped"):
        return "skipped: " + r["skipped"]
    if r["scenario"] == "e_honest_reader":
        if r.get("end") in (None, "complete"):
            return "no" if r.get("end") else "–"
        how = f"close {r['close_code']}" if r.get("close_code") else f"{r['end']} (no close frame)"
        return f"yes, after {r.get('ended_after_s')} s: {how}"
    if r["scenario"] == "h_admin_partial":
        held = r.get("held_s")
        span = f"{held['min']}" if held and held["min"] == held["max"] else (
            f"{held['min']}–{held['max']}" if held else "")
        cell = (f"{r['held_then_closed']} partial requests held, closed after {span} s"
                if held else "no partial request held 0.2 s or more")
        kinds = r.get("end_kinds_held") or {}
        if kinds:
            cell += " (" + ", ".join(f"{k} ×{v}" for k, v in kinds.items()) + ")"
        return cell + (f"; {r['closed_at_accept']} closed within 0.2 s of connecting "
                       "(slots full or evicted), each reopened")
    n, closed = r.get("attackers"), r.get("closed_by_server")
    if n is None:
        return "–"
    cell = f"{closed}/{n}"
    after = r.get("close_after_s")
    if closed and after:
        cell += (f" after {after['median']} s" if after["min"] == after["max"]
                 else f" after {after['min']}–{after['max']} s (median {after['median']})")
    elif not closed:
        cell += f" in {r.get('attack_lasted_s', '?')} s"
    codes = r.get("close_codes") or {}
    if codes:
        cell += "; " + ", ".join(f"{k} ×{v}" for k, v in sorted(codes.items(), key=lambda kv: -kv[1]))
    return cell


def outcome_cell(r):
    s = r["scenario"]
    bits = []
    ex = r.get("server_exit")
    if s == "e_honest_reader":
        bits.append(f"received {r['received_bytes'] / MB:.2f} of {r['message_bytes'] / MB:.2f} MB"
                    + (" (all, verified)" if r["received_all"] else ""))
        bits.append(f"pings answered {r['pongs_received']}/{r['pings_sent']}")
        if r.get("server_pings"):
            bits.append(f"server pings {r['server_pings']}")
        if r["end"] == "complete":
            bits.append("completed, closed with 1000")
    elif s == "g_pubsub_json":
        b, d = r["rtt_baseline"], r["rtt_during_attack"]
        bits.append(f"others' ping RTT p50 {b['p50_ms']} ms (max {b['max_ms']}) before, "
                    f"p50 {d['p50_ms']} ms, max {d['max_ms']} ms during"
                    + (f", {d['lost']} lost" if d["lost"] else ""))
        bits.append(f"server CPU {r['server_cpu_s_during_attack']} s for {r['messages']} message(s)")
        replies = [x["reply"] for x in r["attacker"]["replies"] if x.get("reply")]
        if replies:
            bits.append("reply: `" + replies[0][:60] + "`")
    elif s == "hfd_admin_emfile":
        bits.append(f"server CPU {r['cpu_per_s_fds_exhausted']} s/s with fds exhausted, "
                    f"{r['cpu_per_s_with_admin_pending']} s/s with an admin connection pending")
        bits.append(f"/healthz after release: {r['healthz_after_release']}")
    elif s == "h_admin_partial":
        bits.append(f"/healthz ok {r['healthz_ok']}/{r['healthz_probes']}")
        if r.get("server_cpu_per_s") is not None:
            bits.append(f"server CPU {r['server_cpu_per_s']:.2f} s/s")
    elif s == "i_strict":
        bits.append(", ".join(f"{k}: {v}" for k, v in r["statuses"].items()))
    elif s == "oom_cgroup" and not r.get("skipped"):
        bits.append("**OOM-killed**" if r["oom_killed"] else "not OOM-killed")
        if r.get("server_died_after_s") is not None:
            bits.append(f"died {r['server_died_after_s']} s into the attack after "
                        f"{r.get('attackers_before_exit')} attackers")
        bits.append(f"{r['sent_all']} attackers had sent their 16 MiB")
        lat = r.get("honest_echo_ms_during_attack")
        bits.append(f"{r['honest_kept_echoing']}/{r['honest_clients']} honest clients kept echoing"
                    + (f" (first failure {r['honest_first_failure_after_s']} s into the attack: "
                       + ", ".join(f"{k} ×{v}" for k, v in r.get("honest_failures", {}).items()) + ")"
                       if r.get("honest_first_failure_after_s") is not None else "")
                    + (f", echo p50 {lat['p50']} ms, max {lat['max']} ms during the attack" if lat else ""))
        bits.append(f"cgroup peak {mb(r['cgroup_max_usage'])}")
    elif s == "c_announce_only":
        bits.append(f"VmSize {signed(r.get('vmsize_per_attacker'))}/attacker")
        if r.get("private_writable_per_attacker") is not None:
            bits.append(f"private writable mappings (commit charge) {signed(r['private_writable_per_attacker'])}"
                        f"/attacker; machine's Committed_AS {signed(r.get('committed_as_growth_when_held'))} "
                        f"with {r.get('attackers_held')} held")
        lim = r.get("rlimit_as")
        if isinstance(lim, dict):
            head = f"under RLIMIT_AS {lim['limit'] / (1 << 30):g} GiB, {lim['attackers_planned']} attackers: "
            lex = lim.get("server_exit")
            if lim["survived"]:
                bits.append(head + f"survived ({lim['attackers']} connected, "
                            f"{lim['closed_by_server']} closed by the server)")
            elif lex:
                bits.append(head + f"**server exited** ({lex['signal'] or lex['returncode']}) after "
                            f"{lim['attackers_before_exit']} attackers: "
                            f"`{first_line(lex['log_tail'], 'memory allocation')}`")
    elif s == "d_slow_drain":
        bits.append(f"read {mb(max(r['echo_bytes_read']))} of the echo at most")
    elif s == "f_nonreading":
        if r.get("settled_over_baseline") is not None:
            bits.append(f"settled = {r['settled_over_baseline']}× baseline, "
                        f"{r.get('open_at_settle')} connections open")
    elif s.startswith("b_"):
        bits.append(f"{r.get('trickle_bytes_sent', 0)} trickle bytes sent")
    counted = counters_cell(r)
    if counted and s not in ("i_strict", "hfd_admin_emfile"):
        bits.append(counted)
    if ex and s != "oom_cgroup":
        bits.append(f"**server exited** ({ex['signal'] or ex['returncode']}) after {ex['after_start_s']} s: "
                    f"`{first_line(ex['log_tail'], 'memory')}`")
    return "; ".join(bits)


BORING = ("ringws_connections_accepted_total", "ringws_handshakes_completed_total",
          "ringws_io_uring_", "ringws_messages_", "ringws_received_payload_bytes_total",
          "ringws_sent_payload_bytes_total", "ringws_socket_", "ringws_heartbeat_pings_sent_total",
          "ringws_limit_refusals_total", "ringws_pubsub_")


def counters_cell(r):
    """The server's own account of what happened: closes by code and the counters of limits,
    timeouts and errors that moved (new counters of a newer binary show up here too)."""
    c = r.get("server_counters")
    if not c:
        return None
    closes = collections.Counter()
    other = []
    for k, v in sorted(c.items()):
        if k.startswith("ringws_connections_closed_total"):
            code = re.search(r'code="([^"]*)"', k)
            who = re.search(r'initiator="([^"]*)"', k)
            code, who = code.group(1) if code else "?", who.group(1) if who else "?"
            closes["without a close frame" if code == "none" else f"{code} by {who}"] += v
        elif not k.startswith(BORING):
            name = k.replace("ringws_", "").replace("_total", "")
            other.append(f"{name} {v}")
    parts = []
    if closes:
        parts.append("closes " + ", ".join(f"{code} ×{n}" for code, n in closes.most_common()))
    return "server counted: " + "; ".join(parts + other) if parts or other else None


def first_line(tail, word):
    for part in (tail or "").split(" | "):
        if word in part:
            return part.strip()[:80]
    return (tail or "")[-80:]


def table(results):
    lines = ["| scenario | connections | peak RSS (baseline) | RSS per connection | settled RSS | "
             "server closed them (after; code) | outcome |",
             "|---|---:|---:|---:|---:|---|---|"]
    for r in results:
        if r.get("error"):
            lines.append(f"| {r.get('title', r['scenario'])} | | | | | | error: {r['error']} |")
            continue
        per = r.get("rss_per_attacker")
        settled = r.get("settled_rss")
        settled_cell = "–" if settled is None else (
            f"{mb(settled)} ({r['settled_over_baseline']}×, {r.get('open_at_settle')} open)")
        lines.append("| {} | {} | {} ({}) | {} | {} | {} | {} |".format(
            r.get("title", r["scenario"]), r.get("attackers", r.get("connections", "–")),
            mb(r.get("peak_rss")), mb(r.get("baseline_rss")),
            mb(per) if per is not None else "–", settled_cell, closes_cell(r), outcome_cell(r)))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------

async def main(out_path):
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    names = S["SCENARIOS"].split()
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; known: {' '.join(SCENARIOS)}")
    results = []
    interrupted = False
    t_all = now()
    common = {"stamp": stamp, "binary": os.path.abspath(RINGWS), "quick": QUICK,
              "cores": S["CORES"], "extra_args": EXTRA_ARGS,
              # what the binary was built from, when its build_info cannot tell (built outside git)
              "rev": os.environ.get("RINGWS_REV") or None,
              "settings": {k: S[k] for k in SETTINGS_SPEC}}
    log(f"ringws attack suite: {RINGWS}, scenarios {' '.join(names)}, results in {out_path}")
    try:
        for name in names:
            fn, bound = SCENARIOS[name]
            t = now()
            load0 = os.getloadavg()[0]
            log(f"scenario {name} (bound {bound():.0f} s)")
            try:
                res = await asyncio.wait_for(fn(), bound())
            except Exception as e:  # noqa: BLE001 - one scenario's failure is reported, the rest run
                res = {"scenario": name, "error": (f"timed out after {bound():.0f} s"
                                                   if now() - t >= bound() - 0.5
                                                   else f"{type(e).__name__}: {e}")}
            res.update(common)
            res["duration_s"] = round(now() - t, 1)
            res["loadavg_1m"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
            results.append(res)
            with open(out_path, "a") as f:
                f.write(json.dumps(res, sort_keys=True) + "\n")
            log(f"scenario {name} done in {res['duration_s']} s: {closes_cell(res)}; {outcome_cell(res) if not res.get('error') else res['error']}")
    except asyncio.CancelledError:
        log("interrupted; stopping servers")
        interrupted = True
    finally:
        for srv in list(Server.live):
            srv.stop()
    commit = next((r["commit"] for r in results if r.get("commit")), None)
    rev = os.environ.get("RINGWS_REV")
    print(f"\nringws attack suite, {'QUICK ' if QUICK else ''}run {stamp}, binary {RINGWS} "
          f"(build_info commit {commit}{', rev ' + rev if rev else ''}), {round(now() - t_all)} s; "
          f"results in {out_path}\n")
    print(table(results))
    return 130 if interrupted else 0


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--honest":   # the oom scenario's helper process
        port, n, max_s, timeout = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
        print(json.dumps(asyncio.run(honest_echoers(port, n, max_s, timeout))))
        sys.exit(0)
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        with open(sys.argv[2]) as f:
            print(table([json.loads(line) for line in f if line.strip()]))
        sys.exit(0)
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        "benches", "results", time.strftime("attack-%Y%m%dT%H%M%SZ.jsonl", time.gmtime()))
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    sys.exit(asyncio.run(main(out)))
