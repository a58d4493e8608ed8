"""Tests of the Helm chart (chart/) and of the Dockerfile, with the real tools.

helm v4 renders and lints the chart for a matrix of value sets; the rendered
objects are checked against the job's environment contract, Helm hook rules,
RBAC scope and the "restricted" Pod Security Standard; every manifest is
validated offline against Kubernetes schemas (kubernetes-validate, strict);
checkov scans the manifests; hadolint lints the Dockerfile.

Run: .tools/venv/bin/python -m pytest tests/chart   (after scripts/setup.sh)
A missing tool FAILS the test that needs it, naming scripts/setup.sh.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

try:
    import yaml
except ImportError:  # pragma: no cover - reported by the fixture below
    yaml = None

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
TOOLS = ROOT / ".tools"
VENV_BIN = TOOLS / "venv" / "bin"
NAMESPACE = "epinio"
RELEASE = "epinio-irsa"

# The job's environment contract (the lead's interface table), exact names.
CONTRACT_ENV = {
    "EPINIO_IRSA_GATEWAY_CA_FILES",
    "EPINIO_IRSA_CLUSTER_NAME",
    "EPINIO_IRSA_NAMESPACE",
    "EPINIO_IRSA_RELEASE_NAME",
    "EPINIO_IRSA_S3_ACCESS_KEY_ID",
    "EPINIO_IRSA_S3_SECRET_ACCESS_KEY",
    "EPINIO_IRSA_BUNDLED_S3",
    "EPINIO_IRSA_S3_BUCKET",
    "EPINIO_IRSA_SERVER_SERVICE_ACCOUNT",
    "EPINIO_IRSA_STAGING_SERVICE_ACCOUNT",
    "EPINIO_IRSA_LEGACY_STAGING_SERVICE_ACCOUNT",
    "EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO",
    "EPINIO_IRSA_VERIFY",
    "EPINIO_IRSA_VERIFY_WRITE",
    "EPINIO_IRSA_VERIFY_TIMEOUT_SECONDS",
    "EPINIO_IRSA_SERVER_ROLE_NAME",
    "EPINIO_IRSA_STAGING_ROLE_NAME",
    "EPINIO_IRSA_POLICY_NAME",
    "EPINIO_IRSA_ROLE_PATH",
    "EPINIO_IRSA_PERMISSIONS_BOUNDARY",
    "EPINIO_IRSA_EXTRA_POLICY_ARNS",
    "EPINIO_IRSA_TAGS",
    "EPINIO_IRSA_CREATE_OIDC_PROVIDER",
    "EPINIO_IRSA_DELETE_OIDC_PROVIDER",
    "EPINIO_IRSA_STS_REGIONAL_ENDPOINTS",
    "EPINIO_IRSA_RESTART_WORKLOADS",
    "EPINIO_IRSA_ADOPT_EXISTING",
    "EPINIO_IRSA_LOG_FORMAT",
    "EPINIO_IRSA_MODE",
    # tuning knobs the job also reads (src/config.rs)
    "EPINIO_IRSA_CALL_TIMEOUT_SECONDS",
    "EPINIO_IRSA_MAX_ATTEMPTS",
    "EPINIO_IRSA_DEADLINE_SECONDS",
}
# Standard variables the job honours (AWS SDK, tracing, downward API).
STANDARD_ENV = {
    "POD_NAMESPACE",
    "AWS_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_EC2_METADATA_DISABLED",
    "RUST_LOG",
}
SECRET_ENV = {
    "EPINIO_IRSA_S3_ACCESS_KEY_ID",
    "EPINIO_IRSA_S3_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
}

# Kubernetes versions for schema validation. EKS supports a minor version for
# 14 months (standard) plus 12 more (extended); over 2025-2026 that window ran
# from 1.30 (extended support until July 2026) to the newest release. The range
# below covers every minor in it, from that oldest one to the newest schema
# kubernetes-validate 1.37.0 ships (1.37), so both the oldest and the newest
# version EKS supports are checked whichever month this runs in. In-process
# validation takes milliseconds per object, so the whole range is cheap.
K8S_OLDEST_EKS = "1.30.0"
K8S_NEWEST = "1.37.0"
K8S_VERSIONS = [f"1.{minor}.0" for minor in range(30, 38)]

STATIC_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
STATIC_SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DIGEST = "sha256:" + "0123456789abcdef" * 4

IAM = {"seaweedfs": {"enabled": False}, "irsa": {"clusterName": "demo", "region": "eu-west-1"}}


def merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# The value-set matrix of the issue.
CASES: dict[str, dict] = {
    "iam": IAM,
    "static-keys": {
        "seaweedfs": {"enabled": False},
        "s3": {"accessKeyID": STATIC_ACCESS_KEY, "secretAccessKey": STATIC_SECRET_KEY},
    },
    "bundled-seaweedfs": {},  # Epinio's default: seaweedfs on
    "bundled-minio": {"seaweedfs": {"enabled": False}, "minio": {"enabled": True}},
    "bundled-s3gw": {"seaweedfs": {"enabled": False}, "s3gw": {"enabled": True}},
    "legacy-staging-key": merge(IAM, {"server": {"stagingServiceAccountName": "epinio-legacy-staging"}}),
    "both-staging-keys": merge(
        IAM,
        {
            "server": {
                "stagingWorkloads": {"serviceAccountName": "epinio-staging"},
                "stagingServiceAccountName": "epinio-legacy-staging",
            }
        },
    ),
    "custom-names": merge(
        IAM,
        {
            "s3": {"bucket": "acme-epinio-sources", "region": "us-west-2"},
            "serviceAccount": {"name": "acme-epinio-server"},
            "server": {"stagingWorkloads": {"serviceAccountName": "acme-epinio-staging"}},
            "irsa": {
                "region": "",
                "mode": "auto",
                "epinioReleaseName": "acme-epinio",
                "serverRoleName": "acme-epinio-server",
                "stagingRoleName": "acme-epinio-staging",
                "policyName": "acme-epinio-s3",
                "rolePath": "/epinio/",
                "permissionsBoundary": "arn:aws:iam::123456789012:policy/boundary",
                "extraPolicyArns": [
                    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
                    "arn:aws:iam::123456789012:policy/team/extra",
                ],
                "tags": {"team": "platform", "cost-center": "42"},
                "oidcProvider": {"create": False, "deleteOnTeardown": True},
                "stsRegionalEndpoints": False,
                "restartWorkloads": False,
                "adoptExisting": True,
                "logFormat": "json",
                "logLevel": "debug",
                "callTimeoutSeconds": 30,
                "maxAttempts": 3,
                "hooks": {
                    "backoffLimit": 2,
                    "provision": {"activeDeadlineSeconds": 500},
                    "teardown": {"activeDeadlineSeconds": 200},
                },
                "image": {"repository": "registry.example.com/epinio-irsa", "tag": "9.9.9"},
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
            },
        },
    ),
    "installer-irsa": merge(
        IAM,
        {
            "irsa": {
                "installer": {
                    "serviceAccount": {
                        "name": "epinio-irsa-installer",
                        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/epinio-irsa-installer"},
                    }
                }
            }
        },
    ),
    "installer-secret": merge(
        IAM,
        {
            "irsa": {
                "installer": {
                    "existingSecret": {
                        "name": "epinio-irsa-aws",
                        "accessKeyIdKey": "id",
                        "secretAccessKeyKey": "secret",
                        "sessionTokenKey": "token",
                    }
                }
            }
        },
    ),
}


# --------------------------------------------------------------------- tools
def need(path: Path | str, what: str) -> str:
    """The tool's path; FAIL (not skip) when it is missing."""
    p = Path(path)
    if not p.is_absolute():
        found = shutil.which(str(path))
        if found:
            return found
    elif p.exists():
        return str(p)
    pytest.fail(f"{what} not found at {path}: run scripts/setup.sh", pytrace=False)


