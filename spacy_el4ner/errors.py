"""Error and warning messages with codes, as spaCy's ``errors.py`` has them: each says what went
wrong and what to change. ``Errors.E101.format(...)`` gives "[E101] ..."."""


class ErrorsWithCodes(type):
    def __getattribute__(self, code: str) -> str:
        msg = super().__getattribute__(code)
        if code.startswith("__"):  # python system attributes like __class__
            return msg
        return f"[{code}] {msg}"


class Warnings(metaclass=ErrorsWithCodes):
    W001 = "A prompt's text holds control-token text (e.g. <|im_start|>): it is tokenised as plain text"
    W002 = ("{name}: prompt of {n} tokens cut to {limit} (its first {head} and last {tail}; the context "
            "limit): use fewer or shorter demonstrations, a smaller max_unit_tokens, or a larger context")
    W003 = ("{name}: constrained extraction is not applied on this engine ({engine}); its answers are parsed "
            "and aligned as usual. Run the member on transformers (el4ner.HFModel.v2) to constrain it.")
    W004 = "A token of {n} characters (at character {at}) is left out: no prompt can hold it"
    W005 = "{path}: line {line} skipped: {reason}"
    # annotation (W4xx)
    W401 = ("Serving dataset {dataset!r} on {host}, which is not a loopback address: anyone who can reach this "
            "machine on port {port} can read the texts and change the dataset. Stop it and use --host 127.0.0.1 "
            "unless that is what you want.")


