"""The drivers' loop: one JSON list of arguments per stdin line, one marked JSON answer per stdout line."""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable, Mapping
from typing import Any

MARK = "@@dumont@@ "


def serve(steps: Mapping[str, Callable[..., Any]]) -> None:
    for line in sys.stdin:
        args = json.loads(line)
        try:
            answer = {"ok": True, "result": steps[args[0]](*args[1:])}
        except Exception as exc:
            answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        sys.stdout.write(MARK + json.dumps(answer, default=str) + "\n")
        sys.stdout.flush()
