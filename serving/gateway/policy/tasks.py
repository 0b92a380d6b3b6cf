"""What a request is for and what it needs, read from its facts (never its bytes).

Tasks drive the specialist pattern (coding → one chain, images → another); needs drive the
capability filter (policy/capabilities.py). Both are cheap: counts and flags already in the
facts, plus the bounded cue pass over the last user turn for code.
"""

from __future__ import annotations

from serving.gateway.policy.facts import RequestFacts
from serving.gateway.settings import Need, Task


def tasks_of(
    facts: RequestFacts, prompt_tokens: int, long_document_tokens: int, coding: bool
) -> frozenset[Task]:
    """`coding` comes from the features classifier's cue pass (classify/features.py), which
    reads the prompt once for both."""
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
    if coding:
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
