"""Keeping secrets out of what a run writes: redaction, cassette scrubbing, the secret guard and its end-of-run
check."""
