"""Where the session's timings and cost are shown: the terminal now; HTML, JSON and CI summaries build on it."""
