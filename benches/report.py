#!/usr/bin/env python3
"""Turns the JSON lines of benches/run.sh into the generated part of docs/benchmarks.md.

    python3 benches/report.py [RESULTS.jsonl] [DOC.md]

Defaults: benches/results/latest.jsonl and docs/benchmarks.md. Only the text between
`<!-- generated:start -->` and `<!-- generated:end -->` is rewritten; everything else in the
document is kept as written. Standard library only.
"""

import json
import os
import statistics
import sys
from collections import defaultdict

START = "<!-- generated:start -->"
END = "<!-- generated:end -->"
PEERS = ("fastwebsockets", "tungstenite")
SERVERS = ("ringws",) + PEERS
# The echo floor runs in the echo tests only, right after ringws.
FLOOR = "echo-floor"
ECHO_SERVERS = ("ringws", FLOOR) + PEERS
SERVER_LABEL = {
    "ringws": "ringws (`--cores 1`)",
    "fastwebsockets": "fastwebsockets",
    "tungstenite": "tokio-tungstenite",
    "ringws-2cores": "ringws (`--cores 2`)",
    FLOOR: "echo floor",
}
PEER_CRATES = {
    "fastwebsockets": ("fastwebsockets", "hyper", "tokio"),
    "tungstenite": ("tokio-tungstenite", "tungstenite", "tokio"),
    FLOOR: ("libc", "sha1", "base64"),
}
PEER_DIRS = {"fastwebsockets": "fastwebsockets-echo", "tungstenite": "tungstenite-echo",
             FLOOR: "echo-floor"}

# Targets of the performance work.
CPU_20B_TARGET_US = 3.0
FLOOR_CPU_TARGET_RATIO = 1.10  # ringws' CPU per echo ÷ the echo floor's, at each size
CPU_1KIB_TARGET_US = 3.5
IDLE_USERSPACE_TARGET_BYTES = 64
KERNEL_FLOOR_BYTES = 3700
KERNEL_TOLERANCE = 0.10

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def side_results(name):
    """Rows of a results file written by one of the other benches/ scripts, if present."""
    path = os.path.join(HERE, "results", name)
    return load(path) if os.path.exists(path) else []


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def lock_versions(peer):
    """Versions of the peer's key crates, from its committed Cargo.lock."""
    path = os.path.join(HERE, "peers", PEER_DIRS[peer], "Cargo.lock")
    found = {}
    name = None
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("name = "):
                    name = line.split('"')[1]
                elif line.startswith("version = ") and name in PEER_CRATES[peer]:
                    found[name] = line.split('"')[1]
    except OSError:
        pass
    return ", ".join(f"{c} {found[c]}" for c in PEER_CRATES[peer] if c in found) or "unknown"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_int(x):
    return "–" if x is None else f"{x:,.0f}"


def fmt_us(x, digits=2):
    return "–" if x is None else f"{x:,.{digits}f}"


def fmt_ratio(x):
    return "–" if x is None else f"{x:.2f}×"


def fmt_size(n):
    return f"{n // 1024} KiB" if n >= 1024 and n % 1024 == 0 else f"{n} B"


class Results:
    def __init__(self, rows):
        self.meta = next((r for r in rows if r.get("test") == "meta"), {})
        self.end = next((r for r in rows if r.get("test") == "end"), {})
        self.rows = [r for r in rows if r.get("test") not in ("meta", "end")]

    def select(self, test, server, **match):
        return [
            r
            for r in self.rows
            if r.get("test") == test
            and r.get("server") == server
            and all(r.get(k) == v for k, v in match.items())
        ]

    def med(self, test, server, field, **match):
        return median(field(r) for r in self.select(test, server, **match) if valid(r))

    def run_ratio(self, test, a, b, field, **match):
        """Median over runs of field(a) / field(b), each pair from the same run."""
        ratios = []
        for ra in self.select(test, a, **match):
            for rb in self.select(test, b, run=ra["run"], **match):
                if not (valid(ra) and valid(rb)):
                    continue
                va, vb = field(ra), field(rb)
                if va and vb:
                    ratios.append(va / vb)
        return median(ratios)

    def runs(self):
        return sorted({r["run"] for r in self.rows})


