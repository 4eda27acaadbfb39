//! The echo floor: what a WebSocket echo server cannot avoid doing, and nothing else, so that
//! benches/run.sh can put ringws' CPU per echo next to the least an echo costs on this machine.
//!
//! One thread per core (default one; each its own `SO_REUSEPORT` listener and edge-triggered
//! epoll, pinned like ringws' reactors to the i-th CPU it may run on). A connection is upgraded
//! by finding `Sec-WebSocket-Key` and answering 101 with its accept hash; no other header is
//! looked at. Then, for every readiness event: one `recv` into the thread's buffer (another only
//! if that one filled it), each complete frame's header decoded and its payload unmasked in
//! place, the server header written over the bytes just before the payload, and one `send` of
//! header and payload for everything the read completed. Text, binary and continuation frames go
//! back as they came (fragments stay fragments); close frames go back too, then the connection is
//! closed; pings and pongs are dropped. No UTF-8 check, no size limit, no timeout. A connection
//! holds bytes of its own only while a frame is incomplete (16 KiB messages arrive in pieces) or
//! the kernel did not take a whole write.
//!
//! Usage: echo-floor 127.0.0.1:9104 [THREADS]

use std::io;
use std::net::SocketAddr;

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Bytes of one read: a 16 KiB message and then some.
const READ_BYTES: usize = 64 * 1024;
/// Epoll events taken per wait.
const EVENTS: usize = 1024;
/// The epoll token of the listener; connections use their fd.
const LISTENER: u64 = u64::MAX;
/// A request head this long without its end is not an upgrade: close.
const MAX_HEAD_BYTES: usize = 16 * 1024;
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

struct Conn {
    upgraded: bool,
    /// The request head so far, then only the start of a frame not yet complete.
    pending: Vec<u8>,
    /// What the kernel did not take of a write yet.
    out: Vec<u8>,
    /// A close frame was echoed: close once `out` is flushed.
    closing: bool,
}

struct Worker {
    epfd: i32,
    listener: i32,
    buf: Box<[u8]>,
    conns: Vec<Option<Conn>>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:9104".to_string())
        .parse()
        .unwrap_or_else(|e| fail(&format!("bad listen address: {e}")));
    let threads: usize = match args.next() {
        Some(n) => n
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| fail("THREADS must be a positive number")),
        None => 1,
    };
    let cpus = allowed_cpus();
    if threads > cpus.len() {
        fail(&format!("{threads} threads but only {} CPUs allowed", cpus.len()));
    }
    // Every listener is bound before the ready line, so a client never finds the port closed.
    let listeners: Vec<i32> = (0..threads)
        .map(|_| listen(addr).unwrap_or_else(|e| fail(&format!("cannot listen on {addr}: {e}"))))
        .collect();
    println!("echo-floor listening on ws://{addr} ({threads} threads)");
    let handles: Vec<_> = listeners
        .into_iter()
        .zip(cpus)
        .map(|(listener, cpu)| {
            std::thread::spawn(move || {
                pin_to(cpu);
                Worker::new(listener).run()
            })
        })
        .collect();
    for handle in handles {
        let _ = handle.join();
    }
}

