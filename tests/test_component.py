"""The el4ner component with scripted fake members (and once with a tiny random HF model)."""
import spacy
import pytest
from spacy.language import Language
from spacy.tokens import Span
from spacy.training import Example

from spacy_el4ner import EL4NER, DemoStore
from spacy_el4ner.stages.retrieve import SpanSimRetriever

from conftest import fake_config as config, FakeModel, HashEmbedder, TunedModel, extracts, make_doc

LABELS = ["PER", "ORG", "LOC"]
GOLD = {"Tim Cook": "PER", "Apple": "ORG", "Paris": "LOC", "Angela Merkel": "PER", "Berlin": "LOC", "Google": "ORG"}
TEXT = "Tim Cook of Apple met Angela Merkel in Berlin and Paris."


def two_members():
    """a: finds the gold names; b: also finds "Tim" and "Google"; Google fails validation."""
    return {
        "a": FakeModel("a", extracts(list(GOLD)), labels=dict(GOLD, Tim="PER"), yes={"Google": 0.1}),
        "b": FakeModel("b", extracts(["Tim", "Berlin", "Google", "Apple"]), labels=dict(GOLD, Tim="PER"), yes={"Google": 0.1}),
    }


@pytest.fixture
def script(scripts):
    return scripts("two", two_members)




def examples(nlp, labelled_docs):
    return [Example(nlp.make_doc(d.text), d) for d in labelled_docs]


def ents(doc):
    return [(e.text, e.label_) for e in doc.ents]


def check_ents(doc, labels):
    toks = [i for e in doc.ents for i in range(e.start, e.end)]
    assert len(toks) == len(set(toks)), "ents overlap"
    assert all(e.label_ in labels for e in doc.ents)
    assert list(doc.ents) == sorted(doc.ents, key=lambda e: e.start)


def test_add_pipe_with_labels(nlp, script):
    pipe = nlp.add_pipe("el4ner", config=config(script, labels=LABELS))
    assert isinstance(pipe, EL4NER)
    assert pipe.labels == tuple(LABELS)
    doc = nlp(TEXT)
    assert ents(doc) == [("Tim Cook", "PER"), ("Apple", "ORG"), ("Angela Merkel", "PER"), ("Berlin", "LOC"), ("Paris", "LOC")]
    check_ents(doc, LABELS)


def test_finetune_prompt_member_types_with_its_extracted_labels(nlp, scripts):
    """A CLLMFS member asked with its per-label prompt votes the label it found a span under (it
    is never prompted to classify) and abstains elsewhere; the details keep what it extracted."""
    tuned = {}

    def members():
        tuned["t"] = TunedModel("t", {"PER": ["Tim Cook"], "LOC": ["Berlin", "Paris"]})
        return {"t": tuned["t"], "a": FakeModel("a", extracts(["Apple", "Berlin"]), labels={"Apple": "ORG", "Berlin": "ORG"})}

    name = scripts("tuned", members)
    nlp.add_pipe("el4ner", config=config(name, labels=LABELS, settings={"t": {"prompt": "fine-tuned"}}, validate=None))
    doc = nlp(TEXT)
    # Berlin: t (LOC) and a (ORG) tie, the first member wins; Apple: t abstains, a decides
    assert ents(doc) == [("Tim Cook", "PER"), ("Apple", "ORG"), ("Berlin", "LOC"), ("Paris", "LOC")]
    assert {kind for kind, _ in tuned["t"].calls} == {"generate"}
    by_text = {d["text"]: d for d in doc.spans["el4ner"].attrs["details"]}
    assert by_text["Berlin"]["extracted_as"] == {"t": ["LOC"]} and by_text["Apple"]["extracted_as"] == {}
    assert by_text["Apple"]["label_probs"]["t"] == {} and by_text["Apple"]["votes"]["t"] is None


def test_spans_group_has_every_candidate(nlp, script):
    nlp.add_pipe("el4ner", config=config(script, labels=LABELS))
    doc = nlp(TEXT + " Google too.")
    group = doc.spans["el4ner"]
    assert sorted(s.text for s in group) == sorted(
        ["Tim Cook", "Tim", "Apple", "Angela Merkel", "Berlin", "Paris", "Google"]
    )
    scores, details = group.attrs["scores"], group.attrs["details"]
    assert len(scores) == len(details) == len(group)
    assert group.attrs["unaligned"] == []
    for span, score, det in zip(group, scores, details):
        assert det["text"] == span.text
        assert span.label_ == (det["label"] or "none")
        assert score == det["confidence"]
        assert set(det) >= {"accepted", "extracted_by", "votes", "label_probs", "label_score", "validation"}
    by_text = {d["text"]: d for d in details}
    assert by_text["Berlin"]["extracted_by"] == ["a", "b"]
    assert by_text["Tim"]["extracted_by"] == ["b"]
    # majority with two members: ties go to the first, so the second is never asked to classify
    assert by_text["Tim"]["votes"] == {"a": "PER"}
    assert by_text["Tim"]["accepted"] is True
    assert by_text["Tim"]["confidence"] == by_text["Tim Cook"]["confidence"]
    assert by_text["Google"]["accepted"] is False
    assert by_text["Google"]["validation"] == pytest.approx(0.1)
    assert by_text["Tim Cook"]["accepted"] is True
    # "Tim" was accepted but overlaps the equally confident, longer "Tim Cook"
    assert ("Tim Cook", "PER") in ents(doc) and ("Tim", "PER") not in ents(doc)
    check_ents(doc, LABELS)