def valid(r):
    """A test that ran and verified everything; others are listed under Errors, not in medians."""
    return not r.get("failed") and not r.get("errors_total")


def other_cpus(r):
    """CPUs busy with anything but the server and the generator during an echo test."""
    if r.get("test") != "echo" or not valid(r) or r.get("machine_busy_cpus") is None:
        return None
    server = (r.get("server_cpu_us_per_op") or 0) * (r.get("msgs_per_s") or 0) / 1e6
    return max(0.0, r["machine_busy_cpus"] - (r.get("generator_cpu") or 0) - server)


def msgs(r):
    return r.get("msgs_per_s")


def cpu(r):
    return r.get("server_cpu_us_per_op")


def lat(q):
    return lambda r: (r.get("latency_us") or {}).get(q)


def gen_cpu(r):
    return r.get("generator_cpu")


def hs(r):
    return r.get("handshakes_per_s")


def rss_per_conn(r):
    return r.get("server_rss_bytes_per_conn")


def slab_per_conn(r):
    """Growth of the kernel's Slab per connection, both loopback ends together, in bytes."""
    if r.get("slab_kb_open") is None or not r.get("opened"):
        return None
    return (r["slab_kb_open"] - r["slab_kb_before"]) * 1024 / r["opened"]


def slab_per_socket(r):
    v = slab_per_conn(r)
    return None if v is None else v / 2


def objects_per_socket(r):
    """Growth of live slab object bytes per socket (both ends counted, so per connection ÷ 2)."""
    if r.get("slab_objects_bytes_open") is None or r.get("slab_objects_bytes_before") is None:
        return None
    if not r.get("opened"):
        return None
    return (r["slab_objects_bytes_open"] - r["slab_objects_bytes_before"]) / r["opened"] / 2


