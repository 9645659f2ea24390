"""On-disk cache of model responses, so that interrupted runs resume and repeated docs are free."""
import gzip
import hashlib
import json
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Dict, Optional, Union

from ..errors import Errors

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
            # adapter content hash -> the name its answers are cached under (see adapter_id)
            conn.execute("CREATE TABLE IF NOT EXISTS a (fp TEXT PRIMARY KEY, id TEXT NOT NULL)")
            conn.commit()
            self._conn = conn
        return self._conn

    def adapter_id(self, adapter: Optional[str]) -> Optional[str]:
        """The name under which the answers of a model with ``adapter`` are cached.

        An adapter is known by its content (``adapter_config.json`` + ``adapter_model.safetensors``),
        not by its folder: a copy elsewhere (``nlp.to_disk`` → ``spacy.load``) reuses the answers,
        and an adapter retrained into the same folder gets new ones. The name is the folder under
        which that content was first seen, so answers cached before contents were recorded stay
        valid; other content that turns up in a recorded folder is named ``FOLDER#<hash>``.

        adapter (Optional[str]): The adapter folder (None: no adapter).
        RETURNS (Optional[str]): None without an adapter; the folder as given when its files are
            missing (loading it will fail and say so).
        """
        if not adapter:
            return None
        digest = _adapter_digest(Path(adapter))
        if digest is None:
            return str(adapter)
        with self._lock:
            try:
                db = self._db()
                row = db.execute("SELECT id FROM a WHERE fp=?", (digest,)).fetchone()
                if row is not None:
                    return str(row[0])
                name = str(adapter)
                if db.execute("SELECT 1 FROM a WHERE id=?", (name,)).fetchone() is not None:
                    name = f"{adapter}#{digest[:16]}"  # the folder held other weights before
                db.execute("INSERT OR IGNORE INTO a (fp, id) VALUES (?, ?)", (digest, name))
                db.commit()
                row = db.execute("SELECT id FROM a WHERE fp=?", (digest,)).fetchone()  # another process may have won
                return str(row[0]) if row is not None else name
            except sqlite3.DatabaseError as err:
                logger.warning("Response cache %s unreadable (%s); caching adapter answers under the folder", self.path, err)
                return f"{adapter}#{digest[:16]}"

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

    def export(self, path: Union[str, Path], since: float = 0.0) -> int:
        """Write the entries written at or after ``since`` (epoch seconds), and every adapter name,
        to a gzipped JSON-lines file that :meth:`import_` reads on another machine.

        RETURNS (int): The number of entries written.
        """
        with self._lock:
            db = self._db()
            adapters = db.execute("SELECT fp, id FROM a ORDER BY id").fetchall()
            rows = db.execute("SELECT k, v, t FROM r WHERE t >= ? ORDER BY t", (since,)).fetchall()
        with gzip.open(path, "wt", encoding="utf8") as f:
            f.write(json.dumps({"el4ner_cache": 1, "adapters": [list(a) for a in adapters], "entries": len(rows)}) + "\n")
            for k, v, t in rows:
                f.write(json.dumps([k, v, t], ensure_ascii=False) + "\n")
        return len(rows)

    def import_(self, path: Union[str, Path]) -> int:
        """Add the entries of a file that :meth:`export` wrote (entries already here are kept).

        Adapter answers are cached under a name that stands for the adapter's weights. An
        imported name that this cache already gives to other weights would serve one adapter
        the other's answers, so the import is refused: import into a cache before it is used
        with those adapter folders.

        RETURNS (int): The number of entries added.
        RAISES (ValueError): For a file that is not such an export, or a conflicting adapter name.
        """
        adapters: Dict[str, str] = {}
        rows = []
        try:
            with gzip.open(path, "rt", encoding="utf8") as f:
                head = json.loads(f.readline())
                is_export = isinstance(head, dict) and head.get("el4ner_cache") == 1
                if is_export:
                    adapters = {str(fp): str(name) for fp, name in head.get("adapters", [])}
                    for line in f:
                        k, v, t = json.loads(line)
                        json.loads(v)  # the stored value must be JSON
                        rows.append((str(k), str(v), float(t)))
        except (OSError, EOFError, ValueError, TypeError) as err:
            raise ValueError(Errors.E306.format(path=path, err=err)) from err
        if not is_export:
            raise ValueError(Errors.E306.format(path=path, err="no el4ner_cache header"))
        with self._lock:
            db = self._db()
            here = dict(db.execute("SELECT fp, id FROM a").fetchall())
            taken = {name: fp for fp, name in here.items()}
            for fp, name in adapters.items():
                if fp not in here and name in taken:
                    raise ValueError(Errors.E307.format(path=path, cache=self.path, name=name))
            db.executemany("INSERT OR IGNORE INTO a (fp, id) VALUES (?, ?)", list(adapters.items()))
            before = db.execute("SELECT COUNT(*) FROM r").fetchone()[0]
            db.executemany("INSERT OR IGNORE INTO r (k, v, t) VALUES (?, ?, ?)", rows)
            db.commit()
            return int(db.execute("SELECT COUNT(*) FROM r").fetchone()[0] - before)

    def __len__(self) -> int:
        with self._lock:
            return self._db().execute("SELECT COUNT(*) FROM r").fetchone()[0]


_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _adapter_digest(folder: Path) -> Optional[str]:
    """RETURNS (Optional[str]): sha256 of the adapter's config and weights; None if either is missing."""
    digest = hashlib.sha256()
    for name in _ADAPTER_FILES:
        path = folder / name
        if not path.is_file():
            return None
        digest.update(name.encode("utf8"))
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
