"""Tests of the built container image (tests/image/build.sh makes it).

Runs the image with podman (runc, see containers.conf) and checks that the binary
inside prints its version, runs as UID 65532 with no shell in the image, and
completes `provision` and `teardown` from inside the container against moto and
the Kubernetes stand-in running on the host (--network=host). It also runs
`epinio-irsa gateway` from the image in front of moto and puts and gets an object
through it with boto3.

Run: .tools/venv/bin/python -m pytest tests/image   (scripts/test.sh does, after the build)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".tools" / "venv" / "bin"
IMAGE = os.environ.get("EPINIO_IRSA_TEST_IMAGE", "localhost/epinio-irsa:test")
NAMESPACE = "epinio"
CLUSTER = "demo"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
os.environ["CONTAINERS_CONF"] = str(ROOT / "tests" / "image" / "containers.conf")

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
}

# Epinio's objects as its chart makes them (1.13.9: a server version that can use a role;
# no staging ConfigMap, so staging follows the configuration), for the Kubernetes stand-in.
SEED = [
    {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "epinio-server", "namespace": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "Helm"}},
    },
    {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "epinio-server",
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/name": "epinio-server",
                "app.kubernetes.io/version": "v1.13.9",
                "helm.sh/chart": "epinio-1.13.9",
                "app.kubernetes.io/managed-by": "Helm",
            },
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "epinio-server"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "epinio-server"}},
                "spec": {
                    "serviceAccountName": "epinio-server",
                    "containers": [{"name": "epinio-server", "image": "ghcr.io/epinio/epinio-server:v1.13.9"}],
                },
            },
        },
    },
]


def need(path: Path | str, what: str) -> str:
    found = str(path) if Path(path).is_absolute() and Path(path).exists() else shutil.which(str(path))
    if not found:
        pytest.fail(f"{what} not found ({path}): run scripts/setup.sh", pytrace=False)
    return found


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cargo_version() -> str:
    text = (ROOT / "Cargo.toml").read_text()
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


@pytest.fixture(scope="session")
def podman() -> str:
    podman = need("podman", "podman")
    if run([podman, "image", "exists", IMAGE]).returncode != 0:
        pytest.fail(f"image {IMAGE} not built: run tests/image/make-bases.sh and tests/image/build.sh", pytrace=False)
    return podman


@pytest.fixture(scope="session")
def moto():
    server = need(VENV_BIN / "moto_server", "moto_server (moto[server] 5.2.5)")
    port = free_port()
    log = open(ROOT / ".tools" / "image" / "moto.log", "w") if (ROOT / ".tools" / "image").is_dir() else subprocess.DEVNULL
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def aws_endpoint(moto):
    """What the job talks to: the test proxy in front of moto, which also serves the EKS Pod
    Identity stand-in (moto has none of that API; IRSA mode lists associations too)."""
    cargo = need("cargo", "cargo")
    build = run([cargo, "build", "-q", "-p", "testkit", "--bin", "fault-proxy"], cwd=ROOT)
    assert build.returncode == 0, f"cannot build fault-proxy:\n{build.stderr}"
    binary = ROOT / "target" / "debug" / "fault-proxy"
    proc = subprocess.Popen(
        [str(binary), "--upstream", moto, "--port", "0", "--pod-identity-agent", f"{CLUSTER}=ACTIVE"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        pytest.fail(f"fault-proxy did not start: {line}{proc.stderr.read()}")
    yield line.split()[-1]
    proc.terminate()
    proc.wait(timeout=10)


def aws(moto: str, *args: str) -> dict:
    cli = need(VENV_BIN / "aws", "aws CLI (awscli)")
    res = run([cli, "--endpoint-url", moto, "--output", "json", *args], env={**os.environ, **AWS_ENV})
    assert res.returncode == 0, f"aws {' '.join(args)}: {res.stderr}"
    return json.loads(res.stdout) if res.stdout.strip() else {}


@pytest.fixture(scope="session")
def eks_cluster(moto) -> dict:
    out = aws(
        moto, "eks", "create-cluster", "--name", CLUSTER,
        "--role-arn", f"arn:aws:iam::{ACCOUNT}:role/eks", "--resources-vpc-config", "subnetIds=[]",
    )
    return out["cluster"]


@pytest.fixture(scope="session")
def standin(tmp_path_factory):
    """The Kubernetes API stand-in (tests/support), seeded with Epinio's objects."""
    with start_standin(tmp_path_factory.mktemp("standin"), SEED) as s:
        yield s