def test_validation_threshold(nlp, script):
    nlp.add_pipe("el4ner", config=config(script, labels=LABELS))
    assert ("Google", "ORG") not in ents(nlp("Google is big."))
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("el4ner", config=config(script, labels=LABELS, accept={"validation_threshold": 0.05, "min_confidence": 0.05}))
    assert ents(nlp2("Google is big.")) == [("Google", "ORG")]
    # the default rule: confidence = P(label) x P(yes) >= min_confidence (0.3)
    nlp4 = spacy.blank("en")
    nlp4.add_pipe("el4ner", config=config(script, labels=LABELS, accept={"min_confidence": 0.05}))
    doc4 = nlp4("Google is big.")
    (det,) = doc4.spans["el4ner"].attrs["details"]
    assert det["confidence"] == pytest.approx(det["label_score"] * det["validation"], abs=1e-3)
    assert (det["confidence"] >= 0.05) == (("Google", "ORG") in ents(doc4))
    nlp3 = spacy.blank("en")
    nlp3.add_pipe("el4ner", config=config(script, labels=LABELS, validate=None))
    doc = nlp3("Google is big.")
    assert ents(doc) == [("Google", "ORG")]
    assert doc.spans["el4ner"].attrs["details"][0]["validation"] is None


def test_verifier_choice(nlp, scripts):
    members = two_members()
    scripts("fixed", lambda: members)
    nlp.add_pipe("el4ner", config=config("fixed", labels=LABELS))
    nlp("Paris.")
    assert sum(1 for k, ps in members["b"].calls if k == "score" and "Yes or No" in str(ps)) == 0
    assert sum(1 for k, ps in members["a"].calls if k == "score" and "Yes or No" in str(ps)) == 1
    members2 = two_members()
    scripts("fixed2", lambda: members2)
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("el4ner", config=config("fixed2", labels=LABELS, verifiers=["a", "b"]))
    nlp2("Paris.")
    assert sum(1 for k, ps in members2["b"].calls if k == "score" and "Yes or No" in str(ps)) == 1
    members3 = two_members()
    scripts("fixed3", lambda: members3)
    nlp3 = spacy.blank("en")
    nlp3.add_pipe("el4ner", config=config("fixed3", labels=LABELS, verifiers=["b"]))
    nlp3("Paris.")
    assert sum(1 for k, ps in members3["a"].calls if k == "score" and "Yes or No" in str(ps)) == 0
    assert sum(1 for k, ps in members3["b"].calls if k == "score" and "Yes or No" in str(ps)) == 1


def test_voting_first(nlp, scripts):
    scripts(
        "disagree",
        lambda: {
            "a": FakeModel("a", extracts(["Paris"]), labels={"Paris": "ORG"}),
            "b": FakeModel("b", extracts(["Paris"]), labels={"Paris": "LOC"}),
            "c": FakeModel("c", extracts(["Paris"]), labels={"Paris": "LOC"}),
        },
    )
    nlp.add_pipe("el4ner", config=config("disagree", labels=LABELS, classify={"voting": "first"}))
    assert ents(nlp("Paris.")) == [("Paris", "ORG")]
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("el4ner", config=config("disagree", labels=LABELS, classify={"voting": "majority"}))
    assert ents(nlp2("Paris.")) == [("Paris", "LOC")]


