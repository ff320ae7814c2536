"""Prints tools/bench's mounted table from its JSON lines: our server standalone (`serve`, "ours") against the same
server mounted on a Hummingbird 2 application ("mounted", and "base" when BENCH_BASE_SERVER_CMD was given), medians
per scenario and server: deliveries/s, server CPU µs per delivery split into user and kernel time, latency."""

import sys

from table_common import cores_cell, cpu_cell, delivery_figures, load_groups, print_markdown, ratio_cell, show

SCENARIOS = (
    ("mounted-broadcast", "broadcast to 1000, closed loop"),
    ("mounted-users", "room-targeted (1 client each), closed loop"),
    ("mounted-latency", "broadcast to 1000 at 5 events/s"),
)
SERVERS = (("ours", "standalone (serve)"), ("mounted", "mounted (Hummingbird)"), ("base", "base"))
EXTRA = (("max", "max_ms"),)


def main():
    rows = load_groups(sys.argv[1], "mounted-")
    runs = sys.argv[2] if len(sys.argv) > 2 else "?"
    if not rows:
        print("mounted: no results")
        return
    servers = [(key, name) for key, name in SERVERS if any(server == key for _, server in rows)]
    headers = ("scenario", "server", "deliveries/s", "srv CPU µs/delivery (user + kernel)", "× standalone",
               "latency p50 / p99 / p99.9 / max, ms", "cores srv, tool")
    table = []
    for scenario, label in SCENARIOS:
        standalone = delivery_figures(rows.get((scenario, "ours"), []), EXTRA)
        for key, name in servers:
            group = rows.get((scenario, key), [])
            if not group:
                continue
            f = delivery_figures(group, EXTRA)
            table.append((
                label, name, show(f["rate"], "{:,.0f}"), cpu_cell(f), ratio_cell(f, standalone),
                " / ".join(show(f[k], "{:.2f}") for k in ("p50", "p99", "p999", "max")), cores_cell(f),
            ))
    print_markdown(headers, table)
    print(f"\nMedians of {runs} run(s), standalone and mounted side by side in each run. Server CPU per delivery: "
          "utime + stime of the server process over the window divided by deliveries in it (user + kernel); "
          "× standalone: the ratio of the medians. Latency: send stamp to the client's read, load tool's HDR "
          "histogram.")


if __name__ == "__main__":
    main()