# Epinio 1.13.9 as its chart leaves staging's ConfigMap with image.awscli.tag raised to a CLI that
# reads Pod Identity credentials (staging shares the server's ServiceAccount, the chart default).
STAGE_SCRIPTS = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "epinio-stage-scripts", "namespace": NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "Helm"}},
    "data": {
        "staging-values.json": json.dumps({"serviceAccountName": "epinio-server"}),
        "downloadImage": "amazon/aws-cli:2.17.0",
    },
}


@contextlib.contextmanager
def start_standin(tmp: Path, seed_objects: list):
    """Build (once) and start kube-standin seeded with `seed_objects`; stopped on exit."""
    cargo = need("cargo", "cargo")
    build = run([cargo, "build", "-q", "-p", "testkit", "--bin", "kube-standin"], cwd=ROOT)
    assert build.returncode == 0, f"cannot build kube-standin:\n{build.stderr}"
    binary = ROOT / "target" / "debug" / "kube-standin"
    seed = tmp / "seed.json"
    seed.write_text(json.dumps(seed_objects))
    kubeconfig = tmp / "kubeconfig"
    proc = subprocess.Popen(
        [str(binary), "--seed", str(seed), "--kubeconfig", str(kubeconfig), "--namespace", NAMESPACE],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        pytest.fail(f"kube-standin did not start: {line}{proc.stderr.read()}")
    # the job reads the kubeconfig as UID 65532
    kubeconfig.chmod(0o644)
    tmp.chmod(0o755)
    try:
        yield {"url": line.split()[-1], "kubeconfig": kubeconfig}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def kubectl_json(standin, *args: str) -> dict:
    kubectl = need(ROOT / ".tools" / "bin" / "kubectl", "kubectl")
    res = run([kubectl, "--kubeconfig", str(standin["kubeconfig"]), "-n", NAMESPACE, *args, "-o", "json"])
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def container_cmd(podman: str, args: list[str], env: dict, mounts: list[str] = ()) -> list[str]:
    """podman run as the chart runs the Job: read-only root, no capabilities,
    no privilege escalation, a small /tmp."""
    cmd = [
        podman, "run", "--pull=never", "--network=host", "--read-only", "--cap-drop=ALL",
        "--security-opt=no-new-privileges", "--tmpfs", "/tmp:size=16m",
    ]
    for m in mounts:
        cmd += ["-v", m]
    for k, v in env.items():
        cmd += ["-e", f"{k}={v}"]
    return cmd + [IMAGE, *args]


def job_env(moto: str, extra: dict | None = None) -> dict:
    return {
        **AWS_ENV,
        "AWS_ENDPOINT_URL": moto,
        "KUBECONFIG": "/kube/config",
        "EPINIO_IRSA_CLUSTER_NAME": CLUSTER,
        "EPINIO_IRSA_NAMESPACE": NAMESPACE,
        "POD_NAMESPACE": NAMESPACE,
        **(extra or {}),
    }


def run_job(podman, standin, moto, command, tmp_path, extra_env=None):
    """Run one job command in the container; measure its peak RSS from the host's /proc."""
    term = tmp_path / f"termination-log-{command}"
    term.write_text("")
    term.chmod(0o666)
    cmd = container_cmd(
        podman, [command], job_env(moto, extra_env),
        mounts=[f"{standin['kubeconfig']}:/kube/config:ro", f"{term}:/dev/termination-log"],
    )
    cmd.insert(2, "--detach")
    started = run(cmd)
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    peak_kib = 0
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            state = run([podman, "inspect", "--format", "{{.State.Status}} {{.State.Pid}}", cid]).stdout.split()
            if not state or state[0] != "running":
                break
            try:
                status = Path(f"/proc/{state[1]}/status").read_text()
                peak_kib = max(peak_kib, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))
            except (OSError, AttributeError, IndexError):
                pass
            time.sleep(0.02)
        code = int(run([podman, "wait", cid]).stdout.strip() or -1)
        logs = run([podman, "logs", cid])
    finally:
        run([podman, "rm", "-f", cid])
    return code, logs.stdout, logs.stderr, term.read_text(), peak_kib


