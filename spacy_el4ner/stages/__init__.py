"""The stages of EL4NER. Each takes the Docs, their units and the members; none loads models."""
from .common import Settings
from .extract import extract, extract_spans
from .classify import classify
from .validate import validate
from .retrieve import RandomRetriever, Retriever, SentenceSimRetriever, SpanSimRetriever

__all__ = ["Settings", "extract", "extract_spans", "classify", "validate", "Retriever", "SentenceSimRetriever", "SpanSimRetriever", "RandomRetriever"]
