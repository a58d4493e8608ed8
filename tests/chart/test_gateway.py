"""Tests of the chart's gateway mode (irsa.gateway.*), with the real tools.

helm v4 renders the chart; the gateway's objects are checked against the gateway's
and the hook's environment contracts, the restricted Pod Security Standard, the
refusals of cross-field mistakes, and Epinio's real pod labels (the NetworkPolicy is
evaluated in Python against them); every manifest is validated offline against the
Kubernetes schemas (kubernetes-validate, strict) and scanned by checkov.

Run: .tools/venv/bin/python -m pytest tests/chart/test_gateway.py   (after scripts/setup.sh)
A missing tool FAILS the test that needs it, naming scripts/setup.sh.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from test_chart import (  # noqa: F401  (helm, kv, _yaml_available are fixtures)
    CASES,
    CHART,
    checkov_scan,
    CONTRACT_ENV,
    K8S_VERSIONS,
    NAMESPACE,
    RELEASE,
    ROOT,
    SECRET_ENV,
    STANDARD_ENV,
    TEST_IMAGE,
    _yaml_available,
    by_kind,
    container,
    env_of,
    helm,
    job,
    kv,
    merge,
    plain_env,
    render,
    run,
    template,
    yaml,
)

ACCESS_KEY = "GATEWAYKEY0123456789"
SECRET_KEY = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2Fy"
GW = "epinio-irsa-gateway"  # <fullname>-gateway for release epinio-irsa
GW_FQDN = f"{GW}.{NAMESPACE}.svc.cluster.local"
GW_SA = "epinio-irsa-gateway"
KEYS_SECRET = "epinio-irsa-gateway-keys"

# Plain HTTP, the explicit opt-out (irsa.gateway.tls.enabled: false): most tests use it, since
# what they check does not depend on TLS; DEFAULT_TLS is the README's values file.
GATEWAY = {
    "seaweedfs": {"enabled": False},
    "s3": {
        "endpoint": GW_FQDN,
        "useSSL": False,
        "region": "eu-west-1",
        "bucket": "acme-epinio-sources",
        "accessKeyID": ACCESS_KEY,
        "secretAccessKey": SECRET_KEY,
    },
    "irsa": {"clusterName": "demo", "region": "eu-west-1", "gateway": {"enabled": True, "tls": {"enabled": False}}},
}
# An existing kubernetes.io/tls Secret.
TLS = merge(
    GATEWAY,
    {"s3": {"useSSL": True, "certificateSecret": "gateway-tls"}, "irsa": {"gateway": {"tls": {"enabled": True, "secretName": "gateway-tls"}}}},
)
# The default: the chart issues the certificate from Epinio's epinio-ca (the README's values file).
CERT_SECRET = "epinio-irsa-gateway-tls"
DEFAULT_TLS = {
    **GATEWAY,
    "s3": {**GATEWAY["s3"], "useSSL": True, "certificateSecret": CERT_SECRET},
    "irsa": {"clusterName": "demo", "region": "eu-west-1", "gateway": {"enabled": True}},
}

GATEWAY_CASES: dict[str, dict] = {
    "gateway": GATEWAY,
    "gateway-tls": TLS,
    "gateway-default-tls": DEFAULT_TLS,
    "gateway-monitored": merge(DEFAULT_TLS, {"irsa": {"gateway": {"metrics": {
        "serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}}}),
    "gateway-pod-identity": merge(GATEWAY, {"irsa": {"mode": "pod-identity"}}),
    "gateway-auto": merge(GATEWAY, {"irsa": {"mode": "auto"}}),
    "gateway-one-replica": merge(GATEWAY, {"irsa": {"gateway": {"replicas": 1}}}),
    "gateway-custom": merge(
        GATEWAY,
        {
            "s3": {"region": ""},
            "irsa": {
                "region": "",
                "logFormat": "json",
                "logLevel": "debug",
                "installer": {"serviceAccount": {"name": "epinio-irsa-installer"}},
                "imagePullSecrets": [{"name": "registry"}],
                "gateway": {
                    "replicas": 3,
                    "serviceAccount": {"name": "acme-s3-gateway"},
                    "bucketRegion": "us-west-2",
                    "bindAddress": "::",
                    "terminationGracePeriodSeconds": 60,
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "512Mi"}},
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "epinio", "effect": "NoSchedule"}],
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]}]}]
                            }
                        }
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "topology.kubernetes.io/zone",
                            "whenUnsatisfiable": "DoNotSchedule",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "epinio-irsa-gateway"}},
                        }
                    ],
                    "priorityClassName": "system-cluster-critical",
                    "podAnnotations": {"example.com/team": "platform"},
                    "podLabels": {"example.com/tier": "storage"},
                    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy.internal:3128"}],
                    "networkPolicy": {
                        "extraEgress": [{"to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}], "ports": [{"protocol": "TCP", "port": 3128}]}]
                    },
                },
            },
        },
    ),
}

# The gateway process's environment contract (src/gateway/config.rs in the gateway's tree).
GATEWAY_ENV = {
    "EPINIO_IRSA_GATEWAY_LISTEN",
    "EPINIO_IRSA_GATEWAY_HEALTH_LISTEN",
    "EPINIO_IRSA_GATEWAY_BUCKET",
    "EPINIO_IRSA_GATEWAY_REGION",
    "EPINIO_IRSA_GATEWAY_ACCESS_KEY_FILE",
    "EPINIO_IRSA_GATEWAY_SECRET_KEY_FILE",
    "EPINIO_IRSA_GATEWAY_LOG_FORMAT",
    "EPINIO_IRSA_GATEWAY_DRAIN_SECONDS",
    "EPINIO_IRSA_GATEWAY_MAX_CONNECTIONS",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_REGION",
}
GATEWAY_TLS_ENV = {"EPINIO_IRSA_GATEWAY_TLS_CERT_FILE", "EPINIO_IRSA_GATEWAY_TLS_KEY_FILE"}
# What the hook reads in gateway mode, beside its usual contract.
HOOK_GATEWAY_ENV = {
    "EPINIO_IRSA_GATEWAY",
    "EPINIO_IRSA_GATEWAY_SERVICE_ACCOUNT",
    "EPINIO_IRSA_GATEWAY_ENDPOINT",
}
KEY_GENERATION = ("LC_ALL=C tr -dc A-Z0-9 </dev/urandom | head -c 20", "openssl rand -base64 30")


def is_hook(d: dict) -> bool:
    return "helm.sh/hook" in (d["metadata"].get("annotations") or {})


def release_objects(docs: list[dict]) -> list[dict]:
    return [d for d in docs if not is_hook(d)]


def one(docs: list[dict], kind: str, hook: bool = False) -> dict:
    found = [d for d in by_kind(docs, kind) if is_hook(d) == hook]
    assert len(found) == 1, f"expected one {'hook ' if hook else ''}{kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def deployment(docs):
    return one(docs, "Deployment")


def pod_spec(docs):
    return deployment(docs)["spec"]["template"]["spec"]


def gateway_container(docs):
    containers = pod_spec(docs)["containers"]
    assert len(containers) == 1 and not pod_spec(docs).get("initContainers")
    return containers[0]


def gateway_env(docs) -> dict[str, dict]:
    return {e["name"]: e for e in gateway_container(docs)["env"]}


def template_in(helm, values, tmp_path, namespace=NAMESPACE, release=RELEASE):
    """helm template into any namespace / release (test_chart's template() fixes both)."""
    values = merge(TEST_IMAGE, values)
    vf = tmp_path / f"gw-{abs(hash(json.dumps(values, sort_keys=True)))}-{namespace}-{release}.yaml"
    vf.write_text(yaml.safe_dump(values))
    return run([helm, "template", release, str(CHART), "-n", namespace, "-f", str(vf)])


def refused(helm, values, tmp_path) -> str:
    res = template(helm, values, tmp_path)
    assert res.returncode != 0, "rendered, but should have been refused"
    assert "execution error" in res.stderr, res.stderr
    return res.stderr


# ------------------------------------------------------------ on and off
@pytest.mark.parametrize("case", ["iam", "static-keys", "bundled-seaweedfs", "custom-names"])
def test_gateway_off_renders_nothing_of_it(helm, tmp_path, case):
    # even with every gateway setting filled in but enabled: false
    values = merge(CASES[case], {"irsa": {"gateway": merge(GATEWAY_CASES["gateway-custom"]["irsa"]["gateway"], {"enabled": False})}})
    values["irsa"]["gateway"]["serviceAccount"] = {"name": GW_SA}
    docs = render(helm, values, tmp_path)
    for d in docs:
        assert "gateway" not in d["metadata"]["name"], f"{d['kind']} {d['metadata']['name']}"
        assert d["kind"] not in ("Deployment", "Service", "PodDisruptionBudget"), d["kind"]
        assert is_hook(d), f"{d['kind']} {d['metadata']['name']} outlives the hooks"
    for command in ("provision", "teardown", "verify"):
        assert not [n for n in env_of(job(docs, command)) if n.startswith("EPINIO_IRSA_GATEWAY")]
    assert docs == render(helm, CASES[case], tmp_path), "gateway values change nothing while it is off"


def test_gateway_off_passes_a_custom_gateway_service_account(helm, tmp_path):
    # A switch out of gateway mode must still find what the hook made for the gateway.
    docs = render(helm, merge(CASES["iam"], {"irsa": {"gateway": {"serviceAccount": {"name": "acme-s3-gateway"}}}}), tmp_path)
    env = plain_env(job(docs, "provision"))
    assert env["EPINIO_IRSA_GATEWAY_SERVICE_ACCOUNT"] == "acme-s3-gateway"
    assert "EPINIO_IRSA_GATEWAY" not in env
    assert not release_objects(docs)


def test_gateway_on_renders_exactly_its_objects(helm, tmp_path):
    docs = render(helm, GATEWAY, tmp_path)
    got = sorted((d["kind"], d["metadata"]["name"]) for d in release_objects(docs))
    assert got == sorted(
        [
            ("Deployment", GW),
            ("Service", GW),
            ("ServiceAccount", GW_SA),
            ("PodDisruptionBudget", GW),
            ("NetworkPolicy", GW),
            ("Secret", KEYS_SECRET),
        ]
    )
    for d in release_objects(docs):
        meta = d["metadata"]
        assert meta["namespace"] == NAMESPACE
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
        assert meta["labels"]["app.kubernetes.io/component"] == "gateway"
    # the hook: its usual objects, plus the gateway's Role and RoleBinding; no static-keys Secret
    hooks = sorted((d["kind"], d["metadata"]["name"]) for d in docs if is_hook(d))
    assert hooks == sorted(
        [
            ("Job", "epinio-irsa-provision"),
            ("Job", "epinio-irsa-teardown"),
            ("Job", "epinio-irsa-verify"),
            ("NetworkPolicy", "epinio-irsa"),
            ("ServiceAccount", "epinio-irsa"),
            ("Role", "epinio-irsa"),
            ("RoleBinding", "epinio-irsa"),
            ("Role", f"{GW}-hook"),
            ("RoleBinding", f"{GW}-hook"),
        ]
    )


@pytest.mark.parametrize("case", GATEWAY_CASES)
def test_helm_lint_gateway(helm, tmp_path, case):
    vf = tmp_path / "values.yaml"
    vf.write_text(yaml.safe_dump(merge(TEST_IMAGE, GATEWAY_CASES[case])))
    res = run([helm, "lint", "--strict", str(CHART), "-n", NAMESPACE, "-f", str(vf)])
    assert res.returncode == 0, res.stdout + res.stderr


# Custom resources the chart may render, validated against schemas written from their CRDs
# (tests/chart/crds/), since kubernetes-validate knows only Kubernetes' own kinds.
CRD_SCHEMAS = {
    ("cert-manager.io/v1", "Certificate"): "certificate.cert-manager.io-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.monitoring.coreos.com-v1.json",
}


def validate_custom(d: dict) -> None:
    import jsonschema

    name = CRD_SCHEMAS[(d["apiVersion"], d["kind"])]
    schema = json.loads((Path(__file__).parent / "crds" / name).read_text())
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(d), key=lambda e: list(e.path))
    assert not errors, f"{d['kind']}/{d['metadata']['name']}: " + "; ".join(f"{e.message} at {list(e.path)}" for e in errors)


