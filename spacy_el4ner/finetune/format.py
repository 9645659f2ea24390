"""The fine-tuning prompt and answer format: one prompt per text and entity type, answered with
the type's mentions as ``<<< mention >>>`` lines (``<<< >>>`` when there is none)."""
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import Errors
from ..prompts import Messages, clean, render

TEMPLATE = "finetune.v1.jinja"
OPEN = "<<<"
CLOSE = ">>>"
EMPTY_ANSWER = f"{OPEN} {CLOSE}"
JOIN = "\n"
# The strings an answer is made of besides copies of the text (for constrained decoding).
SEPARATORS: Tuple[str, ...] = (f"{OPEN} ", f" {CLOSE}", JOIN, EMPTY_ANSWER)
_SPAN = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.S)


def build_messages(text: str, label: str, description: str = "", folder: str = "") -> Messages:
    """Render the fine-tuning prompt for one text and one entity type.

    text (str): The document text.
    label (str): The entity type to extract.
    description (str): An optional description of the type.
    folder (str): An optional folder of user templates (overriding ``finetune.v1.jinja``).
    RETURNS (List[Dict[str, str]]): The chat messages (system, user).
    """
    return render(TEMPLATE, folder, text=text, label=label, description=description or "")


def format_answer(mentions: Sequence[str]) -> str:
    """RETURNS (str): The target answer for the mentions, in order (``<<< >>>`` for none)."""
    if not mentions:
        return EMPTY_ANSWER
    return JOIN.join(f"{OPEN} {m} {CLOSE}" for m in mentions)


def parse_answer(answer: str) -> List[str]:
    """Read the mentions out of a generated answer.

    answer (str): ``<<< a >>>`` blocks; anything outside them is ignored, as are empty blocks.
    RETURNS (List[str]): The mentions, stripped, in order (repeats kept).
    """
    out: List[str] = []
    for m in _SPAN.finditer(answer):
        mention = m.group(1).strip()
        if mention:
            out.append(mention)
    return out


def find_char_spans(text: str, mentions: Sequence[str]) -> List[Tuple[int, int]]:
    """Locate mentions in the text, in order: each is searched from the end of the previous
    match (and, failing that, from the start). Mentions not in the text are dropped.

    RETURNS (List[Tuple[int, int]]): Character offsets (start, end), without duplicates.
    """
    spans: List[Tuple[int, int]] = []
    pos = 0
    for mention in mentions:
        start = text.find(mention, pos)
        if start == -1:
            start = text.find(mention)
        if start == -1:
            continue
        span = (start, start + len(mention))
        if span not in spans:
            spans.append(span)
        pos = span[1]
    return spans


def format_prompt(tokenizer: Any, messages: Messages) -> str:
    """Render messages as the model's prompt string, exactly as ``HFModel.format`` does (the chat
    template with the generation prompt, else "Role: text" lines ending in "Assistant: ")."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    lines = [m["content"] if m["role"] == "system" else f"{m['role'].title()}: {m['content']}" for m in messages]
    return "\n\n".join(lines) + "\nAssistant: "


def add_special_tokens(tokenizer: Any) -> bool:
    """RETURNS (bool): Whether to add special tokens when encoding a prompt string (as
    ``HFModel._encode``: only without a chat template, which writes them itself)."""
    return not getattr(tokenizer, "chat_template", None)


def text_offset(prompt: str, messages: Messages, text: str) -> int:
    """Character offset of the document text in a rendered prompt string.

    The template ends the last user message with the text; ``render`` cleans it of the turn
    characters (same length) and the message is stripped, so it ends with ``text.rstrip()``.
    RAISES (ValueError): When the chat template did not copy the message verbatim.
    """
    content = messages[-1]["content"]
    body = clean(text).rstrip()
    if not content.endswith(body):
        raise ValueError(Errors.E504.format(tail=content[-80:]))
    pos = prompt.rfind(content)
    if pos == -1:
        raise ValueError(Errors.E505)
    return pos + len(content) - len(body)


def descriptions_for(labels: Sequence[str], descriptions: Optional[Dict[str, str]]) -> Dict[str, str]:
    """RETURNS (Dict[str, str]): A description (possibly empty) for every label."""
    descriptions = descriptions or {}
    return {label: descriptions.get(label, "") for label in labels}
