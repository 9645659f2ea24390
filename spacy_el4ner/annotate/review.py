"""The review loop behind the web app: hands out tasks one at a time (each annotated when it is
asked for, so it uses every correction made before), writes each answer at once, and feeds
accepted sentences to the running pipeline's demonstration store."""
import logging
import threading
from collections import deque
from typing import Any, Deque, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from spacy.language import Language
from spacy.tokens import Doc

from ..component import EL4NER
from ..errors import Errors
from .db import Database, check_name
from .tasks import ANSWERS, BadAnswer, clean_spans, doc_from_example, input_hash, task_from_doc, task_hash

logger = logging.getLogger("spacy_el4ner")


class UnknownTask(KeyError):
    """A task id that was not handed out (the server answers 404)."""

    def __str__(self) -> str:
        return str(self.args[0])


def find_el4ner(nlp: Language, where: Any = "the pipeline") -> EL4NER:
    """RETURNS the pipeline's el4ner component. RAISES (ValueError): if it has none."""
    for _, proc in nlp.pipeline:
        if isinstance(proc, EL4NER):
            return proc
    raise ValueError(Errors.E403.format(path=where))


def annotate(nlp: Language, pipe: EL4NER, text: str, meta: Dict[str, Any]) -> Dict[str, Any]:
    """Run the pipeline on one text and make its task; ``meta["demos"]`` lists the
    demonstrations the suggestion was made with."""
    doc = nlp.make_doc(text)
    demos: List[str] = []
    for _, proc in nlp.pipeline:
        if proc is pipe:
            units = pipe.predict([doc])
            pipe.set_annotations([doc], units)
            demos = list(dict.fromkeys(d.text for u in units for d in u.demos))
        else:
            doc = proc(doc)
    return task_from_doc(doc, pipe.spans_key, {**meta, "demos": demos})


