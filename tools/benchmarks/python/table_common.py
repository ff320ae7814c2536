"""What tools/bench's table scripts share: reading its JSON lines, medians, CPU per delivery, one markdown table."""

import json
import statistics


def load_groups(path, scenario_prefix):
    """Rows whose scenario starts with `scenario_prefix`, grouped by (scenario, server)."""
    rows = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if line:
                row = json.loads(line)
                if row.get("scenario", "").startswith(scenario_prefix):
                    rows.setdefault((row["scenario"], row["server"]), []).append(row)
    return rows


def median(values):
    """The median of the values that are not None, or None."""
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def per_delivery(row, cores):
    """µs of server CPU per delivery (cores over the window / deliveries per second)."""
    if cores is None or not row.get("deliveries_per_s"):
        return None
    return cores * 1e6 / row["deliveries_per_s"]


def user_cores(row):
    """The server's user-space cores over the window (all minus kernel)."""
    if row.get("server_cpu") is None or row.get("server_sys_cpu") is None:
        return None
    return row["server_cpu"] - row["server_sys_cpu"]


def delivery_figures(group, extra=()):
    """Medians of a (scenario, server) group's delivery figures, plus the medians of the `extra` row keys."""
    figures = {
        "rate": median(row.get("deliveries_per_s") for row in group),
        "cpu": median(per_delivery(row, row.get("server_cpu")) for row in group),
        "user": median(per_delivery(row, user_cores(row)) for row in group),
        "kernel": median(per_delivery(row, row.get("server_sys_cpu")) for row in group),
        "cores": median(row.get("server_cpu") for row in group),
        "tool": median(row.get("tool_cpu") for row in group),
        "p50": median(row.get("p50_ms") for row in group),
        "p99": median(row.get("p99_ms") for row in group),
        "p999": median(row.get("p999_ms") for row in group),
        "problems": sum(row.get(k, 0) for row in group
                        for k in ("undelivered", "failed_emits", "disconnects", "connect_errors")),
    }
    for name, key in extra:
        figures[name] = median(row.get(key) for row in group)
    return figures


def show(value, fmt):
    """`fmt` of the value, or n/a."""
    return "n/a" if value is None else fmt.format(value)


def cpu_cell(figures):
    """Server CPU µs per delivery with its user and kernel parts."""
    return (f"{show(figures['cpu'], '{:.2f}')} ({show(figures['user'], '{:.2f}')} + "
            f"{show(figures['kernel'], '{:.2f}')})")


def cores_cell(figures):
    """Cores of the server and the load tool, and the deliveries lost or failed if any."""
    return (f"{show(figures['cores'], '{:.2f}')}, {show(figures['tool'], '{:.2f}')}"
            + (f"; {figures['problems']} lost/failed" if figures["problems"] else ""))


def ratio_cell(figures, base):
    """The CPU per delivery against `base`'s."""
    return f"{figures['cpu'] / base['cpu']:.2f}×" if figures["cpu"] and base["cpu"] else "n/a"


def print_markdown(headers, table):
    """A markdown table, columns padded to their widest cell."""
    widths = [max(len(str(row[i])) for row in table + [headers]) for i in range(len(headers))]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"
    print(line(headers))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table:
        print(line(row))
