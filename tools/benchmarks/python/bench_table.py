"""Prints tools/bench's table from its JSON lines: medians per scenario and server, with ratios and CPU."""

import json
import statistics
import sys


def load(path):
    rows = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line:
                row = json.loads(line)
                rows.setdefault((row["scenario"], row["server"]), []).append(row)
    return rows


def median(rows, key):
    values = [row[key] for row in rows if row.get(key) is not None]
    return statistics.median(values) if values else None


def main():
    rows = load(sys.argv[1])
    runs = sys.argv[2] if len(sys.argv) > 2 else "?"
    table = []

    def cpu(scenario, server):
        group = rows.get((scenario, server), [])
        server_cpu, tool_cpu = median(group, "server_cpu"), median(group, "tool_cpu")
        parts = []
        if server_cpu is not None:
            parts.append(f"srv {server_cpu:.2f}")
        if tool_cpu is not None:
            parts.append(f"tool {tool_cpu:.2f}")
        return ", ".join(parts)

    def add(name, scenario, key, scale=1.0, fmt="{:,.0f}", higher_is_better=True, target="", other="python",
            other_scenario=None, percent=False):
        ours = median(rows.get((scenario, "ours"), []), key)
        theirs = median(rows.get((other_scenario or scenario, other), []), key)
        if ours is None and theirs is None:
            return
        show = lambda v: "n/a" if v is None else fmt.format(v * scale)
        ratio = "n/a"
        if ours and theirs:
            ratio = f"{ours / theirs:.1f}×" if higher_is_better else f"1/{theirs / ours:.1f}"
            if percent:
                ratio = f"{100 * ours / theirs:.0f} %"
        table.append((name, f"{show(ours)} ({cpu(scenario, 'ours')})",
                      f"{show(theirs)} ({cpu(other_scenario or scenario, other)})", ratio, target))

    add("broadcast to 1000, deliveries/s (closed loop)", "broadcast", "deliveries_per_s", target="≥ 20×")
    for scenario, label in (("broadcast", "broadcast"), ("users", "room-targeted")):
        for server in ("ours", "python"):
            group = rows.get((scenario, server), [])
            for row in group:
                if row.get("server_cpu") and row.get("deliveries_per_s"):
                    row["cpu_us_per_delivery"] = row["server_cpu"] * 1e6 / row["deliveries_per_s"]
        add(f"{label}: server CPU µs per delivery", scenario, "cpu_us_per_delivery", fmt="{:.1f}", higher_is_better=False)
    add("room-targeted (1 client each), messages/s (closed loop)", "users", "deliveries_per_s", target="≥ 25×")
    add("broadcast p99 latency at 5 events/s × 1000 clients, ms", "latency", "p99_ms", fmt="{:.2f}", higher_is_better=False, target="≤ 1/20")
    add("  same, p50 ms", "latency", "p50_ms", fmt="{:.2f}", higher_is_better=False)
    add("  same, p99.9 ms", "latency", "p999_ms", fmt="{:.2f}", higher_is_better=False)
    add("  same, max ms", "latency", "max_ms", fmt="{:.2f}", higher_is_better=False)
    def per_event_cpu(scenario, server):
        """Server and load-tool CPU per emitted event in ms, with the kernel's share: where the latency goes."""
        group = rows.get((scenario, server), [])
        emits = median(group, "emits_per_s")
        parts = []
        for who, total_key, system_key in (("srv", "server_cpu", "server_sys_cpu"), ("tool", "tool_cpu", "tool_sys_cpu")):
            total, system = median(group, total_key), median(group, system_key)
            if not emits or total is None:
                continue
            text = f"{who} {total * 1000 / emits:.1f}"
            if system is not None and total > 0:
                text += f" (kernel {100 * system / total:.0f} %)"
            parts.append(text)
        return ", ".join(parts) or "n/a"

    if rows.get(("latency", "ours")) or rows.get(("latency", "python")):
        table.append(("  same, CPU ms per broadcast", per_event_cpu("latency", "ours"), per_event_cpu("latency", "python"), "", ""))
    add("worker publish, awaited emit, events/s (vs python write-only manager)", "publish", "emits_per_s")
    add("worker publish, awaited emit (vs redis-benchmark PUBLISH -c 1 -P 64)", "publish", "emits_per_s", other="redis-benchmark",
        percent=True)
    add("worker publish, emit(…, completion:) (vs redis-benchmark PUBLISH -c 1 -P 64)", "publish_pipelined", "emits_per_s",
        other="redis-benchmark", other_scenario="publish", target="≥ 80 %", percent=True)
    add("10,000 idle clients: server RSS, MiB", "idle", "server_rss_kib", scale=1 / 1024, fmt="{:.1f}", higher_is_better=False, target="≤ 100 MiB")
    add("10,000 idle clients: connect time, s (200 at a time)", "idle", "connect_s", fmt="{:.1f}", higher_is_better=False)
    add("10,000 idle clients: connected", "idle", "connected")

    headers = ("figure", "SocketGateway (CPU cores)", "python-socketio (CPU cores)", "ratio", "target")
    widths = [max(len(str(row[i])) for row in table + [headers]) for i in range(len(headers))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table:
        print(line(row))
    print(f"\nMedians of {runs} run(s). CPU in cores over the measurement window: srv = the server process, tool = the load "
          "tool (clients + emitter). Ratio: ours / theirs for rates, 1/(theirs / ours) for times and memory. "
          "'redis-benchmark' replaces python-socketio in the last two publish rows.")
    print_not_ours(rows)
    problems = []
    for (scenario, server), group in sorted(rows.items()):
        for row in group:
            for key in ("undelivered", "failed_emits", "disconnects", "connect_errors"):
                if row.get(key):
                    problems.append(f"{scenario}/{server}: {key} {row[key]}")
    if problems:
        print("Anomalies: " + "; ".join(problems))


def print_not_ours(rows):
    """Server CPU per message for messages addressed to rooms with no member here (scenario absent), and per
    delivery of a room-targeted message split into user and kernel time; `base` is BENCH_BASE_SERVER_CMD's build."""
    def per_message(scenario, server, per_key):
        group = rows.get((scenario, server), [])
        rate, total, system = median(group, per_key), median(group, "server_cpu"), median(group, "server_sys_cpu")
        if not rate or total is None:
            return "n/a"
        text = f"{total * 1e6 / rate:.1f} µs"
        if system is not None:
            user, kernel = (total - system) * 1e6 / rate, system * 1e6 / rate
            text += f" (user {user:.1f}, kernel {kernel:.1f}; srv {total:.2f} cores)"
        return text

    lines = []
    for scenario, label in (("absent20k", "20,000/s"), ("absent50k", "50,000/s")):
        if not any(rows.get((scenario, server)) for server in ("ours", "base")):
            continue
        achieved = median(rows.get((scenario, "ours"), []), "emits_per_s")
        lines.append((f"not ours at {label} (achieved {achieved or 0:,.0f}/s)",
                      per_message(scenario, "ours", "emits_per_s"), per_message(scenario, "base", "emits_per_s"), "n/a"))
    if rows.get(("users", "ours")) or rows.get(("users", "base")):
        lines.append(("room-targeted, per delivery", per_message("users", "ours", "deliveries_per_s"),
                      per_message("users", "base", "deliveries_per_s"),
                      per_message("users", "python", "deliveries_per_s")))
    if not lines:
        return
    headers = ("server CPU per message", "this build", "base (BENCH_BASE_SERVER_CMD)", "python-socketio")
    widths = [max(len(str(row[i])) for row in lines + [headers]) for i in range(len(headers))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print()
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in lines:
        print(line(row))
    print("Not ours: emits to a room none of the 1000 connected clients is in (goal ≤ 2 µs per message).")


if __name__ == "__main__":
    main()
