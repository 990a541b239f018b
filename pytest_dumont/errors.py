"""The one error tree of pytest-dumont.

Every error the plugin raises on purpose is a ``DumontError``. Errors carry context (HTTP status, the API's error
code, the instance id, the last status seen) and never a secret: messages are built from fields we choose, and the
API's own message is passed through ``redact`` before it is kept.

``ConfigurationError`` means one thing: a setting the user can fix (an option's value from the command line, the ini
file or the environment; an unreadable key file; live mode without a key), found before anything is spent. Resolving
the settings raises it for the plugin and the ``dumont`` commands alike (``session.settings.option_value``): the
plugin shows it as pytest's usage error, a command exits 2 with its message. It stays a class of its own rather than
folded into ``DumontError`` so that callers (and a team's own conftest) can tell "fix your configuration" from a
failure of the API, an instance or a teardown. Marker arguments are checked by pytest's own usage error at
collection.

    DumontError
    ├── ConfigurationError            a setting the user can fix (option, ini, environment, key file); nothing spent
    │   └── MissingApiKey             live mode without VAST_API_KEY
    ├── VastApiError                  the API answered with an error (status, error code, msg)
    │   ├── AuthenticationFailed      401/403, or 404 with error "auth_error"
    │   ├── OfferUnavailable          "no_such_ask" in a 400/404/410: the offer was taken
    │   ├── InstanceNotFound          "no_such_instance"/"not_found": the instance is gone
    │   ├── RateLimited               429, after the retries ran out
    │   ├── ServerError               5xx, after the retries ran out
    │   └── CreateRefused             a create answered an error yet made an instance (``contract``): destroy it
    ├── VastConnectionError           no HTTP answer at all (refused, reset, timed out)
    │   └── RequestNotSent            the connection never opened: the server never saw the request
    ├── ProvisioningError             an instance could not be made ready (instance destroyed)
    │   ├── NoMatchingOffer           the search found nothing; says which filters ruled offers out
    │   ├── InstanceFailedToBoot      exited/offline/error status_msg, or the boot deadline passed
    │   ├── SSHNotReady               running, but SSH never answered within its deadline
    │   ├── InstancePreempted         an interruptible instance was outbid: booting, held by a test, stopped (destroyed)
    │   ├── BidTooLow                 a bid under its machine's minimum bid at create (the stopped instance destroyed)
    │   └── OffersExhausted           every offer tried failed; lists why each one did
    ├── SSHCommandError               a command on the instance failed (exit code, stderr tail)
    ├── HostKeyChanged                a host:port this session trusts presented another host key
    ├── BudgetExceeded                --dumont-budget would be (or was about to be) passed: refused or stopped
    ├── TestTimeExceeded              a test ran past --dumont-max-minutes: stopped, its instance destroyed
    ├── WatchdogError                 the watchdog process did not confirm its start or a registration
    ├── LedgerFileError               the ledger of live instances is corrupt or locked: it was left untouched
    ├── LockTimeout                   a state file's lock stayed held past its deadline (names the holder's pid)
    ├── WaitTimedOut                  a wait passed its deadline (its caller raises its own error from it)
    ├── CassetteError                 a cassette is missing, unreadable, or does not hold what the run asked for
    │   └── NetworkBlocked            a replayed test tried to reach the network
    ├── ReportError                   a report cannot be written or read (names the path)
    ├── IdleTimeout                   the GPU did not stay idle for a whole window before the deadline
    ├── SnapshotError                 a snapshot, restore or snapshot store failed; names the file or setting
    │   ├── SnapshotMismatch          a restored file is missing or its MD5 differs from the manifest
    │   ├── RestoreFailed             extracting a snapshot on the instance failed (a full disk, a bad path)
    │   └── SnapshotStoreError        the store refused (bad credentials, no such bucket or snapshot)
    └── TeardownError                 an instance could not be confirmed destroyed: go and look
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from pytest_dumont.secrets.redact import redact, register_secret

__all__ = ["redact", "register_secret"]  # re-exported: the error tree redacts, and callers long imported these here


class DumontError(Exception):
    """Base of every error pytest-dumont raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigurationError(DumontError):
    """A setting the user can fix is wrong (an option, ini value, environment variable or key file); nothing was
    spent. The message names the setting, where its value came from and what it expects."""


