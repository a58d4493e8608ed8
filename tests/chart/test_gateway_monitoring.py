"""The gateway's monitoring objects (issue 26): the ServiceMonitor and the PrometheusRule,
rendered by real helm, validated against schemas written from the Prometheus Operator's CRDs
(tests/chart/crds), and the alert rules checked and unit-tested by real promtool
(`promtool check rules`, `promtool test rules`): each alert fires from series that should fire
it, at the time its `for` allows, and stays silent on series that should not.
"""

from __future__ import annotations

import copy

import pytest

from test_chart import TOOLS, by_kind, merge, need, render, run, yaml  # noqa: F401
from test_chart import helm, _yaml_available  # noqa: F401  (fixtures)
from test_gateway import DEFAULT_TLS, GATEWAY, GW, NAMESPACE, validate_custom

MONITORED = merge(
    DEFAULT_TLS,
    {"irsa": {"gateway": {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                                      "prometheusRule": {"enabled": True}}}}},
)


@pytest.fixture(scope="session")
def promtool() -> str:
    return need(TOOLS / "bin" / "promtool", "promtool 2.42.0")


def one(docs: list[dict], kind: str) -> dict:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def test_off_by_default(helm, tmp_path):
    docs = render(helm, DEFAULT_TLS, tmp_path)
    assert by_kind(docs, "ServiceMonitor") == [] and by_kind(docs, "PrometheusRule") == []
    svc = one(docs, "Service")
    assert [p["name"] for p in svc["spec"]["ports"]] == ["s3"]


def test_service_monitor_scrapes_the_health_port_through_the_network_policy(helm, tmp_path):
    docs = render(helm, MONITORED, tmp_path)
    sm = one(docs, "ServiceMonitor")
    validate_custom(sm)
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert sm["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "30s"}]
    svc = one(docs, "Service")
    metrics = next(p for p in svc["spec"]["ports"] if p["name"] == "metrics")
    assert (metrics["port"], metrics["targetPort"]) == (9090, "health")
    # the ServiceMonitor selects the Service
    assert all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
    policy = one(docs, "NetworkPolicy") if len(by_kind(docs, "NetworkPolicy")) == 1 else next(
        p for p in by_kind(docs, "NetworkPolicy") if p["metadata"]["name"] == GW)
    scrape = [r for r in policy["spec"]["ingress"] if any(p["port"] == 9090 for p in r["ports"])]
    assert scrape == [{"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": 9090}]}]
    # the S3 port's rule is unchanged: still only Epinio's pods and the hook's
    s3_rule = next(r for r in policy["spec"]["ingress"] if any(p["port"] == 9000 for p in r["ports"]))
    assert all("namespaceSelector" not in f for f in s3_rule["from"])


