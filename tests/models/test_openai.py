"""The OpenAI-compatible backend against a real server: llama-cpp-python's ``llama_cpp.server``,
started on 127.0.0.1 with the SmolLM2 GGUF of its PyPI package (a free port, an API key, torn down
after). What that server cannot do (echo log-probabilities aligned with the prompt) must come back
as a clear error. Retries are checked against a loopback server that fails on purpose.
"""
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from spacy_el4ner.models import zoo
from spacy_el4ner.models.cache import ResponseCache
from spacy_el4ner.models.openai import OpenAIModel, ServerError, _sum_from, chat_template_of
from spacy_el4ner.models.protocol import ModelLoadError

SMOL = "smollm2-135m-instruct"
KEY_ENV = "EL4NER_TEST_SERVER_KEY"
MESSAGES = [
    {"role": "system", "content": "You are a named entity recognizer."},
    {"role": "user", "content": "List the person and location names in: Tim Cook visited Berlin."},
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] not installed: pip install -e '.[llama]'")
    try:
        gguf = zoo.gguf_path(SMOL)
    except ModelLoadError:
        pytest.skip(f"{SMOL} not installed: run `python -m spacy_el4ner models pull`")
    port = _free_port()
    key = "test-key-not-secret"
    log = tmp_path_factory.mktemp("server") / "server.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "2048", "--api_key", key, "--n_threads", "1", "--verbose", "false"],
        stdout=subprocess.DEVNULL, stderr=log.open("w"),
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
        try:
            req = urllib.request.Request(f"{url}/models", headers={"Authorization": f"Bearer {key}"})
            urllib.request.urlopen(req, timeout=2).read()
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"llama_cpp.server did not answer within 120 s: {log.read_text()[-2000:]}")
    os.environ[KEY_ENV] = key
    yield url
    os.environ.pop(KEY_ENV, None)
    proc.terminate()
    proc.wait(timeout=30)


def _model(url, **kw) -> OpenAIModel:
    # the server's own default repeat_penalty of 1.1 off: greedy decoding as the local engines do it
    return OpenAIModel(SMOL, base_url=url, api_key_env=KEY_ENV, template_from=SMOL, extra_body={"repeat_penalty": 1.0}, **kw)


def test_prompts_are_rendered_like_the_local_engines():
    template, specials = chat_template_of(SMOL)
    assert template and "im_start" in template and specials["eos_token"] == "<|im_end|>"
    from spacy_el4ner.models.hf import HFModel

    if zoo.is_ready(SMOL):
        assert OpenAIModel(SMOL, template_from=SMOL).format(MESSAGES, '["') == HFModel(SMOL).format(MESSAGES, '["')
        folder_template, _ = chat_template_of(str(zoo.ensure(SMOL)))
        assert folder_template == template


def test_generate_on_a_real_server(server):
    llama_cpp = pytest.importorskip("llama_cpp")  # noqa: F841
    from spacy_el4ner.models.llamacpp import LlamaCppModel

    model = _model(server, concurrency=2)
    prompts = [MESSAGES, "Name three cities in France.", "Say hello."]
    answers = model.generate(prompts, max_new_tokens=12, stop=["]", "\n"], answer_prefix='["')
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)
    assert all("]" not in a and "\n" not in a for a in answers)
    local = LlamaCppModel(SMOL, parallel=1)
    alone = [local.generate([p], max_new_tokens=12, stop=["]", "\n"], answer_prefix='["')[0] for p in prompts]
    # the same weights and engine, one sequence each: the answers agree (near-ties aside)
    assert sum(a == b for a, b in zip(answers, alone)) >= 2, (answers, alone)
    stats = model.stats
    assert stats["forward_passes"] == 3 and stats["prompt_tokens"] > 0 and stats["generated_tokens"] > 0


def test_response_cache_answers_without_the_server(server, tmp_path):
    first = _model(server, cache=ResponseCache(tmp_path / "c")).generate(["Name a city."], max_new_tokens=6)
    offline = _model(f"http://127.0.0.1:{_free_port()}/v1", cache=ResponseCache(tmp_path / "c"), max_retries=0)
    assert offline.generate(["Name a city."], max_new_tokens=6) == first
    assert offline.stats["cache_hits"] == 1 and offline.stats["forward_passes"] == 0


def test_scoring_on_a_server_without_aligned_echo_is_a_clear_error(server):
    with pytest.raises(ServerError, match="shifted by one token.*LlamaCppModel"):
        _model(server).score([MESSAGES], [["person"]])
    # several continuations go as a list of prompts, which llama-cpp-python's server refuses
    with pytest.raises(ServerError, match="2 continuations in one request.*shifted by one token.*LlamaCppModel"):
        _model(server, max_retries=0).score([MESSAGES], [["person", "location"]])