class MissingApiKey(ConfigurationError):
    """Live mode was asked for but no API key is configured."""

    def __init__(self, variable: str = "VAST_API_KEY") -> None:
        super().__init__(
            f"live mode needs a Vast.ai API key: set the environment variable {variable} "
            "(or --dumont-api-key-file PATH), or run without -m real_gpu to replay from cassettes, "
            "or with --dumont-mode=emulator to use the bundled emulator"
        )
        self.variable = variable


class VastApiError(DumontError):
    """The Vast.ai API answered with an error."""

    def __init__(self, status: int, error: str | None, msg: str | None, *, method: str = "", path: str = "") -> None:
        self.status = status
        self.error = error
        self.msg = redact(msg) if msg else None
        self.method = method
        self.path = path
        where = f"{method} {path}: " if method else ""
        code = f" {error}" if error else ""
        detail = f": {self.msg}" if self.msg else ""
        super().__init__(f"{where}HTTP {status}{code}{detail}")


class AuthenticationFailed(VastApiError):
    """The API rejected the key (401/403, or 404 with ``auth_error``)."""

    def __init__(self, status: int, error: str | None, msg: str | None, *, method: str = "", path: str = "") -> None:
        super().__init__(status, error, msg, method=method, path=path)
        self.args = (
            f"{self.args[0]}. The Vast.ai API rejected the key in VAST_API_KEY: check that the variable holds "
            "a current key (console: Account > API keys); the key itself is never printed",
        )


class OfferUnavailable(VastApiError):
    """The offer is no longer rentable (``no_such_ask``): someone else took it."""


class InstanceNotFound(VastApiError):
    """The instance does not exist (any more)."""


class RateLimited(VastApiError):
    """HTTP 429 after the retry policy gave up."""

    def __init__(
        self,
        status: int,
        error: str | None,
        msg: str | None,
        *,
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, error, msg, method=method, path=path)
        self.retry_after = retry_after


class ServerError(VastApiError):
    """HTTP 5xx after the retry policy gave up."""


class CreateRefused(VastApiError):
    """A create answered ``success: false`` and still named a ``new_contract``: Vast made the instance anyway (a bid
    below the minimum bid makes it stopped), and it bills its disk until someone destroys it."""

    def __init__(
        self, status: int, error: str | None, msg: str | None, *, contract: int, method: str = "", path: str = ""
    ) -> None:
        super().__init__(status, error, msg, method=method, path=path)
        self.contract = contract
        self.args = (f"{self.args[0]}; instance {contract} was made anyway",)


class VastConnectionError(DumontError):
    """No HTTP answer: connection refused or reset, or the request timed out."""


class ProvisioningError(DumontError):
    """An instance could not be made ready; whatever was created has been destroyed."""

    def __init__(
        self,
        message: str,
        *,
        instance_id: int | None = None,
        last_status: str | None = None,
        status_msg: str | None = None,
    ) -> None:
        self.instance_id = instance_id
        self.last_status = last_status
        self.status_msg = redact(status_msg) if status_msg else None
        super().__init__(message)


class NoMatchingOffer(ProvisioningError):
    """The search returned no offer; ``reasons`` says which filters ruled offers out."""

    def __init__(self, filters: str, reasons: Sequence[str] = ()) -> None:
        self.filters = filters
        self.reasons = tuple(reasons)
        lines = [f"no Vast.ai offer matches {filters}"]
        lines += [f"  - {reason}" for reason in self.reasons]
        lines.append("Relax a filter (--dumont-max-dph, --dumont-min-disk, --dumont-min-reliability, --dumont-gpu).")
        super().__init__("\n".join(lines))


