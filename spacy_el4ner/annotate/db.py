"""Annotation datasets in SQLite: one row per (dataset, input hash), written in one transaction
per answer, with the session and the time. Answering a text again (an edit) replaces its row."""
import json
import os
import re
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Union

from ..errors import Errors

DEFAULT_DB = Path.home() / ".spacy_el4ner" / "annotations.db"
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, dataset TEXT NOT NULL REFERENCES datasets(name), started REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS examples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset TEXT NOT NULL REFERENCES datasets(name),
    input_hash INTEGER NOT NULL,
    task_hash INTEGER NOT NULL,
    answer TEXT NOT NULL,
    session TEXT NOT NULL,
    created REAL NOT NULL,
    content TEXT NOT NULL,
    UNIQUE (dataset, input_hash)
);
"""


def default_db() -> Path:
    """``$SPACY_EL4NER_DB`` or ``~/.spacy_el4ner/annotations.db``."""
    return Path(os.environ.get("SPACY_EL4NER_DB") or DEFAULT_DB)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(Errors.E404.format(name=name))
    return name


class Database:
    """A SQLite file of datasets. Safe to share between threads: every write is one transaction
    under a lock (and SQLite's own file lock against other processes)."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        with self._lock, self._conn:
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._conn.execute(sql, tuple(params))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return cur

    def _read(self, sql: str, params: Iterable[Any] = ()) -> List[tuple]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    # -- datasets and sessions -------------------------------------------------------------
    def datasets(self) -> List[str]:
        return [r[0] for r in self._read("SELECT name FROM datasets ORDER BY created")]

    def add_dataset(self, name: str) -> None:
        self._write("INSERT OR IGNORE INTO datasets (name, created) VALUES (?, ?)", (check_name(name), time.time()))

    def require(self, name: str) -> None:
        """RAISES (KeyError): if there is no dataset ``name``."""
        if name not in self.datasets():
            raise KeyError(Errors.E405.format(name=name, db=self.path, names=", ".join(self.datasets()) or "none"))

    def add_session(self, dataset: str) -> str:
        self.add_dataset(dataset)
        sid = f"{dataset}-{time.strftime('%Y-%m-%d_%H-%M-%S')}-{uuid.uuid4().hex[:6]}"
        self._write("INSERT INTO sessions (id, dataset, started) VALUES (?, ?, ?)", (sid, dataset, time.time()))
        return sid

    def sessions(self, dataset: str) -> List[str]:
        return [r[0] for r in self._read("SELECT id FROM sessions WHERE dataset = ? ORDER BY started", (dataset,))]

    # -- examples ----------------------------------------------------------------------------
    def save(self, dataset: str, example: Mapping[str, Any], session: str) -> Dict[str, Any]:
        """Write an answered task (one transaction); an answer for the same input replaces the
        earlier one and keeps its place. RETURNS the stored example (with session and time)."""
        now = time.time()
        stored = {**example, "_session_id": session, "_timestamp": int(now)}
        content = json.dumps(stored, ensure_ascii=False)
        self._write(
            "INSERT INTO examples (dataset, input_hash, task_hash, answer, session, created, content) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dataset, input_hash) DO UPDATE SET "
            "task_hash = excluded.task_hash, answer = excluded.answer, session = excluded.session, "
            "created = excluded.created, content = excluded.content",
            (dataset, int(example["_input_hash"]), int(example["_task_hash"]), example["answer"], session, now, content),
        )
        return stored

    def remove(self, dataset: str, in_hash: int) -> bool:
        """Delete the answer for an input. RETURNS whether there was one."""
        return self._write("DELETE FROM examples WHERE dataset = ? AND input_hash = ?", (dataset, int(in_hash))).rowcount > 0

    def examples(self, dataset: str, session: Optional[str] = None) -> List[Dict[str, Any]]:
        sql, params = "SELECT content FROM examples WHERE dataset = ?", [dataset]
        if session is not None:
            sql, params = sql + " AND session = ?", params + [session]
        return [json.loads(r[0]) for r in self._read(sql + " ORDER BY id", params)]

    def input_hashes(self, *datasets: str) -> Set[int]:
        if not datasets:
            return set()
        marks = ",".join("?" * len(datasets))
        return {r[0] for r in self._read(f"SELECT input_hash FROM examples WHERE dataset IN ({marks})", datasets)}

    def counts(self, dataset: str) -> Dict[str, int]:
        rows = self._read("SELECT answer, COUNT(*) FROM examples WHERE dataset = ? GROUP BY answer", (dataset,))
        return {answer: n for answer, n in rows}

    def export(self, dataset: str, path: Union[str, Path]) -> int:
        """Write the dataset as Prodigy-style JSONL (written to a temporary file, then moved into
        place). RETURNS how many examples."""
        self.require(dataset)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        examples = self.examples(dataset)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(tmp, "w", encoding="utf8") as fh:
                for eg in examples:
                    fh.write(json.dumps(eg, ensure_ascii=False) + "\n")
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return len(examples)
