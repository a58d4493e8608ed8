#!/usr/bin/env bash
# Runs epinio-irsa end to end on this machine, with no AWS account and no cluster:
#   moto (a real AWS IAM/EKS/STS emulator) and the Kubernetes API stand-in from tests/support,
#   a demo EKS cluster and Epinio's objects, then plan, provision, a no-op re-run and teardown.
#   AWS calls go through the test proxy, which serves the EKS Pod Identity stand-in beside moto
#   (with the eks-pod-identity-agent add-on ACTIVE on the demo cluster).
#
#   scripts/demo.sh                                IRSA (the default mode)
#   EPINIO_IRSA_MODE=pod-identity scripts/demo.sh  EKS Pod Identity (auto works too)
#   EPINIO_IRSA_GATEWAY=true scripts/demo.sh       gateway mode, for Epinio 1.14.1: the S3
#                                                  gateway runs here too, and the aws CLI copies
#                                                  through it as Epinio's staging does
#
# Installs what it needs (scripts/setup.sh --minimal) and is safe to run again. Needs python3
# with python3-venv, gcc and Rust 1.94+ (setup.sh checks them first and names what to install);
# uses only the tools setup pinned in .tools/ (kubectl, aws, moto), by path.
# The first run takes about 7 minutes on 2 cores, nearly all of it the cargo build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/setup.sh --minimal

MODE="${EPINIO_IRSA_MODE:-irsa}"
case "$MODE" in
  irsa|pod-identity|auto) ;;
  *) echo "demo: EPINIO_IRSA_MODE=$MODE: must be irsa, pod-identity or auto" >&2; exit 2 ;;
esac
GATEWAY="${EPINIO_IRSA_GATEWAY:-false}"
case "$GATEWAY" in
  true|false) ;;
  *) echo "demo: EPINIO_IRSA_GATEWAY=$GATEWAY: must be true or false" >&2; exit 2 ;;
esac

echo "== building epinio-irsa, the Kubernetes stand-in and the AWS proxy"
echo "   (the first build takes about 6 minutes on 2 cores; later ones only what changed)"
cargo build --locked -p epinio-irsa -p testkit --bin epinio-irsa --bin kube-standin --bin fault-proxy
BIN="$ROOT/target/debug/epinio-irsa"
STANDIN="$ROOT/target/debug/kube-standin"
PROXY="$ROOT/target/debug/fault-proxy"
VENV="$ROOT/.tools/venv/bin"
KUBECTL="$ROOT/.tools/bin/kubectl"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The gateway's /credentials document, in one line: where its credentials stand.
gateway_credentials() {
  "$VENV/python" - "http://127.0.0.1:$GW_HEALTH/credentials" <<'PY'
import json, sys, urllib.request
d = json.load(urllib.request.urlopen(sys.argv[1], timeout=5))
if d["state"] == "ready":
    print("   its credentials (/credentials): %s, from the %s, expire %s"
          % (d["state"], d["provider"], d["expires_at"]))
else:
    print("   its credentials (/credentials): %s: none until the hook gives its ServiceAccount a role"
          % d["state"])
PY
}

free_port() { "$VENV/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# GET a URL with the venv's python: its body on stdout, or a failure.
http_get() { "$VENV/python" -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }

wait_for() { # URL [any: any HTTP answer will do, an error status too]
  for _ in $(seq 1 100); do
    http_get "$1" >/dev/null 2>&1 && return 0
    [[ "${2:-}" == any ]] && "$VENV/python" -c '
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=5)
except urllib.error.HTTPError:
    pass' "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "demo: $1 did not come up" >&2
  return 1
}

MOTO_PORT=$(free_port)
echo "== starting moto on 127.0.0.1:$MOTO_PORT"
"$VENV/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$MOTO_PORT/moto-api/"

KUBE_PORT=$(free_port)
echo "== starting the Kubernetes stand-in on 127.0.0.1:$KUBE_PORT, seeded with Epinio's objects"
"$STANDIN" --port "$KUBE_PORT" --seed tests/fixtures/epinio-objects.json \
  --kubeconfig "$WORK/kubeconfig" --namespace epinio --rollouts 1500 >"$WORK/standin.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$KUBE_PORT/version"