def test_initialize_fills_store_and_infers_labels(nlp, scripts, labelled_docs):
    members = two_members()
    scripts("init", lambda: members)
    pipe = nlp.add_pipe("el4ner", config=config("init", retriever={"k": 2}))
    assert pipe.labels == ()
    nlp.initialize(lambda: examples(nlp, labelled_docs))
    assert pipe.labels == ("ORG", "PER", "LOC")  # in order of appearance
    assert len(pipe.store) == 4
    assert pipe.store.labels == ["ORG", "PER", "LOC"]
    doc = nlp("Tim Cook visited Paris.")
    check_ents(doc, pipe.labels)
    assert ents(doc) == [("Tim Cook", "PER"), ("Paris", "LOC")]
    # the final extraction prompt had two retrieved demonstrations
    last_gen = [ps for k, ps in members["a"].calls if k == "generate"][-1]
    roles = [m["role"] for m in last_gen[0]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user"]
    assert "Apple hired Tim Cook in Cupertino." in str(last_gen[0])


@pytest.mark.parametrize("store_labels", [["LOC", "PER", "ORG"], []])
def test_initialize_from_store_path(nlp, script, labelled_docs, tmp_path, store_labels):
    store = DemoStore(nlp.vocab, store_labels, HashEmbedder())
    store.add(labelled_docs[:2])
    store.to_disk(tmp_path / "store")
    pipe = nlp.add_pipe("el4ner", config=config(script))
    pipe.initialize(store_path=tmp_path / "store")
    # the store's labels, or (saved without labels) those of its docs in order of appearance
    assert pipe.labels == tuple(store_labels or ["ORG", "PER", "LOC"])
    assert len(pipe.store) == 2
    assert pipe.add_demonstrations(labelled_docs[2:]) == 2
    assert len(pipe.store) == 4


@pytest.mark.parametrize("store_labels", [["LOC", "PER", "ORG"], []])
def test_store_path_in_config_gives_labels(nlp, script, labelled_docs, tmp_path, store_labels):
    store = DemoStore(nlp.vocab, store_labels, HashEmbedder())
    store.add(labelled_docs[:2])
    store.to_disk(tmp_path / "store")
    pipe = nlp.add_pipe("el4ner", config=config(script, store={"@el4ner_stores": "el4ner.DemoStore.v1", "path": str(tmp_path / "store")}))
    # without `labels`, the store's (or, saved without labels, its docs') labels; no initialize needed
    assert pipe.labels == tuple(store_labels or ["ORG", "PER", "LOC"])
    assert len(pipe.store) == 2
    nlp.initialize()
    assert pipe.labels == tuple(store_labels or ["ORG", "PER", "LOC"]) and len(pipe.store) == 2
    check_ents(nlp("Tim Cook visited Paris."), pipe.labels)


def test_initialize_with_labels_rejects_store_with_others(nlp, script, labelled_docs, tmp_path):
    store = DemoStore(nlp.vocab, ["LOC", "PER", "ORG"], HashEmbedder())
    store.add(labelled_docs[:2])
    store.to_disk(tmp_path / "store")
    pipe = nlp.add_pipe("el4ner", config=config(script))
    with pytest.raises(ValueError, match="does not know"):
        pipe.initialize(labels=["MISC"], store_path=tmp_path / "store")
    pipe2 = spacy.blank("en").add_pipe("el4ner", config=config(script))
    pipe2.initialize(labels=["PER", "ORG", "LOC", "MISC"], store_path=tmp_path / "store")
    assert pipe2.labels == ("PER", "ORG", "LOC", "MISC")
    assert len(pipe2.store) == 2


def test_initialize_rejects_unknown_labels(nlp, script, labelled_docs):
    nlp.add_pipe("el4ner", config=config(script, labels=["PER", "LOC"]))
    with pytest.raises(ValueError, match="'ORG'.*Add them to `labels`"):
        nlp.initialize(lambda: examples(nlp, labelled_docs))


def test_missing_labels(nlp, script):
    nlp.add_pipe("el4ner", config=config(script))
    with pytest.raises(ValueError, match="el4ner: no labels"):
        nlp("Tim Cook.")
    with pytest.raises(ValueError, match="no labels.*Set `labels`"):
        nlp.initialize()


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t", "\U0001F642\U0001F389 \U0001F44D\U0001F3FD", "Tim Cook \U0001F34E Apple"])
def test_empty_whitespace_emoji_docs(nlp, scripts, text):
    scripts("emoji", lambda: {"a": FakeModel("a", extracts(["\U0001F34E", "Tim Cook", "Apple", "\U0001F389", "  "]), labels={"\U0001F34E": "ORG", "Tim Cook": "PER", "Apple": "ORG"})})
    nlp.add_pipe("el4ner", config=config("emoji", labels=LABELS))
    doc = nlp(text)
    check_ents(doc, LABELS)
    assert "el4ner" in doc.spans
    assert len(doc.spans["el4ner"].attrs["details"]) == len(doc.spans["el4ner"])
    if not text.strip():
        assert len(doc.ents) == 0 and len(doc.spans["el4ner"]) == 0
    if "Tim" in text:
        assert ents(doc) == [("Tim Cook", "PER"), ("\U0001F34E", "ORG"), ("Apple", "ORG")]


def test_keep_existing_ents(scripts):
    scripts("paris", lambda: {"a": FakeModel("a", extracts(["Paris"]), labels={"Paris": "LOC"})})

    @Language.component("test_preset_ents")
    def preset(doc):
        doc.ents = [Span(doc, 0, 1, label="OLD"), Span(doc, 2, 3, label="OLD")]
        return doc

    for keep, expected in [(True, [("Bob", "OLD"), ("Paris", "LOC")]), (False, [("Paris", "LOC")])]:
        nlp = spacy.blank("en")
        nlp.add_pipe("test_preset_ents")
        nlp.add_pipe("el4ner", config=config("paris", labels=LABELS, keep_existing_ents=keep))
        assert ents(nlp("Bob in Paris")) == expected


def test_long_doc_units(nlp, scripts):
    scripts("long", lambda: {"a": FakeModel("a", extracts(["Paris", "Berlin"]), labels={"Paris": "LOC", "Berlin": "LOC"})})
    pipe = nlp.add_pipe("el4ner", config=config("long", labels=LABELS, max_unit_tokens=20))
    text = "Paris is nice. " + "Some filler words are here. " * 20 + "Berlin too."
    doc = nlp(text)
    assert ents(doc) == [("Paris", "LOC"), ("Berlin", "LOC")]
    assert pipe.stats["units"] > 2
    assert pipe.stats["docs"] == 1


def test_to_disk_and_spacy_load(nlp, script, labelled_docs, tmp_path):
    pipe = nlp.add_pipe("el4ner", config=config(script, label_descriptions={}))
    nlp.initialize(lambda: examples(nlp, labelled_docs))
    texts = [TEXT, "Google and Apple in Paris.", "nothing here"]
    before = [ents(d) for d in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / "el4ner" / "store" / "docs.spacy").exists()
    loaded = spacy.load(tmp_path / "pipeline")
    pipe2 = loaded.get_pipe("el4ner")
    assert pipe2.labels == pipe.labels == ("ORG", "PER", "LOC")
    assert len(pipe2.store) == 4
    assert [d.text for d in pipe2.store.docs] == [d.text for d in labelled_docs]
    assert [ents(d) for d in loaded.pipe(texts)] == before
    assert before[0] != []


def test_to_bytes_from_bytes(nlp, script, labelled_docs):
    pipe = nlp.add_pipe("el4ner", config=config(script, label_descriptions={}))
    nlp.initialize(lambda: examples(nlp, labelled_docs))
    before = ents(nlp(TEXT))
    data = nlp.to_bytes()
    nlp2 = spacy.blank("en")
    pipe2 = nlp2.add_pipe("el4ner", config=config(script))
    assert pipe2.labels == ()
    nlp2.from_bytes(data)
    assert pipe2.labels == pipe.labels
    assert len(pipe2.store) == len(pipe.store) == 4
    assert pipe2.store.labels == list(pipe.labels)
    assert ents(nlp2(TEXT)) == before
    # the component alone, excluding the store
    pipe3 = spacy.blank("en").add_pipe("el4ner", config=config(script))
    pipe3.from_bytes(pipe.to_bytes(exclude=["store"]), exclude=["store"])
    assert pipe3.labels == pipe.labels and len(pipe3.store) == 0


def test_pipe_batches_and_error_handler(nlp, scripts):
    members = {"a": FakeModel("a", extracts(list(GOLD)), labels=GOLD, fail_on="BOOM")}
    scripts("boom", lambda: members)
    nlp.add_pipe("el4ner", config=config("boom", labels=LABELS))
    texts = ["Tim Cook one.", "Paris two.", "BOOM three.", "Berlin four.", "Apple five."]
    errors = []

    def handler(name, proc, docs, err):
        errors.append((name, [d.text for d in docs], err))

    nlp.set_error_handler(handler)
    docs = list(nlp.pipe(texts, batch_size=2))
    # the batch with the failing doc goes to the handler; the others come out annotated
    assert [d.text for d in docs] == ["Tim Cook one.", "Paris two.", "Apple five."]
    assert [ents(d) for d in docs] == [[("Tim Cook", "PER")], [("Paris", "LOC")], [("Apple", "ORG")]]
    assert len(errors) == 1
    name, batch, err = errors[0]
    assert name == "el4ner"
    assert batch == ["BOOM three.", "Berlin four."]
    assert isinstance(err, RuntimeError) and "BOOM" in str(err)
    # the members saw the docs in batches of at most 2 units
    assert all(len(ps) <= 2 for k, ps in members["a"].calls)


def test_model_error_raises_without_handler(nlp, scripts):
    scripts("boom2", lambda: {"a": FakeModel("a", fail_on="BOOM")})
    nlp.add_pipe("el4ner", config=config("boom2", labels=LABELS))
    with pytest.raises(RuntimeError, match="BOOM"):
        nlp("BOOM")


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"classify": {"voting": "plurality"}}, r"E011.*classify.voting must be one of"),
        ({"settings": {"a": {"votes": "soft"}}}, r"E011.*votes must be one of"),
        ({"settings": {"a": {"prompt": "zero-shot"}}}, r"E011.*prompt must be one of"),
        ({"verifiers": []}, r"E017.*no member verifies"),
        ({"accept": {"validation_threshold": 1.5}}, r"E011.*accept.validation_threshold must be a number from 0.0 to 1.0"),
        ({"max_unit_tokens": 2}, r"E011.*max_unit_tokens must be an integer >= 8"),
        ({"label_descriptions": {"ALIEN": "?"}}, r"E011.*label_descriptions"),
        ({"settings": {"a": {"weight": -2.0}}}, r"E011.*weight must be a number >= 0"),
        ({"accept": {"extraction_quorum": -1.0}}, r"E011.*accept.extraction_quorum must be a number >= 0"),
        ({"accept": {"finder_sets": [["nobody"]]}}, r"E018.*accept.finder_sets names \['nobody'\]"),
        ({"accept": {"finder_sets": ["a"]}}, r"E011.*accept.finder_sets must be a non-empty list of member names"),
        ({"accept": {"finder_sets": [[]]}}, r"E011.*accept.finder_sets must be a non-empty list"),
        ({"accept": {"quorum": 1.0}}, r"E015.*unknown setting 'quorum' in the `accept` block"),
        ({"settings": {"a": {"view": -1}}}, r"E011.*view must be an integer >= 0"),
        ({"settings": {"a": {"constrained": "yes"}}}, r"E011.*constrained must be true or false"),
        ({"classify": {"demos": -1}}, r"E011.*classify.demos must be an integer >= 0"),
        ({"classify": {"demo": 2}}, r"E015.*did you mean 'demos'"),
        ({"validate": {"skip_above": 1.5}}, r"E011.*validate.skip_above must be a number from 0.0 to 1.0"),
        ({"validate": "yes"}, r"validate"),  # spaCy's config validation: not a block
        ({"extract": {"template": "extract.v9.jinja"}}, r"E020.*no such built-in template"),
        ({"extract": {"max_new_tokens": 0}}, r"E011.*extract.max_new_tokens must be an integer >= 1"),
        ({"batch_size": 0}, r"E011.*batch_size must be an integer >= 1"),
        ({"spans_key": ""}, r"E011.*spans_key must be a non-empty string"),
        ({"label_descriptions": {"PER": 3}}, r"label_descriptions"),
    ],
)
def test_bad_config_values(nlp, script, overrides, match):
    with pytest.raises(ValueError, match=match):
        nlp.add_pipe("el4ner", config=config(script, labels=LABELS, **overrides))