@pytest.mark.parametrize("case", GATEWAY_CASES)
def test_kubernetes_schema_strict_gateway(helm, kv, tmp_path, case):
    docs = render(helm, GATEWAY_CASES[case], tmp_path)
    for d in docs:
        if (d["apiVersion"], d["kind"]) in CRD_SCHEMAS:
            validate_custom(d)
    docs = [d for d in docs if (d["apiVersion"], d["kind"]) not in CRD_SCHEMAS]
    for version in K8S_VERSIONS:
        for d in docs:
            try:
                kv.validate(d, version, strict=True)
            except kv.ValidationError as e:
                pytest.fail(f"{d['kind']}/{d['metadata']['name']} invalid for Kubernetes {version}: {e.message} at {list(e.path)}")


# ------------------------------------------------------------- Deployment
def test_deployment_shape(helm, tmp_path):
    docs = render(helm, GATEWAY, tmp_path)
    dep = deployment(docs)
    assert dep["spec"]["replicas"] == 2
    assert "helm.sh/hook" not in (dep["metadata"].get("annotations") or {})
    pod = pod_spec(docs)
    c = gateway_container(docs)
    hook = container(job(docs, "provision"))
    assert c["image"] == hook["image"] == "registry.example.com/epinio-irsa:0.1.0"
    assert c["imagePullPolicy"] == hook["imagePullPolicy"]
    assert c["args"] == ["gateway"]
    assert pod["serviceAccountName"] == GW_SA == one(docs, "ServiceAccount")["metadata"]["name"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["terminationGracePeriodSeconds"] == 30
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
    # the selector selects the pods, and the Service and PDB select the same pods
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert selects(dep["spec"]["selector"], labels)
    assert selects({"matchLabels": one(docs, "Service")["spec"]["selector"]}, labels)
    assert selects(one(docs, "PodDisruptionBudget")["spec"]["selector"], labels)
    # spread over nodes (and zones), never blocking scheduling
    spread = pod["topologySpreadConstraints"]
    assert {t["topologyKey"] for t in spread} == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for t in spread:
        assert t["whenUnsatisfiable"] == "ScheduleAnyway" and selects(t["labelSelector"], labels)
    # the rollout keeps every replica serving (the hook restarts the gateway)
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}


