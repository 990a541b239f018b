"""The run as Markdown: the GitHub Actions step summary and ``dumont report merge``'s summary.md."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_dumont.reporting.document import costliest_tests
from pytest_dumont.reporting.phases import figure_value, indent_of, rows_of, total_row, usd
from pytest_dumont.reporting.terminal import bar

Doc = Mapping[str, Any]


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(doc: Doc, *, title: str = "pytest-dumont") -> str:
    """Totals, per-instance phases with bars, the status timeline, cost by test, scenario figures, projections, other
    clouds, leaks."""
    t = doc["totals"]
    lines = [
        f"## {title}: {t['instances']} instance(s), {usd(t['billed_usd'])} billed estimate",
        "",
        f"{usd(t['billed_usd'])} billed estimate (GPU {usd(t['gpu_usd'])} + storage {usd(t['storage_usd'])}; "
        f"bandwidth not known); {usd(t['simple_usd'])} simple (dph_total x wall). Tests {usd(t['tests_usd'])}, "
        f"provisioning overhead {usd(t['overhead_usd'])}.",
        "",
    ]
    lines.append(
        "**all instances destroyed**"
        if not t["leaked"]
        else f"**LEAK: {', '.join(map(str, t['leaked']))} not destroyed**"
    )
    for entry in doc["instances"]:
        offer, cost = entry["offer"], entry["cost"]
        lines += [
            "",
            f"### instance {entry['instance_id']}: {offer['num_gpus']}x {_cell(offer['gpu_name'])}, "
            f"${cost['dph_total']:.4f}/h, {_cell(offer.get('geolocation') or 'unknown region')}",
            "",
            "| phase | seconds | % | cost | |",
            "|---|---:|---:|---:|---|",
        ]
        rows = rows_of(entry)
        for row in rows:
            mark = "" if row.outcome == "passed" else f" ({row.outcome})"
            label = "&emsp;" * row.depth + _cell(row.label)
            money = usd(row.cost) if row.cost is not None else ""
            lines.append(
                f"| {label}{mark} | {row.seconds:.2f} | {row.share:.1f}% | {money} | `{bar(row.share, 100.0)}` |"
            )
        total, total_cost = total_row(rows)
        money = usd(total_cost) if total_cost is not None else ""
        lines.append(f"| **total** | **{total:.2f}** | 100% | **{money}** | |")
        if entry["timeline"]:
            lines += ["", "status: " + " → ".join(f"{c['status']} {c['at']:.1f}s" for c in entry["timeline"])]
        lines += [
            "",
            f"cost: {usd(cost['billed_usd'])} billed estimate; {usd(cost['simple_usd'])} simple "
            f"(dph_total x {cost['wall_seconds']:.1f} s wall); destroyed: {'yes' if entry['destroyed'] else 'NO'}",
        ]
    if doc["tests"]:
        jobs = len({x.get("job") for x in doc["tests"]}) > 1  # a merged report: say which job ran each test
        head = "| job " if jobs else ""
        lines += ["", "### cost by test", "", f"{head}| test | outcome | GPU | held (s) | cost |",
                  ("|---" if jobs else "") + "|---|---|---|---:|---:|"]  # fmt: skip
        shown, rest, rest_usd = costliest_tests(doc)
        for test in shown:
            job = f"| {_cell(test.get('job'))} " if jobs else ""
            lines.append(
                f"{job}| `{_cell(test['nodeid'])}` | {test['outcome']} | {_cell(test['gpu_name'])} | "
                f"{test['held_seconds']:.2f} | {usd(test['cost_usd'])} |"
            )
        if rest:
            lines.append(
                f"{'| ' if jobs else ''}| {rest} more test(s), every one in the JSON report | | | | {usd(rest_usd)} |"
            )
    lines += scenario_figures(doc.get("scenario_figures") or [])  # absent from reports written before they were
    lines += projections(doc)
    if doc.get("hook_errors"):
        lines += ["", "### hook errors", ""] + [f"- {_cell(e)}" for e in doc["hook_errors"]]
    return "\n".join(lines) + "\n"


def scenario_figures(entries: list[Mapping[str, Any]]) -> list[str]:
    """Each scenario test's figures: a table under its node id and outcome; a part of a figure is indented."""
    if not entries:
        return []
    lines = ["", "### scenario figures"]
    for entry in entries:
        lines += [
            "",
            f"`{_cell(entry['nodeid'])}` ({entry['outcome']})",
            "",
            "| figure | value | unit |",
            "|---|---:|---|",
        ]
        for figure in entry["figures"]:
            name = "&emsp;" * indent_of(figure["name"]) + _cell(figure["name"].strip())
            lines.append(f"| {name} | {figure_value(figure['value'])} | {_cell(figure['unit'])} |")
    return lines


def projections(doc: Doc) -> list[str]:
    """This run's cost per run, day and month, its costliest tests and overhead; other clouds' reference prices."""
    p = doc["projections"]
    if "per_run_usd" not in p:  # a report written before projections came from the run itself
        return []
    runs = f"{p['runs_per_day']:g}"
    lines = [
        "",
        f"### projections: this run at {runs} runs a day",
        "",
        f"{usd(p['per_run_usd'])} per run, {usd(p['per_day_usd'])} per day, {usd(p['per_month_usd'])} per 30-day "
        f"month (`--dumont-runs-per-day`, default 10). Provisioning overhead: {p['overhead_share'] * 100:.0f}% "
        f"of the run, {usd(p['overhead_per_month_usd'])} a month.",
    ]
    if p["costliest"]:
        lines += [
            "",
            "Costliest: "
            + ", ".join(
                f"`{_cell(c['nodeid'])}` {usd(c['cost_usd'])} ({c['share'] * 100:.0f}%)" for c in p["costliest"]
            )
            + ".",
        ]
    if p.get("operations"):
        lines += ["", f"### the scenarios' operations at ${p['dph_total']:.4f}/h", "", "| operation | time | cost |",
                  "|---|---:|---:|"]  # fmt: skip
        for op in p["operations"]:
            lines.append(f"| {_cell(op['name'])} | {op['seconds'] / 60:g} min | {usd(op['cost_usd'])} |")
    wall = doc["totals"]["wall_seconds"]
    lines += [
        "",
        f"### the same {wall:.1f} s on other clouds",
        "",
        "| provider | GPU | region | $/h | this run | x Vast | price of |",
        "|---|---|---|---:|---:|---:|---|",
        f"| Vast.ai | this run | | ${p['dph_total']:.4f} | {usd(doc['totals']['simple_usd'])} | 1.0 | |",
    ]
    for c in p["comparison"]:
        times = f"{c['times_vast']:.1f}" if c["times_vast"] else "n/a"
        where = f"{_cell(c['gpu'])} | {_cell(c.get('region', ''))}"
        seen = f"[{c.get('date', '')}]({c.get('source', '')})"
        lines.append(
            f"| {_cell(c['provider'])} ({_cell(c['instance_type'])}) | {where} | ${c['usd_per_hour']:.3f} | "
            f"{usd(c['cost_usd'])} | {times} | {seen} |"
        )
    lines += ["", f"Reference prices: {p['prices_source']}."]
    return lines