def test_accept_finder_sets_keeps_only_spans_of_those_members(nlp, script):
    # only the spans that b found (alone or with a): Paris and Angela Merkel (a alone) are left out
    nlp.add_pipe("el4ner", config=config(script, labels=LABELS, accept={"finder_sets": [["b"], ["a", "b"]]}))
    doc = nlp(TEXT)
    found = dict(ents(doc))
    assert "Berlin" in found and "Apple" in found
    assert "Paris" not in found and "Angela Merkel" not in found
    assert all(set(d["extracted_by"]) & {"b"} for d in doc.spans["el4ner"].attrs["details"])
    assert nlp.get_pipe("el4ner").stats["below_quorum"] >= 2
    # the setting is part of the config: it survives nlp.to_disk -> spacy.load
    assert nlp.config["components"]["el4ner"]["accept"]["finder_sets"] == [["b"], ["a", "b"]]


def test_direct_construction(nlp):
    emb = HashEmbedder()
    members = {"m": FakeModel("m", extracts(["Paris"]), labels={"Paris": "LOC"})}
    pipe = EL4NER(
        nlp.vocab,
        labels=["LOC"],
        label_descriptions={"LOC": "a place"},
        ensemble=members,
        encoder=emb,
        retriever=SpanSimRetriever(2, emb, "heuristic"),
        store=DemoStore(nlp.vocab, ["LOC"], emb),
    )
    doc = pipe(nlp.make_doc("I love Paris."))
    assert ents(doc) == [("Paris", "LOC")]
    assert "- LOC: a place" in str(members["m"].calls[0][1][0])
    assert pipe.add_label("PER") == 1 and pipe.add_label("PER") == 0
    assert pipe.labels == ("LOC", "PER") and pipe.store.labels == ["LOC", "PER"]
    assert pipe.model_stats()["m"]["calls"] == len(members["m"].calls)
    with pytest.raises(ValueError, match="E012"):
        EL4NER(nlp.vocab, labels=["LOC"], label_descriptions={}, ensemble={}, encoder=emb, retriever=None, store=DemoStore())