def test_bad_requests_and_keys(server, monkeypatch):
    with pytest.raises(ServerError, match="answered 4"):
        _model(server, max_retries=0).generate(["word " * 3000], max_new_tokens=4)  # over the server's n_ctx
    monkeypatch.setenv(KEY_ENV, "wrong")
    with pytest.raises(ServerError, match="refused the API key"):
        _model(server).generate(["Hi"], max_new_tokens=2)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ValueError, match="not set"):
        _model(server)
    with pytest.raises(ServerError, match="Could not reach"):
        OpenAIModel(SMOL, base_url=f"http://127.0.0.1:{_free_port()}/v1", max_retries=1, backoff=0.01).generate(["Hi"], max_new_tokens=2)
    with pytest.raises(ValueError, match="scoring"):
        OpenAIModel(SMOL, scoring="logits")
    with pytest.raises(ValueError, match="base_url"):
        OpenAIModel(SMOL, base_url="127.0.0.1:8000")
    with pytest.raises(ValueError, match="max_new_tokens"):
        OpenAIModel(SMOL).generate(["Hi"], max_new_tokens=0)


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Fails with 503 twice, then answers like a server with aligned echo log-probabilities
    (the choices of a list of prompts in reverse order: their ``index`` says which is which)."""

    calls = 0
    bodies: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).calls += 1
        if type(self).calls <= 2:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.end_headers()
            return
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        choices, n = [], 0
        for i, prompt in enumerate(prompts):
            tokens = [prompt[i : i + 3] for i in range(0, len(prompt), 3)] + ["!"]
            logprobs = {"tokens": tokens, "token_logprobs": [None] + [-1.0] * (len(tokens) - 1)}
            choices.append({"index": i, "text": prompt + "!" if body.get("echo") else "ok]", "logprobs": logprobs})
            n += len(tokens) - 1
        type(self).bodies.append(body)
        answer = {"choices": choices[::-1], "usage": {"prompt_tokens": n, "completion_tokens": len(prompts)}}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_retries_with_backoff_then_scores_from_echo():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        model = OpenAIModel("m", base_url=f"http://127.0.0.1:{httpd.server_port}/v1", backoff=0.01, concurrency=1)
        assert model.generate(["Hi"], max_new_tokens=3, stop=["]"]) == ["ok"]
        assert _Flaky.calls == 3
        # "abcdef" + "ghi": tokens abc|def|ghi|! -> the continuation is one token of logprob -1
        assert model.score(["abcdef"], [["ghi", "ghijkl"]]) == [[-1.0, -2.0]]
        # one request per prompt, its continuations as a list of prompts
        sent = _Flaky.bodies[-1]["prompt"]
        assert len(sent) == 2 and sent[0].endswith("ghi") and sent[1].endswith("ghijkl") and model.stats["forward_passes"] == 2
    finally:
        httpd.shutdown()


def test_sum_from_counts_the_tokens_over_the_continuation():
    assert _sum_from(["ab", "cd", "ef"], [None, -1.0, -2.0], 2, 6) == -3.0
    assert _sum_from(["ab", "cd", "ef"], [None, -1.0, -2.0], 3, 4) == -1.0  # a token across the boundary counts
    with pytest.raises(ValueError):
        _sum_from(["ab"], [None], 0, 2)


def test_prompt_logprobs_find_the_continuation_whatever_the_first_token(monkeypatch):
    """vLLM gives no text for the first prompt token (None): the continuation is found from the
    end of the prompt, so a first token of any length (a BOS, "<|im_start|>") does not shift it."""
    model = OpenAIModel("m", scoring="prompt_logprobs")

    def entry(text, logp):
        return {"7": {"logprob": logp, "decoded_token": text, "rank": 1}}

    answer = {"choices": [{"text": "", "prompt_logprobs": [None, entry("ab", -1.0), entry("c", -2.0), entry("de", -4.0)]}]}
    monkeypatch.setattr(model, "_post", lambda body: answer)
    # prompt "<|im_start|>abc" + continuation "de": the first token is the 12 characters before "ab"
    assert model._score_prompt("<|im_start|>abc", ["de"]) == [-4.0]
    assert model._score_prompt("<|im_start|>ab", ["cde"]) == [-6.0]
    with pytest.raises(ServerError, match="1 answers for 2 prompts"):
        model._score_prompt("<|im_start|>ab", ["cde", "c"])
