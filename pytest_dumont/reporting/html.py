"""pytest-html pieces: sortable cells, a test's extra (phases, chart, timeline, GPU facts), the summary section."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from pytest_dumont.reporting.document import costliest_tests
from pytest_dumont.reporting.phases import (
    PhaseRow,
    figure_value,
    indent_of,
    rows_for_test,
    rows_of,
    total_row,
    usd,
)
from pytest_dumont.reporting.svg import bar_chart, timeline_chart


# pytest-html sorts its columns by comparing the cells' inner HTML as strings. A number right-aligned in a fixed
# width with spaces, which the browser does not show, sorts as strings in numeric order: a space sorts before "$"
# and every digit. No hidden key and no quotes, because pytest-html runs two regular expressions over every sortable
# cell of every row and carries each cell twice, JSON- and HTML-escaped, in its page: short cells cost it less.
@functools.lru_cache(maxsize=256)
def _leading_cells(gpu_name: str, dph_total: float, provision_seconds: float) -> tuple[str, str, str]:
    """GPU, $/h and provisioning cells: the same for every test on an instance but the one that waited for its boot,
    so they are formatted once per instance, not once per test."""
    return (
        f"<td class=col-dumont_gpu>{escape(str(gpu_name))}</td>",
        f"<td class=col-dumont_dph>{dph_total:9.4f}</td>",
        f"<td class=col-dumont_provision>{provision_seconds:9.2f}</td>",
    )


COST_WIDTH = 10  # "$" and the dollars, right-aligned: up to $999,999,999 sorts
ONE_DIGIT_PAD = " " * (COST_WIDTH - 2)


def cost_cell(cost: float) -> str:
    """The cost as ``usd`` writes it ($0.0000465), its dollars right-aligned with spaces: pytest-html compares the
    cells' inner HTML as text, and a fixed-point fraction (``0.0000465`` < ``0.00465`` < ``0.0100``) sorts as text
    in numeric order whatever its length, so the aligned dollars are all the key it needs: no hidden one."""
    text = usd(cost)
    if text[2:3] in ".":  # "$0", "$0.0000465", "$4.1234": one digit of dollars, as nearly every test's cost has
        return f"<td class=col-dumont_cost>{ONE_DIGIT_PAD}{text}</td>"
    dollars, dot, cents = text.partition(".")
    return f"<td class=col-dumont_cost>{dollars:>{COST_WIDTH}}{dot}{cents}</td>"


def row_cells(data: Mapping[str, Any]) -> list[str]:
    """The four sortable cells of a GPU test's row: GPU, $/h, provisioning seconds, cost $."""
    gpu, dph, provision = _leading_cells(data["gpu_name"], data["dph_total"], data["provision_seconds"])
    return [gpu, dph, provision, cost_cell(data["cost_usd"])]


def phase_table(rows: Sequence[PhaseRow]) -> str:
    """Phases with seconds, share, cost and outcome; a nested phase is indented under its parent, its share is of
    the parent, and the total counts the top level only."""
    body = []
    for row in rows:
        cost_text = usd(row.cost) if row.cost is not None else ""
        failed = ' class="dumont-failed"' if row.outcome != "passed" else ""
        body.append(
            f'<tr class="dumont-depth-{row.depth} dumont-kind-{row.kind}"{failed}>'
            f'<td style="padding-left:{0.5 + 1.2 * row.depth:.1f}em">{escape(row.label)}</td><td>{row.kind}</td>'
            f'<td class="dumont-num">{row.seconds:.2f}</td><td class="dumont-num">{row.share:.1f}%</td>'
            f'<td class="dumont-num">{cost_text}</td><td>{escape(row.outcome)}</td></tr>'
        )
    seconds, cost = total_row(rows)
    return (
        '<table class="dumont-phases"><thead><tr><th>phase</th><th>kind</th><th>seconds</th><th>%</th>'
        "<th>cost</th><th>outcome</th></tr></thead><tbody>" + "".join(body) + "</tbody>"
        f'<tfoot><tr><td>total</td><td></td><td class="dumont-num">{seconds:.2f}</td>'
        f'<td class="dumont-num">100%</td><td class="dumont-num">{usd(cost) if cost is not None else ""}</td>'
        "<td></td></tr></tfoot></table>"
    )


def timeline(changes: Sequence[Mapping[str, Any]]) -> str:
    """The status changes, in words and drawn on a time axis (seconds since the create call returned)."""
    if not changes:
        return ""
    steps = " &rarr; ".join(f"{escape(str(c['status']))} {c['at']:.1f}s" for c in changes)
    return f'<div class="dumont-timeline"><p>status: {steps}</p>{timeline_chart(changes)}</div>'