PROXY_PORT=$(free_port)
echo "== starting the AWS proxy (EKS Pod Identity stand-in) on 127.0.0.1:$PROXY_PORT"
"$PROXY" --upstream "http://127.0.0.1:$MOTO_PORT" --port "$PROXY_PORT" \
  --pod-identity-agent demo=ACTIVE >"$WORK/proxy.log" 2>&1 &
PIDS+=($!)
wait_for "http://127.0.0.1:$PROXY_PORT/moto-api/"

export AWS_ENDPOINT_URL="http://127.0.0.1:$PROXY_PORT" AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export KUBECONFIG="$WORK/kubeconfig"
aws() { "$VENV/aws" "$@"; }
kubectl_() { "$KUBECTL" "$@"; }

echo "== creating EKS cluster 'demo' in moto"
echo "   its OIDC issuer: $(aws eks create-cluster --name demo --role-arn arn:aws:iam::123456789012:role/eks \
  --resources-vpc-config subnetIds=[] --query 'cluster.identity.oidc.issuer' --output text)"

export EPINIO_IRSA_CLUSTER_NAME=demo EPINIO_IRSA_NAMESPACE=epinio
export EPINIO_IRSA_STAGING_SERVICE_ACCOUNT=epinio-staging EPINIO_IRSA_MODE="$MODE"

# Epinio 1.13.9's chart renders staging's settings into ConfigMap epinio-stage-scripts
# (staging-values.json = toJson .Values.server.stagingWorkloads, downloadImage from
# image.awscli.*); the demo's values set server.stagingWorkloads.serviceAccountName=epinio-staging.
AWSCLI=amazon/aws-cli:2.13.26
if [[ "$MODE" != irsa ]]; then
  echo "== Epinio's staging uses an aws CLI that reads Pod Identity credentials"
  echo "   (Epinio value image.awscli.tag: 2.17.0; its default 2.13.26 cannot)"
  AWSCLI=amazon/aws-cli:2.17.0
fi
echo "== Epinio's staging ConfigMap, as its chart renders it (staging ServiceAccount epinio-staging)"
kubectl_ apply --validate=false -n epinio -f - <<YAML
apiVersion: v1
kind: ConfigMap
metadata:
  name: epinio-stage-scripts
  namespace: epinio
  labels:
    app.kubernetes.io/managed-by: Helm
data:
  staging-values.json: '{"affinity":{},"nodeSelector":{},"resources":{},"serviceAccountName":"epinio-staging","storage":{"cache":{"emptyDir":false,"size":"1Gi"},"sourceBlobs":{"emptyDir":false,"size":"1Gi"}}}'
  downloadImage: $AWSCLI
YAML

echo "== the bucket Epinio will use, made ahead as most installs do (else Epinio makes it at start,"
echo "   and verify can then prove only the assume step, and says so)"
aws s3api create-bucket --bucket epinio >/dev/null

if [[ "$GATEWAY" == true ]]; then
  echo "== gateway mode: Epinio v1.14.1 (its server cannot use a role), and what the chart renders"
  echo "   for the gateway: its ServiceAccount and Deployment, and the gateway itself, run here"
  kubectl_ patch deployment epinio-server -n epinio --type=json -p \
    '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"ghcr.io/epinio/epinio-server:v1.14.1"}]' >/dev/null
  kubectl_ apply --validate=false -n epinio -f - >/dev/null <<'YAML'
apiVersion: v1
kind: ServiceAccount
metadata:
  name: epinio-irsa-gateway
  namespace: epinio
  labels:
    app.kubernetes.io/managed-by: Helm
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: epinio-irsa-gateway
  namespace: epinio
  labels:
    app.kubernetes.io/managed-by: Helm
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: epinio-irsa-gateway}
  template:
    metadata:
      labels: {app.kubernetes.io/name: epinio-irsa-gateway}
    spec:
      serviceAccountName: epinio-irsa-gateway
      containers: [{name: gateway, image: epinio-irsa, args: [gateway]}]
