"""NetworkPolicies: engines take traffic only from the gateway (and the scraper), can be cut off
from egress entirely, and multi-node groups still reach each other."""

from __future__ import annotations

from tests.helm.chartkit import FULLNAME, NAMESPACE, Obj, Rendered, Renderer, pod_specs, selects

GATEWAY = f"{FULLNAME}-gateway"


def _pod_labels(rendered: Rendered) -> dict[str, dict[str, str]]:
    """Every pod template's labels, by workload name (and role for LeaderWorkerSets)."""
    out: dict[str, dict[str, str]] = {}
    for obj in rendered.all("Deployment") + rendered.all("LeaderWorkerSet"):
        for role, meta, _ in pod_specs(obj):
            out[f"{obj['metadata']['name']}/{role}"] = meta["labels"]
    return out


def _policy(rendered: Rendered, name: str) -> Obj:
    return rendered.one("NetworkPolicy", name)


def test_engine_policy_selects_only_its_engine(chart: Renderer) -> None:
    values = {
        "models": [
            {"name": "a", "profile": "llama-3.1-8b"},
            {"name": "b", "profile": "mistral-7b"},
        ]
    }
    rendered = chart.render(values=values)
    pods = _pod_labels(rendered)
    policy = _policy(rendered, f"{FULLNAME}-a")
    selected = sorted(
        k for k, labels in pods.items() if selects(policy["spec"]["podSelector"], labels)
    )
    assert selected == [f"{FULLNAME}-a/single"]


def test_engine_ingress_only_from_gateway_and_scraper_on_8000(chart: Renderer) -> None:
    rendered = chart.render("llama-3.1-70b.yaml")
    pods = _pod_labels(rendered)
    spec = _policy(rendered, f"{FULLNAME}-llama-70b")["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert len(spec["ingress"]) == 1
    rule = spec["ingress"][0]
    assert rule["ports"] == [{"port": 8000, "protocol": "TCP"}]
    gateway_peer, scraper_peer = rule["from"]
    assert set(gateway_peer) == {"podSelector"}  # same namespace only
    allowed = sorted(
        k for k, labels in pods.items() if selects(gateway_peer["podSelector"], labels)
    )
    assert allowed == [f"{GATEWAY}/single"]
    assert scraper_peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    assert scraper_peer["podSelector"] == {}


def test_scraper_rule_can_be_dropped_or_narrowed(chart: Renderer) -> None:
    none = chart.render(values={"networkPolicy": {"metrics": {"enabled": False}}})
    rule = _policy(none, f"{FULLNAME}-llama-8b")["spec"]["ingress"][0]
    assert len(rule["from"]) == 1
    narrow = chart.render(
        values={"networkPolicy": {"metrics": {"podSelector": {"app": "prometheus"}}}}
    )
    scraper = _policy(narrow, f"{FULLNAME}-llama-8b")["spec"]["ingress"][0]["from"][1]
    assert scraper["podSelector"] == {"matchLabels": {"app": "prometheus"}}
    local = chart.render(values={"networkPolicy": {"metrics": {"namespace": ""}}})
    scraper = _policy(local, f"{FULLNAME}-llama-8b")["spec"]["ingress"][0]["from"][1]
    assert scraper == {"podSelector": {}}  # any pod of the release's own namespace


def test_deny_egress_with_dns_and_mirror(chart: Renderer) -> None:
    spec = _policy(chart.render("llama-3.1-405b-fp8.yaml"), f"{FULLNAME}-llama-405b")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    dns, mirror = spec["egress"]
    assert dns["to"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}}
    ]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert mirror == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }


def test_deny_egress_alone_denies_everything(chart: Renderer) -> None:
    values = {"networkPolicy": {"engines": {"denyEgress": True}}, "weightsCache": {"fetch": "none"}}
    spec = _policy(chart.render(values=values), f"{FULLNAME}-llama-8b")["spec"]
    assert "Egress" in spec["policyTypes"]
    assert spec["egress"] == []


def test_egress_is_open_by_default(chart: Renderer) -> None:
    spec = _policy(chart.render(), f"{FULLNAME}-llama-8b")["spec"]
    assert "Egress" not in spec["policyTypes"] and "egress" not in spec


def test_multinode_group_reaches_itself(chart: Renderer) -> None:
    values = {
        "networkPolicy": {"engines": {"denyEgress": True}},
        "weightsCache": {"fetch": "none"},
    }
    rendered = chart.render("llama-3.1-405b-bf16-multinode.yaml", values=values)
    pods = _pod_labels(rendered)
    spec = _policy(rendered, f"{FULLNAME}-llama-405b-bf16")["spec"]
    name = f"{FULLNAME}-llama-405b-bf16"

    def picked(selector: Obj) -> list[str]:
        return sorted(k for k, labels in pods.items() if selects(selector, labels))

    group = picked(spec["podSelector"])
    assert group == [f"{name}/leader", f"{name}/worker"]
    peers = spec["ingress"][1]
    assert "ports" not in peers  # Ray and NCCL use many ports
    assert picked(peers["from"][0]["podSelector"]) == group
    assert picked(spec["egress"][0]["to"][0]["podSelector"]) == group


def test_gateway_policy(chart: Renderer) -> None:
    open_policy = _policy(chart.render(), GATEWAY)["spec"]
    assert open_policy["ingress"] == [
        {"ports": [{"port": 8000, "protocol": "TCP"}, {"port": 9090, "protocol": "TCP"}]}
    ]
    values = {"networkPolicy": {"gateway": {"allowedNamespaces": ["apps"]}}}
    rule = _policy(chart.render(values=values), GATEWAY)["spec"]["ingress"][0]
    expr = rule["from"][0]["namespaceSelector"]["matchExpressions"][0]
    # Its own namespace (helm test) and the scraper's stay allowed.
    assert expr["values"] == ["apps", NAMESPACE, "monitoring"]


def test_policies_can_be_disabled(chart: Renderer) -> None:
    assert chart.render(values={"networkPolicy": {"enabled": False}}).all("NetworkPolicy") == []