def test_scorer(nlp, script, labelled_docs):
    nlp.add_pipe("el4ner", config=config(script, labels=LABELS))
    egs = [Example(nlp.make_doc(d.text), d) for d in labelled_docs]
    scores = nlp.evaluate(egs)
    assert 0.0 <= scores["ents_f"] <= 1.0
    assert scores["ents_f"] > 0.3  # the scripted members know most of the names


# -- the real transformers backend, with a tiny random-weight model -------------------------
def test_tiny_hf_model_end_to_end(tiny_llm_path, tiny_bert_path, labelled_docs):
    from conftest import tiny_hf_config

    nlp = spacy.blank("en")
    cfg = tiny_hf_config(tiny_llm_path, tiny_bert_path, LABELS, "cpu", ["Tim Cook", "Paris"])
    pipe = nlp.add_pipe("el4ner", config=cfg)
    assert type(pipe.members["tiny"]).__name__ == "HFModel"
    nlp.initialize(lambda: examples(nlp, labelled_docs))
    texts = ["Tim Cook flew to Paris.", "", "Angela Merkel met Emmanuel Macron in Berlin. " * 3]
    docs = list(nlp.pipe(texts, batch_size=2))
    assert len(docs) == 3
    for doc in docs:
        check_ents(doc, LABELS)
        group = doc.spans["el4ner"]
        assert len(group.attrs["details"]) == len(group)
    details = {d["text"]: d for d in docs[0].spans["el4ner"].attrs["details"]}
    assert {"Tim Cook", "Paris"} <= set(details)
    # lazy majority voting: the second of two members cannot change the outcome, so is not asked
    assert set(details["Paris"]["label_probs"]) == {"tiny"}
    assert sum(details["Paris"]["label_probs"]["tiny"].values()) == pytest.approx(1.0, abs=1e-3)
    stats = pipe.model_stats()["tiny"]
    assert stats["calls"] >= 3 and stats["forward_passes"] > 0 and stats["prompt_tokens"] > 0


