#!/usr/bin/env python3
"""Generate a Kubernetes-like cluster at a given scale, its zone file and a dnsperf query mix.

    gen.py --services N --out DIR [--replicas MIN-MAX] [--svcnet BIN] [--seed S] [--namespaces K]
           [--queries Q] [--manifests-only]

Writes, deterministically for a given seed:

  DIR/manifests/NNNN-<ns>.yaml  one file per namespace: the Namespace, and for each service its
                                workload (Deployment or StatefulSet) and Service, with named ports
  DIR/svcnet.toml               settings shared by `svcnet zone` and `svcnet serve` (a pod CIDR
                                large enough that emulated pod IPs rarely collide)
  DIR/all.zone                  what `svcnet zone` prints (every zone svcnet serves)
  DIR/cluster.local.zone        the cluster.local zone alone, for the peer servers
  DIR/queries.txt               dnsperf input: 60% A of ClusterIP services, 20% A of headless
                                services, 10% SRV, 10% search-path expansions that are NXDOMAIN
  DIR/check.txt                 a sample of the query file (several of each kind) for answer checks
  DIR/probe.txt                 one name that exists, to tell when a server has loaded

Services: 70% ClusterIP behind a Deployment, 20% headless behind a StatefulSet (hostnames
web-0 ...), 10% headless behind a Deployment (dashed-IP endpoint names); 5 to 50 replicas each
(`--replicas MIN-MAX`).
Query names are taken from the zone file svcnet prints, so they are the names svcnet computes.
Only the Python standard library is used.
"""

import argparse
import os
import random
import subprocess
import sys

WORDS = (
    "api auth billing cart catalog checkout config cron db edge events feed gateway graph "
    "identity images inventory ledger mail media metrics notify orders payments pricing profile "
    "queue rank recs redis report search session shipping social stock store sync tax "
    "tracker users vault web worker"
).split()
TEAMS = (
    "alpha bravo core data dev growth infra ml mobile ops platform prod qa risk sales "
    "sec staging tools"
).split()
PORTS = [("http", 80, 8080), ("grpc", 9090, 9090), ("metrics", 9100, 9100),
         ("https", 443, 8443), ("redis", 6379, 6379), ("postgres", 5432, 5432)]

# A /9 of pod IPs: at 100k services (about 2.75 million emulated pods) the default /16 would be
# full many times over.
POD_CIDR = "10.128.0.0/9"


def container_ports(ports):
    return "".join(
        f"            - name: {name}\n              containerPort: {target}\n"
        for name, _, target in ports)


def service_ports(ports, headless):
    # ClusterIP services map their port to a named targetPort; headless ones use the container port
    # itself (SRV records of a headless service carry it, and svcnet lint warns when they differ).
    out = []
    for name, port, target in ports:
        if headless:
            out.append(f"    - name: {name}\n      port: {target}\n      targetPort: {target}\n")
        else:
            out.append(f"    - name: {name}\n      port: {port}\n      targetPort: {name}\n")
    return "".join(out)


def workload(kind, name, ns, svc, replicas, label, ports):
    extra = f"  serviceName: {svc}\n" if kind == "StatefulSet" else ""
    return (
        f"---\napiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
        f"spec:\n{extra}  replicas: {replicas}\n  selector:\n    matchLabels:\n"
        f"      app: {label}\n  template:\n    metadata:\n      labels:\n        app: {label}\n"
        f"    spec:\n      containers:\n        - name: main\n          image: registry.example/{label}:1.0\n"
        f"          ports:\n{container_ports(ports)}")


def service(name, ns, label, ports, headless):
    cip = "  clusterIP: None\n" if headless else ""
    return (
        f"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
        f"spec:\n{cip}  selector:\n    app: {label}\n  ports:\n{service_ports(ports, headless)}")