YAML
  # Epinio's s3.accessKeyID / s3.secretAccessKey: a cluster-local pair, made here as the
  # chart's refusal message says.
  KEY_ID=$(LC_ALL=C tr -dc A-Z0-9 </dev/urandom | head -c 20 || true)
  KEY_SECRET=$("$VENV/python" -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(30)).decode())')
  mkdir -p "$WORK/keys"
  printf '%s' "$KEY_ID" >"$WORK/keys/accessKeyID"
  printf '%s' "$KEY_SECRET" >"$WORK/keys/secretAccessKey"
  # On EKS the gateway's pods hold no AWS key: EKS gives them the role through the Pod
  # Identity agent's credentials endpoint and a token to present to it. Here a stand-in for
  # that agent runs on loopback and serves the gateway a session of the role the hook gives
  # its ServiceAccount, from moto; the gateway gets its URI and token, and no key at all.
  AGENT_PORT=$(free_port)
  "$VENV/python" -c 'import secrets; print(secrets.token_hex(24), end="")' >"$WORK/agent-token"
  "$VENV/python" scripts/demo-credentials-endpoint.py "$AGENT_PORT" "$WORK/agent-token" \
    demo epinio epinio-irsa-gateway "$KUBECTL" >"$WORK/agent.log" 2>&1 &
  PIDS+=($!)
  wait_for "http://127.0.0.1:$AGENT_PORT/v1/credentials" any
  echo "   stand-ins: moto for AWS, the Kubernetes stand-in for the cluster, and a credentials"
  echo "   endpoint on 127.0.0.1:$AGENT_PORT for the EKS Pod Identity agent: the gateway gets no AWS"
  echo "   key, only that endpoint and its token, which serve it the role the hook gives its"
  echo "   ServiceAccount (IRSA's web identity token is the other way EKS hands a pod its role)"
  # TLS, as the chart does by default: cert-manager issues the gateway's certificate from Epinio's
  # epinio-ca ClusterIssuer, and Epinio trusts it through s3.certificateSecret. Here a CA made
  # by scripts/demo-certificates.py stands in for both, written as that Secret's files.
  "$VENV/python" scripts/demo-certificates.py "$WORK/tls" 127.0.0.1
  cat "$WORK/tls/ca.crt" "$WORK/tls/tls.crt" >"$WORK/tls/bundle.pem"   # as Epinio's staging builds it
  echo "   TLS: a CA made here stands in for Epinio's epinio-ca (cert-manager); the gateway serves"
  echo "   its certificate, and the hook and the aws CLI trust that CA only, as Epinio does"
  GW_PORT=$(free_port); GW_HEALTH=$(free_port)
  env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
    AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:$AGENT_PORT/v1/credentials" \
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE="$WORK/agent-token" \
    EPINIO_IRSA_GATEWAY_LISTEN="127.0.0.1:$GW_PORT" EPINIO_IRSA_GATEWAY_HEALTH_LISTEN="127.0.0.1:$GW_HEALTH" \
    EPINIO_IRSA_GATEWAY_BUCKET=epinio EPINIO_IRSA_GATEWAY_PATH_STYLE=true \
    EPINIO_IRSA_GATEWAY_ACCESS_KEY_FILE="$WORK/keys/accessKeyID" \
    EPINIO_IRSA_GATEWAY_SECRET_KEY_FILE="$WORK/keys/secretAccessKey" \
    EPINIO_IRSA_GATEWAY_TLS_CERT_FILE="$WORK/tls/tls.crt" EPINIO_IRSA_GATEWAY_TLS_KEY_FILE="$WORK/tls/tls.key" \
    "$BIN" gateway >"$WORK/gateway.log" 2>&1 &
  PIDS+=($!)
  wait_for "http://127.0.0.1:$GW_HEALTH/readyz"
  export EPINIO_IRSA_GATEWAY=true EPINIO_IRSA_GATEWAY_ENDPOINT="https://127.0.0.1:$GW_PORT"
  export EPINIO_IRSA_GATEWAY_CA_FILES="$WORK/tls/ca.crt,$WORK/tls/tls.crt"
  export EPINIO_IRSA_S3_ACCESS_KEY_ID="$KEY_ID" EPINIO_IRSA_S3_SECRET_ACCESS_KEY="$KEY_SECRET"
  echo "   gateway listening on https://127.0.0.1:$GW_PORT (the Service, in a cluster)"
  gateway_credentials
fi

