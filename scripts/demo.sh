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
# Installs what it needs (scripts/setup.sh --minimal) and is safe to run again.
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
cargo build --locked -p epinio-irsa -p testkit --bin epinio-irsa --bin kube-standin --bin fault-proxy
BIN="$ROOT/target/debug/epinio-irsa"
STANDIN="$ROOT/target/debug/kube-standin"
PROXY="$ROOT/target/debug/fault-proxy"
VENV="$ROOT/.tools/venv/bin"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$VENV/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for() { # URL
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
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
kubectl_() { kubectl "$@"; }

echo "== creating EKS cluster 'demo' in moto"
aws eks create-cluster --name demo --role-arn arn:aws:iam::123456789012:role/eks \
  --resources-vpc-config subnetIds=[] --query 'cluster.identity.oidc.issuer' --output text

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
  GW_PORT=$(free_port); GW_HEALTH=$(free_port)
  EPINIO_IRSA_GATEWAY_LISTEN="127.0.0.1:$GW_PORT" EPINIO_IRSA_GATEWAY_HEALTH_LISTEN="127.0.0.1:$GW_HEALTH" \
    EPINIO_IRSA_GATEWAY_BUCKET=epinio EPINIO_IRSA_GATEWAY_PATH_STYLE=true \
    EPINIO_IRSA_GATEWAY_ACCESS_KEY_FILE="$WORK/keys/accessKeyID" \
    EPINIO_IRSA_GATEWAY_SECRET_KEY_FILE="$WORK/keys/secretAccessKey" \
    "$BIN" gateway >"$WORK/gateway.log" 2>&1 &
  PIDS+=($!)
  wait_for "http://127.0.0.1:$GW_HEALTH/readyz"
  export EPINIO_IRSA_GATEWAY=true EPINIO_IRSA_GATEWAY_ENDPOINT="http://127.0.0.1:$GW_PORT"
  export EPINIO_IRSA_S3_ACCESS_KEY_ID="$KEY_ID" EPINIO_IRSA_S3_SECRET_ACCESS_KEY="$KEY_SECRET"
  echo "   gateway listening on 127.0.0.1:$GW_PORT (the Service, in a cluster); its credentials:"
  curl -fsS "http://127.0.0.1:$GW_HEALTH/credentials"; echo
fi

echo; echo "== epinio-irsa plan (writes nothing)"
"$BIN" plan

echo; echo "== epinio-irsa provision"
"$BIN" provision

echo; echo "== what it made in IAM"
aws iam list-roles --query 'Roles[].[RoleName,Arn]' --output text
aws iam list-policies --scope Local --query 'Policies[].[PolicyName,DefaultVersionId]' --output text
aws iam list-open-id-connect-providers --query 'OpenIDConnectProviderList[].Arn' --output text
echo "Pod Identity associations:"
aws eks list-pod-identity-associations --cluster-name demo \
  --query 'associations[].[namespace,serviceAccount,associationId]' --output text

echo; echo "== what it did in Kubernetes"
kubectl_ get serviceaccounts -n epinio -o custom-columns='NAME:.metadata.name,ROLE:.metadata.annotations.eks\.amazonaws\.com/role-arn,MANAGED-BY:.metadata.labels.app\.kubernetes\.io/managed-by'
kubectl_ get deployments -n epinio -o custom-columns='NAME:.metadata.name,GENERATION:.metadata.generation,RESTARTED-FOR:.spec.template.metadata.annotations.epinio-irsa/role-arn'

if [[ "$GATEWAY" == true ]]; then
  echo; echo "== Epinio's staging path through the gateway: aws s3 cp, signed with the cluster-local key"
  echo "epinio source blob" >"$WORK/blob"
  AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$KEY_SECRET" \
    aws --endpoint-url "http://127.0.0.1:$GW_PORT" s3 cp --no-progress "$WORK/blob" s3://epinio/demo-blob
  AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$KEY_SECRET" \
    aws --endpoint-url "http://127.0.0.1:$GW_PORT" s3 cp --no-progress s3://epinio/demo-blob "$WORK/blob.back"
  cmp "$WORK/blob" "$WORK/blob.back" && echo "   round trip through the gateway: identical"
  echo "   another bucket through the gateway (refused before AWS):"
  AWS_ACCESS_KEY_ID="$KEY_ID" AWS_SECRET_ACCESS_KEY="$KEY_SECRET" \
    aws --endpoint-url "http://127.0.0.1:$GW_PORT" s3 ls s3://someone-elses 2>&1 | sed 's/^/   /' || true
fi

echo; echo "== epinio-irsa provision again (nothing to change)"
"$BIN" provision

echo; echo "== epinio-irsa teardown"
"$BIN" teardown

echo; echo "== left in IAM after teardown (the shared OIDC provider stays unless EPINIO_IRSA_DELETE_OIDC_PROVIDER=true)"
echo "roles: $(aws iam list-roles --query 'length(Roles)')  policies: $(aws iam list-policies --scope Local --query 'length(Policies)')"
kubectl_ get serviceaccounts -n epinio -o custom-columns='NAME:.metadata.name,ROLE:.metadata.annotations.eks\.amazonaws\.com/role-arn'
echo; echo "demo finished"