def generated(res):
    m = res.meta
    s = m.get("settings", {})
    out = []
    w = out.append
    mode = (
        "**QUICK smoke run** (short windows, one repetition): the figures show the script works, "
        "they are not for quoting."
        if m.get("quick")
        else f"Full run: {s.get('runs')} repetitions, medians over them."
    )
    w(f"{mode} Produced by `{m.get('command')}`, started {m.get('started_utc')}, "
      f"{res.end.get('elapsed_s', '?')} s of measurement; raw results in "
      f"[`benches/results/latest.jsonl`](../benches/results/latest.jsonl). "
      f"Regenerate this part with `python3 benches/report.py`.")
    w("")
    w("### Machine and versions")
    w("")
    mem_gib = m.get("mem_total_kb", 0) / 1024 / 1024
    w(f"- CPU: {m.get('cpu_model')}, {m.get('cpus')} CPUs; {mem_gib:.0f} GiB; "
      f"Linux {m.get('kernel')}; RLIMIT_NOFILE hard limit {m.get('nofile_hard')}")
    changes = m.get("ringws_worktree_changes", 0)
    dirty = f" plus {changes} uncommitted changed files under src/" if changes else ""
    w(f"- ringws: commit `{m.get('ringws_commit')}`{dirty}; {m.get('rustc')}")
    for peer in PEERS:
        w(f"- {SERVER_LABEL[peer]} peer (`benches/peers/{peer}-echo`): {lock_versions(peer)}")
    if res.select("echo", FLOOR):
        w(f"- {SERVER_LABEL[FLOOR]} (`benches/peers/{PEER_DIRS[FLOOR]}`, echo tests only): one "
          f"thread, edge-triggered epoll, one read and one write per echo, no validation; "
          f"{lock_versions(FLOOR)}")
    w(f"- Server pinned to CPU {s.get('server_cpu')}, `ringws bench` pinned to CPU "
      f"{s.get('client_cpu')} with `--server-pid`; each server started fresh for each test; "
      f"servers interleaved within each repetition. Echo: {s.get('conns')} connections, "
      f"closed loop, binary messages, {s.get('warmup_s')} s warm-up then a {s.get('duration_s')} s "
      f"window. ringws runs with `--max-connections {s.get('ringws_max_connections')}` (under "
      f"the fd cap).")
    other = [other_cpus(r) for r in res.rows if other_cpus(r) is not None]
    if other:
        w(f"- Other work on the machine during the echo tests (whole-machine busy CPUs from "
          f"/proc/stat, minus the generator's and the server's own): median {median(other):.2f} "
          f"CPUs, highest {max(other):.2f}. Near 0 means the two processes had the machine to "
          f"themselves.")
    else:
        w("- Other work on the machine was not recorded in this run (results from before "
          "`machine_busy_cpus` was recorded).")
    w("")

    # Echo throughput and CPU.
    w("### Echo, closed loop")
    w("")
    w("Ratios are medians of per-repetition ratios: msgs/s as ringws ÷ peer, CPU per echo as "
      "peer ÷ ringws (above 1 means ringws is ahead on both). Generator CPU near 1.0 means the "
      "load generator, not the server, set the pace: then server CPU per echo is the fairer "
      "comparison.")
    w("")
    w("| payload | server | msgs/s | p50 µs | p99 µs | server CPU µs/echo | generator CPU | "
      "msgs/s ratio | CPU ratio |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    payloads = sorted({r["payload_bytes"] for r in res.rows if r.get("test") == "echo"
                       and "payload_bytes" in r})
    for p in payloads:
        for server in ECHO_SERVERS:
            if not res.select("echo", server, payload_bytes=p):
                continue
            if server in ("ringws", FLOOR):
                rm = rc = ""
            else:
                rm = fmt_ratio(res.run_ratio("echo", "ringws", server, msgs, payload_bytes=p))
                rc = fmt_ratio(res.run_ratio("echo", server, "ringws", cpu, payload_bytes=p))
            w(f"| {fmt_size(p)} | {SERVER_LABEL[server]} "
              f"| {fmt_int(res.med('echo', server, msgs, payload_bytes=p))} "
              f"| {fmt_int(res.med('echo', server, lat('p50'), payload_bytes=p))} "
              f"| {fmt_int(res.med('echo', server, lat('p99'), payload_bytes=p))} "
              f"| {fmt_us(res.med('echo', server, cpu, payload_bytes=p))} "
              f"| {fmt_us(res.med('echo', server, gen_cpu, payload_bytes=p))} "
              f"| {rm} | {rc} |")
    w("")

    # Echo against the floor.
    floor_payloads = [p for p in payloads if res.select("echo", FLOOR, payload_bytes=p)]
    if floor_payloads:
        w("### Echo against the floor")
        w("")
        w(f"The echo floor (`benches/peers/{PEER_DIRS[FLOOR]}`) does only what an echo must: one "
          f"thread on edge-triggered epoll, the upgrade answered from `Sec-WebSocket-Key` alone, "
          f"then per readiness event one read, header decode, unmask, one write of header and "
          f"payload; no UTF-8 check, no limits, no timers. It runs in the same repetitions as "
          f"ringws, right after it, under the same load. *ringws / echo floor* is the median of "
          f"the per-repetition ratios of server CPU per echo (target: at most "
          f"{FLOOR_CPU_TARGET_RATIO:.2f}×).")
        w("")
        w("| payload | ringws CPU µs/echo | echo floor CPU µs/echo | ringws / echo floor "
          "| ringws msgs/s | echo floor msgs/s |")
        w("|---|---:|---:|---:|---:|---:|")
        for p in floor_payloads:
            w(f"| {fmt_size(p)} "
              f"| {fmt_us(res.med('echo', 'ringws', cpu, payload_bytes=p))} "
              f"| {fmt_us(res.med('echo', FLOOR, cpu, payload_bytes=p))} "
              f"| {fmt_ratio(res.run_ratio('echo', 'ringws', FLOOR, cpu, payload_bytes=p))} "
              f"| {fmt_int(res.med('echo', 'ringws', msgs, payload_bytes=p))} "
              f"| {fmt_int(res.med('echo', FLOOR, msgs, payload_bytes=p))} |")
        w("")

    # Open-loop latency.
    if any(r.get("test") == "rate" for r in res.rows):
        w("### Latency at half the saturated rate (20 B, open loop)")
        w("")
        w("Each server is offered half of its own closed-loop 20 B rate from the same repetition "
          "(`ringws bench echo --rate`); latency counts from when each message was due.")
        w("")
        w("| server | offered msgs/s | achieved msgs/s | p50 µs | p99 µs | p99.9 µs | "
          "server CPU µs/echo |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for server in SERVERS:
            w(f"| {SERVER_LABEL[server]} "
              f"| {fmt_int(res.med('rate', server, lambda r: r.get('rate_target')))} "
              f"| {fmt_int(res.med('rate', server, msgs))} "
              f"| {fmt_int(res.med('rate', server, lat('p50')))} "
              f"| {fmt_int(res.med('rate', server, lat('p99')))} "
              f"| {fmt_int(res.med('rate', server, lat('p999')))} "
              f"| {fmt_us(res.med('rate', server, cpu))} |")
        w("")

    # Handshakes.
    if any(r.get("test") == "connect" for r in res.rows):
        w("### Handshake churn")
        w("")
        w(f"`ringws bench connect`: open, upgrade, verify the 101, close, with "
          f"{s.get('connect_concurrency')} in flight. Ratio: ringws ÷ peer handshakes/s, and "
          f"peer ÷ ringws CPU per handshake.")
        w("")
        w("| server | handshakes/s | p99 µs | server CPU µs/handshake | generator CPU | "
          "handshakes/s ratio | CPU ratio |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for server in SERVERS:
            if server == "ringws":
                rm = rc = ""
            else:
                rm = fmt_ratio(res.run_ratio("connect", "ringws", server, hs))
                rc = fmt_ratio(res.run_ratio("connect", server, "ringws", cpu))
            w(f"| {SERVER_LABEL[server]} | {fmt_int(res.med('connect', server, hs))} "
              f"| {fmt_int(res.med('connect', server, lat('p99')))} "
              f"| {fmt_us(res.med('connect', server, cpu))} "
              f"| {fmt_us(res.med('connect', server, gen_cpu))} | {rm} | {rc} |")
        w("")

    # Idle memory.
    idle_ns = sorted({r.get("conns") for r in res.rows if r.get("test") == "idle"})
    if idle_ns:
        w("### Idle connections")
        w("")
        w(f"`ringws bench idle` opens the connections from 8 loopback source addresses, holds "
          f"them {s.get('idle_hold_s')} s, closes them. *Userspace* is the growth of the "
          f"server's anonymous resident memory (`RssAnon`: heap, stacks, anonymous maps; not "
          f"the binary's code pages, which load as code first runs) divided by the connections "
          f"open. The kernel columns are a system-wide cross-check "
          f"read before the first connection and once all are open: *Slab* is the growth of "
          f"`Slab:` in /proc/meminfo (slab pages, including partly used ones), *objects* the "
          f"growth of live slab objects in /proc/slabinfo (active objects × object size). On "
          f"loopback both ends of every connection are on this machine (the generator's socket "
          f"and epoll entry too), so both are halved into a per-socket estimate that ignores "
          f"what differs between the ends (ringws' 256 B poll request, the peers' epoll "
          f"entries). Other activity on the machine shows in them.")
        w("")
        w("| connections | server | opened | userspace B/conn | Slab B/conn (both ends) | "
          "Slab B/socket (½) | objects B/socket (½) |")
        w("|---:|---|---:|---:|---:|---:|---:|")
        for n in idle_ns:
            for server in SERVERS:
                if not res.select("idle", server, conns=n):
                    continue
                w(f"| {fmt_int(n)} | {SERVER_LABEL[server]} "
                  f"| {fmt_int(res.med('idle', server, lambda r: r.get('opened'), conns=n))} "
                  f"| {fmt_int(res.med('idle', server, rss_per_conn, conns=n))} "
                  f"| {fmt_int(res.med('idle', server, slab_per_conn, conns=n))} "
                  f"| {fmt_int(res.med('idle', server, slab_per_socket, conns=n))} "
                  f"| {fmt_int(res.med('idle', server, objects_per_socket, conns=n))} |")
        w("")

    # Scaling.
    if any(r.get("test") == "scaling" for r in res.rows):
        w("### ringws on one core and on two")
        w("")
        w("Echo 20 B, 100 connections, `ringws bench echo --threads 2` not pinned: with `--cores 2` "
          "the server's second reactor and the two generator threads share the machine's two "
          "CPUs, so this shows how the server behaves when it shares cores with its load, not "
          "its ceiling.")
        w("")
        w("| server | msgs/s | p99 µs | server CPU µs/echo | generator CPU |")
        w("|---|---:|---:|---:|---:|")
        for server in ("ringws", "ringws-2cores"):
            w(f"| {SERVER_LABEL[server]} | {fmt_int(res.med('scaling', server, msgs))} "
              f"| {fmt_int(res.med('scaling', server, lat('p99')))} "
              f"| {fmt_us(res.med('scaling', server, cpu))} "
              f"| {fmt_us(res.med('scaling', server, gen_cpu))} |")
        ratio = res.run_ratio("scaling", "ringws-2cores", "ringws", msgs)
        w("")
        w(f"`--cores 2` ÷ `--cores 1` msgs/s: {fmt_ratio(ratio)} (median of per-repetition "
          f"ratios).")
        w("")

    # Errors.
    bad = [r for r in res.rows if not valid(r)]
    w("### Errors")
    w("")
    if bad:
        w("Tests with any error are left out of the medians and ratios above:")
        w("")
    if not bad:
        w("None: every test verified all its handshakes and echoes.")
    else:
        for r in bad:
            what = "did not produce a report" if r.get("failed") else json.dumps(r.get("errors"))
            w(f"- {r.get('test')} {SERVER_LABEL.get(r.get('server'), r.get('server'))} "
              f"run {r.get('run')}" + (f" {fmt_size(r['payload_bytes'])}" if r.get("test") == "echo"
                                       else "") + f": {what}")
    w("")

    # Targets.
    w("### Targets")
    w("")
    w("Judged from the medians above.")
    w("")
    w("| target | measured | |")
    w("|---|---:|---|")

    def verdict(ok):
        return "–" if ok is None else ("met" if ok else "**not met**")

    profile = side_results("echo_profile.jsonl")
    for p, limit in ((20, CPU_20B_TARGET_US), (1024, CPU_1KIB_TARGET_US)):
        v = res.med("echo", "ringws", cpu, payload_bytes=p)
        tcp = [r["tcp_send_share"] + r["tcp_recv_share"]
               for r in profile if r.get("server") == "ringws" and r.get("payload") == p]
        note = (f"; {median(tcp):.0%} of it is spent inside the kernel's `tcp_sendmsg` and "
                f"`tcp_recvmsg` (median of {len(tcp)} `benches/echo_profile.sh` runs)"
                if tcp else "")
        w(f"| server CPU per {fmt_size(p)} echo ≤ {limit} µs | {fmt_us(v)} µs{note} "
          f"| {verdict(None if v is None else v <= limit)} |")
    for p in floor_payloads:
        v = res.run_ratio("echo", "ringws", FLOOR, cpu, payload_bytes=p)
        w(f"| server CPU per {fmt_size(p)} echo ≤ {FLOOR_CPU_TARGET_RATIO:.2f}× the echo floor's "
          f"(median of per-repetition ratios) | {fmt_ratio(v)} "
          f"| {verdict(None if v is None else v <= FLOOR_CPU_TARGET_RATIO)} |")
    for n in idle_ns:
        v = res.med("idle", "ringws", rss_per_conn, conns=n)
        w(f"| userspace ≤ {IDLE_USERSPACE_TARGET_BYTES} B per idle connection ({fmt_int(n)}) "
          f"| {fmt_int(v)} B | {verdict(None if v is None else v <= IDLE_USERSPACE_TARGET_BYTES)} |")
    lo = KERNEL_FLOOR_BYTES * (1 - KERNEL_TOLERANCE)
    hi = KERNEL_FLOOR_BYTES * (1 + KERNEL_TOLERANCE)
    for n in idle_ns:
        v = res.med("idle", "ringws", objects_per_socket, conns=n)
        source = "slab objects"
        if v is None:
            v = res.med("idle", "ringws", slab_per_socket, conns=n)
            source = "Slab"
        w(f"| kernel memory per idle connection, rough: {source} ÷ 2 of both loopback ends "
          f"({fmt_int(n)} connections) | {fmt_int(v)} B "
          f"| – (includes the client's sockets and epoll entries) |")
    floor = [r for r in side_results("kernel_memory.jsonl")
             if "ringws_over_floor_bytes_median_of_pairs" in r]
    if floor:
        over = floor[-1]["ringws_over_floor_bytes_median_of_pairs"]
        w(f"| kernel memory per idle connection within 10 % of the {fmt_int(KERNEL_FLOOR_BYTES)} B "
          f"bare-socket floor (`benches/kernel_memory.sh`, {fmt_int(floor[-1]['connections'])} "
          f"connections: ringws over a floor server) | +{fmt_int(over)} B "
          f"({over / KERNEL_FLOOR_BYTES:.0%}) "
          f"| {verdict(over <= KERNEL_FLOOR_BYTES * KERNEL_TOLERANCE)} |")
    v = res.run_ratio("connect", "ringws", "fastwebsockets", hs)
    c = res.run_ratio("connect", "fastwebsockets", "ringws", cpu)
    gen = res.med("connect", "ringws", gen_cpu)
    w(f"| handshakes/s ≥ fastwebsockets in the same run | {fmt_ratio(v)} "
      f"| {verdict(None if v is None else v >= 1.0)} |")
    w(f"| handshakes per second of server CPU (1 ÷ CPU per handshake) ≥ fastwebsockets "
      f"| {fmt_ratio(c)} | {verdict(None if c is None else c >= 1.0)} |")
    w("")
    if gen is not None and gen >= 0.9:
        w(f"The generator was {gen:.0%} busy during ringws's handshake churn: `ringws bench` set "
          "the rate (on loopback it also runs the server side's SYN and ACK processing), so "
          "handshakes per second of server CPU is the figure that compares the servers.")
        w("")
    w("")
    return "\n".join(out)


SKELETON = f"""# Benchmarks

ringws against the fastest Rust WebSocket servers, on this machine, by one command:

```sh
bash benches/run.sh
```

{START}
{END}
"""


def main():
    results = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results", "latest.jsonl")
    doc = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs", "benchmarks.md")
    text = generated(Results(load(results)))
    try:
        with open(doc) as f:
            current = f.read()
    except FileNotFoundError:
        current = SKELETON
    if START not in current or END not in current:
        sys.exit(f"{doc} has no {START} ... {END} markers: add them where the generated "
                 f"tables belong")
    head, rest = current.split(START, 1)
    _, tail = rest.split(END, 1)
    with open(doc, "w") as f:
        f.write(f"{head}{START}\n{text}\n{END}{tail}")


if __name__ == "__main__":
    main()