def facts(values: Mapping[str, str]) -> str:
    if not values:
        return ""
    items = "".join(f"<dt>{escape(k)}</dt><dd><code>{escape(v)}</code></dd>" for k, v in values.items())
    return f'<dl class="dumont-facts">{items}</dl>'


def _chart(rows: Sequence[PhaseRow], title: str) -> str:
    return bar_chart([(r.label, r.seconds, r.kind, r.depth) for r in rows], title=title) if rows else ""


def extra_for_test(data: Mapping[str, Any]) -> str:
    """What one test did on its instance: its phases nested with costs, a bar chart, the status timeline, GPU facts."""
    rows = rows_for_test(data["phases"], data["held_seconds"], data["cost_usd"])
    head = (
        f'<p class="dumont-head">instance {data["instance_id"]} &middot; {escape(str(data["gpu_name"]))} &middot; '
        f"${data['dph_total']:.4f}/h &middot; held {data['held_seconds']:.2f} s &middot; "
        f"<b>{usd(data['cost_usd'])}</b> billed estimate</p>"
    )
    return (
        '<div class="dumont dumont-test">'
        + head
        + (phase_table(rows) if rows else "")
        + _chart(rows, f"phases of {data['nodeid']}")
        + timeline(data.get("timeline", []))
        + facts(data.get("facts", {}))
        + "</div>"
    )


