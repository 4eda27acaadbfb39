//! The real clients the wss tests drive: Python's `websockets` and `ssl` (Debian's, at
//! /usr/bin/python3: a pyenv python3 may lack `websockets`), Node's `ws` (installed with npm on
//! first use) and `openssl s_client`. Each prints what it saw, for the tests to compare.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{output_within, ServerProcess};

/// Connects with Python's `websockets` (Debian's, at /usr/bin/python3: a pyenv python3 may
/// lack it) to `url` (over TLS trusting the CA file `ca`, with the client certificate and key
/// that follow when given), sends text, binary and a 1 MiB binary message, and prints what came
/// back.
pub const PY_ECHO: &str = r#"
import asyncio, ssl, sys, websockets
url, ca = sys.argv[1], sys.argv[2]
ctx = None
if url.startswith("wss:"):
    ctx = ssl.create_default_context(cafile=ca)
    if len(sys.argv) > 3:
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
async def main():
    ws = await asyncio.wait_for(websockets.connect(url, ssl=ctx, max_size=None), 10)
    if ctx:
        print("tls", ws.transport.get_extra_info("ssl_object").version())
    big = bytes(range(256)) * 4096
    for message in ["hello over wss", b"\x00\x01\x02\xff", big]:
        await ws.send(message)
        got = await asyncio.wait_for(ws.recv(), 10)
        kind = "text" if isinstance(got, str) else "binary"
        print("echo", kind, len(got), got == message)
    await ws.close()
    print("closed", ws.close_code)
asyncio.run(main())
"#;

/// A TLS client from Python's `ssl` module, which (unlike asyncio's) sends its alert when it
/// refuses the server: handshakes with 127.0.0.1:PORT as `localhost` trusting the CA file (or
/// the system's CAs for `-`), with the client certificate and key that follow when given, then
/// sends an upgrade request. Prints `tls <version>` and the answer's status line, or
/// `refused <error>`.
pub const PY_HANDSHAKE: &str = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=None if ca == "-" else ca)
if len(sys.argv) > 3:
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
try:
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    print("tls", tls.version())
    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    print("answer", tls.recv(4096).split(b"\r\n")[0].decode())
except (ssl.SSLError, OSError) as e:
    print("refused", type(e).__name__, e)
"#;

/// Runs a Python script from /usr/bin/python3 with `args`; returns its stdout.
pub fn python(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let mut command = Command::new("/usr/bin/python3");
    command.args(["-c", script]).args(args);
    let out = output_within(&mut command, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the python client failed (needs /usr/bin/python3 with websockets: \
         apt-get install -y python3-websockets): {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs [`PY_ECHO`] against `url`.
pub fn python_echo(url: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> String {
    let mut args = vec![url.as_ref(), ca.as_os_str()];
    if let Some((cert, key)) = identity {
        args.extend([cert.as_os_str(), key.as_os_str()]);
    }
    python(PY_ECHO, &args)
}

/// Runs [`PY_HANDSHAKE`] against the server's wss port; `ca` `None` trusts the system's CAs.
pub fn python_handshake(
    server: &ServerProcess,
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> String {
    let port = server.tls.unwrap().port().to_string();
    let mut args = vec![port.as_ref(), ca.map_or("-".as_ref(), |p| p.as_os_str())];
    if let Some((cert, key)) = identity {
        args.extend([cert.as_os_str(), key.as_os_str()]);
    }
    python(PY_HANDSHAKE, &args)
}

/// What [`PY_ECHO`] and [`NODE_ECHO`] print when all three messages came back unchanged over
/// TLS 1.3.
pub const ECHOED: &str = "tls TLSv1.3\necho text 14 True\necho binary 4 True\n\
                         echo binary 1048576 True\nclosed 1000\n";

pub fn wss_url(server: &ServerProcess, host: &str) -> String {
    format!("wss://{host}:{}/", server.tls.unwrap().port())
}

/// Python's asyncio refuses the certificate without sending an alert: it hangs up.
pub const PY_ASYNCIO_DISTRUST: &str = r#"
import asyncio, sys, websockets
async def main():
    try:
        await asyncio.wait_for(websockets.connect(sys.argv[1]), 10)
        print("connected")
    except Exception as e:
        print("refused", type(e).__name__, e)
asyncio.run(main())
"#;

/// Where `npm` installs `ws` for these tests (once; later runs reuse it).
pub fn node_ws_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-ws")
}

/// The `ws` package's directory, installed with npm on first use; `None` (the test skips, and
/// says why) when npm is not installed.
pub fn node_ws() -> Option<PathBuf> {
    let dir = node_ws_dir();
    let module = dir.join("node_modules").join("ws");
    if module.join("package.json").is_file() {
        return Some(module);
    }
    if Command::new("npm").arg("--version").output().is_err() {
        eprintln!(
            "skipping the Node ws client: npm is not installed (`apt-get install -y npm`, or run \
             `bash .ci/test` as root)"
        );
        return None;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg("ws@8");
    let out = output_within(&mut npm, Duration::from_secs(180));
    assert!(
        out.status.success() && module.is_dir(),
        "npm install ws@8 into {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(module)
}

/// Node's `ws` client: connects to `url` trusting the CA file, sends text, binary and a 1 MiB
/// binary message, and prints what came back (the same lines as [`PY_ECHO`]).
pub const NODE_ECHO: &str = r#"
const [wsModule, url, ca] = process.argv.slice(1);
const WebSocket = require(wsModule);
const ws = new WebSocket(url, { ca: require("fs").readFileSync(ca) });
const messages = ["hello over wss", Buffer.from([0, 1, 2, 255]),
                  Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => i % 256))];
let i = 0;
ws.on("open", () => {
  console.log("tls", ws._socket.getProtocol());
  ws.send(messages[0]);
});
ws.on("message", (data, isBinary) => {
  const sent = messages[i];
  const same = isBinary ? Buffer.isBuffer(sent) && data.equals(sent) : data.toString() === sent;
  console.log("echo", isBinary ? "binary" : "text", data.length, same ? "True" : "False");
  i += 1;
  if (i < messages.length) ws.send(messages[i]); else ws.close(1000);
});
ws.on("close", (code) => console.log("closed", code));
ws.on("error", (e) => { console.log("error", e.message); process.exitCode = 1; });
"#;

/// `openssl s_client` to `addr` as `localhost`, trusting `ca`, with `extra` flags and nothing on
/// its stdin (it handshakes, then quits); returns stdout and stderr together.
pub fn s_client(addr: SocketAddr, ca: &Path, extra: &[&str]) -> String {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-CAfile"])
        .arg(ca)
        .args(extra)
        .stdin(std::process::Stdio::null());
    let out = output_within(&mut command, Duration::from_secs(10));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
