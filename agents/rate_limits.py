"""Send rate limits shared by every worker and process: per organization, channel and mailbox.

Counters live in Redis (the ``limits`` library's storage) when REDIS_URL is set. The embedded default has no
Redis, so it uses ``SQLiteStorage`` below: a small ``limits`` storage on a SQLite file under VAR_DIR, shared by
every process on the machine (web, worker, beat) through SQLite's write lock. No Django model is involved.

Strategy: moving window (``limits`` "moving window"). A fixed window lets a mailbox send its whole daily cap
just before midnight and again just after, twice the cap within minutes, which is exactly what hurts a
warming-up mailbox; a moving window holds "at most N in any hour/day", and its oldest entry tells the exact
time a slot frees (the retry time). It stores one timestamp per send, bounded by the cap (≤ 500 a day).

Keys are our own and do not include the amount (``RateLimitItem.key_for`` would): a mailbox whose daily cap
warm-up raises from 20 to 25 keeps its last 24 hours of sends instead of starting a fresh window.
"""

import datetime as dt
import functools
import os
import sqlite3
import threading
import time
from urllib.parse import urlsplit

import limits
from django.conf import settings
from limits.storage import MovingWindowSupport, Storage, storage_from_string

from agents.models import Message

# Provider-side ceilings per channel across all organizations (Twilio long codes: about 1 message a second).
CHANNEL_RATES = {Message.Channel.EMAIL: "600/minute", Message.Channel.SMS: "60/minute"}

# Every key starts with this; tests sharing one Redis give each run its own namespace.
KEY_NAMESPACE = "rex"

Limit = tuple[str, str]  # (key, rate such as "25/minute" or "1/60 seconds")