def test_deployment_custom_values(helm, tmp_path):
    docs = render(helm, GATEWAY_CASES["gateway-custom"], tmp_path)
    pod = pod_spec(docs)
    c = gateway_container(docs)
    gw = GATEWAY_CASES["gateway-custom"]["irsa"]["gateway"]
    assert deployment(docs)["spec"]["replicas"] == 3
    assert pod["serviceAccountName"] == "acme-s3-gateway" == one(docs, "ServiceAccount")["metadata"]["name"]
    assert pod["terminationGracePeriodSeconds"] == 60
    assert c["resources"] == gw["resources"]
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints", "priorityClassName"):
        assert pod[key] == gw[key], key
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    meta = deployment(docs)["spec"]["template"]["metadata"]
    assert meta["annotations"]["example.com/team"] == "platform"
    assert meta["labels"]["example.com/tier"] == "storage"
    env = gateway_env(docs)
    assert env["HTTPS_PROXY"]["value"] == "http://proxy.internal:3128"
    assert env["EPINIO_IRSA_GATEWAY_LISTEN"]["value"] == "[::]:9000"
    assert env["EPINIO_IRSA_GATEWAY_HEALTH_LISTEN"]["value"] == "[::]:9090"
    assert env["EPINIO_IRSA_GATEWAY_DRAIN_SECONDS"]["value"] == "55"
    assert env["EPINIO_IRSA_GATEWAY_LOG_FORMAT"]["value"] == "json"
    assert env["RUST_LOG"]["value"] == "debug"
    # the hook binds its extra Role to its own (renamed) ServiceAccount, and manages the renamed gateway one
    binding = next(d for d in by_kind(docs, "RoleBinding") if d["metadata"]["name"] == f"{GW}-hook")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "epinio-irsa-installer", "namespace": NAMESPACE}]
    assert plain_env(job(docs, "provision"))["EPINIO_IRSA_GATEWAY_SERVICE_ACCOUNT"] == "acme-s3-gateway"


@pytest.mark.parametrize("case", GATEWAY_CASES)
def test_restricted_pod_security_as_the_hook(helm, tmp_path, case):
    docs = render(helm, GATEWAY_CASES[case], tmp_path)
    pod = pod_spec(docs)
    c = gateway_container(docs)
    hook_pod = job(docs, "provision")["spec"]["template"]["spec"]
    assert pod["securityContext"] == hook_pod["securityContext"]
    assert c["securityContext"] == container(job(docs, "provision"))["securityContext"]
    psc, sc = pod["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["runAsNonRoot"] is True
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert not sc.get("privileged")
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)
    for vol in pod["volumes"]:
        assert set(vol) - {"name"} <= {"secret", "emptyDir"}, vol
    for port in c["ports"]:
        assert "hostPort" not in port
    res = c["resources"]
    assert res["requests"]["cpu"] and res["requests"]["memory"] and res["limits"]["memory"]


def test_probes(helm, tmp_path):
    docs = render(helm, GATEWAY, tmp_path)
    c = gateway_container(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"s3": 9000, "health": 9090}
    env = gateway_env(docs)
    assert env["EPINIO_IRSA_GATEWAY_HEALTH_LISTEN"]["value"].endswith(f":{ports['health']}")
    assert env["EPINIO_IRSA_GATEWAY_LISTEN"]["value"].endswith(f":{ports['s3']}")
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "health"}
    # Readiness is "serving", on the health listener: never the S3 port, never /credentials
    # (the role is created by the hook that `helm install --wait` runs after readiness).
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if probe in c:
            assert "exec" not in c[probe] and c[probe]["httpGet"]["port"] == "health"


# -------------------------------------------------------------- env contracts
def test_gateway_env_contract(helm, tmp_path):
    docs = render(helm, GATEWAY, tmp_path)
    env = gateway_env(docs)
    assert set(env) == GATEWAY_ENV
    assert {n: e["value"] for n, e in env.items()} == {
        "EPINIO_IRSA_GATEWAY_LISTEN": "0.0.0.0:9000",
        "EPINIO_IRSA_GATEWAY_HEALTH_LISTEN": "0.0.0.0:9090",
        "EPINIO_IRSA_GATEWAY_BUCKET": "acme-epinio-sources",
        "EPINIO_IRSA_GATEWAY_REGION": "eu-west-1",
        "EPINIO_IRSA_GATEWAY_ACCESS_KEY_FILE": "/etc/epinio-irsa-gateway/keys/accessKeyID",
        "EPINIO_IRSA_GATEWAY_SECRET_KEY_FILE": "/etc/epinio-irsa-gateway/keys/secretAccessKey",
        "EPINIO_IRSA_GATEWAY_LOG_FORMAT": "text",
        "EPINIO_IRSA_GATEWAY_DRAIN_SECONDS": "25",
        "EPINIO_IRSA_GATEWAY_MAX_CONNECTIONS": "1024",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_REGION": "eu-west-1",
    }
    # the key files are the keys Secret, mounted read-only where the env says
    c, pod = gateway_container(docs), pod_spec(docs)
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/epinio-irsa-gateway/keys")
    assert mount["readOnly"] is True
    vol = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert vol["secret"]["secretName"] == KEYS_SECRET
    assert {i["key"]: i["path"] for i in vol["secret"]["items"]} == {"accessKeyID": "accessKeyID", "secretAccessKey": "secretAccessKey"}
    secret = one(docs, "Secret")
    assert base64.b64decode(secret["data"]["accessKeyID"]).decode() == ACCESS_KEY
    assert base64.b64decode(secret["data"]["secretAccessKey"]).decode() == SECRET_KEY


def test_gateway_env_names_match_the_gateway_source():
    """Every EPINIO_IRSA_GATEWAY_* name the chart gives the gateway is one the gateway reads."""
    config = ROOT / "src" / "gateway" / "config.rs"
    assert config.exists(), "the gateway's environment contract moved: update this test"
    consts = set(re.findall(r'"(EPINIO_IRSA_GATEWAY_[A-Z_]+)"', config.read_text()))
    rendered = (GATEWAY_ENV | GATEWAY_TLS_ENV) - {"AWS_REGION", "AWS_EC2_METADATA_DISABLED"}
    assert rendered <= consts, f"rendered but not read by the gateway: {sorted(rendered - consts)}"