echo; echo "== epinio-irsa plan (writes nothing)"
"$BIN" plan

echo; echo "== epinio-irsa provision"
"$BIN" provision

# TITLE, then the aws CLI's text lines indented under it, or "TITLE: none".
listing() {
  local title="$1" out
  shift
  out="$(aws "$@" --output text)"
  if [[ -z "$out" ]]; then echo "$title: none"; else echo "$title:"; sed 's/^/  /' <<<"$out"; fi
}
providers() { listing "OIDC providers" iam list-open-id-connect-providers --query 'OpenIDConnectProviderList[].Arn'; }
associations() {
  listing "Pod Identity associations (namespace, ServiceAccount, id)" eks list-pod-identity-associations \
    --cluster-name demo --query 'associations[].[namespace,serviceAccount,associationId]'
}

echo; echo "== what it made in IAM$([[ "$MODE" == irsa ]] || echo " and EKS")"
listing "roles" iam list-roles --query 'Roles[].[RoleName,Arn]'
listing "policies (name, default version)" iam list-policies --scope Local --query 'Policies[].[PolicyName,DefaultVersionId]'
# IRSA trusts the cluster's OIDC provider; EKS Pod Identity needs none and uses associations.
[[ "$MODE" == pod-identity ]] || providers
[[ "$MODE" == irsa ]] || associations
if [[ "$GATEWAY" == true ]]; then
  echo; echo "== the gateway, now that its ServiceAccount has the role"
  gateway_credentials
fi

# The ServiceAccounts, with IRSA's role annotation (Pod Identity keeps the role in the association).
service_accounts() {
  local columns='NAME:.metadata.name,MANAGED-BY:.metadata.labels.app\.kubernetes\.io/managed-by'
  [[ "$MODE" == pod-identity ]] \
    || columns+=',ROLE-ANNOTATION:.metadata.annotations.eks\.amazonaws\.com/role-arn'
  kubectl_ get serviceaccounts -n epinio -o custom-columns="$columns"
}

echo; echo "== what it did in Kubernetes"
service_accounts
kubectl_ get deployments -n epinio -o custom-columns='NAME:.metadata.name,GENERATION:.metadata.generation,RESTARTED-FOR:.spec.template.metadata.annotations.epinio-irsa/role-arn'

if [[ "$GATEWAY" == true ]]; then
  echo; echo "== Epinio's staging path through the gateway: aws s3 cp, signed with the cluster-local key"
  # Run in the work directory, so the aws CLI names the files as ./blob, not by a relative path.
  epinio_s3() {
    (cd "$WORK" && AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$KEY_SECRET" \
      aws --endpoint-url "https://127.0.0.1:$GW_PORT" --ca-bundle "$WORK/tls/bundle.pem" s3 "$@")
  }
  echo "epinio source blob" >"$WORK/blob"
  epinio_s3 cp --no-progress blob s3://epinio/demo-blob | sed 's/^/   /'
  epinio_s3 cp --no-progress s3://epinio/demo-blob blob.back | sed 's/^/   /'
  cmp "$WORK/blob" "$WORK/blob.back" && echo "   round trip through the gateway: identical"
  echo "   another bucket through the gateway (refused before AWS):"
  # The aws CLI starts its error with an empty line: dropped.
  { epinio_s3 ls s3://someone-elses 2>&1 || true; } | sed '/^[[:space:]]*$/d; s/^/   /'
fi

echo; echo "== epinio-irsa provision again (nothing to change)"
"$BIN" provision

echo; echo "== epinio-irsa teardown"
"$BIN" teardown

echo; echo "== left after teardown"
listing "roles" iam list-roles --query 'Roles[].[RoleName,Arn]'
listing "policies" iam list-policies --scope Local --query 'Policies[].[PolicyName]'
if [[ "$MODE" != pod-identity ]]; then
  providers
  [[ -z "$(aws iam list-open-id-connect-providers --query 'OpenIDConnectProviderList[].Arn' --output text)" ]] \
    || echo "  (the cluster's OIDC provider is shared: it stays unless EPINIO_IRSA_DELETE_OIDC_PROVIDER=true)"
fi
[[ "$MODE" == irsa ]] || associations
service_accounts
echo; echo "demo finished"