def figures_table(figures: Sequence[Mapping[str, Any]]) -> str:
    """A scenario's figures, name, value and unit; a part of the figure above it is indented."""
    rows = "".join(
        f'<tr><td style="padding-left:{0.4 + indent_of(f["name"])}em">{escape(f["name"].strip())}</td>'
        f'<td style="text-align:right">{figure_value(f["value"])}</td><td>{escape(f["unit"])}</td></tr>'
        for f in figures
    )
    return (
        '<table class="dumont-figures"><thead><tr><th>figure</th><th>value</th><th>unit</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def figures_extra(figures: Sequence[Mapping[str, Any]]) -> str:
    """A scenario test's extra: the figures it recorded."""
    return f'<div class="dumont-test"><p>scenario figures</p>{figures_table(figures)}</div>'


def _scenario_figures(entries: Sequence[Mapping[str, Any]]) -> str:
    """The summary's block: each scenario test's figures under its node id and outcome."""
    return "<h3>scenario figures</h3>" + "".join(
        f'<p class="dumont-figures-test"><code>{escape(e["nodeid"])}</code> ({escape(e["outcome"])})</p>'
        + figures_table(e["figures"])
        for e in entries
    )


# Scoped to .dumont, in pytest-html's own look (Helvetica 12px, #e6e6e6 rules, zebra rows, green/red outcomes).
STYLE = """<style>
.dumont{color:#222;font-size:12px;max-width:1100px}
.dumont h2{font-size:16px;margin:16px 0 6px}.dumont h3{font-size:13px;margin:14px 0 6px;color:#222}
.dumont table{border-collapse:collapse;margin:4px 0 8px}
.dumont th,.dumont td{border:1px solid #e6e6e6;padding:3px 8px;text-align:left;color:#222}
.dumont th{background:#f6f6f6;font-weight:bold}
.dumont tbody tr:nth-child(even){background:#fafafa}
.dumont tfoot td{font-weight:bold;border-top:2px solid #ccc}
.dumont td.dumont-num,.dumont th.dumont-num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.dumont tr.dumont-kind-other td{color:#777;font-style:italic}
.dumont tr.dumont-failed td{color:#c00}
.dumont-cards{display:flex;flex-wrap:wrap;gap:8px;margin:6px 0 10px}
.dumont-card{border:1px solid #e6e6e6;border-radius:4px;padding:6px 12px;min-width:110px;background:#fcfcfc}
.dumont-card b{display:block;font-size:16px;color:#111}.dumont-card span{color:#777;font-size:11px}
.dumont-ok{color:#1a7f37;font-weight:bold}.dumont-leak{color:#c00;font-weight:bold}
.dumont-instance{border:1px solid #e6e6e6;border-radius:4px;padding:4px 12px 8px;margin:8px 0}
.dumont-pair{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.dumont-timeline p{margin:4px 0;color:#444}
.dumont-facts{display:grid;grid-template-columns:max-content auto;gap:2px 10px;margin:4px 0}
.dumont-facts dt{color:#777}.dumont-facts dd{margin:0}
.dumont-share{display:inline-block;height:8px;background:#4e79a7;border-radius:2px;vertical-align:middle}
.dumont small,.dumont .dumont-note{color:#777}
</style>"""


def _card(value: str, label: str) -> str:
    return f'<div class="dumont-card"><b>{value}</b><span>{label}</span></div>'


def summary(doc: Mapping[str, Any]) -> list[str]:
    """The summary section: session totals, each instance's phases and chart, cost by test, scenario figures,
    projections, leaks."""
    if not doc["instances"]:  # nothing was rented: no costs, no leaks, nothing to project
        figures = doc.get("scenario_figures")
        if not figures:
            return []
        return [STYLE, '<div class="dumont"><h2>pytest-dumont</h2><p>no instance was rented</p>'
                + _scenario_figures(figures) + "</div>"]  # fmt: skip
    t = doc["totals"]
    leak = (
        '<p class="dumont-leaks dumont-ok">&#10003; all instances destroyed</p>'
        if not t["leaked"]
        else f'<p class="dumont-leaks dumont-leak">LEAK: {", ".join(map(str, t["leaked"]))} '
        "not confirmed destroyed: check the Vast.ai console</p>"
    )
    cards = "".join(
        [
            _card(usd(t["billed_usd"]), "billed estimate"),
            _card(usd(t["gpu_usd"]), "GPU (while running)"),
            _card(usd(t["storage_usd"]), "storage (while it exists)"),
            _card(usd(t["tests_usd"]), f"{t['tests']} test(s)"),
            _card(usd(t["overhead_usd"]), "provisioning overhead"),
            _card(str(t["instances"]), "instance(s)"),
        ]
    )
    parts = [
        STYLE,
        '<div class="dumont"><h2>pytest-dumont</h2>'
        f'<p class="dumont-total">total: <b>{usd(t["billed_usd"])}</b> billed estimate '
        f"(GPU {usd(t['gpu_usd'])} + storage {usd(t['storage_usd'])}; bandwidth not known) &middot; "
        f"{usd(t['simple_usd'])} simple (dph_total x wall) &middot; {t['instances']} instance(s) &middot; "
        f"tests {usd(t['tests_usd'])}, provisioning overhead {usd(t['overhead_usd'])}</p>"
        f'<div class="dumont-cards">{cards}</div>' + leak,
    ]
    for entry in doc["instances"]:
        rows = rows_of(entry)
        offer, cost = entry["offer"], entry["cost"]
        title = f"instance {entry['instance_id']}"
        parts.append(
            f'<div class="dumont-instance" id="dumont-instance-{entry["instance_id"]}">'
            f"<h3>instance {entry['instance_id']}: {offer['num_gpus']}x {escape(str(offer['gpu_name']))}, "
            f"${cost['dph_total']:.4f}/h, {escape(str(offer.get('geolocation') or 'unknown region'))} &middot; "
            f"{usd(cost['billed_usd'])} billed estimate</h3>"
            f'<div class="dumont-pair">{phase_table(rows)}{_chart(rows, title)}</div>'
            + timeline(entry["timeline"])
            + facts(entry.get("facts", {}))
            + "</div>"
        )
    if doc["tests"]:
        parts.append(_cost_by_test(doc))
    if doc.get("scenario_figures"):  # absent from reports written before scenario figures were reported
        parts.append(_scenario_figures(doc["scenario_figures"]))
    parts.append(_projections(doc))
    if doc.get("hook_errors"):
        parts.append(
            "<h3>hook errors</h3><ul>" + "".join(f"<li>{escape(e)}</li>" for e in doc["hook_errors"]) + "</ul>"
        )
    parts.append("</div>")
    return parts


def _cost_by_test(doc: Mapping[str, Any]) -> str:
    """The costliest tests, with their job when the report merges several, and a bar of each one's cost."""
    shown, rest, rest_usd = costliest_tests(doc)
    jobs = len({x.get("job") for x in doc["tests"]}) > 1
    top = max((x["cost_usd"] for x in shown), default=0.0) or 1.0
    rows_html = "".join(
        "<tr>"
        + (f"<td>{escape(str(x.get('job')))}</td>" if jobs else "")
        + f"<td>{escape(x['nodeid'])}</td><td>{escape(x['outcome'])}</td>"
        f'<td class="dumont-num">{x["held_seconds"]:.2f}</td><td class="dumont-num">{usd(x["cost_usd"])}</td>'
        f'<td><span class="dumont-share" style="width:{max(1.0, 120 * x["cost_usd"] / top):.0f}px"></span></td></tr>'
        for x in shown
    )
    if rest:
        rows_html += (
            f'<tr class="dumont-tests-rest"><td colspan="{4 if jobs else 3}">{rest} more test(s): sort the results by '
            f'Cost ($)</td><td class="dumont-num">{usd(rest_usd)}</td><td></td></tr>'
        )
    job_head = "<th>job</th>" if jobs else ""
    return (
        f'<h3>cost by test</h3><table class="dumont-tests"><thead><tr>{job_head}<th>test</th><th>outcome</th>'
        '<th class="dumont-num">held (s)</th><th class="dumont-num">cost</th><th></th></tr></thead>'
        f"<tbody>{rows_html}</tbody></table>"
    )


def _projections(doc: Mapping[str, Any]) -> str:
    p = doc["projections"]
    if "per_run_usd" not in p:  # a report written before projections came from the run itself
        return ""
    runs = f"{p['runs_per_day']:g}"
    parts = [
        f"<h3>projections: this run at {runs} runs a day</h3>",
        '<div class="dumont-cards">'
        + _card(usd(p["per_run_usd"]), "per run")
        + _card(usd(p["per_day_usd"]), f"per day ({runs} runs)")
        + _card(usd(p["per_month_usd"]), "per 30-day month")
        + _card(
            f"{p['overhead_share'] * 100:.0f}%", f"provisioning overhead ({usd(p['overhead_per_month_usd'])}/month)"
        )
        + "</div>",
        '<p class="dumont-note">--dumont-runs-per-day sets the number of runs a day (default 10).</p>',
    ]
    if p["costliest"]:
        parts.append(
            "<p>costliest: "
            + ", ".join(f"<code>{escape(c['nodeid'])}</code> {usd(c['cost_usd'])} ({c['share'] * 100:.0f}%)"
                        for c in p["costliest"])
            + "</p>"
        )  # fmt: skip
    if p.get("operations"):
        ops = "".join(
            f'<tr><td>{escape(o["name"])}</td><td class="dumont-num">{o["seconds"] / 60:g} min</td>'
            f'<td class="dumont-num">{usd(o["cost_usd"])}</td></tr>'
            for o in p["operations"]
        )
        parts.append(
            f"<h3>the scenarios' operations at ${p['dph_total']:.4f}/h</h3><table class='dumont-projections'><thead>"
            f"<tr><th>operation</th><th class='dumont-num'>time</th><th class='dumont-num'>cost</th></tr></thead>"
            f"<tbody>{ops}</tbody></table>"
        )
    clouds = "".join(
        f"<tr><td>{escape(c['provider'])} ({escape(c['instance_type'])})</td><td>{escape(c['gpu'])}</td>"
        f"<td>{escape(c.get('region', ''))}</td><td class='dumont-num'>${c['usd_per_hour']:.3f}</td>"
        f"<td class='dumont-num'>{usd(c['cost_usd'])}</td><td class='dumont-num'>{c['times_vast']:.1f}x</td>"
        f'<td><a href="{escape(c.get("source", ""))}">{escape(c.get("date", ""))}</a></td></tr>'
        for c in p["comparison"]
        if c["times_vast"]
    )
    if clouds:
        parts.append(
            f"<h3>the same {doc['totals']['wall_seconds']:.1f} s on other clouds</h3><table class='dumont-clouds'>"
            "<thead><tr><th>provider</th><th>GPU</th><th>region</th><th class='dumont-num'>$/h</th>"
            "<th class='dumont-num'>this run</th><th class='dumont-num'>x Vast</th><th>price of</th></tr></thead>"
            f"<tbody>{clouds}</tbody></table><p><small>Reference prices: {escape(str(p['prices_source']))}.</small></p>"
        )
    return "".join(parts)


def environment(doc: Mapping[str, Any]) -> dict[str, str]:
    """Environment rows: offer, region, image per instance; nothing secret (no key, no SSH address)."""
    rows: dict[str, str] = {}
    for entry in doc["instances"]:
        offer = entry["offer"]
        prefix = f"Dumont instance {entry['instance_id']}"
        rows[f"{prefix} offer"] = (
            f"{offer['id']}: {offer['num_gpus']}x {offer['gpu_name']} ${entry['cost']['dph_total']:.4f}/h"
        )
        rows[f"{prefix} region"] = str(offer.get("geolocation") or "unknown")
    for session in doc["sessions"]:
        rows["Dumont image"] = str(session.get("image"))
        rows["Dumont mode"] = str(session.get("mode"))
    return rows