class InstanceFailedToBoot(ProvisioningError):
    """The instance exited, went offline, reported an error, or missed its boot deadline."""


class SSHNotReady(ProvisioningError):
    """The instance is running but SSH did not answer before its deadline."""


class InstancePreempted(ProvisioningError):
    """Vast.ai took an interruptible instance for a higher bid: while it booted, while a test held it, or while it was
    stopped (its start is then refused below the new minimum bid, ``refusal`` holds Vast's answer).

    The instance has been destroyed, and the session's pool never hands it to another test.
    """

    def __init__(
        self,
        instance_id: int,
        bid: float,
        when: str,
        *,
        status: str,
        status_msg: str | None,
        min_bid: float | None = None,
        refusal: str | None = None,
    ) -> None:
        self.bid = bid
        self.min_bid = min_bid
        if refusal is None:
            said = f", status_msg {redact(status_msg)!r}" if status_msg else ""
            how = f"Vast.ai stopped it for a higher bid (actual_status {status}, intended_status stopped{said})"
        else:
            how = f"a higher bid took its machine and Vast.ai refused to start it again ({redact(refusal)})"
        floor = f"Its machine's minimum bid is now ${min_bid:.4f}/h: bid more" if min_bid is not None else "Bid more"
        super().__init__(
            f"interruptible instance {instance_id} (bid ${bid:.4f}/h) was preempted {when}: {how}; it has been "
            f"destroyed. {floor} (dumont_offer(bid=...) or --dumont-bid) or rent on-demand (no bid) for tests that "
            "must not be interrupted",
            instance_id=instance_id,
            last_status=status,
            status_msg=status_msg,
        )


class BidTooLow(ProvisioningError):
    """Vast.ai refused a create's bid, below its machine's minimum bid, and made the instance stopped; that instance
    has been destroyed.

    The search leaves out offers whose minimum bid is above the bid, so this one's rose between the search and the
    create. The provisioner then tries the next offer: each is another machine, at or under the bid when searched.
    """

    def __init__(
        self,
        instance_id: int,
        offer_id: int,
        bid: float,
        min_bid: float | None,
        refusal: str,
        *,
        status: str | None = None,
        status_msg: str | None = None,
    ) -> None:
        self.offer_id = offer_id
        self.bid = bid
        self.min_bid = min_bid
        floor = f"${min_bid:.4f}/h" if min_bid is not None else "above it"
        super().__init__(
            f"Vast.ai refused the bid ${bid:.4f}/h for offer {offer_id}: its machine's minimum bid is now {floor}, "
            f"raised by a higher bid after the search ({redact(refusal)}); the stopped instance {instance_id} it made "
            "anyway has been destroyed. Bid more (dumont_offer(bid=...) or --dumont-bid) or rent on-demand (no bid)",
            instance_id=instance_id,
            last_status=status,
            status_msg=status_msg,
        )


class OffersExhausted(ProvisioningError):
    """Every offer tried failed; ``failures`` holds one error per attempt."""

    def __init__(self, failures: Iterable[DumontError]) -> None:
        self.failures = tuple(failures)
        lines = [f"gave up after {len(self.failures)} offer(s); every instance made was destroyed:"]
        lines += [f"  {i}. {type(f).__name__}: {f.message}" for i, f in enumerate(self.failures, 1)]
        last = self.failures[-1] if self.failures else None
        super().__init__(
            "\n".join(lines),
            instance_id=getattr(last, "instance_id", None),
            last_status=getattr(last, "last_status", None),
            status_msg=getattr(last, "status_msg", None),
        )


class SSHCommandError(DumontError):
    """A command run over SSH exited non-zero."""

    def __init__(self, command: str, exit_code: int, stderr: str) -> None:
        self.command = redact(command)
        self.exit_code = exit_code
        self.stderr = redact(stderr)
        tail = "\n".join(self.stderr.strip().splitlines()[-5:])
        super().__init__(f"command {self.command!r} exited {exit_code}" + (f":\n{tail}" if tail else ""))