@pytest.fixture(scope="session")
def helm() -> str:
    return need(TOOLS / "bin" / "helm", "helm v4.1.4")


@pytest.fixture(scope="session")
def kv():
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate (PyPI) is not installed: run scripts/setup.sh", pytrace=False)
    return kubernetes_validate


@pytest.fixture(scope="session", autouse=True)
def _yaml_available():
    if yaml is None:
        pytest.fail("PyYAML is not installed: run scripts/setup.sh", pytrace=False)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# No image is published: every install names the registry it pushed the image to.
TEST_IMAGE = {"irsa": {"image": {"repository": "registry.example.com/epinio-irsa"}}}


def template(helm: str, values: dict, tmp_path: Path, *extra: str, chart: Path = CHART, release: str = RELEASE, image: bool = True):
    if image:
        values = merge(TEST_IMAGE, values)
    vf = tmp_path / f"values-{abs(hash(json.dumps(values, sort_keys=True)))}.yaml"
    vf.write_text(yaml.safe_dump(values))
    return run([helm, "template", release, str(chart), "-n", NAMESPACE, "-f", str(vf), *extra])


def render(helm: str, values: dict, tmp_path: Path, **kw) -> list[dict]:
    res = template(helm, values, tmp_path, **kw)
    assert res.returncode == 0, f"helm template failed:\n{res.stderr}"
    return [d for d in yaml.safe_load_all(res.stdout) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def job(docs: list[dict], command: str) -> dict:
    jobs = [d for d in by_kind(docs, "Job") if d["metadata"]["name"].endswith("-" + command)]
    assert len(jobs) == 1, f"expected one {command} Job, got {[d['metadata']['name'] for d in by_kind(docs, 'Job')]}"
    return jobs[0]


def container(j: dict) -> dict:
    containers = j["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(j: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container(j)["env"]}


def plain_env(j: dict) -> dict[str, str]:
    return {n: e["value"] for n, e in env_of(j).items() if "value" in e}


# ------------------------------------------------------------- lint, render
@pytest.mark.parametrize("case", CASES)
def test_helm_lint(helm, tmp_path, case):
    vf = tmp_path / "values.yaml"
    vf.write_text(yaml.safe_dump(merge(TEST_IMAGE, CASES[case])))
    res = run([helm, "lint", "--strict", str(CHART), "-n", NAMESPACE, "-f", str(vf)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 chart(s) failed" in res.stdout


@pytest.mark.parametrize("case", CASES)
def test_objects_and_hooks(helm, tmp_path, case):
    docs = render(helm, CASES[case], tmp_path)
    kinds = sorted(d["kind"] for d in docs)
    expected = ["Job", "Job", "Job", "NetworkPolicy", "Role", "RoleBinding", "ServiceAccount"]
    if case == "static-keys":
        expected.append("Secret")
    assert kinds == sorted(expected)

    for d in docs:
        meta = d["metadata"]
        assert meta["namespace"] == NAMESPACE, f"{d['kind']} not in the release namespace"
        ann = meta.get("annotations") or {}
        # Everything is a hook: nothing is left behind as a release resource.
        assert "helm.sh/hook" in ann, f"{d['kind']} {meta['name']} is not a hook"
        assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"

    provision, teardown = job(docs, "provision"), job(docs, "teardown")
    verify = job(docs, "verify")
    assert provision["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert teardown["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    # `helm test` verifies the chain token -> STS -> S3 at any time.
    assert verify["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert container(provision)["args"] == ["provision"]
    assert container(teardown)["args"] == ["teardown"]
    assert container(verify)["args"] == ["verify"]
    job_weight = int(provision["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert int(teardown["metadata"]["annotations"]["helm.sh/hook-weight"]) == job_weight

    # The hook's ServiceAccount, Role, RoleBinding (and Secret, NetworkPolicy)
    # exist before the Jobs in every phase that runs one.
    for d in docs:
        if d["kind"] == "Job":
            continue
        ann = d["metadata"]["annotations"]
        assert set(ann["helm.sh/hook"].split(",")) == {"post-install", "post-upgrade", "pre-delete", "test"}, d["kind"]
        assert int(ann["helm.sh/hook-weight"]) < job_weight, d["kind"]

    for j in (provision, teardown, verify):
        spec = j["spec"]
        assert 0 <= spec["backoffLimit"] <= 6
        assert 30 <= spec["activeDeadlineSeconds"] <= 600
        pod = spec["template"]["spec"]
        assert pod["restartPolicy"] == "Never"
        sa = by_kind(docs, "ServiceAccount")[0]["metadata"]["name"]
        assert pod["serviceAccountName"] == sa
        assert container(j)["image"].endswith(":0.1.0") or case == "custom-names"
        # the job writes its final error here; Kubernetes shows it in describe pod
        assert container(j)["terminationMessagePath"] == "/dev/termination-log"
    # provision and teardown see the same configuration, but for each phase's own deadline
    def config_env(j):
        return [e for e in container(j)["env"] if e["name"] != "EPINIO_IRSA_DEADLINE_SECONDS"]
    assert config_env(provision) == config_env(teardown)
    for j in (provision, teardown):
        deadline = int(plain_env(j)["EPINIO_IRSA_DEADLINE_SECONDS"])
        assert deadline < j["spec"]["activeDeadlineSeconds"], "the job gives up before Kubernetes kills it"


@pytest.mark.parametrize("case", CASES)
def test_env_names_are_the_job_contract(helm, tmp_path, case):
    docs = render(helm, CASES[case], tmp_path)
    env = env_of(job(docs, "provision"))
    unknown = set(env) - CONTRACT_ENV - STANDARD_ENV
    assert not unknown, f"env names outside the job's contract: {sorted(unknown)}"
    assert env["EPINIO_IRSA_NAMESPACE"]["value"] == NAMESPACE
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    # every EPINIO_IRSA_* name rendered is one the job's code reads
    src = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.rs"))
    for name in env:
        if name.startswith("EPINIO_IRSA_") and "EPINIO_IRSA_" in src:
            assert name in src, f"{name} is rendered but not read anywhere in src/"


def test_instance_metadata_is_off_unless_the_node_instance_profile_is_chosen(helm, tmp_path):
    """The hook has no fallback identity: without irsa.installer.nodeInstanceProfile, every hook
    Job runs with instance metadata off, so a missing installer role fails instead of acting as
    the node's role; choosing the instance profile turns it back on for the hook only."""
    for command in ("provision", "teardown"):
        default = plain_env(job(render(helm, CASES["iam"], tmp_path), command))
        assert default.get("AWS_EC2_METADATA_DISABLED") == "true", command
    chosen = {**CASES["iam"], "irsa": {**CASES["iam"].get("irsa", {}), "installer": {"nodeInstanceProfile": True}}}
    docs = render(helm, chosen, tmp_path)
    for command in ("provision", "teardown"):
        assert "AWS_EC2_METADATA_DISABLED" not in env_of(job(docs, command)), command


def test_env_values_iam(helm, tmp_path):
    env = plain_env(job(render(helm, CASES["iam"], tmp_path), "provision"))
    assert env == {
        "EPINIO_IRSA_NAMESPACE": "epinio",
        "EPINIO_IRSA_CLUSTER_NAME": "demo",
        "EPINIO_IRSA_BUNDLED_S3": "false",
        "EPINIO_IRSA_S3_BUCKET": "epinio",
        "EPINIO_IRSA_ROLE_PATH": "/",
        "EPINIO_IRSA_CREATE_OIDC_PROVIDER": "true",
        "EPINIO_IRSA_DELETE_OIDC_PROVIDER": "false",
        "EPINIO_IRSA_STS_REGIONAL_ENDPOINTS": "true",
        "EPINIO_IRSA_RESTART_WORKLOADS": "true",
        "EPINIO_IRSA_ADOPT_EXISTING": "false",
        "EPINIO_IRSA_LOG_FORMAT": "text",
        "EPINIO_IRSA_DEADLINE_SECONDS": "260",  # activeDeadlineSeconds 280 - 20
        "AWS_REGION": "eu-west-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }, "IAM mode: names the job derives (roles, policy, SAs, release) are omitted so its defaults apply"


def test_env_values_custom_names(helm, tmp_path):
    docs = render(helm, CASES["custom-names"], tmp_path)
    j = job(docs, "provision")
    env = plain_env(j)
    assert env == {
        "EPINIO_IRSA_NAMESPACE": "epinio",
        "EPINIO_IRSA_CLUSTER_NAME": "demo",
        "EPINIO_IRSA_RELEASE_NAME": "acme-epinio",
        "EPINIO_IRSA_BUNDLED_S3": "false",
        "EPINIO_IRSA_S3_BUCKET": "acme-epinio-sources",
        "EPINIO_IRSA_SERVER_SERVICE_ACCOUNT": "acme-epinio-server",
        "EPINIO_IRSA_STAGING_SERVICE_ACCOUNT": "acme-epinio-staging",
        "EPINIO_IRSA_SERVER_ROLE_NAME": "acme-epinio-server",
        "EPINIO_IRSA_STAGING_ROLE_NAME": "acme-epinio-staging",
        "EPINIO_IRSA_POLICY_NAME": "acme-epinio-s3",
        "EPINIO_IRSA_MODE": "auto",
        "EPINIO_IRSA_ROLE_PATH": "/epinio/",
        "EPINIO_IRSA_PERMISSIONS_BOUNDARY": "arn:aws:iam::123456789012:policy/boundary",
        "EPINIO_IRSA_EXTRA_POLICY_ARNS": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly,arn:aws:iam::123456789012:policy/team/extra",
        "EPINIO_IRSA_TAGS": "cost-center=42,team=platform",
        "EPINIO_IRSA_CREATE_OIDC_PROVIDER": "false",
        "EPINIO_IRSA_DELETE_OIDC_PROVIDER": "true",
        "EPINIO_IRSA_STS_REGIONAL_ENDPOINTS": "false",
        "EPINIO_IRSA_RESTART_WORKLOADS": "false",
        "EPINIO_IRSA_ADOPT_EXISTING": "true",
        "EPINIO_IRSA_LOG_FORMAT": "json",
        "EPINIO_IRSA_CALL_TIMEOUT_SECONDS": "30",
        "EPINIO_IRSA_MAX_ATTEMPTS": "3",
        "EPINIO_IRSA_DEADLINE_SECONDS": "480",  # provision's activeDeadlineSeconds 500 - 20
        "AWS_REGION": "us-west-2",  # irsa.region empty: falls back to s3.region
        "AWS_EC2_METADATA_DISABLED": "true",
        "RUST_LOG": "debug",
    }
    assert j["spec"]["backoffLimit"] == 2
    assert j["spec"]["activeDeadlineSeconds"] == 500
    assert job(docs, "teardown")["spec"]["activeDeadlineSeconds"] == 200
    assert plain_env(job(docs, "teardown"))["EPINIO_IRSA_DEADLINE_SECONDS"] == "180"
    assert container(j)["image"] == "registry.example.com/epinio-irsa:9.9.9"
    pod = j["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated"


@pytest.mark.parametrize(
    "case, staging, legacy",
    [
        ("iam", None, None),
        ("legacy-staging-key", None, "epinio-legacy-staging"),
        # No precedence: each Epinio version reads one key; the job discovers which.
        ("both-staging-keys", "epinio-staging", "epinio-legacy-staging"),
    ],
)
def test_staging_service_account(helm, tmp_path, case, staging, legacy):
    docs = render(helm, CASES[case], tmp_path)
    env = plain_env(job(docs, "provision"))
    assert env.get("EPINIO_IRSA_STAGING_SERVICE_ACCOUNT") == staging
    assert env.get("EPINIO_IRSA_LEGACY_STAGING_SERVICE_ACCOUNT") == legacy
    role = by_kind(docs, "Role")[0]
    named = [r for r in role["rules"] if r.get("resourceNames") and r["resources"] == ["serviceaccounts"]]
    get_patch = next(r for r in named if "patch" in r["verbs"])
    names = {"epinio-server"} | {n for n in (staging, legacy) if n}
    assert sorted(get_patch["resourceNames"]) == sorted(names)
    token = next(r for r in role["rules"] if r["resources"] == ["serviceaccounts/token"])
    assert token["verbs"] == ["create"] and sorted(token["resourceNames"]) == sorted(names)
    deletes = [r for r in role["rules"] if "delete" in r["verbs"]]
    creates = [r for r in role["rules"] if r["resources"] == ["serviceaccounts"] and "create" in r["verbs"]]
    if names == {"epinio-server"}:
        assert deletes == [], "with one shared ServiceAccount the job deletes none"
        assert creates == [], "with one shared ServiceAccount the job creates none"
    else:
        # created by server-side apply, which the apiserver authorizes as create *by name*
        assert len(deletes) == 1 and sorted(deletes[0]["resourceNames"]) == sorted(names - {"epinio-server"})
        assert len(creates) == 1 and sorted(creates[0]["resourceNames"]) == sorted(names - {"epinio-server"})


def test_a_checkouts_chart_requires_the_image_repository(helm, tmp_path):
    # The published chart gets the released image at packaging (release.yml, test_release.py);
    # the checkout's names none and says where one comes from.
    res = template(helm, IAM, tmp_path, image=False)
    assert res.returncode != 0
    assert "irsa.image.repository is required: this chart (from a checkout) names no image" in res.stderr
    assert "published chart" in res.stderr and "Dockerfile" in res.stderr
    values = (CHART / "values.yaml").read_text()
    assert "ghcr.io" not in values and "docker.io" not in values


@pytest.mark.parametrize("case", ["bundled-seaweedfs", "bundled-minio", "bundled-s3gw"])
def test_bundled_store(helm, tmp_path, case):
    # keys set with a bundled store are Epinio's business, not ours: not passed on
    values = merge(CASES[case], {"s3": {"accessKeyID": "AKIABUNDLED", "secretAccessKey": "bundled-secret"}})
    docs = render(helm, values, tmp_path)
    env = env_of(job(docs, "provision"))
    assert env["EPINIO_IRSA_BUNDLED_S3"]["value"] == "true"
    assert "EPINIO_IRSA_S3_ACCESS_KEY_ID" not in env
    assert by_kind(docs, "Secret") == []


def test_static_keys_only_through_a_secret(helm, tmp_path):
    docs = render(helm, CASES["static-keys"], tmp_path)
    secret = by_kind(docs, "Secret")[0]
    for command in ("provision", "teardown"):
        j = job(docs, command)
        env = env_of(j)
        for name, key in (("EPINIO_IRSA_S3_ACCESS_KEY_ID", "accessKeyID"), ("EPINIO_IRSA_S3_SECRET_ACCESS_KEY", "secretAccessKey")):
            assert "value" not in env[name]
            ref = env[name]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": secret["metadata"]["name"], "key": key}
        text = yaml.safe_dump(j)
        assert STATIC_ACCESS_KEY not in text and STATIC_SECRET_KEY not in text
        assert base64.b64encode(STATIC_SECRET_KEY.encode()).decode() not in text
    assert base64.b64decode(secret["data"]["secretAccessKey"]).decode() == STATIC_SECRET_KEY
    assert base64.b64decode(secret["data"]["accessKeyID"]).decode() == STATIC_ACCESS_KEY


@pytest.mark.parametrize("case", CASES)
def test_no_secret_in_plain_env(helm, tmp_path, case):
    docs = render(helm, CASES[case], tmp_path)
    for command in ("provision", "teardown"):
        for name, e in env_of(job(docs, command)).items():
            if name in SECRET_ENV:
                assert "value" not in e, f"{name} must come from a Secret"
                assert "secretKeyRef" in e["valueFrom"], name


def test_installer_irsa_annotation(helm, tmp_path):
    docs = render(helm, CASES["installer-irsa"], tmp_path)
    sa = by_kind(docs, "ServiceAccount")[0]
    assert sa["metadata"]["name"] == "epinio-irsa-installer"
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/epinio-irsa-installer"
    # hook annotations survive next to the user's
    assert sa["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"
    binding = by_kind(docs, "RoleBinding")[0]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "epinio-irsa-installer", "namespace": NAMESPACE}]
    env = env_of(job(docs, "provision"))
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)
    assert job(docs, "provision")["spec"]["template"]["spec"]["serviceAccountName"] == "epinio-irsa-installer"


def test_installer_existing_secret(helm, tmp_path):
    docs = render(helm, CASES["installer-secret"], tmp_path)
    env = env_of(job(docs, "provision"))
    for name, key in (("AWS_ACCESS_KEY_ID", "id"), ("AWS_SECRET_ACCESS_KEY", "secret"), ("AWS_SESSION_TOKEN", "token")):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "epinio-irsa-aws", "key": key}
    sa = by_kind(docs, "ServiceAccount")[0]
    assert "eks.amazonaws.com/role-arn" not in sa["metadata"]["annotations"]


def test_instance_profile_by_default(helm, tmp_path):
    docs = render(helm, CASES["iam"], tmp_path)
    env = env_of(job(docs, "provision"))
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(env)
    assert "eks.amazonaws.com/role-arn" not in by_kind(docs, "ServiceAccount")[0]["metadata"]["annotations"]


@pytest.mark.parametrize("case", CASES)
def test_rbac_least_privilege(helm, tmp_path, case):
    docs = render(helm, CASES[case], tmp_path)
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    role, binding = by_kind(docs, "Role")[0], by_kind(docs, "RoleBinding")[0]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    allowed = {
        ("", "serviceaccounts"): {"get", "create", "patch", "delete"},
        ("", "configmaps"): {"get"},
        ("", "serviceaccounts/token"): {"create"},
        ("apps", "deployments"): {"get", "list", "patch"},
        ("apps", "statefulsets"): {"list", "patch"},
        ("apps", "daemonsets"): {"list", "patch"},
    }
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) in allowed, f"unexpected grant on {group}/{resource}"
                assert set(rule["verbs"]) <= allowed[(group, resource)], rule
                granted.setdefault((group, resource), set()).update(rule["verbs"])
                if set(rule["verbs"]) & {"get", "create", "delete"} or resource == "serviceaccounts/token":
                    # get, delete, token requests and the apply that creates are always by name
                    # (list cannot be)
                    assert rule.get("resourceNames"), rule
    assert granted[("", "serviceaccounts")] >= {"get", "patch"}
    # Discovery reads exactly Epinio's server Deployment and its staging ConfigMap.
    reads = [(r["resources"], r.get("resourceNames")) for r in role["rules"] if r["verbs"] == ["get"]]
    assert (["deployments"], ["epinio-server"]) in reads and (["configmaps"], ["epinio-stage-scripts"]) in reads
    assert granted[("apps", "deployments")] == {"get", "list", "patch"}
    for kind in ("statefulsets", "daemonsets"):
        assert granted[("apps", kind)] == {"list", "patch"}


@pytest.mark.parametrize("case", CASES)
def test_restricted_pod_security(helm, tmp_path, case):
    docs = render(helm, CASES[case], tmp_path)
    for command in ("provision", "teardown"):
        pod = job(docs, command)["spec"]["template"]["spec"]
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True
        assert psc["runAsUser"] != 0
        assert psc["seccompProfile"]["type"] == "RuntimeDefault"
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key)
        for c in pod["containers"] + pod.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert not sc["capabilities"].get("add")
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["runAsNonRoot"] is True
            assert sc["runAsUser"] == 65532
            assert not sc.get("privileged")
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"]
            assert res["limits"]["memory"] and res["limits"]["cpu"]
        for vol in pod.get("volumes", []):
            assert "hostPath" not in vol


def test_umbrella_chart_dependency(helm, tmp_path):
    """As a dependency of an umbrella chart that also installs Epinio: the hooks
    run with the umbrella's release, so Epinio's release name is that one."""
    umbrella = tmp_path / "epinio-stack"
    (umbrella / "charts").mkdir(parents=True)
    shutil.copytree(CHART, umbrella / "charts" / "epinio-irsa")
    (umbrella / "Chart.yaml").write_text(
        "apiVersion: v2\nname: epinio-stack\nversion: 1.0.0\n"
        "dependencies:\n  - name: epinio-irsa\n    version: 0.1.0\n"
    )
    # The umbrella values of chart/README.md: Epinio's settings shared by a YAML anchor.
    (umbrella / "values.yaml").write_text(
        "epinio: &epinio\n"
        "  global:\n    domain: epinio.example.com\n"
        "  seaweedfs:\n    enabled: false\n"
        "  s3:\n    bucket: my-epinio-sources\n    region: eu-west-1\n"
        '    accessKeyID: ""\n    secretAccessKey: ""\n'
        "epinio-irsa:\n  <<: *epinio\n  irsa:\n    clusterName: my-cluster\n"
        "    image:\n      repository: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/epinio-irsa\n"
    )
    docs = render(helm, {}, tmp_path, chart=umbrella, release="epinio")
    env = plain_env(job(docs, "provision"))
    assert env["EPINIO_IRSA_RELEASE_NAME"] == "epinio"
    assert env["EPINIO_IRSA_CLUSTER_NAME"] == "my-cluster"
    assert env["EPINIO_IRSA_S3_BUCKET"] == "my-epinio-sources"
    assert env["EPINIO_IRSA_BUNDLED_S3"] == "false"
    assert env["AWS_REGION"] == "eu-west-1"
    assert env["EPINIO_IRSA_NAMESPACE"] == NAMESPACE
    assert job(docs, "provision")["metadata"]["name"] == "epinio-epinio-irsa-provision"
    # a standalone install leaves the release name to the job's default ("epinio")
    standalone = plain_env(job(render(helm, IAM, tmp_path), "provision"))
    assert "EPINIO_IRSA_RELEASE_NAME" not in standalone
    # the subchart's schema still applies inside the umbrella
    bad = template(helm, {"epinio-irsa": merge(IAM, {"irsa": {"nope": 1}})}, tmp_path, chart=umbrella, release="epinio")
    assert bad.returncode != 0 and "nope" in bad.stderr


def test_keep_succeeded_jobs(helm, tmp_path):
    docs = render(helm, merge(IAM, {"irsa": {"hooks": {"keepSucceededJobs": True}}}), tmp_path)
    for command in ("provision", "teardown"):
        assert job(docs, command)["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"
    # support objects still go away, so nothing outlives the release but the Jobs
    assert by_kind(docs, "Role")[0]["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"


def test_image_digest_pins_the_image(helm, tmp_path):
    docs = render(helm, merge(IAM, {"irsa": {"image": {"digest": DIGEST}}}), tmp_path)
    assert container(job(docs, "provision"))["image"] == f"registry.example.com/epinio-irsa@{DIGEST}"


def test_notes_explain_mode_and_logs(helm, tmp_path):
    def notes(values):
        vf = tmp_path / "notes.yaml"
        vf.write_text(yaml.safe_dump(merge(TEST_IMAGE, values)))
        res = run(
            [helm, "install", RELEASE, str(CHART), "-n", NAMESPACE, "--dry-run=client", "-f", str(vf)],
            env={"KUBECONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
        assert res.returncode == 0, res.stderr
        return res.stdout.split("NOTES:", 1)[1]

    iam = notes(CASES["iam"])
    assert "Mode: IAM" in iam and 'EKS cluster "demo"' in iam
    assert "kubectl -n epinio logs job/epinio-irsa-provision" in iam
    assert "system:serviceaccount:epinio:epinio-server" in iam
    pi = notes(merge(CASES["iam"], {"irsa": {"mode": "pod-identity"}}))
    assert "Credentials: EKS Pod Identity" in pi and "eks-pod-identity-agent" in pi
    assert "eks.amazonaws.com/role-arn" not in pi and "list-pod-identity-associations" in pi
    assert "irsa.mode=auto" in notes(merge(CASES["iam"], {"irsa": {"mode": "auto"}}))
    assert "Mode: static keys" in notes(CASES["static-keys"])
    assert "Mode: bundled store" in notes(CASES["bundled-seaweedfs"])


# --------------------------------------------------- values.schema.json and fail
BAD_VALUES = {
    "unknown key under irsa": ({"irsa": {"clusterNmae": "demo"}}, "clusterNmae"),
    "unknown nested key": ({"irsa": {"oidcProvider": {"delete": True}}}, "delete"),
    "boolean as string": ({"irsa": {"restartWorkloads": "yes"}}, "restartWorkloads"),
    "epinio boolean as string": ({"seaweedfs": {"enabled": "false"}}, "seaweedfs"),
    "cluster name as number": ({"irsa": {"clusterName": 42}}, "clusterName"),
    "cluster name with a space": ({"irsa": {"clusterName": "my cluster"}}, "clusterName"),
    "S3 key as number": ({"s3": {"accessKeyID": 12345}}, "accessKeyID"),
    "log format": ({"irsa": {"logFormat": "xml"}}, "logFormat"),
    "mode typo": ({"irsa": {"mode": "podidentity"}}, "mode"),
    "role path without slashes": ({"irsa": {"rolePath": "epinio"}}, "rolePath"),
    "role name too long": ({"irsa": {"serverRoleName": "r" * 65}}, "serverRoleName"),
    "role name bad characters": ({"irsa": {"stagingRoleName": "epinio/staging"}}, "stagingRoleName"),
    "extra policies not a list": ({"irsa": {"extraPolicyArns": "arn:aws:iam::aws:policy/ReadOnlyAccess"}}, "extraPolicyArns"),
    "extra policy not an ARN": ({"irsa": {"extraPolicyArns": ["ReadOnlyAccess"]}}, "extraPolicyArns"),
    "boundary not an ARN": ({"irsa": {"permissionsBoundary": "boundary"}}, "permissionsBoundary"),
    "tags as a list": ({"irsa": {"tags": ["team=platform"]}}, "tags"),
    "tag value with a comma": ({"irsa": {"tags": {"team": "a,b"}}}, "tags"),
    "reserved tag key": ({"irsa": {"tags": {"aws:owner": "me"}}}, "aws:owner"),
    "digest not a digest": ({"irsa": {"image": {"digest": "latest"}}}, "digest"),
    "pull policy": ({"irsa": {"image": {"pullPolicy": "Sometimes"}}}, "pullPolicy"),
    "negative backoff": ({"irsa": {"hooks": {"backoffLimit": -1}}}, "backoffLimit"),
    "deadline too short": ({"irsa": {"hooks": {"provision": {"activeDeadlineSeconds": 5}}}}, "activeDeadlineSeconds"),
    # The job gets the deadline minus 20 and accepts at most 3600 (EPINIO_IRSA_DEADLINE_SECONDS).
    "deadline beyond what the job accepts": ({"irsa": {"hooks": {"teardown": {"activeDeadlineSeconds": 3621}}}}, "activeDeadlineSeconds"),
    "certificate Secret not a name": ({"s3": {"certificateSecret": "Gateway TLS"}}, "certificateSecret"),
    "call timeout out of range": ({"irsa": {"callTimeoutSeconds": 0}}, "callTimeoutSeconds"),
    "annotation value not a string": ({"irsa": {"installer": {"serviceAccount": {"annotations": {"a": 1}}}}}, "annotations"),
    "unknown installer key": ({"irsa": {"installer": {"roleArn": "arn:aws:iam::1:role/x"}}}, "roleArn"),
    "service account name": ({"serviceAccount": {"name": "Epinio_Server"}}, "name"),
    "region typo": ({"irsa": {"region": "useast1"}}, "region"),
    "extraEnv overriding the contract": ({"irsa": {"extraEnv": [{"name": "EPINIO_IRSA_CLUSTER_NAME", "value": "x"}]}}, "extraEnv"),
}


@pytest.mark.parametrize("label", BAD_VALUES)
def test_schema_rejects(helm, tmp_path, label):
    bad, where = BAD_VALUES[label]
    res = template(helm, merge(IAM, bad), tmp_path)
    assert res.returncode != 0, f"accepted bad values ({label})"
    assert "values don't meet the specifications of the schema" in res.stderr, res.stderr
    assert where in res.stderr, res.stderr


CROSS_FIELD = {
    "IAM mode without a cluster name": ({"seaweedfs": {"enabled": False}}, "irsa.clusterName is required"),
    "only the access key": (
        {"seaweedfs": {"enabled": False}, "s3": {"accessKeyID": "AKIA"}},
        "s3.accessKeyID and s3.secretAccessKey go together",
    ),
    "only the secret key": (
        {"seaweedfs": {"enabled": False}, "s3": {"secretAccessKey": "x"}, "irsa": {"clusterName": "demo"}},
        "s3.accessKeyID and s3.secretAccessKey go together",
    ),
    "one role for two ServiceAccounts": (
        merge(
            IAM,
            {
                "server": {"stagingWorkloads": {"serviceAccountName": "epinio-staging"}},
                "irsa": {"serverRoleName": "epinio", "stagingRoleName": "epinio"},
            },
        ),
        "irsa.stagingRoleName must differ",
    ),
}


@pytest.mark.parametrize("label", CROSS_FIELD)
def test_cross_field_mistakes_fail_at_render(helm, tmp_path, label):
    values, message = CROSS_FIELD[label]
    res = template(helm, values, tmp_path)
    assert res.returncode != 0, f"rendered despite: {label}"
    assert message in res.stderr, res.stderr


def test_static_keys_need_no_cluster_name(helm, tmp_path):
    render(helm, CASES["static-keys"], tmp_path)
    render(helm, CASES["bundled-seaweedfs"], tmp_path)


# ------------------------------------------------- Kubernetes schemas (strict)
@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_kubernetes_schema_strict(helm, kv, tmp_path, case, version):
    docs = render(helm, CASES[case], tmp_path)
    for d in docs:
        try:
            kv.validate(d, version, strict=True)
        except kv.ValidationError as e:
            pytest.fail(f"{d['kind']}/{d['metadata']['name']} invalid for Kubernetes {version}: {e.message} at {list(e.path)}")


def test_kubernetes_validate_covers_eks_range(kv):
    # The schemas the range relies on are really shipped (no silent skip).
    for version in (K8S_OLDEST_EKS, K8S_NEWEST):
        kv.validate({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}}, version, strict=True)
    with pytest.raises(kv.ValidationError):
        kv.validate({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"}, "bogus": 1}, K8S_NEWEST, strict=True)


# ---------------------------------------------------------------- checkov
# Checks skipped on purpose, each with its reason:
CHECKOV_SKIPS = {
    # "Service Account Tokens are only mounted where necessary": it IS necessary.
    # The hook's whole job is Kubernetes API calls (annotate ServiceAccounts,
    # restart workloads) with the token of its own, namespaced, least-privilege
    # ServiceAccount, which exists only while a hook runs.
    "CKV_K8S_38",
    # "Prefer secrets as files over environment variables": the job's interface
    # is environment variables (EPINIO_IRSA_S3_* and the AWS SDK's standard
    # AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), and they come from secretKeyRef,
    # never plain values; the process is short-lived and never logs them
    # (the job redacts them in Debug/Display). Only fires in the static-keys and
    # existing-Secret cases.
    "CKV_K8S_35",
}
# The chart's default image reference is a tag because no digest exists before an
# image is published; production installs pin irsa.image.digest. The scan renders
# with a digest so that "image should use digest" (CKV_K8S_43) and "pull policy
# Always" (CKV_K8S_15, satisfied by a digest) are checked, not skipped.


def checkov_scan(helm, cases, out, work):
    """Render each of `cases` (the image pinned by digest) into `out`, one file per case, and
    scan them with checkov under CHECKOV_SKIPS. Per case: the failed checks, and the passed
    (check id, resource) pairs."""
    checkov = need(VENV_BIN / "checkov", "checkov 3.3.30")
    for case, values in cases.items():
        res = template(helm, merge(values, {"irsa": {"image": {"digest": DIGEST}}}), work)
        assert res.returncode == 0, res.stderr
        (out / f"{case}.yaml").write_text(res.stdout)
    res = run(
        [checkov, "-d", str(out), "--framework", "kubernetes", "--compact", "--skip-download",
         "--skip-check", ",".join(sorted(CHECKOV_SKIPS)), "-o", "json"],
    )
    try:
        report = json.loads(res.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no JSON (exit {res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    reports = report if isinstance(report, list) else [report]
    failed: dict[str, list[str]] = {case: [] for case in cases}
    passed: dict[str, set[str]] = {case: set() for case in cases}
    for r in reports:
        results = r.get("results", {})
        for check in results.get("passed_checks", []):
            passed.setdefault(Path(check["file_path"]).stem, set()).add(f"{check['check_id']} {check['resource']}")
        for check in results.get("failed_checks", []):
            case = Path(check["file_path"]).stem
            failed.setdefault(case, []).append(f"{check['check_id']} {check['check_name']} ({check['resource']})")
    return failed, passed


@pytest.fixture(scope="session")
def checkov_results(helm, tmp_path_factory):
    failed, passed = checkov_scan(
        helm, CASES, tmp_path_factory.mktemp("checkov"), tmp_path_factory.mktemp("checkov-values"))
    assert any(passed.values()), "checkov ran no check"
    return failed


@pytest.mark.parametrize("case", CASES)
def test_checkov(checkov_results, case):
    assert checkov_results[case] == [], "checkov failures:\n" + "\n".join(checkov_results[case])


# --------------------------------------------------- README, yamllint, hadolint
# Values documented as one entry (their leaves are Kubernetes fields).
WHOLE_VALUES = {"irsa.resources", "irsa.podSecurityContext", "irsa.containerSecurityContext"}


def leaf_paths(node, prefix=""):
    if isinstance(node, dict) and node and prefix not in WHOLE_VALUES:
        for key, value in node.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_chart_readme_lists_every_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    missing = [p for p in leaf_paths(values) if f"`{p}`" not in readme]
    assert not missing, f"chart/README.md does not document: {missing}"


def test_schema_knows_every_irsa_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())

    def walk(node, sch, path):
        if "$ref" in sch:
            sch = schema["definitions"][sch["$ref"].split("/")[-1]]
        props = sch.get("properties")
        if props is None or not isinstance(node, dict):
            return
        for key, value in node.items():
            assert key in props, f"{path}.{key} missing from values.schema.json"
            walk(value, props[key], f"{path}.{key}")

    walk(values["irsa"], schema["properties"]["irsa"], "irsa")


def test_yamllint_chart_files():
    yamllint = need(VENV_BIN / "yamllint", "yamllint 1.38.0")
    config = "{extends: default, rules: {line-length: {max: 120}, document-start: disable, comments: {min-spaces-from-content: 1}}}"
    res = run([yamllint, "-s", "-d", config, str(CHART / "Chart.yaml"), str(CHART / "values.yaml")])
    assert res.returncode == 0, res.stdout + res.stderr


def test_hadolint_dockerfile():
    hadolint = need(VENV_BIN / "hadolint", "hadolint 2.15.1")
    res = run([hadolint, "--failure-threshold", "style", str(ROOT / "Dockerfile")])
    assert res.returncode == 0, f"hadolint findings:\n{res.stdout}{res.stderr}"


def test_dockerignore_keeps_context_small():
    rules = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert rules[0] == "*", "deny by default"
    allowed = {r[1:].rstrip("/") for r in rules[1:] if r.startswith("!")}
    assert {"Cargo.toml", "Cargo.lock", "src", "tests/support/Cargo.toml", "tests/support/src"} <= allowed
    assert not {a for a in allowed if re.match(r"(target|\.tools|\.git)(/|$)", a)}
    # what the Dockerfile copies is inside the context
    copies = re.findall(r"^COPY (?!--from)(.+?) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    for line in copies:
        for src in line.split():
            assert src.rstrip("/") in allowed, f"Dockerfile copies {src}, which .dockerignore excludes"


def test_docker_context_has_what_cargo_loads():
    """Cargo reads every workspace manifest and checks every declared target's file
    before it builds anything, so each must be in the build context and copied by
    the Dockerfile. Catches a new [[bench]]/[[test]]/member without an image build."""
    import tomllib

    rules = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip() and not l.startswith("#")]
    allowed = [r[1:].rstrip("/") for r in rules if r.startswith("!")]
    copied = [src.rstrip("/") for line in re.findall(r"^COPY (?!--from)(.+?) \S+$", (ROOT / "Dockerfile").read_text(), re.M) for src in line.split()]

    def covered(path: str, roots: list[str]) -> bool:
        return any(path == r or path.startswith(r + "/") for r in roots)

    root = tomllib.loads((ROOT / "Cargo.toml").read_text())
    needed = ["Cargo.toml", "Cargo.lock"]
    for member in root.get("workspace", {}).get("members", []):
        if member != ".":
            needed += [f"{member}/Cargo.toml", f"{member}/src"]
    defaults = {"bin": "src/bin/{}.rs", "bench": "benches/{}.rs", "test": "tests/{}.rs", "example": "examples/{}.rs"}
    for kind, pattern in defaults.items():
        for target in root.get(kind, []):
            needed.append(target.get("path") or pattern.format(target["name"]))
    if root.get("package", {}).get("build") or (ROOT / "build.rs").exists():
        needed.append(root.get("package", {}).get("build") or "build.rs")
    for path in needed:
        assert covered(path, allowed), f"{path} is needed by Cargo but excluded by .dockerignore"
        assert covered(path, copied), f"{path} is needed by Cargo but the Dockerfile does not COPY it"


def test_allow_unsupported_epinio_reaches_the_job(helm, tmp_path):
    assert "EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO" not in plain_env(job(render(helm, IAM, tmp_path), "provision"))
    docs = render(helm, merge(IAM, {"irsa": {"allowUnsupportedEpinio": True}}), tmp_path)
    assert plain_env(job(docs, "provision"))["EPINIO_IRSA_ALLOW_UNSUPPORTED_EPINIO"] == "true"