class Errors(metaclass=ErrorsWithCodes):
    # settings (E0xx)
    E001 = "{key} must be a positive integer, not {value!r}"
    E002 = "el4ner: {key} must be a positive integer, not {value!r}"
    E003 = "max_new_tokens must be at least 1, not {value}"
    E004 = "n_ctx must be at least 256 tokens, not {value}"
    E005 = "scoring must be one of {options}, not {value!r}"
    E006 = "base_url must start with http:// or https://, not {value!r}"
    E007 = "max_retries and backoff must be >= 0 and timeout > 0"
    E008 = ("api_key_env names the environment variable {name!r}, which is not set: export it (the key never "
            "goes in the config)")
    E009 = "engine must be one of {options}, not {value!r}"
    E010 = ("engine 'llama.cpp' runs the GGUF weights as shipped on the CPU: leave dtype = \"fastest\", "
            "device = null, device_map = null and trust_remote_code = false, or use engine = \"transformers\"")
    E011 = "el4ner: {key} must be {rule}, not {value!r}"
    E012 = ("el4ner: the ensemble has no member: list at least one model (el4ner.Ensemble.v1's `models`) or "
            "member block (el4ner.Members.v1)")
    E013 = ("el4ner.Members.v1 takes el4ner.Member.v1 blocks, got {bad}: write each member as "
            "[components.el4ner.ensemble.members.NAME] with @el4ner_members = \"el4ner.Member.v1\" and a "
            "[...NAME.model] block")
    E014 = "el4ner: a member is listed twice in {models}: give each model once (a second copy: el4ner.Members.v1)"
    E015 = "el4ner: unknown setting {key!r} in the `{block}` block{hint}; its settings: {known}"
    E016 = "el4ner: `{block}` must be a block of settings (or null where it may be switched off), not {value!r}"
    E017 = ("el4ner: `validate` is on but no member verifies: set verifier = true in a member block, or "
            "validate = null")
    E018 = "el4ner: {key} names {names}, which are not members; the members: {members}"
    E019 = ("el4ner: no labels. Set `labels` in the component config, or pass examples with entities to "
            "nlp.initialize()")
    E020 = ("el4ner: template {name!r} for `{stage}`: no such built-in template ({known}) or file")

    # models (E1xx)
    E101 = ("Unknown {what} '{name}': not an embedded name ({known}), an existing folder or file, or a hub id "
            "(org/name).{hint}")
    E102 = "Unknown model '{name}' for the llama.cpp engine: give an embedded name ({known}) or a .gguf file.{hint}"
    E103 = "'{name}' is an {role}, not a language model: the llama.cpp engine reads GGUF models."
    E104 = "'{path}' is not a GGUF file: the llama.cpp engine reads .gguf models."
    E105 = "llama.cpp could not load '{path}': not a GGUF model file of a supported architecture."
    E106 = "llama.cpp could not create a context of {n_ctx} tokens for '{path}' (out of memory?): lower n_ctx."
    E107 = ("llama_decode returned {rc} for {n} tokens ({name}): the key/value cache of n_ctx={n_ctx} tokens is "
            "full; raise n_ctx or lower parallel")
    E108 = ("The llama.cpp engine needs llama-cpp-python: pip install 'spacy-el4ner[llama]' (it compiles from "
            "source where no wheel fits: cmake and a C++ compiler, a few minutes), or use engine = \"transformers\".")
    E109 = "Continuation {value!r} is empty after tokenization"

    # servers (E2xx)
    E201 = ("{url} refused the API key ({code}): set the environment variable named by api_key_env ({env!r}) to a "
            "valid key. {detail}")
    E202 = "{url} answered {code}: {detail}"
    E203 = "Could not reach {url} after {tries} tries ({err}): is the server running, and is base_url right?"
    E204 = "{url} answered with something that is not JSON: {err}"
    E205 = "{url}: a completion without choices[0].text: {answer}"
    E206 = ("{url} returned no usable prompt log-probabilities ({err}) for scoring = {scoring!r}: use a server that "
            "returns them (vLLM: scoring = \"prompt_logprobs\" or \"echo\"; llama.cpp's llama-server has no echo), "
            "or run this member locally (el4ner.LlamaCppModel.v1 or el4ner.HFModel.v2).")
    E207 = ("'{path}' has no tokenizer_config.json: template_from needs a transformers folder, a .gguf file or an "
            "embedded name.")
    E208 = "template_from '{source}': no such embedded model, .gguf file or folder."

    # data and saved pipelines (E3xx)
    E301 = ("DemoStore.add takes an iterable of labelled spaCy Docs, not one {type}: wrap it in a list")
    E302 = ("DemoStore.add takes labelled spaCy Docs (doc.ents set), got {types}: make Docs with nlp.make_doc(text) "
            "and set doc.ents, or read them with spacy_el4ner.readers.read_docs")
    E303 = ("el4ner: {path} is not the component's saved settings (JSON): {err}. The saved pipeline is corrupt: "
            "save it again with nlp.to_disk.")
    E304 = ("el4ner: {path} holds {type}, not the component's settings. The saved pipeline is corrupt: save it "
            "again with nlp.to_disk.")
    E305 = "{path}: {err}. Rebuild it with `python -m spacy_el4ner store build`, or save the pipeline again."

    # annotation: sources, datasets, the review server (E4xx)
    E401 = "{path}: cannot read texts from a {suffix!r} file: give a .jsonl (one {{\"text\": ...}} a line), .txt (one text a line) or .spacy file"
    E402 = "{path}: no such source file"
    E403 = ("The pipeline at {path} has no el4ner component: build one (nlp.add_pipe(\"el4ner\") and nlp.initialize, "
            "or `python -m spacy_el4ner quickstart`) and save it with nlp.to_disk")
    E404 = "Dataset name {name!r}: use 1-100 letters, digits, '-', '_' or '.'"
    E405 = "Dataset {name!r} is not in {db} (datasets there: {names}): check the name and --db"
    E406 = ("Refusing to serve on {host}: it is not a loopback address, so anyone on the network could read the texts "
            "and change the dataset. Use --host 127.0.0.1 (the default), or pass --allow-remote to serve on {host} on purpose.")
    E407 = "The request body is over {limit} bytes: send one answer at a time"
    E408 = "The request body is not a JSON object ({err}): send {{\"id\": ..., \"answer\": ..., \"spans\": [...]}}"
    E409 = "answer must be one of {options}, not {value!r}"
    E410 = "spans must be a list of {{\"start\", \"end\", \"label\"}} objects (at most {limit}), not {value}"
    E411 = "Unknown label {label!r}: the labels are {labels}"
    E412 = "Span [{start}, {end}) is outside the text of {n} characters or empty"
    E413 = "Span [{start}, {end}) {text!r} does not start and end on token boundaries: snap it to whole tokens"
    E414 = "Spans [{a}) and [{b}) overlap: an entity can't be inside another"
    E415 = "Unknown task id {id!r}: it was never handed out, is answered already, or belongs to another server run"
    E416 = "Task {id!r} has no answer in this session to undo"
    E417 = "Span start and end must be integers, not {start!r} and {end!r}"
    E418 = "The review server needs starlette and uvicorn ({err}): pip install 'spacy-el4ner[annotate]'"
    E419 = ("POST bodies must be JSON sent with Content-Type: application/json, not {ctype!r} (so that other "
            "web pages cannot post answers through your browser)")
    E420 = ("Host {host!r} is not served here (allowed: {allowed}): open the address the server printed, e.g. "
            "http://127.0.0.1:8080/")
