"""One 16 MiB JSON control message (a subscribe padded with an array of 8 million zeros) sent
to `ringws serve --app pubsub` on one core: the server's CPU time for it, the time to its reply,
the server's peak RSS, and another client's ping round trip meanwhile. Loopback only, one
message, stops by itself. Usage: python3 benches/control_message_cost.py target/release/ringws"""
import os, socket, struct, subprocess, sys, threading, time

binary = sys.argv[1]
srv = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--admin-listen", "off",
                        "--cores", "1", "--app", "pubsub"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
line = srv.stdout.readline()
port = int(line.split("ws://")[1].split()[0].rsplit(":", 1)[1])

def ws():
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    assert buf.startswith(b"HTTP/1.1 101"), buf
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s

def frame(op, payload):
    n = len(payload)
    if n < 126: head = struct.pack("!BB", 0x80 | op, 0x80 | n)
    elif n < 65536: head = struct.pack("!BBH", 0x80 | op, 0x80 | 126, n)
    else: head = struct.pack("!BBQ", 0x80 | op, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload  # mask key 0: the payload goes as is

def read_frame(s):
    def exact(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c: raise EOFError
            b += c
        return b
    b0, b1 = exact(2)
    n = b1 & 0x7f
    if n == 126: n = struct.unpack("!H", exact(2))[0]
    elif n == 127: n = struct.unpack("!Q", exact(8))[0]
    return b0 & 0x0f, exact(n)

def cpu():
    f = open(f"/proc/{srv.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

a, b = ws(), ws()
rtts, stop = [], threading.Event()
def pinger():
    while not stop.is_set():
        t = time.perf_counter()
        b.sendall(frame(0x9, b"p"))
        op, _ = read_frame(b)
        assert op == 0xA
        rtts.append(time.perf_counter() - t)
        time.sleep(0.005)
th = threading.Thread(target=pinger); th.start()
time.sleep(0.3)
base = sorted(rtts)[len(rtts) // 2]
head = b'{"op":"subscribe","topic":"a","pad":['
count = ((16 << 20) - 1024 - len(head) - 3) // 2
payload = head + b"0," * count + b'0]}'
c0 = cpu(); n0 = len(rtts)
a.sendall(frame(0x1, payload))
t_sent = time.perf_counter()
op, reply = read_frame(a)
t_reply = time.perf_counter() - t_sent
time.sleep(0.3)
c1 = cpu()
peak = [l for l in open(f"/proc/{srv.pid}/status") if l.startswith("VmHWM")][0].split()[1]
stop.set(); th.join()
during = rtts[n0:]
print(f"{binary}: reply {reply[:60]!r}")
print(f"  server CPU for the message {c1 - c0:.2f} s; reply {t_reply*1000:.0f} ms after the last byte; "
      f"peak RSS {int(peak)//1024} MiB; bystander ping RTT median {base*1000:.2f} ms before, max {max(during)*1000:.1f} ms during")
srv.terminate(); srv.wait()