# ------------------------------------------------------------------- tests
def test_version(podman):
    res = run([podman, "run", "--rm", "--pull=never", "--network=none", IMAGE, "--version"])
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"epinio-irsa {cargo_version()}"


def test_help_lists_the_hook_commands(podman):
    res = run([podman, "run", "--rm", "--pull=never", "--network=none", IMAGE, "--help"])
    assert res.returncode == 0, res.stderr
    for command in ("provision", "teardown", "plan", "installer-policy", "gateway"):
        assert command in res.stdout


def test_image_config(podman):
    config = json.loads(run([podman, "image", "inspect", IMAGE]).stdout)[0]["Config"]
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/usr/local/bin/epinio-irsa"]


def test_image_has_no_shell(podman):
    for shell in ("/bin/sh", "/bin/bash", "/usr/bin/sh"):
        res = run([podman, "run", "--rm", "--pull=never", "--network=none", "--entrypoint", shell, IMAGE, "-c", "true"])
        assert res.returncode != 0, f"{shell} exists in the image"


def test_runs_as_uid_65532(podman, tmp_path):
    """Reads the real process's credentials from the host's /proc while the job
    waits on an endpoint that accepts connections and never answers."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)  # never accept(): connections complete, requests hang
        port = hole.getsockname()[1]
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
            f"    server: http://127.0.0.1:{port}\nusers:\n- name: u\n  user: {{}}\n"
            "contexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
        )
        kubeconfig.chmod(0o644)
        tmp_path.chmod(0o755)
        cmd = container_cmd(
            podman, ["provision"],
            job_env(f"http://127.0.0.1:{port}", {"EPINIO_IRSA_CALL_TIMEOUT_SECONDS": "120"}),
            mounts=[f"{kubeconfig}:/kube/config:ro"],
        )
        cmd.insert(2, "--detach")
        started = run(cmd)
        assert started.returncode == 0, started.stderr
        cid = started.stdout.strip()
        try:
            status = ""
            for _ in range(200):
                state = run([podman, "inspect", "--format", "{{.State.Status}} {{.State.Pid}}", cid]).stdout.split()
                if state and state[0] == "running" and state[1] != "0":
                    try:
                        status = Path(f"/proc/{state[1]}/status").read_text()
                        if "epinio-irsa" in Path(f"/proc/{state[1]}/cmdline").read_text():
                            break
                    except OSError:
                        pass
                time.sleep(0.05)
            assert status, "the container did not stay up long enough to inspect: " + run([podman, "logs", cid]).stderr
        finally:
            run([podman, "rm", "-f", cid])
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["Uid"].split() == ["65532"] * 4, fields["Uid"]
    assert fields["Gid"].split() == ["65532"] * 4, fields["Gid"]
    assert int(fields["CapEff"].strip(), 16) == 0, "no effective capabilities"
    assert fields["NoNewPrivs"].strip() == "1"


def test_provision_and_teardown_from_the_container(podman, moto, aws_endpoint, eks_cluster, standin, tmp_path):
    code, out, err, term, peak_kib = run_job(podman, standin, aws_endpoint, "provision", tmp_path)
    print(f"\nprovision in the container: exit {code}, peak RSS {peak_kib / 1024:.1f} MiB\n{out}")
    assert code == 0, f"provision failed (exit {code}):\nstdout:\n{out}\nstderr:\n{err}\ntermination log: {term}"
    assert term == "", "nothing written to /dev/termination-log on success"

    issuer = eks_cluster["identity"]["oidc"]["issuer"].removeprefix("https://")
    providers = [p["Arn"] for p in aws(moto, "iam", "list-open-id-connect-providers")["OpenIDConnectProviderList"]]
    assert f"arn:aws:iam::{ACCOUNT}:oidc-provider/{issuer}" in providers

    sa = kubectl_json(standin, "get", "serviceaccount", "epinio-server")
    role_arn = sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    role_name = role_arn.rsplit("/", 1)[1]
    role = aws(moto, "iam", "get-role", "--role-name", role_name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert f"system:serviceaccount:{NAMESPACE}:epinio-server" in json.dumps(trust)
    assert "sts:AssumeRoleWithWebIdentity" in json.dumps(trust)
    attached = aws(moto, "iam", "list-attached-role-policies", "--role-name", role_name)["AttachedPolicies"]
    assert attached, "the S3 policy is attached"
    # the pods predating the annotation were restarted
    deployment = kubectl_json(standin, "get", "deployment", "epinio-server")
    assert deployment["spec"]["template"]["metadata"].get("annotations"), "epinio-server was not restarted"

    # a second run changes nothing (Helm upgrade)
    code, out2, err2, term, _ = run_job(podman, standin, aws_endpoint, "provision", tmp_path)
    assert code == 0, f"second provision failed:\n{out2}\n{err2}\n{term}"

    code, out, err, term, teardown_kib = run_job(podman, standin, aws_endpoint, "teardown", tmp_path)
    print(f"teardown in the container: exit {code}, peak RSS {teardown_kib / 1024:.1f} MiB\n{out}")
    assert code == 0, f"teardown failed (exit {code}):\nstdout:\n{out}\nstderr:\n{err}\ntermination log: {term}"
    roles = [r["RoleName"] for r in aws(moto, "iam", "list-roles")["Roles"]]
    assert role_name not in roles
    sa = kubectl_json(standin, "get", "serviceaccount", "epinio-server")
    assert "eks.amazonaws.com/role-arn" not in (sa["metadata"].get("annotations") or {})
    if peak_kib:
        # the chart's memory limit is 64Mi; keep real use well under it
        assert peak_kib < 48 * 1024, f"provision peaked at {peak_kib} KiB"


def test_failure_reaches_the_termination_log(podman, moto, standin, tmp_path):
    # IAM mode without a cluster name: the job must fail before any call, with a message
    code, out, err, term, _ = run_job(podman, standin, moto, "provision", tmp_path, {"EPINIO_IRSA_CLUSTER_NAME": ""})
    assert code != 0
    assert "EPINIO_IRSA_CLUSTER_NAME" in term, f"termination log: {term!r}\nstderr: {err}"


def test_installer_policy_offline(podman):
    # What chart/README.md tells users to run to create the installer role.
    res = run([
        podman, "run", "--rm", "--pull=never", "--network=none",
        "-e", f"EPINIO_IRSA_CLUSTER_NAME={CLUSTER}", "-e", f"EPINIO_IRSA_NAMESPACE={NAMESPACE}",
        "-e", f"EPINIO_IRSA_ACCOUNT_ID={ACCOUNT}", "-e", f"AWS_REGION={REGION}",
        IMAGE, "installer-policy",
    ])
    assert res.returncode == 0, res.stderr
    policy = json.loads(res.stdout)
    assert policy["Version"] == "2012-10-17" and policy["Statement"]
    assert f"arn:aws:iam::{ACCOUNT}:role/" in res.stdout


def test_image_size(podman):
    size = int(run([podman, "image", "inspect", "--format", "{{.Size}}", IMAGE]).stdout.strip())
    print(f"\nimage {IMAGE}: {size} bytes ({size / 1024 / 1024:.1f} MiB)")
    assert size < 80 * 1024 * 1024, "the runtime image should be distroless-small"


def test_pod_identity_provision_and_teardown_from_the_container(podman, moto, aws_endpoint, eks_cluster, tmp_path_factory, tmp_path):
    """EKS Pod Identity from inside the container, against the stand-in the proxy serves (the
    agent add-on ACTIVE there): an association instead of the annotation, gone after teardown."""
    pi = {"EPINIO_IRSA_MODE": "pod-identity"}
    with start_standin(tmp_path_factory.mktemp("standin-pi"), SEED + [STAGE_SCRIPTS]) as standin:
        code, out, err, term, _ = run_job(podman, standin, aws_endpoint, "provision", tmp_path, pi)
        print(f"\nPod Identity provision in the container: exit {code}\n{out}")
        assert code == 0, f"provision failed (exit {code}):\nstdout:\n{out}\nstderr:\n{err}\ntermination log: {term}"
        assert "mode: pod-identity" in out, out
        listed = aws(aws_endpoint, "eks", "list-pod-identity-associations", "--cluster-name", CLUSTER, "--namespace", NAMESPACE)
        assert [a["serviceAccount"] for a in listed["associations"]] == ["epinio-server"], listed
        sa = kubectl_json(standin, "get", "serviceaccount", "epinio-server")
        assert "eks.amazonaws.com/role-arn" not in (sa["metadata"].get("annotations") or {})
        described = aws(
            aws_endpoint, "eks", "describe-pod-identity-association", "--cluster-name", CLUSTER,
            "--association-id", listed["associations"][0]["associationId"],
        )["association"]
        role = aws(moto, "iam", "get-role", "--role-name", described["roleArn"].rsplit("/", 1)[1])["Role"]
        trust = role["AssumeRolePolicyDocument"]
        assert "pods.eks.amazonaws.com" in (trust if isinstance(trust, str) else json.dumps(trust))

        code, out, err, term, _ = run_job(podman, standin, aws_endpoint, "teardown", tmp_path, pi)
        assert code == 0, f"teardown failed (exit {code}):\nstdout:\n{out}\nstderr:\n{err}\ntermination log: {term}"
        listed = aws(aws_endpoint, "eks", "list-pod-identity-associations", "--cluster-name", CLUSTER)
        assert listed["associations"] == [], listed


def wait_http(url: str, timeout: float = 30.0) -> int:
    """GET `url` until it answers (any status); the status, or 0 after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as res:
                return res.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            time.sleep(0.1)
    return 0


