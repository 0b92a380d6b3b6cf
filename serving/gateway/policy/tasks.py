"""What a request is for and what it needs, read from its facts (never its bytes).

Tasks drive the specialist pattern (coding → one chain, images → another); needs drive the
capability filter (policy/capabilities.py). Both are cheap: counts and flags already in the
facts, plus one bounded regex pass over the last user turn for code.
"""

from __future__ import annotations

import re

from serving.gateway.policy.facts import RequestFacts
from serving.gateway.settings import Need, Task

# Only the head of a prompt is scanned: code shows itself early, and the pass stays bounded.
SCAN_CHARS = 2000
_CODE = re.compile(
    r"```|\bdef \w+\(|\bclass \w+[:(]|\bfunction\s*\w*\(|#include\b|\bimport \w+|=>|\bconst \w+ ="
    r"|\bselect\b.+\bfrom\b|\b(?:python|javascript|typescript|golang|rust|java|c\+\+|sql|bash"
    r"|regex|compiler?|segfault|stack ?trace|traceback|refactor|unit tests?|api endpoint"
    r"|debug(?:ging)?)\b",
    re.IGNORECASE,
)


def is_coding(text: str) -> bool:
    return _CODE.search(text, 0, SCAN_CHARS) is not None


def tasks_of(facts: RequestFacts, prompt_tokens: int, long_document_tokens: int) -> frozenset[Task]:
    found: set[Task] = set()
    if facts.tools:
        found.add("tool_use")
    if facts.response_format is not None:
        found.add("structured_extraction")
    for a in facts.attachments:
        if a.kind == "image":
            found.add("image")
        elif a.kind == "audio":
            found.add("audio")
        else:
            found.add("long_document")
    if facts.audio_output:
        found.add("audio")
    if prompt_tokens >= long_document_tokens:
        found.add("long_document")
    if is_coding(facts.prompt):
        found.add("coding")
    return frozenset(found)


def needs_of(facts: RequestFacts) -> frozenset[Need]:
    """The capabilities a target must have to serve the request."""
    need: set[Need] = set()
    if facts.tools:
        need.add("tools")
    for a in facts.attachments:
        if a.kind == "image":
            need.add("vision")
        elif a.kind == "audio":
            need.add("audio")
    if facts.audio_output:
        need.add("audio")
    if facts.response_format == "json_schema":
        need.add("json_schema")
    return frozenset(need)