class HostKeyChanged(DumontError):
    """A host:port this session already trusts presented a different host key: someone else may be answering."""

    def __init__(self, host: str, known: str, presented: str, known_hosts: object) -> None:
        self.host = host
        self.known_fingerprint = known
        self.presented_fingerprint = presented
        super().__init__(
            f"host key for {host} changed: this session trusted {known} but the server presented {presented}; "
            f"refusing to connect (trusted key recorded in {known_hosts}). If that host:port now belongs to a new "
            "instance, the old one's key is forgotten when it is destroyed"
        )


class BudgetExceeded(DumontError):
    """Spending would pass ``--dumont-budget``: provisioning was refused, or the session's instances destroyed."""


class TestTimeExceeded(DumontError):
    """A test ran past ``--dumont-max-minutes``: it was stopped and its instance destroyed."""

    __test__ = False  # not a pytest test class, whatever its name says


class WatchdogError(DumontError):
    """The watchdog process did not confirm its start or a registration: nothing is rented without it."""


class LedgerFileError(DumontError):
    """The ledger file of live instances is corrupt or locked; it is never overwritten or dropped."""


class SnapshotError(DumontError):
    """A snapshot could not be taken, stored, restored or verified; the message names the file or setting."""


class SnapshotMismatch(SnapshotError):
    """A restored file is missing or its MD5 is not the manifest's: the snapshot did not survive the trip."""

    def __init__(self, path: str, expected: str, found: str | None, snapshot: str) -> None:
        self.path = path
        self.expected = expected
        self.found = found
        what = "is missing" if found is None else f"has MD5 {found}, the manifest says {expected}"
        super().__init__(f"restored file {path} {what} (snapshot {snapshot})")


class RestoreFailed(SnapshotError):
    """Extracting a snapshot on the instance failed (a full disk, a read-only or missing path)."""


class SnapshotStoreError(SnapshotError):
    """The store refused (bad credentials, no such bucket or snapshot); names the setting, never the secret."""


class TeardownError(DumontError):
    """An instance could not be confirmed destroyed. It may still be billing: check the console."""

    def __init__(self, instance_ids: Iterable[int], cause: str) -> None:
        self.instance_ids = tuple(instance_ids)
        self.cause = cause
        ids = ", ".join(str(i) for i in self.instance_ids)
        what = f"instance(s) {ids} were destroyed" if ids else "every instance was destroyed"
        super().__init__(
            f"could not confirm that {what} ({cause}); they may still be billing: destroy them with "
            "`dumont reap` (the ledger file lists them), `vastai destroy instance <id>` or in the console"
        )


class RequestNotSent(VastConnectionError):
    """The connection could not be opened, so the server never saw the request: safe to retry anything."""


class LockTimeout(DumontError):
    """A state file's lock stayed held past the deadline; ``holder`` is the pid written by whoever holds it."""

    def __init__(self, path: Path, timeout: float, holder: str) -> None:
        super().__init__(f"{path} stayed locked for {timeout:g} s (held by pid {holder})")
        self.path = path
        self.timeout = timeout
        self.holder = holder


class WaitTimedOut(DumontError):
    """A wait passed its deadline before its probe answered; callers raise their own error, with their context."""

    def __init__(self, waited: float, attempts: int, last_error: BaseException | None) -> None:
        super().__init__(f"gave up after {waited:.1f} s and {attempts} attempt(s)")
        self.waited = waited
        self.attempts = attempts
        self.last_error = last_error


class CassetteError(DumontError):
    """A cassette is missing, unreadable, of another format, or does not hold what the run asked for."""


class NetworkBlocked(CassetteError):
    """A replayed test tried to reach the network (HTTP or SSH): replay must answer everything from cassettes."""


class ReportError(DumontError):
    """A report that cannot be written or read; the message names the path and what to do."""


class IdleTimeout(DumontError):
    """The GPU did not stay idle for a whole window before the watcher's deadline."""
