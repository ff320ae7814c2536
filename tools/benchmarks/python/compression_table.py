"""Prints tools/bench's compression table from its JSON lines: our server with permessage-deflate off ("plain") and
on ("deflate", threshold 1024 bytes), medians per scenario and server: deliveries/s, server CPU µs per delivery split
into user and kernel time, bytes the clients read per delivery, share of deliveries that arrived compressed,
latency."""

import sys

from table_common import cores_cell, cpu_cell, delivery_figures, load_groups, print_markdown, ratio_cell, show

SCENARIOS = (
    ("compression-broadcast", "broadcast ~2 KiB JSON to 1000, closed loop"),
    ("compression-users", "room-targeted ~2 KiB JSON (1 client each), closed loop"),
    ("compression-small", "broadcast ~100 B (below threshold) to 1000, closed loop"),
)
SERVERS = (("plain", "off"), ("deflate", "on (threshold 1024)"))
EXTRA = (("wire", "wire_bytes_per_delivery"), ("compressed", "compressed_share"))


def main():
    rows = load_groups(sys.argv[1], "compression-")
    runs = sys.argv[2] if len(sys.argv) > 2 else "?"
    if not rows:
        print("compression: no results")
        return
    headers = ("scenario", "compression", "deliveries/s", "srv CPU µs/delivery (user + kernel)", "× off",
               "bytes read/delivery", "compressed", "latency p50 / p99 / p99.9, ms", "cores srv, tool")
    table = []
    for scenario, label in SCENARIOS:
        off = delivery_figures(rows.get((scenario, "plain"), []), EXTRA)
        for key, name in SERVERS:
            group = rows.get((scenario, key), [])
            if not group:
                continue
            f = delivery_figures(group, EXTRA)
            table.append((
                label, name, show(f["rate"], "{:,.0f}"), cpu_cell(f), ratio_cell(f, off), show(f["wire"], "{:,.0f}"),
                "n/a" if f["compressed"] is None else f"{f['compressed'] * 100:.0f} %",
                " / ".join(show(f[k], "{:.2f}") for k in ("p50", "p99", "p999")), cores_cell(f),
            ))
    print_markdown(headers, table)
    print(f"\nMedians of {runs} run(s), compression off and on side by side in each run (same binary). Server CPU "
          "per delivery: utime + stime of the server process over the window divided by deliveries in it (user + "
          "kernel); the load tool's inflating is not in it. Bytes read per delivery: everything the clients read "
          "off their sockets over the window (frame headers, pings) divided by deliveries.")


if __name__ == "__main__":
    main()
