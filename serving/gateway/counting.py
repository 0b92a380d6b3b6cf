"""Token counting for `count_tokens` endpoints: the route's planned chain, asked in order.

Counting has no same-dialect shortcut: each upstream counts a canonical request in its own way
(vLLM renders the served model's chat template through /tokenize; Anthropic and Gemini have
counting endpoints). The chain is planned as for generation, so a private request is counted
by local targets only; a target that fails for a retryable reason hands over to the next.
"""

from __future__ import annotations

import logging

from serving.gateway import canonical as c
from serving.gateway.errors import GatewayError
from serving.gateway.policy.fallback import Failure, classify, final_error
from serving.gateway.runtime import Gateway
from serving.gateway.upstreams.base import RawCall

log = logging.getLogger("serving.gateway.counting")


async def count_tokens(gateway: Gateway, req: c.ChatRequest, call: RawCall) -> int:
    """Input tokens of `req` on the first target of its route that can count them.

    `call` is the client's request as received: privacy detectors scan its body.
    """
    dispatcher = gateway.dispatcher
    route = dispatcher.route(req.model)
    plan = await dispatcher.planner.plan(route, call, lambda: req)
    failures = list(plan.skipped)
    for target in plan.targets:
        try:
            return await gateway.upstreams[target.upstream].count_tokens(req, target.model)
        except GatewayError as exc:
            if not exc.retryable:
                raise
            log.debug("counting on %s failed (%s); trying the next target", target.label, exc)
            failures.append(Failure(target.label, classify(exc), exc))
    raise final_error(route.model, failures, plan.private is not None)
