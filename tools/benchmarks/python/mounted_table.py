"""Prints tools/bench's mounted table from its JSON lines: our server standalone (`serve`, "ours") against the same
server mounted on a Hummingbird 2 application ("mounted", and "base" when BENCH_BASE_SERVER_CMD was given), medians
per scenario and server: deliveries/s, server CPU µs per delivery split into user and kernel time, latency."""

import json
import statistics
import sys

SCENARIOS = (
    ("mounted-broadcast", "broadcast to 1000, closed loop"),
    ("mounted-users", "room-targeted (1 client each), closed loop"),
    ("mounted-latency", "broadcast to 1000 at 5 events/s"),
)
SERVERS = (("ours", "standalone (serve)"), ("mounted", "mounted (Hummingbird)"), ("base", "base"))


def load(path):
    rows = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line:
                row = json.loads(line)
                if row.get("scenario", "").startswith("mounted-"):
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
        "cores": median(row.get("server_cpu") for row in group),
        "tool": median(row.get("tool_cpu") for row in group),
        "p50": median(row.get("p50_ms") for row in group),
        "p99": median(row.get("p99_ms") for row in group),
        "p999": median(row.get("p999_ms") for row in group),
        "max": median(row.get("max_ms") for row in group),
        "problems": sum(row.get(k, 0) for row in group
                        for k in ("undelivered", "failed_emits", "disconnects", "connect_errors")),
        "runs": len(group),
    }


def main():
    rows = load(sys.argv[1])
    runs = sys.argv[2] if len(sys.argv) > 2 else "?"
    if not rows:
        print("mounted: no results")
        return
    servers = [(key, name) for key, name in SERVERS if any(server == key for _, server in rows)]
    headers = ("scenario", "server", "deliveries/s", "srv CPU µs/delivery (user + kernel)", "× standalone",
               "latency p50 / p99 / p99.9 / max, ms", "cores srv, tool")
    table = []
    for scenario, label in SCENARIOS:
        standalone = figures(rows.get((scenario, "ours"), []))
        for key, name in servers:
            group = rows.get((scenario, key), [])
            if not group:
                continue
            f = figures(group)
            show = lambda value, fmt: "n/a" if value is None else fmt.format(value)
            ratio = f"{f['cpu'] / standalone['cpu']:.2f}×" if f["cpu"] and standalone["cpu"] else "n/a"
            table.append((
                label, name, show(f["rate"], "{:,.0f}"),
                f"{show(f['cpu'], '{:.2f}')} ({show(f['user'], '{:.2f}')} + {show(f['kernel'], '{:.2f}')})",
                ratio,
                " / ".join(show(f[k], "{:.2f}") for k in ("p50", "p99", "p999", "max")),
                f"{show(f['cores'], '{:.2f}')}, {show(f['tool'], '{:.2f}')}"
                + (f"; {f['problems']} lost/failed" if f["problems"] else ""),
            ))
    widths = [max(len(str(row[i])) for row in table + [headers]) for i in range(len(headers))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table:
        print(line(row))
    print(f"\nMedians of {runs} run(s), standalone and mounted side by side in each run. Server CPU per delivery: "
          "utime + stime of the server process over the window divided by deliveries in it (user + kernel); "
          "× standalone: the ratio of the medians. Latency: send stamp to the client's read, load tool's HDR "
          "histogram.")


if __name__ == "__main__":
    main()
