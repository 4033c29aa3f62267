#!/usr/bin/env python3
"""Measurement tools for bench/run.sh (Python 3 standard library only).

    dnstool.py wait HOST PORT NAME START_EPOCH TIMEOUT   seconds from START_EPOCH until NAME A
                                                         is answered NOERROR with an address
    dnstool.py proc PID                                  cpu=<s> user=<s> sys=<s> hwm_max_kb=<kb> hwm_sum_kb=<kb> for
                                                         PID and its descendants
    dnstool.py answers HOST PORT CHECKFILE               one normalised answer per query (dig)
    dnstool.py compare A_FILE B_FILE NAME_A NAME_B       differences between two answers files
    dnstool.py dnsperf FILE                              qps, lost and (with -v) latency percentiles
    dnstool.py table RESULTS_TSV                         the Markdown results table
"""

import os
import random
import socket
import struct
import subprocess
import sys
import time


def query_packet(name, qid):
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.rstrip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0) + q + struct.pack(">HH", 1, 1)


def cmd_wait(host, port, name, start, timeout):
    start, timeout = float(start), float(timeout)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.05)
    while time.time() - start < timeout:
        qid = random.randrange(65536)
        try:
            s.sendto(query_packet(name, qid), (host, int(port)))
            while True:
                data = s.recv(4096)
                rid, flags, _qd, an = struct.unpack(">HHHH", data[:8])
                if rid == qid:
                    break
            if flags & 0xF == 0 and an > 0:
                print(f"{time.time() - start:.2f}")
                return 0
        except (socket.timeout, ConnectionRefusedError, OSError):
            pass
        time.sleep(0.05)
    print("timeout")
    return 1


def tree(pid):
    """pid and all its descendants."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [int(pid)]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cmd_proc(pid):
    tck = os.sysconf("SC_CLK_TCK")
    user = system = 0
    hwm = []
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            # utime stime cutime cstime (fields 14-17; after the comm they are 11-14, 0-based)
            user += int(fields[11]) + int(fields[13])
            system += int(fields[12]) + int(fields[14])
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm.append(int(line.split()[1]))
        except OSError:
            continue
    print(f"cpu={(user + system) / tck:.2f} user={user / tck:.2f} sys={system / tck:.2f} "
          f"hwm_max_kb={max(hwm or [0])} hwm_sum_kb={sum(hwm)} procs={len(hwm)}")
    return 0


def dig(host, port, name, qtype):
    res = subprocess.run(
        ["dig", f"@{host}", "-p", str(port), name, qtype, "+norec", "+bufsize=4096", "+time=2",
         "+tries=2", "+noall", "+answer", "+comments"],
        capture_output=True, text=True)
    status = "NOANSWER"
    rrs = []
    for line in res.stdout.splitlines():
        if "status:" in line:
            status = line.split("status:")[1].split(",")[0].strip()
        elif line and not line.startswith(";"):
            f = line.split()
            if len(f) >= 5:
                # drop the TTL; names are case-insensitive
                rrs.append(" ".join([f[0].lower(), f[2], f[3]] + f[4:]).lower())
    return status, sorted(rrs)


def cmd_answers(host, port, checkfile):
    with open(checkfile) as f:
        for line in f:
            if not line.strip():
                continue
            name, qtype = line.split()[:2]
            status, rrs = dig(host, port, name, qtype)
            print(f"{name} {qtype}\t{status}\t{' | '.join(rrs)}")
    return 0


def cmd_compare(a_file, b_file, a_name, b_name):
    def load(path):
        with open(path) as f:
            return [l.rstrip("\n").split("\t") for l in f if l.strip()]
    a, b = load(a_file), load(b_file)
    bad = 0
    for x, y in zip(a, b):
        if x != y:
            bad += 1
            if bad <= 10:
                print(f"  mismatch {x[0]}: {a_name} {x[1]} [{x[2]}] / {b_name} {y[1]} [{y[2]}]",
                      file=sys.stderr)
    if len(a) != len(b):
        bad += abs(len(a) - len(b))
    print(f"{bad}/{max(len(a), len(b))}")
    return 0


def cmd_dnsperf(path):
    qps = lost = sent = done = None
    lat = []
    rcodes = {}
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("> "):
                p = line.split()
                if p[1] == "T" or len(p) < 5:
                    continue
                rcodes[p[1]] = rcodes.get(p[1], 0) + 1
                lat.append(float(p[-1]))
            elif "Queries per second:" in line:
                qps = float(line.split(":")[1])
            elif "Queries lost:" in line:
                lost = int(line.split(":")[1].split()[0])
            elif "Queries completed:" in line:
                done = int(line.split(":")[1].split()[0])
            elif "Queries sent:" in line:
                sent = int(line.split(":")[1])
    out = [f"qps={qps:.0f}" if qps is not None else "qps=?", f"sent={sent}", f"completed={done}", f"lost={lost}"]
    if lat:
        lat.sort()
        def pct(p):
            return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1e6
        out += [f"p50_us={pct(50):.0f}", f"p90_us={pct(90):.0f}", f"p99_us={pct(99):.0f}",
                f"p999_us={pct(99.9):.0f}", f"max_us={lat[-1] * 1e6:.0f}"]
        out.append("rcodes=" + ",".join(f"{k}:{v}" for k, v in sorted(rcodes.items())))
    print(" ".join(out))
    return 0


def cmd_table(path):
    rows = []
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))
    nsd_qpc = {}
    for r in rows:
        try:
            r["qpc"] = float(r["queries"]) / float(r["cpu_s"])
        except (ValueError, ZeroDivisionError):
            r["qpc"] = None
        if r["server"] == "nsd" and r["qpc"]:
            nsd_qpc[r["round"]] = r["qpc"]
    print("| round | server | QPS (max) | server CPU s | CPU use | queries / CPU-s | vs NSD "
          "| user / kernel µs per query "
          "| p50 / p99 / p99.9 µs @ 20k qps | lost @ 20k | CPU s @ 20k | peak RSS MiB | load s | check |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        ratio = (f"{r['qpc'] / nsd_qpc[r['round']]:.2f}×"
                 if r["qpc"] and r["round"] in nsd_qpc else "–")
        qpc = f"{r['qpc']:,.0f}" if r["qpc"] else "–"
        try:
            use = f"{float(r['cpu_s']) / float(r['duration']) * 100:.0f}%"
        except (ValueError, ZeroDivisionError):
            use = "–"
        rss = f"{int(r['rss_kb']) / 1024:,.0f}" if r["rss_kb"].isdigit() else r["rss_kb"]
        try:
            n = float(r["queries"]) / 1e6
            split = f"{float(r['user_s']) / n:.2f} / {float(r['sys_s']) / n:.2f}"
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            split = "–"
        print(f"| {r['round']} | {r['server']} | {float(r['qps']):,.0f} | {r['cpu_s']} | {use} "
              f"| {qpc} | {ratio} | {split} | {r['p50']} / {r['p99']} / {r['p999']} | {r['lost20k']} "
              f"| {r['cpu20k']} | {rss} | {r['load_s']} | {r['check']} |")
    return 0


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd = {"wait": cmd_wait, "proc": cmd_proc, "answers": cmd_answers, "compare": cmd_compare,
           "dnsperf": cmd_dnsperf, "table": cmd_table}.get(sys.argv[1])
    if cmd is None:
        sys.exit(__doc__)
    sys.exit(cmd(*sys.argv[2:]))


if __name__ == "__main__":
    main()