def test_type_prior_from_the_store(nlp, scripts, labelled_docs, tmp_path):
    # the member calls Paris an ORG; the store's labelled spans say LOC (Paris, London, ...)
    scripts("paris", lambda: {"a": FakeModel("a", extracts(["Paris", "Tim Cook"]), labels={"Paris": "ORG", "Tim Cook": "PER"})})
    prior = {"@el4ner_priors": "el4ner.StoreKNNPrior.v1", "k": 1, "temperature": 0.05, "mix": 0.01, "weight": 1.0}
    nlp.add_pipe("el4ner", config=config("paris", classify={"type_prior": prior}))
    nlp.initialize(lambda: examples(nlp, labelled_docs))
    doc = nlp("Tim Cook flew to Paris.")
    assert ents(doc) == [("Tim Cook", "PER"), ("Paris", "LOC")]
    details = {d["text"]: d for d in doc.spans["el4ner"].attrs["details"]}
    assert details["Paris"]["type_prior"]["LOC"] > 0.99
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.get_pipe("el4ner").type_prior.k == 1
    assert ents(loaded("Tim Cook flew to Paris.")) == ents(doc)
    # without the prior the member decides
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("el4ner", config=config("paris", classify={"type_prior": None}))
    nlp2.initialize(lambda: examples(nlp2, labelled_docs))
    doc2 = nlp2("Tim Cook flew to Paris.")
    assert ents(doc2) == [("Tim Cook", "PER"), ("Paris", "ORG")]
    assert {d["text"]: d for d in doc2.spans["el4ner"].attrs["details"]}["Paris"]["type_prior"] is None


def test_default_type_prior_is_store_knn(nlp, script):
    pipe = nlp.add_pipe("el4ner", config=config(script, labels=LABELS))
    assert nlp.config["components"]["el4ner"]["classify"]["type_prior"]["@el4ner_priors"] == "el4ner.StoreKNNPrior.v1"
    assert (pipe.type_prior.k, pipe.type_prior.mix, pipe.type_prior.weight) == (5, 0.3, 1.0)


