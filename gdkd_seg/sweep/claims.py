"""Which worker trains which point: one row per point, in the study's DB.

Optuna cannot promise that two workers never evaluate the same grid point:
its ``GridSampler`` hands a point that is still running to a worker that asks
once every point has started, and popping an enqueued trial is a read then a
write, which two SQLite connections can both pass. A point costs hours of
GPU time here, so a worker trains it only after inserting its row into
``gdkd_sweep_claims`` (primary key: study, point): the database lets exactly
one insert through. A claim is taken over only when its holder is dead: a
process on this host that no longer exists, or a heartbeat older than
``grace_s`` (the holder refreshes it every ``heartbeat_s`` while it trains).
"""
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from urllib.parse import quote
from typing import Iterator, NamedTuple, Optional

import sqlalchemy as sa

from ..compat.atomic_write import process_alive

TABLE = 'gdkd_sweep_claims'


class SweepStorageError(RuntimeError):
    """The study storage (``--storage``) cannot be opened or written."""


@contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Turn a failure to open or write the storage at ``url`` (not a
    database URL, an unknown driver, a corrupt or read-only database) into
    one :class:`SweepStorageError` that names it (its password masked)."""
    try:
        yield
    except (ImportError, ValueError, sa.exc.SQLAlchemyError) as err:
        reason = str(getattr(err, 'orig', None) or err.__cause__ or err)
        try:
            password = sa.engine.make_url(url).password
        except sa.exc.ArgumentError:  # no URL, so no password field
            password = None
        if password:  # as decoded and as written in the URL (p%40ss)
            for shown in {password, quote(password, safe='')}:
                url, reason = (text.replace(shown, '***')
                               for text in (url, reason))
        raise SweepStorageError(
            f'--storage {url}: {reason.splitlines()[0]}') from None


class Claim(NamedTuple):
    """A point's row: who trains it, for which trial, last seen when."""
    owner: str
    trial: int
    heartbeat: float


class Claims:
    """Claims on points, stored next to an Optuna study.

    Args:
        url (str): the SQLAlchemy URL of the study's storage.
        heartbeat_s (float): how often a holder refreshes its claim.
        grace_s (float): a claim on another host not refreshed for this long
            is dead.
    """

    def __init__(self,
                 url: str,
                 heartbeat_s: float = 60.0,
                 grace_s: float = 600.0) -> None:
        if grace_s <= heartbeat_s:
            raise ValueError(f'grace_s ({grace_s}) must exceed heartbeat_s '
                             f'({heartbeat_s})')
        self.heartbeat_s, self.grace_s = heartbeat_s, grace_s
        self.host = socket.gethostname()
        self.owner = f'{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}'
        self.engine = sa.create_engine(url, **sqlite_engine_kwargs(url))
        self.table = sa.Table(
            TABLE, sa.MetaData(),
            sa.Column('study', sa.String(512), primary_key=True),
            sa.Column('point', sa.String(512), primary_key=True),
            sa.Column('owner', sa.String(256), nullable=False),
            sa.Column('trial', sa.Integer, nullable=False),
            sa.Column('heartbeat', sa.Float, nullable=False))
        with self.engine.begin() as conn:
            conn.execute(sa.schema.CreateTable(self.table, if_not_exists=True))
            # A write that changes nothing: a read-only database fails here,
            # not after the first point has trained.
            conn.execute(self.table.delete().where(sa.false()))

    def get(self, study: str, point: str) -> Optional[Claim]:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(self.table.c.owner, self.table.c.trial,
                          self.table.c.heartbeat).where(
                              self._key(study, point))).first()
        return None if row is None else Claim(*row)

    def is_alive(self, claim: Claim) -> bool:
        """Whether a claim's holder may still be training."""
        host, pid, _ = claim.owner.rsplit(':', 2)
        if host == self.host:
            return process_alive(int(pid))
        return time.time() - claim.heartbeat < self.grace_s

    def held_elsewhere(self, study: str, point: str) -> bool:
        """A live claim by another worker."""
        claim = self.get(study, point)
        return (claim is not None and claim.owner != self.owner
                and self.is_alive(claim))

    def live_owners(self, study_prefix: str) -> int:
        """How many workers hold live claims in studies named
        ``study_prefix...``."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(self.table.c.owner, self.table.c.trial,
                          self.table.c.heartbeat).where(
                              self.table.c.study.startswith(study_prefix)))
            return len(
                {c.owner
                 for c in map(Claim._make, rows) if self.is_alive(c)})

    def acquire(self, study: str, point: str, trial: int) -> Optional[Claim]:
        """Claim ``point`` for ``trial``.

        Returns:
            Claim | None: None when the point is now ours (or was
            already); else the live claim that holds it. A dead holder's
            claim is taken over (compare and set on its owner and
            heartbeat, so two workers cannot both take it).
        """
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(self.table.insert().values(
                    study=study,
                    point=point,
                    owner=self.owner,
                    trial=trial,
                    heartbeat=now))
            return None
        except sa.exc.IntegrityError:
            pass
        held = self.get(study, point)
        if held is None:  # released in between: try once more
            return self.acquire(study, point, trial)
        if held.owner == self.owner:
            return None
        if self.is_alive(held):
            return held
        with self.engine.begin() as conn:
            taken = conn.execute(self.table.update().where(
                self._key(study, point), self.table.c.owner == held.owner,
                self.table.c.heartbeat == held.heartbeat).values(
                    owner=self.owner, trial=trial, heartbeat=now))
        return None if taken.rowcount == 1 else self.get(study, point)

    def release(self, study: str, point: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.delete().where(
                self._key(study, point), self.table.c.owner == self.owner))

    @contextmanager
    def heartbeat(self, study: str, point: str) -> Iterator[None]:
        """Refresh our claim on ``point`` while the block runs."""
        stop = threading.Event()

        def beat():
            while not stop.wait(self.heartbeat_s):
                with self.engine.begin() as conn:
                    conn.execute(self.table.update().where(
                        self._key(study, point),
                        self.table.c.owner == self.owner).values(
                            heartbeat=time.time()))

        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def _key(self, study: str, point: str):
        return sa.and_(self.table.c.study == study,
                       self.table.c.point == point)


def sqlite_engine_kwargs(url: str) -> dict:
    """Let SQLite writers queue for up to a minute instead of failing with
    'database is locked' when workers commit at the same moment."""
    if url.startswith('sqlite'):
        return dict(connect_args=dict(timeout=60))
    return {}