class SQLiteStorage(Storage, MovingWindowSupport):
    """A ``limits`` storage on one SQLite file: shared between processes on one machine (the embedded default).

    Only the moving window is used by REX; the fixed-window methods exist because the base class requires them.
    """

    STORAGE_SCHEME = ["rexsqlite"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = urlsplit(uri or "").path or ":memory:"
        self._local = threading.local()

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _db(self) -> sqlite3.Connection:
        # One connection per process and thread: a connection inherited through fork (Celery prefork) is not reused.
        if getattr(self._local, "pid", None) != os.getpid():
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # counters: losing the last instant on power loss is fine
            db.execute(
                "CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL, expires_at REAL NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS hits_key_at ON hits (key, at)")
            db.execute("CREATE INDEX IF NOT EXISTS hits_expires ON hits (expires_at)")
            self._local.db, self._local.pid = db, os.getpid()
        return self._local.db

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        db, now = self._db(), time.time()
        db.execute("BEGIN IMMEDIATE")  # the write lock: check and insert are one step for every process
        try:
            db.execute("DELETE FROM hits WHERE expires_at <= ?", (now,))
            (count,) = db.execute("SELECT COUNT(*) FROM hits WHERE key = ? AND at > ?", (key, now - expiry)).fetchone()
            allowed = count + amount <= limit
            if allowed:
                db.executemany("INSERT INTO hits VALUES (?, ?, ?)", [(key, now, now + expiry)] * amount)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return allowed

    def release_entry(self, key: str) -> None:
        """Give back the newest slot of ``key`` (a send refused by a later limit takes none)."""
        db = self._db()
        db.execute("DELETE FROM hits WHERE rowid = (SELECT MAX(rowid) FROM hits WHERE key = ?)", (key,))
        db.commit()

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = time.time()
        sql = "SELECT MIN(at), COUNT(*) FROM (SELECT at FROM hits WHERE key = ? AND at > ? ORDER BY at DESC LIMIT ?)"
        oldest, count = self._db().execute(sql, (key, now - expiry, limit)).fetchone()
        return (oldest, count) if count else (now, 0)

    # Fixed-window counters (unused by REX; kept minimal and correct).
    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        db, now = self._db(), time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            if self.get_expiry(key) <= now:
                db.execute("DELETE FROM hits WHERE key = ?", (key,))
            db.executemany("INSERT INTO hits VALUES (?, ?, ?)", [(key, now, now + expiry)] * amount)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return self.get(key)

    def get(self, key: str) -> int:
        sql = "SELECT COUNT(*) FROM hits WHERE key = ? AND expires_at > ?"
        return self._db().execute(sql, (key, time.time())).fetchone()[0]

    def get_expiry(self, key: str) -> float:
        (first,) = self._db().execute("SELECT MIN(expires_at) FROM hits WHERE key = ?", (key,)).fetchone()
        return first if first is not None else time.time()

    def check(self) -> bool:
        return self._db().execute("SELECT 1").fetchone() == (1,)

    def reset(self) -> int | None:
        return self._db().execute("DELETE FROM hits").rowcount

    def clear(self, key: str) -> None:
        self._db().execute("DELETE FROM hits WHERE key = ?", (key,))


def storage_uri() -> str:
    if settings.REDIS_URL:
        return settings.REDIS_URL
    return f"rexsqlite://{settings.VAR_DIR / 'rate_limits.sqlite3'}"


@functools.cache
def _storage_for(uri: str) -> Storage:
    return storage_from_string(uri)


def storage() -> Storage:
    return _storage_for(storage_uri())


def rate_limits_reset() -> None:
    """Forget every counter (tests; an operator after a misconfiguration)."""
    storage().reset()


def _window(key: str, rate: str) -> tuple[int, int, float, int]:
    """(amount, expiry seconds, window start, hits in the window) for one limit."""
    item = limits.parse(rate)
    start, count = storage().get_moving_window(key, item.amount, item.get_expiry())
    return item.amount, item.get_expiry(), start, count


def _retry_at(*, start: float, expiry: int, now: dt.datetime) -> dt.datetime:
    # The oldest send in the window leaves it at start + expiry; that frees a slot.
    return max(now, dt.datetime.fromtimestamp(start + expiry, tz=dt.UTC))


def _release(key: str) -> None:
    store = storage()
    if isinstance(store, SQLiteStorage):
        store.release_entry(key)
    else:  # limits' Redis moving window is a list of timestamps, newest first (LPUSH)
        store.get_connection().lpop(store.prefixed_key(key))


def consume(limits_: list[Limit], *, now: dt.datetime) -> tuple[bool, dt.datetime | None, str]:
    """Take one slot from every limit, or from none when one is full; (allowed, retry_at, reason).

    Each take is one atomic check-and-add in the store; when a limit is full, the slots already taken
    for this send are given back, so a refused send counts against nothing. Most sends pass every
    limit, so this costs one round trip per limit instead of a check and a take.
    """
    taken: list[str] = []
    for key, rate in limits_:
        item = limits.parse(rate)
        if storage().acquire_entry(key, item.amount, item.get_expiry()):
            taken.append(key)
            continue
        for done in taken:
            _release(done)
        _, expiry, start, _ = _window(key, rate)
        return False, _retry_at(start=start, expiry=expiry, now=now), f"{key} over {rate}"
    return True, None, ""


def _mailbox_key(mailbox_id: int) -> str:
    return f"{KEY_NAMESPACE}:mailbox:{mailbox_id}"


def _organization_key(organization_id: int) -> str:
    return f"{KEY_NAMESPACE}:org:{organization_id}:minute"


def counters_forget(*, mailbox_ids=(), organization_ids=()) -> None:
    """Start these mailboxes' and organizations' counters at zero. For rows just created: a database whose
    transaction was rolled back (or that was recreated) hands out the same ids again, while the counters live
    in Redis or their own file and would still hold the old rows' sends."""
    store = storage()
    for mailbox_id in mailbox_ids:
        for window in ("gap", "hour", "day"):
            store.clear(f"{_mailbox_key(mailbox_id)}:{window}")
    for organization_id in organization_ids:
        store.clear(_organization_key(organization_id))


def message_limits(message: Message) -> list[Limit]:
    """The limits one send of ``message`` counts against, most contended first."""
    result: list[Limit] = []
    mailbox = message.mailbox
    if mailbox is not None:
        key = _mailbox_key(mailbox.pk)
        if mailbox.min_gap_seconds:
            result.append((f"{key}:gap", f"1/{mailbox.min_gap_seconds} seconds"))
        result += [(f"{key}:hour", f"{mailbox.hourly_cap}/hour"), (f"{key}:day", f"{mailbox.daily_cap}/day")]
    result.append((_organization_key(message.organization_id), f"{message.organization.sends_per_minute}/minute"))
    if message.channel in CHANNEL_RATES:
        result.append((f"{KEY_NAMESPACE}:channel:{message.channel}:minute", CHANNEL_RATES[message.channel]))
    return result


def send_allowed(*, message: Message, now: dt.datetime) -> tuple[bool, dt.datetime | None, str]:
    """May ``message`` go out now? Takes the slots when it may; otherwise says when to try again and why."""
    return consume(message_limits(message), now=now)