def test_boundary_rule_trims_by_the_store_casing(nlp, scripts, labelled_docs, tmp_path):
    # the member copies a word too many; the store's LOC spans (6) never end in a lower-case word
    scripts("cairo", lambda: {"a": FakeModel("a", extracts(["Tim Cook", "Cairo residents"]), labels={"Tim Cook": "PER", "Cairo residents": "LOC", "Cairo": "LOC"})})
    nlp.add_pipe("el4ner", config=config("cairo"))
    assert nlp.config["components"]["el4ner"]["edges"]["@el4ner_boundaries"] == "el4ner.StoreEdges.v1"
    nlp.initialize(lambda: examples(nlp, labelled_docs))
    doc = nlp("Tim Cook met Cairo residents.")
    assert ents(doc) == [("Tim Cook", "PER"), ("Cairo", "LOC")]
    details = {d["text"]: d for d in doc.spans["el4ner"].attrs["details"]}
    assert details["Cairo"]["refined_from"] == "Cairo residents" and details["Cairo"]["validation"] is not None
    assert nlp.get_pipe("el4ner").stats["trimmed"] == 1
    nlp.to_disk(tmp_path / "b")
    assert ents(spacy.load(tmp_path / "b")("Tim Cook met Cairo residents.")) == ents(doc)
    # off: the span stays as extracted; and PER (2 stored spans) is below min_count either way
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("el4ner", config=config("cairo", edges=None))
    nlp2.initialize(lambda: examples(nlp2, labelled_docs))
    assert ents(nlp2("Tim Cook met Cairo residents.")) == [("Tim Cook", "PER"), ("Cairo residents", "LOC")]


def test_entity_prior_scales_confidence(nlp, scripts, labelled_docs):
    # "sings" is typed PER by the member, but the store only has it as text outside entities
    scripts("sings", lambda: {"a": FakeModel("a", extracts(["Tim Cook", "sings"]), labels={"Tim Cook": "PER", "sings": "PER"})})
    prior = {"@el4ner_priors": "el4ner.StoreEntityPrior.v1", "k": 1}
    nlp.add_pipe("el4ner", config=config("sings", accept={"entity_prior": prior}))
    nlp.initialize(lambda: examples(nlp, labelled_docs + [make_doc(nlp, "She sings daily.")]))
    doc = nlp("Tim Cook sings.")
    assert ents(doc) == [("Tim Cook", "PER")]
    details = {d["text"]: d for d in doc.spans["el4ner"].attrs["details"]}
    assert details["Tim Cook"]["entity_score"] == pytest.approx(1.0)
    assert details["sings"]["entity_score"] == pytest.approx(0.0)
    assert details["sings"]["accepted"] is False and details["sings"]["validation"] is None  # not worth asking
    assert nlp.config["components"]["el4ner"]["accept"]["entity_prior"]["k"] == 1
    # off by default
    nlp2 = spacy.blank("en")
    nlp2.add_pipe("el4ner", config=config("sings"))
    nlp2.initialize(lambda: examples(nlp2, labelled_docs))
    assert ("sings", "PER") in ents(nlp2("Tim Cook sings."))


def test_member_demo_views_in_a_config_survive_saving(nlp, labelled_docs, tmp_path):
    # two copies of one (scripted) model; the copy with view 1 gets other demonstrations
    member = {"@el4ner_models": "test.FakeMember.v1", "name": "m", "surfaces": ["Tim Cook", "Paris"], "labels": {"Tim Cook": "PER", "Paris": "LOC"}}
    cfg = {
        "labels": LABELS,
        "ensemble": {"@el4ner_members": "el4ner.Members.v1", "members": {
            "m": {"@el4ner_members": "el4ner.Member.v1", "model": member, "verifier": True},
            "m@1": {"@el4ner_members": "el4ner.Member.v1", "model": member, "view": 1},
        }},
        "encoder": {"@el4ner_encoders": "test.HashEmbedder.v1"},
        "retriever": {"@el4ner_retrievers": "el4ner.SpanSimRetriever.v1", "k": 2, "pre_extraction": "heuristic", "max_empty": None},
    }
    pipe = nlp.add_pipe("el4ner", config=cfg)
    nlp.initialize(lambda: examples(nlp, labelled_docs))
    doc = nlp("Tim Cook flew to Paris.")
    assert ents(doc) == [("Tim Cook", "PER"), ("Paris", "LOC")]
    first, other = (str(pipe.members[n].calls[0][1]) for n in ("m", "m@1"))
    shown = lambda prompt: {d.text for d in labelled_docs if d.text in prompt}  # noqa: E731
    assert len(shown(first)) == 2 and len(shown(other)) == 2 and not shown(first) & shown(other)
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.get_pipe("el4ner").settings.member_demo_views == {"m@1": 1}
    assert ents(loaded("Tim Cook flew to Paris.")) == ents(doc)