fn fail(message: &str) -> ! {
    eprintln!("echo-floor: {message}");
    std::process::exit(2)
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A non-blocking listener with SO_REUSEADDR and SO_REUSEPORT (one per thread).
fn listen(addr: SocketAddr) -> io::Result<i32> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: plain syscalls on a descriptor this function owns; the sockaddr structs are
    // zeroed then filled, and their real sizes are passed.
    unsafe {
        let fd = check(libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?;
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            check(libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            ))?;
        }
        let rc = match addr {
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
            SocketAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        };
        check(rc)?;
        check(libc::listen(fd, 4096))?;
        Ok(fd)
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is the empty set; sched_getaffinity fills at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

fn pin_to(cpu: usize) {
    // SAFETY: as above; CPU_SET writes inside the set (cpu came from CPU_ISSET below its size).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

impl Worker {
    fn new(listener: i32) -> Self {
        // SAFETY: epoll_create1 and epoll_ctl on descriptors this worker owns.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            fail(&format!("epoll_create1: {}", io::Error::last_os_error()));
        }
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: LISTENER,
        };
        // SAFETY: as above.
        if unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, listener, &mut ev) } < 0 {
            fail(&format!("epoll_ctl: {}", io::Error::last_os_error()));
        }
        Worker {
            epfd,
            listener,
            buf: vec![0u8; READ_BYTES].into_boxed_slice(),
            conns: Vec::new(),
        }
    }

    fn run(mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; EVENTS];
        loop {
            // SAFETY: `events` has room for EVENTS entries.
            let n = unsafe {
                libc::epoll_wait(self.epfd, events.as_mut_ptr(), EVENTS as libc::c_int, -1)
            };
            if n < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                fail(&format!("epoll_wait: {}", io::Error::last_os_error()));
            }
            for ev in &events[..n as usize] {
                let (token, bits) = (ev.u64, ev.events);
                if token == LISTENER {
                    self.accept_all();
                } else {
                    self.on_event(token as i32, bits);
                }
            }
        }
    }

    fn accept_all(&mut self) {
        loop {
            // SAFETY: accept4 on the listener; the peer address is not wanted.
            let fd = unsafe {
                libc::accept4(
                    self.listener,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                match errno() {
                    libc::EINTR | libc::ECONNABORTED => continue,
                    // EAGAIN: all taken. EMFILE and the like: serve the connections open.
                    _ => return,
                }
            }
            let one: libc::c_int = 1;
            let mut ev = libc::epoll_event {
                events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32,
                u64: fd as u64,
            };
            // SAFETY: setsockopt and epoll_ctl on the descriptor just accepted.
            let added = unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
                libc::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, &mut ev)
            };
            if added < 0 {
                // SAFETY: the descriptor is ours and nothing else refers to it.
                unsafe { libc::close(fd) };
                continue;
            }
            let slot = fd as usize;
            if self.conns.len() <= slot {
                self.conns.resize_with(slot + 1, || None);
            }
            self.conns[slot] = Some(Conn {
                upgraded: false,
                pending: Vec::new(),
                out: Vec::new(),
                closing: false,
            });
        }
    }

    fn on_event(&mut self, fd: i32, bits: u32) {
        let keep = match self.conns.get_mut(fd as usize) {
            Some(Some(conn)) => {
                let mut keep = true;
                if bits & libc::EPOLLOUT as u32 != 0 && !conn.out.is_empty() {
                    keep = flush(fd, &mut conn.out).is_ok() && !(conn.closing && conn.out.is_empty());
                }
                let readable = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
                if keep && !conn.closing && bits & readable != 0 {
                    keep = on_readable(fd, conn, &mut self.buf).is_ok();
                }
                keep
            }
            _ => return,
        };
        if !keep {
            self.conns[fd as usize] = None;
            // SAFETY: the connection's descriptor; closing it also removes it from the epoll set.
            unsafe { libc::close(fd) };
        }
    }
}

/// Reads until the socket is drained and echoes what it completed. Err: close the connection
/// (the peer closed or failed, or a close frame was echoed and written).
fn on_readable(fd: i32, conn: &mut Conn, buf: &mut [u8]) -> Result<(), ()> {
    loop {
        if conn.pending.is_empty() {
            // The usual case: the read holds whole frames, echoed straight from the buffer.
            let n = recv(fd, buf)?;
            if conn.upgraded {
                let (used, closed) = echo_frames(fd, &mut conn.out, &mut buf[..n])?;
                if closed {
                    return close_after_flush(conn);
                }
                conn.pending.extend_from_slice(&buf[used..n]);
            } else {
                conn.pending.extend_from_slice(&buf[..n]);
                upgrade(fd, conn)?;
                if conn.closing {
                    return close_after_flush(conn);
                }
            }
            if n < buf.len() {
                return Ok(());
            }
        } else {
            // A frame (or the request head) is incomplete: read after what is already here.
            conn.pending.reserve(READ_BYTES);
            let len = conn.pending.len();
            let room = conn.pending.capacity() - len;
            // SAFETY: reads into the reserved, not yet initialised tail of `pending`, then
            // extends it by exactly the bytes the kernel wrote.
            let n = unsafe {
                let n = recv_raw(fd, conn.pending.as_mut_ptr().add(len), room)?;
                conn.pending.set_len(len + n);
                n
            };
            if conn.upgraded {
                drain_pending(fd, conn)?;
            } else {
                upgrade(fd, conn)?;
            }
            if conn.closing {
                return close_after_flush(conn);
            }
            if n < room {
                return Ok(());
            }
        }
    }
}

/// Echoes the complete frames at the start of `pending` and keeps the rest.
fn drain_pending(fd: i32, conn: &mut Conn) -> Result<(), ()> {
    let (used, closed) = echo_frames(fd, &mut conn.out, &mut conn.pending)?;
    conn.pending.drain(..used);
    conn.closing = closed;
    Ok(())
}

/// Err once nothing is left to write (the caller closes then); else waits for EPOLLOUT.
fn close_after_flush(conn: &mut Conn) -> Result<(), ()> {
    conn.closing = true;
    if conn.out.is_empty() {
        Err(())
    } else {
        Ok(())
    }
}

