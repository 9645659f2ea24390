"""spacy-el4ner: NER with an ensemble of small local LLMs (EL4NER) as a spaCy component."""
from .component import EL4NER, make_el4ner
from .models.hf import HFModel
from .models.protocol import Embedder, Model, ModelLoadError
from .similarity import HFEncoder, span_sim
from .store import DemoStore, StoreError

__version__ = "0.1.0"
__all__ = ["EL4NER", "make_el4ner", "HFModel", "HFEncoder", "Model", "Embedder", "ModelLoadError", "DemoStore", "StoreError", "span_sim"]
