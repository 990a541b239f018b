"""asyncssh, imported without the deprecation warnings its import raises under newer cryptography.

asyncssh names cryptography's DSA classes at import, and cryptography 48+ deprecates DSA with a warning for each use
(five at every emulator start). They are asyncssh's business, not a user's: the filter goes first in the list, so
neither pytest's warnings summary, ``-p no:warnings`` (plain stderr) nor a user's ``filterwarnings = error`` sees them.
Only warnings attributed to asyncssh's own modules are silenced.
"""

from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh(\.|$)")

import asyncssh  # noqa: E402  (after the filter: the warnings are raised while it is imported)

__all__ = ["asyncssh"]