def write_manifests(args, mdir, rng):
    os.makedirs(mdir, exist_ok=True)
    nns = args.namespaces or max(1, round(args.services / 100))
    namespaces = []
    seen = set()
    for i in range(nns):
        ns = f"{rng.choice(TEAMS)}-{rng.choice(WORDS)}-{i:04d}"
        namespaces.append(ns)
        seen.add(ns)
    counts = [args.services // nns + (1 if i < args.services % nns else 0) for i in range(nns)]
    kinds = {"clusterip": 0, "sts": 0, "dep-headless": 0}
    pods = 0
    for i, (ns, count) in enumerate(zip(namespaces, counts)):
        parts = [f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"]
        names = set()
        for j in range(count):
            while True:
                svc = f"{rng.choice(WORDS)}-{rng.choice(WORDS)}"
                if rng.random() < 0.5:
                    svc += f"-{rng.randrange(100)}"
                if svc not in names:
                    names.add(svc)
                    break
            nports = rng.choice((1, 1, 1, 2, 2, 3))
            ports = rng.sample(PORTS, nports)
            replicas = rng.randint(args.min_replicas, args.max_replicas)
            pods += replicas
            r = rng.random()
            label = f"{svc}"
            if r < 0.70:
                kinds["clusterip"] += 1
                parts.append(workload("Deployment", svc, ns, svc, replicas, label, ports))
                parts.append(service(svc, ns, label, ports, headless=False))
            elif r < 0.90:
                kinds["sts"] += 1
                parts.append(workload("StatefulSet", svc, ns, svc, replicas, label, ports))
                parts.append(service(svc, ns, label, ports, headless=True))
            else:
                kinds["dep-headless"] += 1
                parts.append(workload("Deployment", svc, ns, svc, replicas, label, ports))
                parts.append(service(svc, ns, label, ports, headless=True))
        with open(os.path.join(mdir, f"{i:04d}-{ns}.yaml"), "w") as f:
            f.write("".join(parts))
    print(f"gen: {args.services} services in {nns} namespaces ({kinds['clusterip']} ClusterIP, "
          f"{kinds['sts']} StatefulSet headless, {kinds['dep-headless']} Deployment headless), "
          f"{pods} pods", file=sys.stderr)
    return namespaces


def split_zones(text):
    """Split `svcnet zone` output into {origin: text}."""
    zones = {}
    origin = None
    for line in text.splitlines(keepends=True):
        if line.startswith("$ORIGIN "):
            origin = line.split()[1]
            zones[origin] = [line]
        elif origin is not None:
            zones[origin].append(line)
    return {k: "".join(v) for k, v in zones.items()}


def classify(zone_text, zone="cluster.local."):
    """Owner names by kind, from the cluster zone: ClusterIP service names (one A), headless service
    names (several A), SRV port names (_port._tcp.svc.ns.svc...)."""
    a = {}
    srv = set()
    suffix = ".svc." + zone
    for line in zone_text.splitlines():
        if not line or line[0] in "$;":
            continue
        f = line.split()
        if len(f) < 5:
            continue
        owner, rtype = f[0], f[3]
        if not owner.endswith(suffix):
            continue
        labels = owner[: -len(suffix)].split(".")
        if rtype == "A" and len(labels) == 2:
            a[owner] = a.get(owner, 0) + 1
        elif rtype == "SRV" and len(labels) == 4 and labels[0].startswith("_") and labels[1] == "_tcp":
            srv.add(owner)
    clusterip = sorted(n for n, c in a.items() if c == 1)
    headless = sorted(n for n, c in a.items() if c > 1)
    return clusterip, headless, sorted(srv)


def nxdomain_names(rng, services, namespaces, zone="cluster.local."):
    """Search-path expansions a pod's resolver (ndots:5) tries before the name that exists."""
    outside = ["api.example.com.", "www.google.com.", "login.microsoftonline.com.",
               "s3.amazonaws.com.", "registry.npmjs.org.", "pypi.org."]
    while True:
        ns = rng.choice(namespaces)
        k = rng.random()
        if k < 0.4:
            base = rng.choice(services)          # <svc>.<ns>.svc.cluster.local. + search suffix
            yield base + rng.choice((f"{ns}.svc.{zone}", f"svc.{zone}", zone))
        elif k < 0.8:
            yield rng.choice(outside) + rng.choice((f"{ns}.svc.{zone}", f"svc.{zone}", zone))
        else:
            # a short name of a service in another namespace, tried in the asker's namespace
            svc = rng.choice(services).split(".")[0]
            yield f"{svc}.nonexistent-{rng.randrange(1000)}.svc.{zone}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=10000)
    ap.add_argument("--replicas", default="5-50",
                    help="MIN-MAX pods per service (5-15 gives about 10 endpoints per service)")
    ap.add_argument("--namespaces", type=int, default=0, help="default: services/100")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--queries", type=int, default=200000, help="lines in queries.txt")
    ap.add_argument("--check", type=int, default=200, help="lines in check.txt")
    ap.add_argument("--svcnet", default="target/release/svcnet", help="svcnet binary")
    ap.add_argument("--manifests-only", action="store_true",
                    help="write manifests and svcnet.toml only (no zone file, no queries)")
    args = ap.parse_args()

    try:
        lo, hi = (int(x) for x in args.replicas.split("-"))
        if not 0 <= lo <= hi:
            raise ValueError
    except ValueError:
        sys.exit(f"gen: --replicas {args.replicas}: expected MIN-MAX, 0 <= MIN <= MAX")
    args.min_replicas, args.max_replicas = lo, hi
    rng = random.Random(args.seed)
    out = args.out
    os.makedirs(out, exist_ok=True)
    mdir = os.path.join(out, "manifests")
    if os.path.isdir(mdir):
        for name in os.listdir(mdir):
            os.unlink(os.path.join(mdir, name))
    namespaces = write_manifests(args, mdir, rng)

    toml = os.path.join(out, "svcnet.toml")
    with open(toml, "w") as f:
        f.write(f'pod-cidr = ["{POD_CIDR}"]\n')
    if args.manifests_only:
        return

    res = subprocess.run([args.svcnet, "zone", "--config", toml, "-f", mdir, "--log", "warn"],
                         check=True, capture_output=True, text=True)
    if res.stderr.strip():
        print(res.stderr, file=sys.stderr, end="")
    with open(os.path.join(out, "all.zone"), "w") as f:
        f.write(res.stdout)
    zones = split_zones(res.stdout)
    cz = zones["cluster.local."]
    with open(os.path.join(out, "cluster.local.zone"), "w") as f:
        f.write(cz)

    clusterip, headless, srv = classify(cz)
    if not clusterip or not headless or not srv:
        sys.exit("gen: the zone lacks ClusterIP, headless or SRV names")
    qrng = random.Random(args.seed + 1)
    nx = nxdomain_names(qrng, clusterip + headless, namespaces)
    lines = []
    for _ in range(args.queries):
        r = qrng.random()
        if r < 0.60:
            lines.append(f"{qrng.choice(clusterip)} A")
        elif r < 0.80:
            lines.append(f"{qrng.choice(headless)} A")
        elif r < 0.90:
            lines.append(f"{qrng.choice(srv)} SRV")
        else:
            lines.append(f"{next(nx)} A")
    with open(os.path.join(out, "queries.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(out, "check.txt"), "w") as f:
        f.write("\n".join(lines[: args.check]) + "\n")
    with open(os.path.join(out, "probe.txt"), "w") as f:
        f.write(clusterip[-1] + "\n")
    nrec = sum(1 for l in cz.splitlines() if l and l[0] not in "$;")
    print(f"gen: cluster.local has {nrec} records; {len(clusterip)} ClusterIP, {len(headless)} "
          f"headless, {len(srv)} SRV names; {args.queries} queries in {out}/queries.txt",
          file=sys.stderr)


if __name__ == "__main__":
    main()
