"""``dumont report``: ``merge`` several jobs' JSON reports into one JSON, Markdown and HTML summary; ``render`` one
report as Markdown or HTML; ``pdf`` through headless Chromium. A file that is not a report is a usage error (2)."""

from __future__ import annotations

import argparse
import sys
from html import escape
from pathlib import Path
from typing import Any

NAME = "report"
HELP = "merge JSON reports (a CI matrix) into one summary, or render one as Markdown, HTML or PDF"
MERGE_HELP = "combine the JSON reports of several jobs (a CI matrix) into one JSON, Markdown and HTML summary"
RENDER_HELP = "render one JSON report as Markdown or HTML (stdout unless -o)"
PDF_HELP = "render one JSON report to PDF through headless Chromium (needs chromium on PATH)"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")

HTML_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:72em;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}</style></head>
<body>{body}</body></html>
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    merge = actions.add_parser("merge", help=MERGE_HELP, description=MERGE_HELP)
    merge.add_argument("reports", nargs="+", type=Path, metavar="JSON", help="reports written by --dumont-json")
    merge.add_argument("-o", "--output", type=Path, default=Path("dumont-report"), help="stem of the outputs")
    render = actions.add_parser("render", help=RENDER_HELP, description=RENDER_HELP)
    render.add_argument("report", type=Path, metavar="JSON", help="a report written by --dumont-json")
    render.add_argument("--format", choices=("markdown", "html"), default="markdown", help="default: markdown")
    render.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    pdf = actions.add_parser("pdf", help=PDF_HELP, description=PDF_HELP)
    pdf.add_argument("report", type=Path, metavar="JSON", help="a report written by --dumont-json")
    pdf.add_argument("-o", "--output", type=Path, default=Path("dumont-report.pdf"), help="the PDF to write")


def run(args: argparse.Namespace) -> int:
    if args.action == "render":
        return _render(args)
    if args.action == "pdf":
        return _pdf(args)
    return _merge(args)


def page(doc: dict[str, Any], title: str) -> str:
    """One report as a standalone HTML page (the summary pytest-html shows, without pytest-html)."""
    from pytest_dumont.reporting import html

    return HTML_PAGE.format(title=escape(title), body="".join(html.summary(doc)))


def _render(args: argparse.Namespace) -> int:
    from pytest_dumont.reporting import jsonreport, markdown

    try:
        doc = jsonreport.read(args.report)
        text = markdown.render(doc) if args.format == "markdown" else page(doc, "pytest-dumont")
        if args.output is None:
            sys.stdout.write(text)
        else:
            jsonreport.write_text(args.output, text)
            print(f"wrote {args.output}")
    except jsonreport.ReportError as exc:
        print(f"dumont report render: {exc}", file=sys.stderr)
        return 2
    return 0


def _pdf(args: argparse.Namespace) -> int:
    import shutil
    import subprocess
    import tempfile

    from pytest_dumont.commands._progress import waiting
    from pytest_dumont.reporting import jsonreport

    try:
        doc = jsonreport.read(args.report)
    except jsonreport.ReportError as exc:
        print(f"dumont report pdf: {exc}", file=sys.stderr)
        return 2
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if browser is None:
        print(
            "dumont report pdf: needs headless Chromium on PATH (apt-get install chromium); without it, "
            "`dumont report render --format html` writes the same page for a browser to print",
            file=sys.stderr,
        )
        return 2
    output = args.output.resolve()
    with tempfile.TemporaryDirectory(prefix="dumont-pdf-") as tmp:
        source = Path(tmp) / "report.html"
        source.write_text(page(doc, "pytest-dumont"), encoding="utf-8")
        output.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", f"--user-data-dir={tmp}/profile",
            "--no-pdf-header-footer", f"--print-to-pdf={output}", source.as_uri(),
        ]  # fmt: skip
        with waiting("printing the report with headless Chromium"):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    if done.returncode != 0 or not output.is_file() or output.stat().st_size == 0:
        tail = (done.stderr or "").strip().splitlines()[-3:]
        print(f"dumont report pdf: Chromium did not write {output}: {' | '.join(tail)}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}")
    return 0


def job_labels(docs: list[dict[str, Any]], paths: list[Path]) -> list[str]:
    """What names each report's job in the merged tables: its ``$GITHUB_JOB`` when those tell the jobs apart (a
    matrix's legs share one), else its file name."""
    jobs = [next((s.get("job") for s in d.get("sessions", []) if s.get("job")), None) for d in docs]
    if all(jobs) and len(set(jobs)) == len(jobs):
        return [str(j) for j in jobs]
    names = [p.stem for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def _merge(args: argparse.Namespace) -> int:
    from pytest_dumont.reporting import html, jsonreport, markdown

    try:
        docs = [jsonreport.read(path) for path in args.reports]
        doc = jsonreport.merge(docs, job_labels(docs, args.reports))
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
