"""pytest-html pieces: sortable cells, a test's extra (phases, chart, timeline, GPU facts), the summary section."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from pytest_dumont.reporting.document import costliest_tests
from pytest_dumont.reporting.phases import figure_value, indent_of, instance_rows, usd
from pytest_dumont.reporting.svg import bar_chart


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


def cost_cell(cost: float) -> str:
    """Dollars with six decimals (short runs cost fractions of a cent), the dollar sign against the digits."""
    return f"<td class=col-dumont_cost>{f'${cost:.6f}':>13}</td>"


def row_cells(data: Mapping[str, Any]) -> list[str]:
    """The four sortable cells of a GPU test's row: GPU, $/h, provisioning seconds, cost $."""
    gpu, dph, provision = _leading_cells(data["gpu_name"], data["dph_total"], data["provision_seconds"])
    return [gpu, dph, provision, cost_cell(data["cost_usd"])]


def phase_table(rows: Sequence[tuple[str, float, str, str]], costs: Sequence[float | None] = ()) -> str:
    total = sum(r[1] for r in rows)
    body = []
    for i, (label, seconds, outcome, kind) in enumerate(rows):
        share = seconds / total * 100 if total else 0.0
        cost = costs[i] if i < len(costs) else None
        body.append(
            f"<tr><td>{escape(label)}</td><td>{kind}</td><td>{seconds:.2f}</td><td>{share:.1f}%</td>"
            f"<td>{usd(cost) if cost is not None else ''}</td><td>{escape(outcome)}</td></tr>"
        )
    return (
        '<table class="dumont-phases"><thead><tr><th>phase</th><th>kind</th><th>seconds</th><th>%</th>'
        "<th>cost</th><th>outcome</th></tr></thead><tbody>" + "".join(body) + f"<tr><td><b>total</b></td><td></td>"
        f"<td><b>{total:.2f}</b></td><td>100%</td><td></td><td></td></tr></tbody></table>"
    )


def timeline(changes: Sequence[Mapping[str, Any]]) -> str:
    steps = " &rarr; ".join(f"{escape(str(c['status']))} {c['at']:.1f}s" for c in changes)
    return f'<p class="dumont-timeline">status: {steps}</p>' if steps else ""


def facts(values: Mapping[str, str]) -> str:
    if not values:
        return ""
    items = "".join(f"<dt>{escape(k)}</dt><dd><code>{escape(v)}</code></dd>" for k, v in values.items())
    return f'<dl class="dumont-facts">{items}</dl>'