def test_no_monitoring_outside_gateway_mode(helm, tmp_path):
    iam = {"seaweedfs": {"enabled": False}, "irsa": {"clusterName": "demo", "gateway": {
        "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}}}
    docs = render(helm, iam, tmp_path)
    assert by_kind(docs, "ServiceMonitor") == [] and by_kind(docs, "PrometheusRule") == []


def rules_file(helm, tmp_path, values=MONITORED) -> tuple[dict, str]:
    rule = one(render(helm, values, tmp_path), "PrometheusRule")
    validate_custom(rule)
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    return rule, str(path)


def test_prometheus_rule_passes_promtool_check(helm, promtool, tmp_path):
    rule, path = rules_file(helm, tmp_path)
    res = run([promtool, "check", "rules", path])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 5 rules found" in res.stdout, res.stdout
    names = [r["alert"] for r in rule["spec"]["groups"][0]["rules"]]
    assert names == [
        "EpinioIrsaGatewayCredentialsNotReady",
        "EpinioIrsaGatewayBackendErrors",
        "EpinioIrsaGatewayAuthenticationRefusals",
        "EpinioIrsaGatewayCertificateExpiring",
        "EpinioIrsaGatewayNoReadyReplica",
    ]
    for r in rule["spec"]["groups"][0]["rules"]:
        assert r["labels"]["severity"] in ("critical", "warning") and r["annotations"]["summary"], r


SEL = f'namespace="{NAMESPACE}", service="{GW}"'


def alert_tests() -> list[dict]:
    """promtool unit tests: for each alert, series that fire it (checked before and after its
    `for`) beside series that must not (another pod, another reason, a later expiry)."""
    def fires(name, at, labels):
        return {"eval_time": at, "alertname": name, "exp_alerts": [{"exp_labels": labels}]}

    def silent(name, at):
        return {"eval_time": at, "alertname": name, "exp_alerts": []}

    ns = {"namespace": NAMESPACE}
    return [
        {   # one pod without credentials for 6 minutes, another fine
            "interval": "1m",
            "input_series": [
                {"series": f'epinio_irsa_gateway_credentials_ready{{{SEL}, pod="gw-a"}}', "values": "0x15"},
                {"series": f'epinio_irsa_gateway_credentials_ready{{{SEL}, pod="gw-b"}}', "values": "1x15"},
            ],
            "alert_rule_test": [
                silent("EpinioIrsaGatewayCredentialsNotReady", "4m"),
                fires("EpinioIrsaGatewayCredentialsNotReady", "6m", {**ns, "pod": "gw-a", "severity": "critical"}),
            ],
        },
        {   # 100 answers a minute; 2 of them 5xx (2 %, silent) for 15 minutes, then 20 (17 %)
            "interval": "1m",
            "input_series": [
                {"series": f'epinio_irsa_gateway_requests_total{{{SEL}, pod="gw-a", operation="PutObject", status="200"}}',
                 "values": "0+100x60"},
                {"series": f'epinio_irsa_gateway_requests_total{{{SEL}, pod="gw-a", operation="PutObject", status="503"}}',
                 "values": "0+2x15 30+20x45"},
            ],
            "alert_rule_test": [
                silent("EpinioIrsaGatewayBackendErrors", "15m"),
                silent("EpinioIrsaGatewayBackendErrors", "22m"),
                fires("EpinioIrsaGatewayBackendErrors", "40m", {**ns, "severity": "warning"}),
            ],
        },
        {   # a wrong key: 2 authentication refusals a second; bucket refusals do not count
            "interval": "1m",
            "input_series": [
                {"series": f'epinio_irsa_gateway_refusals_total{{{SEL}, pod="gw-a", reason="authentication"}}',
                 "values": "0x10 0+120x30"},
                {"series": f'epinio_irsa_gateway_refusals_total{{{SEL}, pod="gw-a", reason="bucket"}}',
                 "values": "0+600x40"},
            ],
            "alert_rule_test": [
                silent("EpinioIrsaGatewayAuthenticationRefusals", "10m"),
                fires("EpinioIrsaGatewayAuthenticationRefusals", "35m", {**ns, "severity": "warning"}),
            ],
        },
        {   # one pod's certificate expires in 6 days, the other's in 60
            "interval": "1m",
            "input_series": [
                {"series": f'epinio_irsa_gateway_certificate_expiry_seconds{{{SEL}, pod="gw-a"}}', "values": f"{6 * 86400}x20"},
                {"series": f'epinio_irsa_gateway_certificate_expiry_seconds{{{SEL}, pod="gw-b"}}', "values": f"{60 * 86400}x20"},
            ],
            "alert_rule_test": [
                silent("EpinioIrsaGatewayCertificateExpiring", "5m"),
                fires("EpinioIrsaGatewayCertificateExpiring", "15m", {**ns, "pod": "gw-a", "severity": "warning"}),
            ],
        },
        {   # kube-state-metrics: 2 available, then none; another Deployment at 0 does not count
            "interval": "1m",
            "input_series": [
                {"series": f'kube_deployment_status_replicas_available{{namespace="{NAMESPACE}", deployment="{GW}"}}',
                 "values": "2x5 0x10"},
                {"series": f'kube_deployment_status_replicas_available{{namespace="{NAMESPACE}", deployment="epinio-server"}}',
                 "values": "0x15"},
            ],
            "alert_rule_test": [
                silent("EpinioIrsaGatewayNoReadyReplica", "5m"),
                silent("EpinioIrsaGatewayNoReadyReplica", "9m"),
                fires("EpinioIrsaGatewayNoReadyReplica", "12m", {**ns, "severity": "critical"}),
            ],
        },
    ]


def test_each_alert_fires_on_its_series_and_stays_silent_otherwise(helm, promtool, tmp_path):
    rule, _ = rules_file(helm, tmp_path)
    # promtool compares annotations exactly; they are checked by `check rules` and above, so the
    # unit tests judge the firing (expr, for, labels) on a copy without them.
    groups = copy.deepcopy(rule["spec"]["groups"])
    for r in groups[0]["rules"]:
        r.pop("annotations")
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}))
    tests = {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": alert_tests()}
    (tmp_path / "alerts.test.yml").write_text(yaml.safe_dump(tests))
    res = run([promtool, "test", "rules", "alerts.test.yml"], cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout, res.stdout


def test_alert_thresholds_follow_the_values(helm, promtool, tmp_path):
    values = merge(MONITORED, {"irsa": {"gateway": {"metrics": {"prometheusRule": {
        "backendErrorRatio": 0.25, "authenticationRefusalsPerSecond": 5}}}}})
    rule, path = rules_file(helm, tmp_path, values)
    exprs = {r["alert"]: r["expr"] for r in rule["spec"]["groups"][0]["rules"]}
    assert exprs["EpinioIrsaGatewayBackendErrors"].rstrip().endswith("> 0.25")
    assert exprs["EpinioIrsaGatewayAuthenticationRefusals"].rstrip().endswith("> 5")
    assert run([promtool, "check", "rules", path]).returncode == 0
