"""On-disk cache of model responses, so that interrupted runs resume and repeated docs are free."""
import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Optional, Union

logger = logging.getLogger("spacy_el4ner")


class ResponseCache:
    """A key-value store in one SQLite file (safe for several processes), bounded in rows.

    path (Union[str, Path]): The folder for the cache file.
    max_entries (int): The oldest written entries beyond this number are deleted (checked every
        1000 writes; reads do not refresh an entry).
    """

    def __init__(self, path: Union[str, Path], max_entries: int = 1_000_000) -> None:
        self.path = Path(path)
        self.max_entries = max_entries
        self._conn: Optional[sqlite3.Connection] = None
        self._lock = threading.Lock()
        self._writes = 0

    @staticmethod
    def key(*parts: Any) -> str:
        """RETURNS (str): A stable hash of the JSON form of ``parts``."""
        blob = json.dumps(parts, ensure_ascii=False, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode("utf8")).hexdigest()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path / "responses.sqlite"), timeout=60, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS r (k TEXT PRIMARY KEY, v TEXT NOT NULL, t REAL NOT NULL)"
            )
            conn.commit()
            self._conn = conn
        return self._conn

    def get(self, key: str) -> Optional[Any]:
        with self._lock:
            try:
                row = self._db().execute("SELECT v FROM r WHERE k=?", (key,)).fetchone()
            except sqlite3.DatabaseError as err:
                logger.warning("Response cache %s unreadable (%s); ignoring it", self.path, err)
                return None
        return None if row is None else json.loads(row[0])

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            try:
                db = self._db()
                db.execute(
                    "INSERT OR REPLACE INTO r (k, v, t) VALUES (?, ?, ?)",
                    (key, json.dumps(value, ensure_ascii=False), time.time()),
                )
                db.commit()
                self._writes += 1
                if self._writes % 1000 == 0:
                    self._trim(db)
            except sqlite3.DatabaseError as err:
                logger.warning("Response cache %s unwritable (%s)", self.path, err)

    def _trim(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute("SELECT COUNT(*) FROM r").fetchone()
        if count > self.max_entries:
            db.execute(
                "DELETE FROM r WHERE k IN (SELECT k FROM r ORDER BY t ASC LIMIT ?)",
                (count - self.max_entries,),
            )
            db.commit()

    def __len__(self) -> int:
        with self._lock:
            return self._db().execute("SELECT COUNT(*) FROM r").fetchone()[0]