def test_default_tls_issues_the_certificate_from_epinio_ca(helm, tmp_path):
    """TLS by default, the way Epinio's chart does it for its bundled SeaweedFS: a cert-manager
    Certificate from the epinio-ca ClusterIssuer for the gateway Service's names, served by the
    gateway and trusted by Epinio through s3.certificateSecret."""
    docs = render(helm, DEFAULT_TLS, tmp_path)
    cert = one(docs, "Certificate")
    validate_custom(cert)
    assert cert["metadata"]["name"] == cert["spec"]["secretName"] == CERT_SECRET
    assert cert["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "epinio-ca"}
    assert set(cert["spec"]["dnsNames"]) == {GW, f"{GW}.{NAMESPACE}", f"{GW}.{NAMESPACE}.svc", GW_FQDN}
    assert "server auth" in cert["spec"]["usages"]
    c, pod = gateway_container(docs), pod_spec(docs)
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/epinio-irsa-gateway/tls")
    vol = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert vol["secret"]["secretName"] == CERT_SECRET
    assert one(docs, "Service")["spec"]["ports"][0]["port"] == 443
    assert plain_env(job(docs, "provision"))["EPINIO_IRSA_GATEWAY_ENDPOINT"] == f"https://{GW_FQDN}"
    # another issuer, by value
    other = merge(DEFAULT_TLS, {"irsa": {"gateway": {"tls": {"certManager": {"issuerKind": "Issuer", "issuerName": "team-ca"}}}}})
    ref = one(render(helm, other, tmp_path), "Certificate")["spec"]["issuerRef"]
    assert (ref["kind"], ref["name"]) == ("Issuer", "team-ca")
    # an existing Secret: no Certificate; plain HTTP: none either
    assert by_kind(render(helm, TLS, tmp_path), "Certificate") == []
    assert by_kind(render(helm, GATEWAY, tmp_path), "Certificate") == []


@pytest.mark.parametrize(
    "values, says",
    [
        ({**DEFAULT_TLS, "s3": {**DEFAULT_TLS["s3"], "useSSL": False}}, ["s3.useSSL is false", "s3.useSSL: true\n", f"s3.certificateSecret: {CERT_SECRET}"]),
        ({**DEFAULT_TLS, "s3": {k: v for k, v in DEFAULT_TLS["s3"].items() if k != "certificateSecret"}}, ['s3.certificateSecret is ""', f"s3.certificateSecret: {CERT_SECRET}"]),
        ({**DEFAULT_TLS, "s3": {**DEFAULT_TLS["s3"], "certificateSecret": "other"}}, ['s3.certificateSecret is "other"', f"s3.certificateSecret: {CERT_SECRET}"]),
    ],
    ids=["without-use-ssl", "without-certificate-secret", "another-certificate-secret"],
)
def test_default_tls_needs_use_ssl_and_the_certificate_secret(helm, tmp_path, values, says):
    err = refused(helm, values, tmp_path)
    for text in says:
        assert text in err, err


def gateway_notes(helm, tmp_path, values) -> str:
    vf = tmp_path / "notes.yaml"
    vf.write_text(yaml.safe_dump(merge(TEST_IMAGE, values)))
    res = run(
        [helm, "install", RELEASE, str(CHART), "-n", NAMESPACE, "--dry-run=client", "-f", str(vf)],
        env={"KUBECONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert res.returncode == 0, res.stderr
    return res.stdout.split("NOTES:", 1)[1]


def test_plain_http_is_an_explicit_opt_out_that_notes_warn_about(helm, tmp_path):
    plain = gateway_notes(helm, tmp_path, GATEWAY)
    assert "WARNING: TLS is off (irsa.gateway.tls.enabled: false)" in plain, plain
    default = gateway_notes(helm, tmp_path, DEFAULT_TLS)
    assert "WARNING" not in default, default
    assert f"Certificate {CERT_SECRET}, issued by\nClusterIssuer epinio-ca" in default, default


def test_the_hook_trusts_what_epinio_trusts_for_the_gateway(helm, tmp_path):
    """provision and verify mount ca.crt and tls.crt of the Secret s3.certificateSecret names (as
    Epinio's staging appends them to its CA bundle), never tls.key, and name them in
    EPINIO_IRSA_GATEWAY_CA_FILES; teardown, which does not call the gateway, mounts nothing."""
    for values, secret in ((DEFAULT_TLS, CERT_SECRET), (TLS, "gateway-tls")):
        docs = render(helm, values, tmp_path)
        for command in ("provision", "verify"):
            j = job(docs, command)
            c = container(j)
            assert plain_env(j)["EPINIO_IRSA_GATEWAY_CA_FILES"] == "/etc/epinio-irsa/gateway-ca/ca.crt,/etc/epinio-irsa/gateway-ca/tls.crt"
            mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/epinio-irsa/gateway-ca")
            assert mount["readOnly"] is True
            vol = next(v for v in j["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"])
            assert vol["secret"]["secretName"] == secret == values["s3"]["certificateSecret"]
            assert {i["key"] for i in vol["secret"]["items"]} == {"ca.crt", "tls.crt"}
        teardown = job(docs, "teardown")
        assert all(m["mountPath"] != "/etc/epinio-irsa/gateway-ca" for m in container(teardown)["volumeMounts"])
    plain = render(helm, GATEWAY, tmp_path)
    assert "EPINIO_IRSA_GATEWAY_CA_FILES" not in plain_env(job(plain, "provision"))


def test_gateway_env_tls(helm, tmp_path):
    docs = render(helm, TLS, tmp_path)
    env = gateway_env(docs)
    assert set(env) == GATEWAY_ENV | GATEWAY_TLS_ENV
    assert env["EPINIO_IRSA_GATEWAY_TLS_CERT_FILE"]["value"] == "/etc/epinio-irsa-gateway/tls/tls.crt"
    assert env["EPINIO_IRSA_GATEWAY_TLS_KEY_FILE"]["value"] == "/etc/epinio-irsa-gateway/tls/tls.key"
    c, pod = gateway_container(docs), pod_spec(docs)
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/epinio-irsa-gateway/tls")
    assert mount["readOnly"] is True
    vol = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert vol["secret"]["secretName"] == "gateway-tls"
    assert {i["key"] for i in vol["secret"]["items"]} == {"tls.crt", "tls.key"}
    svc = one(docs, "Service")
    assert svc["spec"]["ports"] == [{"name": "s3", "port": 443, "targetPort": "s3", "protocol": "TCP"}]
    assert plain_env(job(docs, "provision"))["EPINIO_IRSA_GATEWAY_ENDPOINT"] == f"https://{GW_FQDN}"


@pytest.mark.parametrize(
    "irsa, gateway, expected_bucket_region, expected_aws_region",
    [
        ({"region": "eu-west-1"}, {}, "eu-west-1", "eu-west-1"),
        ({"region": "eu-west-1"}, {"bucketRegion": "us-west-2"}, "us-west-2", "eu-west-1"),
        # s3.region names the bucket's region outside gateway mode; a values file switched to
        # gateway mode keeps meaning it
        ({"region": ""}, {}, "eu-west-1", "eu-west-1"),
        ({"region": ""}, {"bucketRegion": "ap-south-1"}, "ap-south-1", "eu-west-1"),
    ],
)
def test_gateway_regions(helm, tmp_path, irsa, gateway, expected_bucket_region, expected_aws_region):
    values = merge(GATEWAY, {"s3": {"region": "eu-west-1"}, "irsa": merge(irsa, {"gateway": gateway})})
    env = gateway_env(render(helm, values, tmp_path))
    assert env["EPINIO_IRSA_GATEWAY_REGION"]["value"] == expected_bucket_region
    assert env["AWS_REGION"]["value"] == expected_aws_region


def test_gateway_aws_region_without_any_region(helm, tmp_path):
    env = gateway_env(render(helm, merge(GATEWAY, {"s3": {"region": ""}, "irsa": {"region": ""}}), tmp_path))
    assert env["EPINIO_IRSA_GATEWAY_REGION"]["value"] == env["AWS_REGION"]["value"] == "us-east-1"


@pytest.mark.parametrize("case", GATEWAY_CASES)
def test_hook_env_in_gateway_mode(helm, tmp_path, case):
    values = GATEWAY_CASES[case]
    docs = render(helm, values, tmp_path)
    gsa = values["irsa"]["gateway"].get("serviceAccount", {}).get("name", GW_SA)
    scheme = "http" if values["irsa"]["gateway"].get("tls", {}).get("enabled") is False else "https"
    envs = []
    for command in ("provision", "teardown", "verify"):
        env = env_of(job(docs, command))
        per_phase = ("EPINIO_IRSA_DEADLINE_SECONDS", "EPINIO_IRSA_GATEWAY_CA_FILES")
        envs.append([e for e in container(job(docs, command))["env"] if e["name"] not in per_phase])
        plain = plain_env(job(docs, command))
        # provision and verify prove the path over TLS, trusting s3.certificateSecret; teardown does not call it
        tls_proof = scheme == "https" and command != "teardown"
        assert ("EPINIO_IRSA_GATEWAY_CA_FILES" in plain) == tls_proof, (command, scheme)
        assert HOOK_GATEWAY_ENV <= set(plain)
        assert plain["EPINIO_IRSA_GATEWAY"] == "true"
        assert plain["EPINIO_IRSA_GATEWAY_SERVICE_ACCOUNT"] == gsa
        # The hook finds the gateway's Deployment by its ServiceAccount (the restart rule).
        assert "EPINIO_IRSA_GATEWAY_DEPLOYMENT" not in plain
        assert plain["EPINIO_IRSA_GATEWAY_ENDPOINT"] == f"{scheme}://{GW_FQDN}"
        # Gateway mode is IAM mode for the hook, never "static keys, nothing to do":
        # the keys come from the gateway's Secret (verify signs with them), no static Secret.
        assert plain["EPINIO_IRSA_BUNDLED_S3"] == "false"
        assert plain["EPINIO_IRSA_CLUSTER_NAME"] == "demo"
        for name, key in (("EPINIO_IRSA_S3_ACCESS_KEY_ID", "accessKeyID"), ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", "secretAccessKey")):
            assert env[name] == {"name": name, "valueFrom": {"secretKeyRef": {"name": KEYS_SECRET, "key": key}}}
        unknown = set(env) - CONTRACT_ENV - STANDARD_ENV - HOOK_GATEWAY_ENV - {"EPINIO_IRSA_GATEWAY_CA_FILES"}
        assert not unknown, f"env names outside the hook's contract: {sorted(unknown)}"
    assert envs[0] == envs[1] == envs[2], "every phase sees the same configuration"
    assert not [d for d in by_kind(docs, "Secret") if d["metadata"]["name"] == "epinio-irsa-s3-keys"]


# ---------------------------------------------------------------- keys
@pytest.mark.parametrize("case", GATEWAY_CASES)
def test_keys_never_in_plain_values(helm, tmp_path, case):
    res = template(helm, GATEWAY_CASES[case], tmp_path)
    assert res.returncode == 0, res.stderr
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    for d in docs:
        if d["kind"] == "Secret" and d["metadata"]["name"] == KEYS_SECRET:
            continue
        text = yaml.safe_dump(d)
        for value in (ACCESS_KEY, SECRET_KEY):
            assert value not in text, f"a key in {d['kind']} {d['metadata']['name']}"
            assert base64.b64encode(value.encode()).decode() not in text, f"a key in {d['kind']} {d['metadata']['name']}"
    for d in by_kind(docs, "Job") + by_kind(docs, "Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            for e in c["env"]:
                if e["name"] in SECRET_ENV:
                    assert "value" not in e and "secretKeyRef" in e["valueFrom"], e["name"]


def test_key_change_rolls_the_pods(helm, tmp_path):
    def checksum(values):
        return deployment(render(helm, values, tmp_path))["spec"]["template"]["metadata"]["annotations"]["checksum/keys"]

    base = checksum(GATEWAY)
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert checksum(merge(GATEWAY, {"s3": {"secretAccessKey": SECRET_KEY + "x"}})) != base
    assert checksum(merge(GATEWAY, {"s3": {"accessKeyID": "OTHERKEY0123456789AB"}})) != base
    assert checksum(merge(GATEWAY, {"irsa": {"gateway": {"replicas": 4}}})) == base


# -------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "keys",
    [{"accessKeyID": "", "secretAccessKey": ""}, {"accessKeyID": ""}, {"secretAccessKey": ""}],
    ids=["both-empty", "no-access-key", "no-secret-key"],
)
def test_refuses_empty_keys_with_the_command_to_generate_them(helm, tmp_path, keys):
    err = refused(helm, merge(GATEWAY, {"s3": keys}), tmp_path)
    for command in KEY_GENERATION:
        assert command in err, err
    assert "s3.accessKeyID" in err and "s3.secretAccessKey" in err


def test_refuses_an_access_key_unfit_for_sigv4(helm, tmp_path):
    err = refused(helm, merge(GATEWAY, {"s3": {"accessKeyID": "AKIA/SLASH"}}), tmp_path)
    assert "s3.accessKeyID must be printable ASCII without spaces or '/'" in err
    assert KEY_GENERATION[0] in err


@pytest.mark.parametrize(
    "endpoint",
    [
        "s3.amazonaws.com",  # Epinio's default
        "s3.eu-west-1.amazonaws.com",
        f"{GW}.other-namespace.svc.cluster.local",
        f"other-{GW}.{NAMESPACE}.svc.cluster.local",
        f"{GW}.{NAMESPACE}.svc.cluster.local:9000",  # the pod's port, not the Service's
        f"{GW}.{NAMESPACE}.svc.cluster.local:443",  # TLS port without TLS
        f"http://{GW_FQDN}",  # Epinio adds the scheme itself
        f"{GW}.{NAMESPACE}.svc.cluster",
        "",
    ],
)
def test_refuses_an_endpoint_that_is_not_the_gateway(helm, tmp_path, endpoint):
    res = template(helm, merge(GATEWAY, {"s3": {"endpoint": endpoint}}), tmp_path)
    assert res.returncode != 0, f"accepted s3.endpoint {endpoint!r}"
    err = res.stderr
    if "values don't meet the specifications of the schema" in err:
        assert "endpoint" in err and "://" in endpoint, err  # only a scheme is already a schema error
        return
    assert f"s3.endpoint: {GW_FQDN}\n" in err, err
    assert "s3.useSSL: false\n" in err, err
    assert "s3.region: " in err, err


def test_refuses_a_wrong_endpoint_with_tls_values(helm, tmp_path):
    err = refused(helm, merge(TLS, {"s3": {"endpoint": "s3.amazonaws.com"}}), tmp_path)
    assert f"s3.endpoint: {GW_FQDN}\n" in err and "s3.useSSL: true\n" in err and "s3.certificateSecret" in err


@pytest.mark.parametrize(
    "spelling",
    [GW, f"{GW}.{NAMESPACE}", f"{GW}.{NAMESPACE}.svc", GW_FQDN, GW_FQDN.upper()],
)
@pytest.mark.parametrize("port", ["", ":80"])
def test_accepts_every_spelling_of_the_service(helm, tmp_path, spelling, port):
    render(helm, merge(GATEWAY, {"s3": {"endpoint": spelling + port}}), tmp_path)


@pytest.mark.parametrize("spelling", [GW, f"{GW}.{NAMESPACE}", f"{GW}.{NAMESPACE}.svc", GW_FQDN])
@pytest.mark.parametrize("port", ["", ":443"])
def test_accepts_every_spelling_with_tls(helm, tmp_path, spelling, port):
    render(helm, merge(TLS, {"s3": {"endpoint": spelling + port}}), tmp_path)


def test_endpoint_follows_release_and_namespace(helm, tmp_path):
    # release "epinio" installs fullname "epinio-epinio-irsa"; namespace "epinio-system"
    svc = "epinio-epinio-irsa-gateway"
    values = merge(GATEWAY, {"s3": {"endpoint": f"{svc}.epinio-system.svc.cluster.local:80"}})
    res = template_in(helm, values, tmp_path, namespace="epinio-system", release="epinio")
    assert res.returncode == 0, res.stderr
    docs = [d for d in yaml.safe_load_all(res.stdout) if d]
    assert one(docs, "Service")["metadata"]["name"] == svc
    assert plain_env(job(docs, "provision"))["EPINIO_IRSA_GATEWAY_ENDPOINT"] == f"http://{svc}.epinio-system.svc.cluster.local"
    # the endpoint of the default release/namespace is wrong here, and the message says the right one
    res = template_in(helm, GATEWAY, tmp_path, namespace="epinio-system", release="epinio")
    assert res.returncode != 0 and f"s3.endpoint: {svc}.epinio-system.svc.cluster.local\n" in res.stderr, res.stderr


@pytest.mark.parametrize(
    "values, says",
    [
        (merge(GATEWAY, {"s3": {"useSSL": True}}), ["s3.useSSL is true", "irsa.gateway.tls.enabled is false", "s3.useSSL: false\n"]),
        (merge(GATEWAY, {"s3": {"useSSL": "true"}}), ["s3.useSSL is true", "s3.useSSL: false\n"]),
        ({k: v for k, v in GATEWAY.items()} | {"s3": {k: v for k, v in GATEWAY["s3"].items() if k != "useSSL"}}, ["s3.useSSL is true", "Epinio's default"]),
        (merge(TLS, {"s3": {"useSSL": False}}), ["serves HTTPS on port 443", "s3.useSSL is false", "s3.useSSL: true\n"]),
        (merge(TLS, {"s3": {"useSSL": "false"}}), ["s3.useSSL is false", "s3.useSSL: true\n"]),
    ],
    ids=["ssl-without-tls", "ssl-string-without-tls", "ssl-unset-is-epinios-true", "tls-without-ssl", "tls-with-ssl-string-false"],
)
def test_refuses_use_ssl_that_disagrees_with_tls(helm, tmp_path, values, says):
    err = refused(helm, values, tmp_path)
    for text in says:
        assert text in err, err


def test_accepts_use_ssl_as_epinios_quoted_string(helm, tmp_path):
    render(helm, merge(GATEWAY, {"s3": {"useSSL": "false"}}), tmp_path)
    render(helm, merge(TLS, {"s3": {"useSSL": "true"}}), tmp_path)


@pytest.mark.parametrize(
    "values, says",
    [
        (merge(GATEWAY, {"seaweedfs": {"enabled": True}}), "Set seaweedfs.enabled: false"),
        (merge(GATEWAY, {"minio": {"enabled": True}}), "Set seaweedfs.enabled: false (and minio.enabled / s3gw.enabled false)"),
        (merge(GATEWAY, {"irsa": {"clusterName": ""}}), "irsa.clusterName is required: irsa.gateway.enabled is true"),
        (merge(GATEWAY, {"irsa": {"gateway": {"serviceAccount": {"name": "epinio-server"}}}}), "irsa.gateway.serviceAccount.name (epinio-server) must be the gateway's own"),
        (
            merge(GATEWAY, {"server": {"stagingWorkloads": {"serviceAccountName": "epinio-staging"}}, "irsa": {"gateway": {"serviceAccount": {"name": "epinio-staging"}}}}),
            "irsa.gateway.serviceAccount.name (epinio-staging) must be the gateway's own",
        ),
        (merge(GATEWAY, {"irsa": {"gateway": {"serviceAccount": {"name": "epinio-irsa"}}}}), "irsa.gateway.serviceAccount.name (epinio-irsa) must be the gateway's own"),
    ],
    ids=["seaweedfs", "minio", "no-cluster-name", "server-sa", "staging-sa", "hook-sa"],
)
def test_other_gateway_refusals(helm, tmp_path, values, says):
    assert says in refused(helm, values, tmp_path)


BAD_GATEWAY_VALUES = {
    "unknown key": ({"irsa": {"gateway": {"replica": 2}}}, "replica"),
    "enabled as string": ({"irsa": {"gateway": {"enabled": "true"}}}, "enabled"),
    "no replicas": ({"irsa": {"gateway": {"replicas": 0}}}, "replicas"),
    "empty service account": ({"irsa": {"gateway": {"serviceAccount": {"name": ""}}}}, "name"),
    "bucket region typo": ({"irsa": {"gateway": {"bucketRegion": "euwest1"}}}, "bucketRegion"),
    "bind address a host name": ({"irsa": {"gateway": {"bindAddress": "localhost"}}}, "bindAddress"),
    "tls secret name": ({"irsa": {"gateway": {"tls": {"secretName": "Gateway_TLS"}}}}, "secretName"),
    "grace period too short": ({"irsa": {"gateway": {"terminationGracePeriodSeconds": 1}}}, "terminationGracePeriodSeconds"),
    "extraEnv overriding the contract": ({"irsa": {"gateway": {"extraEnv": [{"name": "EPINIO_IRSA_GATEWAY_BUCKET", "value": "x"}]}}}, "extraEnv"),
    "useSSL not a boolean": ({"s3": {"useSSL": "yes"}}, "useSSL"),
    "endpoint with a scheme": ({"s3": {"endpoint": "http://epinio-irsa-gateway"}}, "endpoint"),
}


@pytest.mark.parametrize("label", BAD_GATEWAY_VALUES)
def test_schema_rejects_gateway_values(helm, tmp_path, label):
    bad, where = BAD_GATEWAY_VALUES[label]
    res = template(helm, merge(GATEWAY, bad), tmp_path)
    assert res.returncode != 0, f"accepted bad values ({label})"
    assert "values don't meet the specifications of the schema" in res.stderr, res.stderr
    assert where in res.stderr, res.stderr


# --------------------------------------------------------- Service, PDB
def test_service(helm, tmp_path):
    docs = render(helm, GATEWAY, tmp_path)
    svc = one(docs, "Service")
    assert svc["metadata"]["name"] == GW
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "s3", "port": 80, "targetPort": "s3", "protocol": "TCP"}]
    assert "s3" in {p["name"] for p in gateway_container(docs)["ports"]}


@pytest.mark.parametrize("replicas, pdb", [(None, True), (1, False), (2, True), (5, True)])
def test_replicas_and_disruption_budget(helm, tmp_path, replicas, pdb):
    values = GATEWAY if replicas is None else merge(GATEWAY, {"irsa": {"gateway": {"replicas": replicas}}})
    docs = render(helm, values, tmp_path)
    assert deployment(docs)["spec"]["replicas"] == (replicas or 2)
    budgets = by_kind(docs, "PodDisruptionBudget")
    if not pdb:
        assert budgets == []
        return
    assert len(budgets) == 1
    b = budgets[0]
    assert b["apiVersion"] == "policy/v1"
    assert b["spec"].get("maxUnavailable") == 1 or b["spec"].get("minAvailable") == 1
    assert selects(b["spec"]["selector"], deployment(docs)["spec"]["template"]["metadata"]["labels"])


# -------------------------------------------------------------- NetworkPolicy
def selects(selector: dict, labels: dict[str, str]) -> bool:
    """A Kubernetes LabelSelector against a label set (matchLabels AND matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def admitted(policy: dict, labels: dict[str, str], namespace: str, port: int) -> bool:
    """Whether a pod (labels, namespace) may connect to `port` of the pods the policy selects."""
    for rule in policy["spec"].get("ingress") or []:
        ports = rule.get("ports")
        if ports and not any(p.get("port") == port for p in ports):
            continue
        peers = rule.get("from")
        if not peers:
            return True
        for peer in peers:
            # podSelector alone = pods of the policy's own namespace
            assert set(peer) == {"podSelector"}, f"peer beyond the namespace: {peer}"
            if namespace == policy["metadata"]["namespace"] and selects(peer["podSelector"], labels):
                return True
    return False


# Pod labels exactly as Epinio makes them.
# epinio/helm-charts chart/epinio/templates/server.yaml, Deployment epinio-server's pod
# template, identical from chart 1.0.0 to 1.14 (the Deployment itself says component: epinio):
EPINIO_SERVER_POD = {
    "app.kubernetes.io/component": "epinio-server",
    "app.kubernetes.io/instance": "default",
    "app.kubernetes.io/name": "epinio-server",
    "app.kubernetes.io/part-of": "epinio",
    "app.kubernetes.io/version": "v1.14.1",
}
# epinio/epinio internal/api/v1/application/stage.go (v1.6.0 - v1.14.1), the staging Job's
# pod template; label keys from pkg/api/core/v1/models/app.go.
def staging_pod(app: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": app,
        "app.kubernetes.io/part-of": "workspace",
        "epinio.io/stage-id": "s-4f1c",
        "epinio.io/previous-stage-id": "",
        "epinio.io/blob-uid": "b-8e2a",
        "app.kubernetes.io/managed-by": "epinio",
        "app.kubernetes.io/component": "staging",
    }


OTHER_PODS = {
    # chart/epinio/templates/ui/deployment.yaml
    "epinio-ui": {"app.kubernetes.io/name": "epinio-ui", "app.kubernetes.io/instance": "epinio"},
    # chart/epinio/templates/container-registry/container-registry.yaml
    "epinio-registry": {"app.kubernetes.io/name": "epinio-registry", "app.kubernetes.io/instance": "epinio-registry"},
    # chart/epinio/templates/helm-controller.yaml
    "helm-controller": {"app": "helm-controller"},
    "random": {"app": "nginx", "pod-template-hash": "5d9f8c7b6"},
    "no labels": {},
    "staging label alone": {"app.kubernetes.io/component": "staging"},
    "staging by someone else": {"app.kubernetes.io/component": "staging", "app.kubernetes.io/managed-by": "Helm"},
    "server name alone": {"app.kubernetes.io/name": "epinio-server"},
    "the Deployment's labels on a pod": {"app.kubernetes.io/name": "epinio-server", "app.kubernetes.io/component": "epinio"},
    "an Epinio app workload": {"app.kubernetes.io/name": "myapp", "app.kubernetes.io/managed-by": "epinio", "app.kubernetes.io/component": "application"},
}


def gateway_policy(docs):
    return one(docs, "NetworkPolicy")


@pytest.mark.parametrize("case", ["gateway", "gateway-tls", "gateway-pod-identity", "gateway-custom"])
def test_network_policy_admits_exactly_epinio_and_the_hook(helm, tmp_path, case):
    docs = render(helm, GATEWAY_CASES[case], tmp_path)
    policy = gateway_policy(docs)
    s3_port = {p["name"]: p["containerPort"] for p in gateway_container(docs)["ports"]}["s3"]
    health_port = {p["name"]: p["containerPort"] for p in gateway_container(docs)["ports"]}["health"]
    # the policy governs the gateway's pods, and no hook pod
    gateway_pod = deployment(docs)["spec"]["template"]["metadata"]["labels"]
    assert selects(policy["spec"]["podSelector"], gateway_pod)
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    hook_pods = {c: job(docs, c)["spec"]["template"]["metadata"]["labels"] for c in ("provision", "verify", "teardown")}
    for labels in hook_pods.values():
        assert not selects(policy["spec"]["podSelector"], labels)

    admitted_pods = {
        "epinio-server": EPINIO_SERVER_POD,
        "staging": staging_pod("myapp"),
        "staging of an app named epinio-server": staging_pod("epinio-server"),
        "hook provision": hook_pods["provision"],
        "hook verify (helm test)": hook_pods["verify"],
    }
    for name, labels in admitted_pods.items():
        assert admitted(policy, labels, NAMESPACE, s3_port), f"{name} is refused"
        assert not admitted(policy, labels, NAMESPACE, health_port), f"{name} reaches the health port"
        assert not admitted(policy, labels, "other", s3_port), f"{name} admitted from another namespace"
    refused_pods = dict(OTHER_PODS)
    refused_pods["hook teardown (never calls the gateway)"] = hook_pods["teardown"]
    refused_pods["the gateway itself"] = gateway_pod
    for name, labels in refused_pods.items():
        assert not admitted(policy, labels, NAMESPACE, s3_port), f"{name} is admitted"
    # the port is the S3 port only
    assert [p["port"] for r in policy["spec"]["ingress"] for p in r["ports"]] == [s3_port]


def test_hook_network_policy_never_selects_the_gateway(helm, tmp_path):
    # The hook's own policy (no ingress) would cut Epinio off the gateway if it selected it.
    docs = render(helm, GATEWAY, tmp_path)
    hook_policy = one(docs, "NetworkPolicy", hook=True)
    assert not selects(hook_policy["spec"]["podSelector"], deployment(docs)["spec"]["template"]["metadata"]["labels"])
    assert selects(hook_policy["spec"]["podSelector"], job(docs, "verify")["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("mode, pod_identity_agent", [("irsa", False), ("pod-identity", True), ("auto", True)])
def test_network_policy_egress(helm, tmp_path, mode, pod_identity_agent):
    docs = render(helm, merge(GATEWAY, {"irsa": {"mode": mode}}), tmp_path)
    egress = gateway_policy(docs)["spec"]["egress"]
    allowed = set()
    for rule in egress:
        to = tuple(sorted(p["ipBlock"]["cidr"] for p in rule.get("to", [])))
        for p in rule["ports"]:
            allowed.add((to, p["protocol"], p["port"]))
    expected = {((), "UDP", 53), ((), "TCP", 53), ((), "TCP", 443)}
    if pod_identity_agent:
        # the eks-pod-identity-agent's link-local addresses
        expected |= {(("169.254.170.23/32", "fd00:ec2::23/128"), "TCP", 80)}
    assert allowed == expected
    for rule in egress:
        assert rule["ports"], "no rule without ports"


def test_network_policy_extra_egress_and_off(helm, tmp_path):
    docs = render(helm, GATEWAY_CASES["gateway-custom"], tmp_path)
    assert {"to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}], "ports": [{"protocol": "TCP", "port": 3128}]} in gateway_policy(docs)["spec"]["egress"]
    docs = render(helm, merge(GATEWAY, {"irsa": {"gateway": {"networkPolicy": {"enabled": False}}}}), tmp_path)
    assert [d["metadata"]["name"] for d in by_kind(docs, "NetworkPolicy")] == ["epinio-irsa"]


# ------------------------------------------------------------------- RBAC
def test_gateway_hook_rbac_least_privilege(helm, tmp_path):
    docs = render(helm, GATEWAY, tmp_path)
    roles = {d["metadata"]["name"]: d for d in by_kind(docs, "Role")}
    bindings = {d["metadata"]["name"]: d for d in by_kind(docs, "RoleBinding")}
    role, binding = roles[f"{GW}-hook"], bindings[f"{GW}-hook"]
    # the same hook phases, weight and delete policy as rbac.yaml's
    assert role["metadata"]["annotations"] == roles["epinio-irsa"]["metadata"]["annotations"]
    assert binding["metadata"]["annotations"] == bindings["epinio-irsa"]["metadata"]["annotations"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{GW}-hook"}
    assert binding["subjects"] == bindings["epinio-irsa"]["subjects"]
    granted = {}
    for rule in role["rules"]:
        assert rule.get("resourceNames"), f"not by name: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted[(group, resource)] = (set(rule["verbs"]), set(rule["resourceNames"]))
    assert granted == {
        ("", "serviceaccounts"): ({"get", "patch"}, {GW_SA}),
        ("", "serviceaccounts/token"): ({"create"}, {GW_SA}),
        ("apps", "deployments"): ({"get"}, {GW}),
    }
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    # the gateway's own ServiceAccount is bound to nothing
    for b in by_kind(docs, "RoleBinding"):
        assert GW_SA not in [s["name"] for s in b["subjects"]]


# ---------------------------------------------------------------- checkov
# test_chart.py's skips (CKV_K8S_38, CKV_K8S_35) with their reasons, and for the gateway:
# CKV_K8S_38 also fires on the gateway's Deployment. Its token is needed: IRSA and EKS Pod
# Identity give the pod its role through the pod's ServiceAccount identity (the chart
# mounts it as the hook does), and that ServiceAccount has no Role or ClusterRole bound,
# so the token grants nothing in the Kubernetes API. CKV_K8S_35 fires on the hook Jobs,
# which in gateway mode read Epinio's client pair through secretKeyRef (verify signs with
# it); the gateway itself reads the pair as files.
@pytest.fixture(scope="session")
def checkov_gateway(helm, tmp_path_factory):
    return checkov_scan(
        helm,
        GATEWAY_CASES,
        tmp_path_factory.mktemp("checkov-gateway"),
        tmp_path_factory.mktemp("checkov-gateway-values"),
    )


@pytest.mark.parametrize("case", GATEWAY_CASES)
def test_checkov_gateway(checkov_gateway, case):
    failed, passed = checkov_gateway
    assert failed[case] == [], "checkov failures:\n" + "\n".join(failed[case])
    # the gateway's objects were really scanned
    for resource in (f"Deployment.{NAMESPACE}.{GW}", f"Service.{NAMESPACE}.{GW}"):
        assert any(p.endswith(resource) for p in passed[case]), f"checkov did not scan {resource}"


# ------------------------------------------------------------ NOTES, README
def test_notes_in_gateway_mode(helm, tmp_path):
    vf = tmp_path / "notes.yaml"
    vf.write_text(yaml.safe_dump(merge(TEST_IMAGE, GATEWAY)))
    res = run(
        [helm, "install", RELEASE, str(CHART), "-n", NAMESPACE, "--dry-run=client", "-f", str(vf)],
        env={"KUBECONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert res.returncode == 0, res.stderr
    notes = res.stdout.split("NOTES:", 1)[1]
    assert "Mode: gateway" in notes
    assert f"kubectl -n {NAMESPACE} rollout status deployment/{GW}" in notes
    assert f"kubectl -n {NAMESPACE} port-forward deployment/{GW} 9090:9090" in notes
    assert "http://127.0.0.1:9090/credentials" in notes
    assert f"get serviceaccount {GW_SA}" in notes
    assert "Mode: bundled store" not in notes and "Mode: static keys" not in notes


def readme_gateway_snippet() -> dict:
    readme = (CHART / "README.md").read_text()
    section = readme.split("## Gateway mode", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "chart/README.md's Gateway mode section has no values snippet"
    return yaml.safe_load(block.group(1))


def test_readme_gateway_values_render(helm, tmp_path):
    values = readme_gateway_snippet()
    # the snippet is the full shared file: Epinio's bundled store off, the gateway's endpoint, keys
    assert values["seaweedfs"]["enabled"] is False
    assert values["irsa"]["gateway"]["enabled"] is True
    for key in ("endpoint", "useSSL", "region", "bucket", "accessKeyID", "secretAccessKey"):
        assert key in values["s3"], key
    readme = (CHART / "README.md").read_text()
    for command in KEY_GENERATION:
        assert command in readme
    assert "in the clear" in readme and "never sends the secret key" in readme
    res = template_in(helm, values, tmp_path)
    assert res.returncode == 0, res.stderr
