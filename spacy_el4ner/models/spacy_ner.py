"""A spaCy pipeline as an ensemble member: its entities (or a spancat group) join the extraction
union and vote in classification; it never answers prompts and never verifies."""
import logging
import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..errors import Errors

logger = logging.getLogger("spacy_el4ner")

# (start char, end char, label, probability) of one predicted span
SpanPrediction = Tuple[int, int, str, float]


class SpacyNER:
    """A trained spaCy pipeline (a path or an installed package) that predicts entities.

    pipeline (str): Package name or folder of a pipeline that sets ``doc.ents`` (or, with
        ``spans_key``, a ``spancat`` group).
    label_map (Dict[str, str]): Its labels -> the component's labels (e.g. PERSON -> person); its
        labels not in the map are ignored. Empty: its labels are used as they are.
    score (float): The probability its vote gets where the pipeline gives none (``doc.ents``).
    spans_key (Optional[str]): Read ``doc.spans[spans_key]`` (spancat) instead of ``doc.ents``; its
        ``scores`` attribute gives each span's probability.
    batch_size (int): Texts per ``nlp.pipe`` batch.
    """

    def __init__(
        self,
        pipeline: str,
        label_map: Optional[Mapping[str, str]] = None,
        score: float = 0.9,
        spans_key: Optional[str] = None,
        batch_size: int = 64,
    ) -> None:
        if not isinstance(pipeline, str) or not pipeline:
            raise ValueError(Errors.E011.format(key="pipeline", rule="a package name or folder", value=pipeline))
        label_map = dict(label_map or {})
        bad = {k: v for k, v in label_map.items() if not (isinstance(k, str) and k and isinstance(v, str) and v)}
        if bad:
            raise ValueError(Errors.E011.format(key="label_map", rule="a table of pipeline label = \"our label\"", value=bad))
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 < score <= 1.0:
            raise ValueError(Errors.E011.format(key="score", rule="a probability in (0, 1]", value=score))
        self.name = pipeline
        self.pipeline = pipeline
        self.label_map = label_map
        self.score_default = float(score)
        self.spans_key = spans_key
        self.batch_size = batch_size
        self._nlp: Any = None
        self._stats: Dict[str, int] = {"calls": 0, "texts": 0, "forward_passes": 0, "prompt_tokens": 0, "generated_tokens": 0, "cache_hits": 0}

    @property
    def stats(self) -> Dict[str, int]:
        return dict(self._stats)

    @property
    def nlp(self) -> Any:
        """The pipeline, loaded on first use. RAISES ModelLoadError: E190 when it cannot be loaded."""
        if self._nlp is None:
            import spacy

            from .protocol import ModelLoadError

            try:
                self._nlp = spacy.load(self.pipeline)
            except (OSError, IOError, ValueError) as err:
                raise ModelLoadError(Errors.E190.format(name=self.pipeline, err=err)) from err
            self.check_labels()
        return self._nlp

    def source_labels(self) -> List[str]:
        """The labels the loaded pipeline predicts (its NER and entity rulers, or its span
        categorizers when ``spans_key`` is set)."""
        from spacy.pipeline import EntityRecognizer, EntityRuler, SpanCategorizer, SpanRuler

        kinds = (SpanCategorizer,) if self.spans_key is not None else (EntityRecognizer, EntityRuler, SpanRuler)
        labels: List[str] = []
        for _, pipe in self.nlp.pipeline:
            if isinstance(pipe, kinds):
                labels.extend(getattr(pipe, "labels", ()) or ())
        return list(dict.fromkeys(labels))

    def check_labels(self, ours: Sequence[str] = ()) -> None:
        """RAISES ValueError: E191 when the label map names a label the pipeline does not predict,
        or (with ``ours``) maps to a label that is not one of the component's."""
        theirs = self.source_labels() if self._nlp is not None else []
        unknown = sorted(set(self.label_map) - set(theirs)) if theirs else []
        if unknown:
            raise ValueError(Errors.E191.format(name=self.pipeline, side="the pipeline's", labels=unknown, known=theirs))
        if ours:
            targets = set(self.label_map.values()) if self.label_map else set()
            missing = sorted(targets - set(ours))
            if missing:
                raise ValueError(Errors.E191.format(name=self.pipeline, side="the component's", labels=missing, known=list(ours)))

    def predict(self, texts: Sequence[str]) -> List[List[SpanPrediction]]:
        """Its spans in each text, with our labels and a probability (unmapped labels left out)."""
        self._stats["calls"] += 1
        self._stats["texts"] += len(texts)
        out: List[List[SpanPrediction]] = []
        for doc in self.nlp.pipe(list(texts), batch_size=self.batch_size):
            if self.spans_key is not None:
                group = doc.spans.get(self.spans_key, [])
                scores = list(getattr(group, "attrs", {}).get("scores", [])) if len(group) else []
                spans = [(s, float(scores[i]) if i < len(scores) else self.score_default) for i, s in enumerate(group)]
            else:
                spans = [(e, self.score_default) for e in doc.ents]
            found: List[SpanPrediction] = []
            for span, p in spans:
                label = self.label_map.get(span.label_, None) if self.label_map else span.label_
                if label is None:
                    continue
                found.append((span.start_char, span.end_char, label, min(1.0, max(0.0, p))))
            out.append(found)
        return out

    def generate(self, prompts: Sequence[Any], **kwargs: Any) -> List[str]:
        raise TypeError(Errors.E192.format(name=self.pipeline))

    def score(self, prompts: Sequence[Any], continuations: Sequence[Sequence[str]]) -> List[List[float]]:
        raise TypeError(Errors.E192.format(name=self.pipeline))


def save_spacy_members(members: Mapping[str, Any], path: Path) -> None:
    """Write the pipeline of every spaCy member to ``path / <member name>`` (``nlp.to_disk``)."""
    for name, model in members.items():
        if not isinstance(model, SpacyNER):
            continue
        target = path / _slug(name)
        if Path(model.pipeline).resolve() == target.resolve():
            continue
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        model.nlp.to_disk(target)


def load_spacy_members(members: Mapping[str, Any], path: Path) -> None:
    """Point every spaCy member at its copy under ``path``, where ``save_spacy_members`` wrote one."""
    if not path.is_dir():
        return
    for name, model in members.items():
        copy = path / _slug(name)
        if isinstance(model, SpacyNER) and (copy / "config.cfg").is_file():
            model.pipeline = str(copy)
            model._nlp = None


def _slug(name: str) -> str:
    from .adapters import _slug as slug

    return slug(name)
