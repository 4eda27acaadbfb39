"""The kernel-memory floor: a WebSocket server that upgrades connections and then holds them with
nothing pending on them (no poll, no read, no epoll registration), so each costs the kernel only
its socket, inode, file and dentry. benches/kernel_memory.sh holds the same connections against
it and against ringws; the difference in slab growth is what ringws' pending operation costs."""
import base64
import hashlib
import socket
import sys

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def main() -> None:
    host, port = sys.argv[1].rsplit(":", 1)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, int(port)))
    listener.listen(4096)
    print(f"floor server on {host}:{port}", flush=True)
    held = []
    while True:
        conn, _ = listener.accept()
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 8192:
            chunk = conn.recv(4096)
            if not chunk:
                break
            head += chunk
        key = b""
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        held.append(conn)


if __name__ == "__main__":
    main()