AGENT_TOKEN = "pod-identity-token-for-the-image-test"


def credentials_endpoint(key_id, secret):
    """A container credentials endpoint on loopback (what the EKS Pod Identity agent serves a
    pod), answering with `key_id`/`secret` when the Authorization header is AGENT_TOKEN.
    Returns its URL; it runs in a daemon thread until the test process ends."""
    import json
    import threading
    from datetime import datetime, timedelta, timezone
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Agent(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") != AGENT_TOKEN:
                self.send_response(401)
                self.end_headers()
                return
            expires = (datetime.now(timezone.utc) + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = json.dumps({"AccessKeyId": key_id, "SecretAccessKey": secret,
                               "Token": "image-test-session-token", "Expiration": expires}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Agent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1/credentials"


def test_gateway_from_the_container(podman, moto, tmp_path):
    """`epinio-irsa gateway` from the image, as the chart runs it (read-only root, no
    capabilities, UID 65532, Epinio's key pair mounted at the default path), in front of
    moto with moto's static credentials served the way EKS Pod Identity serves a role's
    (a container credentials endpoint on loopback: the gateway reads no AWS_ACCESS_KEY_ID;
    the role's chain is tested in tests/gateway_*.rs). Proves: /readyz
    answers 200, boto3 signed with Epinio's key pair puts and gets an object through it (the
    bytes checked by SHA-256, and in moto itself), another bucket is refused with
    AccessDenied, the process runs as 65532 with no capabilities, and SIGTERM stops it with
    exit code 0."""
    import hashlib

    import boto3
    from botocore.config import Config

    bucket, key_id, secret = "epinio-gateway-image", "EPINIOIMAGEKEY000001", "image-test-secret/0123456789"
    aws(moto, "s3api", "create-bucket", "--bucket", bucket)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "accessKeyID").write_text(key_id)
    (keys / "secretAccessKey").write_text(secret)
    for f in keys.iterdir():
        f.chmod(0o644)
    keys.chmod(0o755)
    tmp_path.chmod(0o755)
    s3_port, health_port = free_port(), free_port()
    agent = credentials_endpoint(AWS_ENV["AWS_ACCESS_KEY_ID"], AWS_ENV["AWS_SECRET_ACCESS_KEY"])
    env = {
        "AWS_REGION": REGION,
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": AGENT_TOKEN,
        "AWS_ENDPOINT_URL": moto,
        "AWS_EC2_METADATA_DISABLED": "true",
        "EPINIO_IRSA_GATEWAY_BUCKET": bucket,
        "EPINIO_IRSA_GATEWAY_REGION": REGION,
        "EPINIO_IRSA_GATEWAY_LISTEN": f"127.0.0.1:{s3_port}",
        "EPINIO_IRSA_GATEWAY_HEALTH_LISTEN": f"127.0.0.1:{health_port}",
        "EPINIO_IRSA_GATEWAY_PATH_STYLE": "true",
    }
    cmd = container_cmd(podman, ["gateway"], env, mounts=[f"{keys}:/etc/epinio-irsa-gateway/keys:ro"])
    cmd.insert(2, "--detach")
    started = run(cmd)
    assert started.returncode == 0, started.stderr
    cid = started.stdout.strip()
    try:
        ready = wait_http(f"http://127.0.0.1:{health_port}/readyz")
        assert ready == 200, f"/readyz: {ready}\n" + run([podman, "logs", cid]).stderr

        pid = run([podman, "inspect", "--format", "{{.State.Pid}}", cid]).stdout.strip()
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        assert fields["Uid"].split() == ["65532"] * 4, fields["Uid"]
        assert int(fields["CapEff"].strip(), 16) == 0, "no effective capabilities"

        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{s3_port}",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        data = os.urandom(1024 * 1024 + 1)
        client.put_object(Bucket=bucket, Key="apps/blob", Body=data)
        assert client.head_object(Bucket=bucket, Key="apps/blob")["ContentLength"] == len(data)
        got = client.get_object(Bucket=bucket, Key="apps/blob")["Body"].read()
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
        direct = boto3.client(
            "s3", endpoint_url=moto, region_name=REGION,
            aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"], aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        stored = direct.get_object(Bucket=bucket, Key="apps/blob")["Body"].read()
        assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(data).hexdigest(), "moto holds other bytes"
        try:
            client.head_bucket(Bucket="someone-elses")
            raise AssertionError("another bucket was served")
        except client.exceptions.ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
    finally:
        stop = run([podman, "stop", "--time", "20", cid])
        code = run([podman, "inspect", "--format", "{{.State.ExitCode}}", cid]).stdout.strip()
        logs = run([podman, "logs", cid]).stderr
        run([podman, "rm", "-f", cid])
    print(f"\ngateway in the container: stopped with exit code {code}\n{logs[-2000:]}")
    assert stop.returncode == 0, stop.stderr
    assert code == "0", f"exit code {code} after SIGTERM:\n{logs}"
    assert "stopped" in logs, logs