class Review:
    """One review session over a source of texts.

    nlp: the pipeline (its el4ner component's store grows with every accepted answer).
    db, dataset: where answers go; texts already answered there (or in ``exclude``) are skipped.
    texts: ``(text, meta)`` pairs, read lazily.
    """

    def __init__(
        self, nlp: Language, db: Database, dataset: str, texts: Iterable[Tuple[str, Dict[str, Any]]],
        exclude: Sequence[str] = (), history: int = 10,
    ) -> None:
        self.nlp = nlp
        self.pipe = find_el4ner(nlp)
        self.labels: List[str] = list(self.pipe.labels)
        self.db = db
        self.dataset = check_name(dataset)
        self.session = db.add_session(dataset)
        self.history_size = history
        self._texts: Iterator[Tuple[str, Dict[str, Any]]] = iter(texts)
        self._seen = db.input_hashes(dataset, *exclude)
        self._pending: Dict[str, Dict[str, Any]] = {}  # handed out, not answered
        self._returned: Deque[Dict[str, Any]] = deque()  # tasks given back by a page
        self._retry: Deque[Tuple[str, Dict[str, Any]]] = deque()  # texts whose annotation failed
        self._answered: Dict[str, Dict[str, Any]] = {}  # this session's answers, oldest first
        self._in_store: Dict[str, Doc] = {}  # task id -> the Doc added to the store for it
        self._queue_lock = threading.Lock()
        # the model and the store: no answer may change the store while a suggestion reads it
        self._model_lock = threading.RLock()
        # answers and undos, one at a time (the dataset is written before the store waits for the model)
        self._answer_lock = threading.Lock()

    # -- handing out ---------------------------------------------------------------------------
    def _claim(self) -> Optional[Tuple[str, Dict[str, Any]]]:
        if self._retry:
            return self._retry.popleft()
        for text, meta in self._texts:
            h = input_hash(text)
            if h in self._seen:
                continue
            self._seen.add(h)
            return text, meta
        return None

    def next_task(self) -> Optional[Dict[str, Any]]:
        """The next task (annotated now), or None when the source is done."""
        with self._queue_lock:
            if self._returned:
                task = self._returned.popleft()
                self._pending[task_id(task)] = task
                return task
            claimed = self._claim()
        if claimed is None:
            return None
        try:
            with self._model_lock:
                task = annotate(self.nlp, self.pipe, *claimed)
        except Exception:
            logger.exception("%s: could not annotate %r; it is handed out again next", self.dataset, claimed[0][:60])
            with self._queue_lock:
                self._retry.append(claimed)
            raise
        with self._queue_lock:
            self._pending[task_id(task)] = task
        return task

    # -- answers -----------------------------------------------------------------------------
    def answer(self, tid: Any, answer: Any, spans: Any) -> Dict[str, Any]:
        """Store an answer to a handed-out task, or a new answer to one this session answered
        (an edit). Accepted sentences go into the store at once. RAISES (UnknownTask, BadAnswer)."""
        if answer not in ANSWERS:
            raise BadAnswer(Errors.E409.format(options=", ".join(ANSWERS), value=answer))
        key = str(tid)
        with self._queue_lock:
            task = self._pending.get(key) or self._answered.get(key)
        if task is None:
            raise UnknownTask(Errors.E415.format(id=tid))
        clean = clean_spans(task, spans, self.labels)
        example = {k: v for k, v in task.items() if not k.startswith("_session") and k != "_timestamp"}
        example.update({"spans": clean, "answer": answer, "_task_hash": task_hash(task["_input_hash"], clean)})
        with self._answer_lock:  # one answer at a time: the dataset and the store stay in step
            with self._queue_lock:
                if key not in self._pending and key not in self._answered:  # taken back meanwhile
                    raise UnknownTask(Errors.E415.format(id=tid))
            stored = self.db.save(self.dataset, example, self.session)
            with self._queue_lock:
                self._pending.pop(key, None)
                self._answered.pop(key, None)
                self._answered[key] = stored
            with self._model_lock:  # waits for a suggestion being made to finish reading the store
                self._set_store(key, doc_from_example(self.nlp.vocab, stored) if answer == "accept" else None)
        logger.info("%s: %s %s with %d span(s)", self.dataset, answer, key, len(clean))
        return stored

    def undo(self, tid: Any) -> Dict[str, Any]:
        """Take back this session's answer to a task: it leaves the dataset and the store, and the
        task is handed out again (to the page that asked). RETURNS the task with the spans as answered."""
        key = str(tid)
        with self._answer_lock:
            with self._queue_lock:
                stored = self._answered.pop(key, None)
            if stored is None:
                raise UnknownTask(Errors.E416.format(id=tid))
            self.db.remove(self.dataset, stored["_input_hash"])
            task = {k: v for k, v in stored.items() if k not in ("answer", "_session_id", "_timestamp")}
            with self._queue_lock:
                self._pending[key] = task
            with self._model_lock:
                self._set_store(key, None)
        return task

    def _set_store(self, key: str, doc: Optional[Doc]) -> None:
        """The store holds ``doc`` for this task (or nothing): replaces what an earlier answer added."""
        old = self._in_store.pop(key, None)
        store = self.pipe.store
        if old is not None:
            store.reset([d for d in store.docs if d is not old])
        if doc is not None:
            self.pipe.add_demonstrations([doc])
            self._in_store[key] = doc

    def release(self, tid: Any) -> None:
        """A page gave a task back unanswered (e.g. closed): hand it out again."""
        with self._queue_lock:
            task = self._pending.pop(str(tid), None)
            if task is not None:
                self._returned.append(task)

    # -- state -------------------------------------------------------------------------------
    def history(self) -> List[Dict[str, Any]]:
        """This session's last answers, newest first."""
        with self._queue_lock:
            return list(reversed(list(self._answered.values())))[: self.history_size]

    def counts(self) -> Dict[str, Any]:
        return {"dataset": self.db.counts(self.dataset), "session": len(self._answered), "store": len(self.pipe.store)}


def task_id(task: Dict[str, Any]) -> str:
    return str(task["_input_hash"])
