"""``dumont report merge``: one JSON, one Markdown and one HTML summary from several jobs' JSON reports."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "report"
HELP = "combine the JSON reports of several jobs (a CI matrix) into one JSON, Markdown and HTML summary"

HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:72em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}</style></head>
<body>{body}</body></html>
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    merge = actions.add_parser("merge", help=HELP, description=HELP)
    merge.add_argument("reports", nargs="+", type=Path, metavar="JSON", help="reports written by --dumont-json")
    merge.add_argument("-o", "--output", type=Path, default=Path("dumont-report"), help="stem of the outputs")


def run(args: argparse.Namespace) -> int:
    from pytest_dumont.reporting import html, jsonreport, markdown

    try:
        doc = jsonreport.merge([jsonreport.read(path) for path in args.reports])
    except jsonreport.ReportError as exc:
        print(f"dumont report merge: {exc}", file=sys.stderr)
        return 2
    stem: Path = args.output
    outputs = {
        stem.with_suffix(".json"): None,
        stem.with_suffix(".md"): markdown.render(doc, title="pytest-dumont (merged)"),
        stem.with_suffix(".html"): HTML_PAGE.format(title="pytest-dumont", body="".join(html.summary(doc))),
    }
    failed = False
    for path, text in outputs.items():
        try:
            if text is None:
                jsonreport.write(path, doc)
            else:
                jsonreport.write_text(path, text)
            print(f"wrote {path}")
        except jsonreport.ReportError as exc:
            print(f"dumont report merge: {exc}", file=sys.stderr)
            failed = True
    totals = doc["totals"]
    print(
        f"{len(args.reports)} report(s), {totals['instances']} instance(s), {totals['tests']} test(s), "
        f"${totals['billed_usd']:.6f} billed estimate, leaked: {totals['leaked'] or 'none'}"
    )
    return 1 if failed or totals["leaked"] else 0