def extra_for_test(data: Mapping[str, Any]) -> str:
    """What one test did on its instance: its phases with costs, a bar chart, the status timeline, GPU facts."""
    rows = [(p["name"], p["duration"], p["outcome"], p["kind"]) for p in data["phases"]]
    head = (
        f"<p>instance {data['instance_id']} &middot; {escape(str(data['gpu_name']))} &middot; "
        f"${data['dph_total']:.4f}/h &middot; held {data['held_seconds']:.2f} s &middot; "
        f"{usd(data['cost_usd'])} billed estimate</p>"
    )
    chart = bar_chart([(r[0], r[1], r[3]) for r in rows], title=f"phases of {data['nodeid']}") if rows else ""
    costs = [p["cost_usd"] for p in data["phases"]]
    return (
        '<div class="dumont-test">'
        + head
        + (phase_table(rows, costs) if rows else "")
        + chart
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


def summary(doc: Mapping[str, Any]) -> list[str]:
    """The summary section: session totals, each instance's phases and chart, cost by test, scenario figures,
    projections, leaks."""
    if not doc["instances"]:  # nothing was rented: no costs, no leaks, nothing to project
        figures = doc.get("scenario_figures")
        return ["<h2>pytest-dumont</h2><p>no instance was rented</p>", _scenario_figures(figures)] if figures else []
    t = doc["totals"]
    leak = (
        '<p class="dumont-leaks" style="color:green">all instances destroyed</p>'
        if not t["leaked"]
        else f'<p class="dumont-leaks" style="color:red"><b>LEAK</b>: {", ".join(map(str, t["leaked"]))} '
        "not confirmed destroyed</p>"
    )
    parts = [
        f'<h2>pytest-dumont</h2><p class="dumont-total">total: <b>{usd(t["billed_usd"])}</b> billed estimate '
        f"(GPU {usd(t['gpu_usd'])} + storage {usd(t['storage_usd'])}; bandwidth not known) &middot; "
        f"{usd(t['simple_usd'])} simple (dph_total x wall) &middot; {t['instances']} instance(s) &middot; "
        f"tests {usd(t['tests_usd'])}, provisioning overhead {usd(t['overhead_usd'])}</p>",
        leak,
    ]
    for entry in doc["instances"]:
        rows = instance_rows(entry)
        offer = entry["offer"]
        parts.append(
            f"<h3>instance {entry['instance_id']}: {offer['num_gpus']}x {escape(str(offer['gpu_name']))}, "
            f"${entry['cost']['dph_total']:.4f}/h, {escape(str(offer.get('geolocation') or 'unknown region'))}</h3>"
            + phase_table(rows)
            + bar_chart([(r[0], r[1], r[3]) for r in rows], title=f"instance {entry['instance_id']}")
            + timeline(entry["timeline"])
            + facts(entry.get("facts", {}))
        )
    if doc["tests"]:
        shown, rest, rest_usd = costliest_tests(doc)
        rows_html = "".join(
            f"<tr><td>{escape(x['nodeid'])}</td><td>{escape(x['outcome'])}</td><td>{x['held_seconds']:.2f}</td>"
            f"<td>{usd(x['cost_usd'])}</td></tr>"
            for x in shown
        )
        if rest:
            rows_html += (
                f'<tr class="dumont-tests-rest"><td colspan="3">{rest} more test(s): sort the results by Cost ($)'
                f"</td><td>{usd(rest_usd)}</td></tr>"
            )
        parts.append(
            '<h3>cost by test</h3><table class="dumont-tests"><thead><tr><th>test</th><th>outcome</th>'
            f"<th>held (s)</th><th>cost</th></tr></thead><tbody>{rows_html}</tbody></table>"
        )
    if doc.get("scenario_figures"):  # absent from reports written before scenario figures were reported
        parts.append(_scenario_figures(doc["scenario_figures"]))
    parts.append(_projections(doc))
    if doc.get("hook_errors"):
        parts.append(
            "<h3>hook errors</h3><ul>" + "".join(f"<li>{escape(e)}</li>" for e in doc["hook_errors"]) + "</ul>"
        )
    return parts


def _projections(doc: Mapping[str, Any]) -> str:
    p = doc["projections"]
    ops = "".join(
        f"<tr><td>{escape(o['name'])}</td><td>{o['seconds'] / 60:g} min</td><td>{usd(o['cost_usd'])}</td></tr>"
        for o in p["operations"]
    )
    clouds = "".join(
        f"<tr><td>{escape(c['provider'])} ({escape(c['instance_type'])})</td><td>{escape(c['gpu'])}</td>"
        f"<td>${c['usd_per_hour']:.3f}</td><td>{usd(c['cost_usd'])}</td>"
        f"<td>{c['times_vast']:.1f}x</td></tr>"
        if c["times_vast"]
        else ""
        for c in p["comparison"]
    )
    return (
        f"<h3>projections at ${p['dph_total']:.4f}/h</h3><table class='dumont-projections'><thead><tr><th>operation"
        f"</th><th>time</th><th>cost</th></tr></thead><tbody>{ops}</tbody></table>"
        f"<h3>the same {doc['totals']['wall_seconds']:.1f} s on other clouds</h3><table class='dumont-clouds'>"
        "<thead><tr><th>provider</th><th>GPU</th><th>$/h</th><th>this run</th><th>x Vast</th></tr></thead>"
        f"<tbody>{clouds}</tbody></table><p><small>Reference prices: {escape(p['prices_source'])}.</small></p>"
    )


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
