#!/usr/bin/env python3
"""Writes a set of large VPC flow-log files for the ingest benchmark (benches/ingest.sh).

    flowlog_set.py --inventory estate/inventory.toml --out DIR --records 4000000 --files 16

Each file is gzip text in the default v2 format with a header line, as a flow log delivered to
S3 writes it. About 20% of the records are on the multi-VPC ports 14001-14003 (half of those on
an endpoint ENI of the inventory, so they are attributed, half on unknown ENIs), 2% are REJECT,
spans last up to 10 minutes within one day; the rest are random traffic between random
addresses and ENIs (noise that ingest filters). The same seed writes the same files.
"""
import argparse
import gzip
import multiprocessing
import os
import random
import tomllib

HEADER = "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status\n"
DAY0 = 1790812800  # 2026-10-01T00:00:00Z


def endpoints(inventory):
    """(account, eni, ip) of every endpoint ENI of a connection alive on the set's day."""
    with open(inventory, "rb") as f:
        inv = tomllib.load(f)
    out = []
    for c in inv.get("connections", []):
        if c.get("created", "") > "2026-10-01" or c.get("deleted", "9999") < "2026-10-02":
            continue
        for e in c.get("enis", []):
            out.append((c["client_account"], e["id"], e["ips"][0]))
    return out


def write_file(args):
    path, n, seed, eps = args
    rnd = random.Random(seed)
    enis = ["eni-%017x" % rnd.getrandbits(68) for _ in range(4096)]
    accounts = ["%012d" % rnd.randrange(10**11, 10**12) for _ in range(64)]
    ip = lambda: "10.%d.%d.%d" % (rnd.randrange(256), rnd.randrange(256), rnd.randrange(1, 255))
    lines = []
    with gzip.open(path, "wt", compresslevel=6) as f:
        f.write(HEADER)
        for _ in range(n):
            start = DAY0 + rnd.randrange(86_400 - 600)
            end = start + rnd.randrange(1, 601)
            packets = rnd.randrange(1, 20_000)
            nbytes = packets * rnd.randrange(40, 1500)
            action = "REJECT" if rnd.random() < 0.02 else "ACCEPT"
            r = rnd.random()
            if r < 0.10 and eps:
                acct, eni, eip = eps[rnd.randrange(len(eps))]
                port = 14001 + rnd.randrange(3)
                if rnd.random() < 0.5:  # to the cluster, seen on the endpoint ENI
                    src, dst, sport, dport = ip(), eip, rnd.randrange(32768, 61000), port
                else:
                    src, dst, sport, dport = eip, ip(), port, rnd.randrange(32768, 61000)
            elif r < 0.20:
                acct, eni = accounts[rnd.randrange(64)], enis[rnd.randrange(4096)]
                src, dst, sport, dport = ip(), ip(), rnd.randrange(32768, 61000), 14001 + rnd.randrange(3)
            else:
                acct, eni = accounts[rnd.randrange(64)], enis[rnd.randrange(4096)]
                src, dst = ip(), ip()
                sport, dport = rnd.randrange(1024, 65536), rnd.choice((443, 80, 5432, 6379, 9092, 53))
            lines.append(f"2 {acct} {eni} {src} {dst} {sport} {dport} 6 {packets} {nbytes} {start} {end} {action} OK\n")
            if len(lines) >= 10_000:
                f.write("".join(lines))
                lines.clear()
        f.write("".join(lines))
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inventory", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--records", type=int, default=4_000_000)
    p.add_argument("--files", type=int, default=16)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    eps = endpoints(a.inventory)
    per = a.records // a.files
    jobs = [
        (os.path.join(a.out, f"bench_vpcflowlogs_us-east-1_fl-bench_20261001T{i:04d}Z_{i:08x}.log.gz"),
         per + (1 if i < a.records % a.files else 0), a.seed * 1000 + i, eps)
        for i in range(a.files)
    ]
    with multiprocessing.Pool(os.cpu_count()) as pool:
        for path in pool.imap_unordered(write_file, jobs):
            pass
    print(f"wrote {a.records} records in {a.files} files to {a.out}")


if __name__ == "__main__":
    main()
