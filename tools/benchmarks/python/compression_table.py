"""Prints tools/bench's compression table from its JSON lines: our server with permessage-deflate off ("plain") and
on ("deflate", threshold 1024 bytes), medians per scenario and server: deliveries/s, server CPU µs per delivery split
into user and kernel time, bytes the clients read per delivery, share of deliveries that arrived compressed,
latency."""

import json
import statistics
import sys

SCENARIOS = (
    ("compression-broadcast", "broadcast ~2 KiB JSON to 1000, closed loop"),
    ("compression-users", "room-targeted ~2 KiB JSON (1 client each), closed loop"),
    ("compression-small", "broadcast ~100 B (below threshold) to 1000, closed loop"),
)
SERVERS = (("plain", "off"), ("deflate", "on (threshold 1024)"))


def load(path):
    rows = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line:
                row = json.loads(line)
                if row.get("scenario", "").startswith("compression-"):
                    rows.setdefault((row["scenario"], row["server"]), []).append(row)
    return rows


def median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def per_delivery(row, cores):
    """µs of server CPU per delivery (cores over the window / deliveries per second)."""
    if cores is None or not row.get("deliveries_per_s"):
        return None
    return cores * 1e6 / row["deliveries_per_s"]


def user_cores(row):
    if row.get("server_cpu") is None or row.get("server_sys_cpu") is None:
        return None
    return row["server_cpu"] - row["server_sys_cpu"]


def figures(group):
    return {
        "rate": median(row.get("deliveries_per_s") for row in group),
        "cpu": median(per_delivery(row, row.get("server_cpu")) for row in group),
        "user": median(per_delivery(row, user_cores(row)) for row in group),
        "kernel": median(per_delivery(row, row.get("server_sys_cpu")) for row in group),
        "wire": median(row.get("wire_bytes_per_delivery") for row in group),
        "compressed": median(row.get("compressed_share") for row in group),
        "cores": median(row.get("server_cpu") for row in group),
        "tool": median(row.get("tool_cpu") for row in group),
        "p50": median(row.get("p50_ms") for row in group),
        "p99": median(row.get("p99_ms") for row in group),
        "p999": median(row.get("p999_ms") for row in group),
        "problems": sum(row.get(k, 0) for row in group
                        for k in ("undelivered", "failed_emits", "disconnects", "connect_errors")),
    }


def main():
    rows = load(sys.argv[1])
    runs = sys.argv[2] if len(sys.argv) > 2 else "?"
    if not rows:
        print("compression: no results")
        return
    headers = ("scenario", "compression", "deliveries/s", "srv CPU µs/delivery (user + kernel)", "× off",
               "bytes read/delivery", "compressed", "latency p50 / p99 / p99.9, ms", "cores srv, tool")
    table = []
    show = lambda value, fmt: "n/a" if value is None else fmt.format(value)
    for scenario, label in SCENARIOS:
        off = figures(rows.get((scenario, "plain"), []))
        for key, name in SERVERS:
            group = rows.get((scenario, key), [])
            if not group:
                continue
            f = figures(group)
            ratio = f"{f['cpu'] / off['cpu']:.2f}×" if f["cpu"] and off["cpu"] else "n/a"
            table.append((
                label, name, show(f["rate"], "{:,.0f}"),
                f"{show(f['cpu'], '{:.2f}')} ({show(f['user'], '{:.2f}')} + {show(f['kernel'], '{:.2f}')})",
                ratio, show(f["wire"], "{:,.0f}"),
                "n/a" if f["compressed"] is None else f"{f['compressed'] * 100:.0f} %",
                " / ".join(show(f[k], "{:.2f}") for k in ("p50", "p99", "p999")),
                f"{show(f['cores'], '{:.2f}')}, {show(f['tool'], '{:.2f}')}"
                + (f"; {f['problems']} lost/failed" if f["problems"] else ""),
            ))
    widths = [max(len(str(row[i])) for row in table + [headers]) for i in range(len(headers))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table:
        print(line(row))
    print(f"\nMedians of {runs} run(s), compression off and on side by side in each run (same binary). Server CPU "
          "per delivery: utime + stime of the server process over the window divided by deliveries in it (user + "
          "kernel); the load tool's inflating is not in it. Bytes read per delivery: everything the clients read "
          "off their sockets over the window (frame headers, pings) divided by deliveries.")


if __name__ == "__main__":
    main()
