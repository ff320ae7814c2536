"""Prints tools/bench's scale table from its JSON lines: the cost of one user-targeted event as the number of
servers grows, in the python-socketio layout and with room channels (medians per server count and mode), one table per
Redis deployment (the one redis-server, a local 3-shard Redis Cluster)."""

import json
import sys

from table_common import median, print_markdown

MODES = (("python", "classic"), ("rooms", "room channels"))
DEPLOYMENTS = (("single", "one redis-server"), ("cluster", "Redis Cluster, 3 primaries (Redis CPU summed over them)"))


SERVERS = (("ours", "this build"), ("base", "the base build (BENCH_BASE_SERVER_CMD)"))


def load(path):
    """Scale rows by (Redis deployment, server build), then by (server count, mode); rows without a deployment are
    "single"."""
    rows = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line:
                row = json.loads(line)
                if row.get("scenario") == "scale":
                    deployment = rows.setdefault((row.get("redis", "single"), row.get("server", "ours")), {})
                    deployment.setdefault((row["servers"], row["mode"]), []).append(row)
    return rows


def per_event(row, key):
    """CPU in µs per emitted event: cores over the window divided by events per second."""
    if row.get(key) is None or not row.get("emits_per_s"):
        return None
    return row[key] * 1e6 / row["emits_per_s"]


def main():
    deployments = load(sys.argv[1])
    runs = sys.argv[2] if len(sys.argv) > 2 else "?"
    rate = sys.argv[3] if len(sys.argv) > 3 else "?"
    if not deployments:
        print("scale: no results")
        return
    first = True
    builds = {server for _, server in deployments}
    for deployment, title in DEPLOYMENTS:
        for server, build in SERVERS:
            if (deployment, server) in deployments:
                if not first:
                    print()
                first = False
                print(f"Redis: {title}" + (f"; servers: {build}" if len(builds) > 1 else "") + "\n")
                print_table(deployments[(deployment, server)], runs, rate)


def print_table(rows, runs, rate):
    """Prints one deployment's table, its note and its CPU details."""
    counts = sorted({servers for servers, _ in rows})
    figures = {}
    for key, group in rows.items():
        figures[key] = {
            "servers": median(per_event(row, "server_cpu") for row in group),
            "kernel": median(row.get("server_sys_cpu", 0) / row["server_cpu"]
                             for row in group if row.get("server_cpu")),
            "redis": median(per_event(row, "redis_cpu") for row in group),
            "rate": median(row.get("emits_per_s") for row in group),
            "lost": sum(row.get("undelivered", 0) for row in group),
            "problems": sum(row.get(k, 0) for row in group for k in ("failed_emits", "disconnects", "connect_errors")),
            "tool": median(row.get("tool_cpu") for row in group),
            "cores": median(row.get("server_cpu") for row in group),
        }

    def cell(mode, count, what):
        value = figures.get((count, mode), {}).get(what)
        base = figures.get((counts[0], mode), {}).get(what)
        if value is None:
            return "n/a"
        text = f"{value:.1f}"
        if base:
            text += f" ({value / base:.2f}×)"
        return text

    headers = ["servers"]
    for _, name in MODES:
        headers += [f"{name}: servers' CPU µs/event (× N={counts[0]})", f"{name}: Redis CPU µs/event (×)"]
    headers += ["events/s (classic / rooms)", "lost (classic / rooms)"]
    table = []
    for count in counts:
        row = [str(count)]
        for mode, _ in MODES:
            row += [cell(mode, count, "servers"), cell(mode, count, "redis")]
        pair = lambda what, fmt: " / ".join(
            "n/a" if figures.get((count, mode), {}).get(what) is None else fmt.format(figures[(count, mode)][what])
            for mode, _ in MODES)
        row += [pair("rate", "{:,.0f}"), pair("lost", "{:d}")]
        table.append(row)
    print_markdown(headers, table)
    print(f"\nCost per user-targeted event as the cluster grows: medians of {runs} run(s) at {rate} events/s asked, "
          "1000 clients spread over the servers. servers' CPU = the sum of every server's utime+stime over the window "
          "per event emitted in it; Redis CPU = redis-server's (every node's), likewise; (×) = against the fewest servers in the "
          "same mode. lost = deliveries that never arrived (summed over runs). Goal of issue 12: with room channels "
          "the sum stays within 1.5× of N=1 at N=8, where classic grows about N×.")
    details = []
    for count in counts:
        for mode, name in MODES:
            figure = figures.get((count, mode))
            if figure and figure["cores"] is not None:
                kernel = 100 * (figure["kernel"] or 0)
                details.append(f"{count}/{mode}: srv {figure['cores']:.2f} cores (kernel {kernel:.0f} %),"
                               f" tool {figure['tool'] or 0:.2f}")
    print("CPU in cores: " + "; ".join(details))
    problems = [f"{count}/{mode}: {figures[(count, mode)]['problems']} failed emits, disconnects or connect errors"
                for count in counts for mode, _ in MODES
                if (count, mode) in figures and figures[(count, mode)]["problems"]]
    if problems:
        print("Anomalies: " + "; ".join(problems))


if __name__ == "__main__":
    main()