def test_hostile_model_output_is_cleaned_listed_and_serialisable(nlp, scripts):
    """An answer with a JSON-escaped lone surrogate, control characters, a 300-character item and a
    non-string item: the Doc keeps every left-out answer in doc.spans attrs, cleaned, and survives
    to_bytes and DocBin."""
    from spacy.tokens import Doc, DocBin

    hostile = '["Par\\ud800is", "Tim\\u0000 Cook", "' + "x" * 300 + '", 42, "Berlin"]'
    name = scripts("hostile", lambda: {"a": FakeModel("a", lambda prompt: hostile, labels=GOLD)})
    nlp.add_pipe("el4ner", config=config(name, labels=LABELS))
    doc = nlp("Tim Cook met Angela Merkel in Berlin.")
    assert ("Berlin", "LOC") in ents(doc)
    unaligned = doc.spans["el4ner"].attrs["unaligned"]
    texts = [t for _, t in unaligned]
    assert "Par\ufffdis" in texts and "x" * 300 in texts and "42" in texts
    for text in texts:
        text.encode("utf-8")
    again = Doc(nlp.vocab).from_bytes(doc.to_bytes())
    assert again.spans["el4ner"].attrs["unaligned"] == unaligned
    assert len(list(DocBin(docs=[doc], store_user_data=True).get_docs(nlp.vocab))) == 1


@pytest.mark.parametrize("key,value", [("extract.max_new_tokens", 0), ("extract.max_new_tokens", -5), ("batch_size", 0), ("batch_size", -1)])
def test_bad_sizes_fail_at_add_pipe(nlp, script, key, value):
    block, _, leaf = key.rpartition(".")
    with pytest.raises(ValueError, match=f"E011.*{key} must be an integer >= 1"):
        nlp.add_pipe("el4ner", config=config(script, labels=LABELS, **({block: {leaf: value}} if block else {leaf: value})))


def test_initialize_twice_gives_the_same_store_as_once(nlp, script, labelled_docs):
    pipe = nlp.add_pipe("el4ner", config=config(script, labels=LABELS))
    nlp.initialize(get_examples=lambda: examples(nlp, labelled_docs))
    once = [d.text for d in pipe.store.docs]
    nlp.initialize(get_examples=lambda: examples(nlp, labelled_docs))
    assert [d.text for d in pipe.store.docs] == once
    assert pipe.add_demonstrations([make_doc(nlp, "Anna met Bob.", [("Anna", "PER")])]) == 1
    assert len(pipe.store) == len(once) + 1


def test_add_demonstrations_takes_labelled_docs_only(nlp, script):
    pipe = nlp.add_pipe("el4ner", config=config(script, labels=LABELS))
    with pytest.raises(TypeError, match="wrap it in a list"):
        pipe.add_demonstrations("Tim Cook visited Berlin.")
    with pytest.raises(TypeError, match="labelled spaCy Docs"):
        pipe.add_demonstrations(["Tim Cook visited Berlin."])
    with pytest.raises(ValueError, match="does not know"):
        pipe.add_demonstrations([make_doc(nlp, "Anna met Bob.", [("Anna", "ANIMAL")])])
    assert len(pipe.store) == 0


def test_a_huge_token_never_reaches_a_prompt(nlp, scripts):
    seen = []

    def answer(prompt):
        seen.append(len(prompt))
        return '["Berlin"]'

    name = scripts("huge", lambda: {"a": FakeModel("a", answer, labels=GOLD)})
    pipe = nlp.add_pipe("el4ner", config=config(name, labels=LABELS))
    doc = nlp("Tim Cook visited Berlin. " + "y" * 20_000 + " Then he left.")
    assert ("Berlin", "LOC") in ents(doc)
    assert max(seen) < 20_000 and pipe.stats["tokens_too_long"] == 1


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda d: (d / "cfg").write_bytes(b"\xff\xfe garbage \x00"), r"el4ner/cfg is not the component's saved settings"),
        (lambda d: (d / "cfg").write_text("[1, 2, 3]"), r"el4ner/cfg holds list"),
        (lambda d: (d / "store" / "docs.spacy").write_bytes((d / "store" / "docs.spacy").read_bytes()[:40]), r"store: \[E315\] Corrupt docs"),
        (lambda d: (d / "store" / "meta.json").write_text("{"), r"Corrupt .*meta.json"),
        (lambda d: (d / "store" / "docs.spacy").unlink(), r"has no docs.spacy"),
        (lambda d: (d / "store" / "embeddings.npz").write_bytes(b"PK\x03\x04 truncated"), r"store: \[E317\] Corrupt embeddings"),
    ],
)
def test_a_damaged_saved_pipeline_names_the_file(nlp, script, labelled_docs, tmp_path, damage, match):
    nlp.add_pipe("el4ner", config=config(script, labels=LABELS))
    nlp.initialize(lambda: examples(nlp, labelled_docs))
    nlp(TEXT)  # computes the store's embeddings, which are saved too
    nlp.to_disk(tmp_path / "pipeline")
    damage(tmp_path / "pipeline" / "el4ner")
    with pytest.raises(ValueError, match=match):
        spacy.load(tmp_path / "pipeline")