/// Answers the upgrade once `pending` holds the whole request head; what follows the head is
/// frames already.
fn upgrade(fd: i32, conn: &mut Conn) -> Result<(), ()> {
    let Some(end) = conn.pending.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if conn.pending.len() > MAX_HEAD_BYTES { Err(()) } else { Ok(()) };
    };
    let head = &conn.pending[..end];
    let key = head
        .split(|&b| b == b'\n')
        .find_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            line[..colon]
                .trim_ascii()
                .eq_ignore_ascii_case(b"sec-websocket-key")
                .then(|| line[colon + 1..].trim_ascii())
        })
        .ok_or(())?;
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID);
    let accept = base64::engine::general_purpose::STANDARD.encode(sha1.finalize());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    write(fd, &mut conn.out, response.as_bytes())?;
    conn.upgraded = true;
    conn.pending.drain(..end + 4);
    if conn.pending.is_empty() {
        Ok(())
    } else {
        drain_pending(fd, conn)
    }
}

/// Header length and payload length of the frame starting `b`, once its header is all there.
fn header(b: &[u8]) -> Option<(usize, usize)> {
    let b1 = *b.get(1)?;
    let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
    let (ext, len) = match b1 & 0x7f {
        126 => (2, u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize),
        127 => (8, u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize),
        n => (0, usize::from(n)),
    };
    let hdr = 2 + ext + mask;
    (b.len() >= hdr).then_some((hdr, len))
}

/// Echoes every complete frame at the start of `data` with one write; returns the bytes used
/// and whether a close frame was among them (frames after it are not looked at).
fn echo_frames(fd: i32, out: &mut Vec<u8>, data: &mut [u8]) -> Result<(usize, bool), ()> {
    let mut pos = 0;
    // The reply frames, moved together: data[reply.0..reply.1].
    let mut reply: Option<(usize, usize)> = None;
    let mut closed = false;
    while let Some((hdr, len)) = header(&data[pos..]) {
        let end = match (pos + hdr).checked_add(len) {
            Some(end) if end <= data.len() => end,
            _ => break,
        };
        let (b0, b1) = (data[pos], data[pos + 1]);
        let opcode = b0 & 0x0f;
        let payload = pos + hdr;
        if opcode == 0x9 || opcode == 0xa {
            pos = end;
            continue;
        }
        let masked = b1 & 0x80 != 0;
        if masked {
            let key: [u8; 4] = data[payload - 4..payload].try_into().unwrap();
            unmask(&mut data[payload..end], key);
        }
        // The server header (no mask key) goes right before the payload.
        let ext = hdr - 2 - if masked { 4 } else { 0 };
        let start = payload - 2 - ext;
        data.copy_within(pos + 2..pos + 2 + ext, start + 2);
        data[start] = b0;
        data[start + 1] = b1 & 0x7f;
        reply = Some(match reply {
            None => (start, end),
            Some((from, to)) => {
                data.copy_within(start..end, to);
                (from, to + end - start)
            }
        });
        pos = end;
        if opcode == 0x8 {
            closed = true;
            break;
        }
    }
    if let Some((from, to)) = reply {
        write(fd, out, &data[from..to])?;
    }
    Ok((pos, closed))
}

fn unmask(payload: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes((&*chunk).try_into().unwrap()) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// One `recv`; Err on end of stream or a failure, Ok(0) when nothing is there.
fn recv(fd: i32, buf: &mut [u8]) -> Result<usize, ()> {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { recv_raw(fd, buf.as_mut_ptr(), buf.len()) }
}

/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
unsafe fn recv_raw(fd: i32, ptr: *mut u8, len: usize) -> Result<usize, ()> {
    loop {
        let n = libc::recv(fd, ptr.cast(), len, 0);
        if n > 0 {
            return Ok(n as usize);
        }
        if n == 0 {
            return Err(());
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN => return Ok(0),
            _ => return Err(()),
        }
    }
}

/// One `send` of `data`; what the kernel does not take waits in `out` for EPOLLOUT.
fn write(fd: i32, out: &mut Vec<u8>, data: &[u8]) -> Result<(), ()> {
    if !out.is_empty() {
        out.extend_from_slice(data);
        return flush(fd, out);
    }
    let sent = send(fd, data)?;
    out.extend_from_slice(&data[sent..]);
    Ok(())
}

fn flush(fd: i32, out: &mut Vec<u8>) -> Result<(), ()> {
    let mut done = 0;
    while done < out.len() {
        let n = send(fd, &out[done..])?;
        if n == 0 {
            break;
        }
        done += n;
    }
    out.drain(..done);
    Ok(())
}

/// Bytes the kernel took (0 when its buffer is full); Err when the connection failed.
fn send(fd: i32, data: &[u8]) -> Result<usize, ()> {
    loop {
        // SAFETY: `data` is valid for reads of its length.
        let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN => return Ok(0),
            _ => return Err(()),
        }
    }
}
