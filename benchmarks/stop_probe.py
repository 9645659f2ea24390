"""Side-by-side cost of transformers' stop_strings vs the vocabulary lookup (TokenStop) on this
machine: the recorded extraction prompts of the default pipeline, alternating A/B, median.

Usage: python benchmarks/stop_probe.py PROMPTS.json [N_PROMPTS] [REPEATS]
"""
import json
import statistics
import sys
import time

from spacy_el4ner.models.hf import HFModel


def main(path: str, n: int = 8, repeats: int = 3) -> None:
    record = json.loads(open(path).read())
    call = [c for c in record["generate"] if c["member"] == "qwen2.5-coder-0.5b-instruct"][-1]
    prompts, kwargs = call["prompts"][:n], call["kwargs"]
    model = HFModel("qwen2.5-coder-0.5b-instruct", batch_size=8, device="cpu")
    model.generate(prompts[:2], **kwargs)  # warm-up
    times = {True: [], False: []}
    answers = {}
    for _ in range(repeats):
        for fast in (True, False):
            model.token_stop = fast
            t = time.perf_counter()
            answers[fast] = model.generate(prompts, **kwargs)
            times[fast].append(time.perf_counter() - t)
    same = answers[True] == answers[False]
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({"prompts": n, "repeats": repeats, "token_stop_s": med[True], "stop_strings_s": med[False],
                      "ratio": round(med[False] / med[True], 3), "same_answers": same, "all": {str(k): v for k, v in times.items()}}))


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
