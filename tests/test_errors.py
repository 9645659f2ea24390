"""Coded messages: each carries its own code, and the codes are unique per kind."""
import re

from spacy_el4ner.errors import Errors, Warnings


def test_every_message_carries_its_code():
    for kind, prefix in ((Errors, "E"), (Warnings, "W")):
        codes = [name for name in vars(kind) if re.fullmatch(rf"{prefix}\d{{3}}", name)]
        assert codes, kind
        for code in codes:
            message = getattr(kind, code)
            assert message.startswith(f"[{code}] ") and len(message) > 20
        assert len({getattr(kind, c) for c in codes}) == len(codes)  # no message twice
    assert Errors.E003.format(value=0) == "[E003] max_new_tokens must be at least 1, not 0"
