#!/usr/bin/env bash
# The manual procedure that epinio-irsa replaces, as the Epinio docs ("AWS IAM integration")
# describe it, scripted with the aws CLI and kubectl, one command at a time, the way an
# operator types it. It exists for the benchmark (scripts/bench.sh, BENCHMARKS.md): it does the
# same work as the job against the same moto and Kubernetes stand-in, so the two can be timed
# side by side.
#
#   scripts/manual-procedure.sh provision            docs steps 1-4 (+ restart of epinio-server)
#   scripts/manual-procedure.sh check                what an operator reads to confirm that
#                                                    nothing needs doing (the job's no-op re-run)
#   scripts/manual-procedure.sh bucket-change BUCKET scope the policy to BUCKET (new version)
#   scripts/manual-procedure.sh teardown             docs step 5 (+ undo the annotations)
#
# Environment: the usual AWS_* variables (AWS_ENDPOINT_URL for moto), KUBECONFIG, and
#   CLUSTER (demo), NAMESPACE (epinio), SERVER_SA (epinio-server),
#   STAGING_SA (epinio-staging-service-account), SERVER_ROLE (epinio-server-role),
#   STAGING_ROLE (epinio-staging-role), POLICY (EpinioECEKSClusterPolicy),
#   AWS (aws CLI; default .tools/venv/bin/aws), KUBECTL (default .tools/bin/kubectl),
#   MANUAL_TRACE=1 prints every command before it runs.
#
# Deviations from the docs, all of which make the manual side faster, never slower:
# - `eksctl utils associate-iam-oidc-provider` is replaced by the IAM call that creates the provider
#   (`create-open-id-connect-provider` after the docs' own list check, no thumbprint: eksctl fetches one from the issuer over
#   the internet, which this machine has no access to and IAM no longer needs for EKS issuers).
# - `eksctl create iamserviceaccount` is replaced by the calls it boils down to (create-role,
#   attach-role-policy, create the ServiceAccount with its annotation); eksctl itself goes
#   through a CloudFormation stack, which takes far longer.
# - `helm upgrade --set server.stagingWorkloads.serviceAccountName=...` is not run (there is no
#   chart in the stand-in); its only effect here, the restart of epinio-server, is done with
#   `kubectl rollout restart`.
# - The docs' policy has `Resource: "*"`; `bucket-change` writes the same actions scoped to the
#   bucket, which is what the job does and what a bucket change means for a scoped policy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
AWS="${AWS:-$ROOT/.tools/venv/bin/aws}"
KUBECTL="${KUBECTL:-$ROOT/.tools/bin/kubectl}"
CLUSTER="${CLUSTER:-demo}"
NAMESPACE="${NAMESPACE:-epinio}"
SERVER_SA="${SERVER_SA:-epinio-server}"
STAGING_SA="${STAGING_SA:-epinio-staging-service-account}"
SERVER_ROLE="${SERVER_ROLE:-epinio-server-role}"
STAGING_ROLE="${STAGING_ROLE:-epinio-staging-role}"
POLICY="${POLICY:-EpinioECEKSClusterPolicy}"
# The aws CLI v1 reads AWS_DEFAULT_REGION, not AWS_REGION.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-${AWS_REGION:-us-east-1}}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

run() {
  if [[ "${MANUAL_TRACE:-0}" == 1 ]]; then printf '+ %s\n' "$*" >&2; fi
  command "$@"
}
aws() { run "$AWS" "$@"; }
kubectl() { run "$KUBECTL" "$@"; }

# Step 1's document, from the docs.
policy_document() {
  local resource='"*"'
  if [[ $# -eq 1 ]]; then
    resource="[\"arn:aws:s3:::$1\", \"arn:aws:s3:::$1/*\"]"
  fi
  cat <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "s3:ListBucket",
        "s3:PutObject",
        "s3:GetObject",
        "s3:GetBucketLocation",
        "s3:ListAllMyBuckets",
        "s3:CreateBucket",
        "s3:DeleteObject",
        "sts:AssumeRole"
      ],
      "Resource": $resource
    }
  ]
}
EOF
}

# Step 3's trust document for one ServiceAccount.
trust_document() {
  local account="$1" issuer_host_path="$2" sa="$3"
  cat <<EOF
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Principal": {
        "Federated": "arn:aws:iam::$account:oidc-provider/$issuer_host_path"
      },
      "Action": "sts:AssumeRoleWithWebIdentity",
      "Condition": {
        "StringEquals": {
          "$issuer_host_path:aud": "sts.amazonaws.com",
          "$issuer_host_path:sub": "system:serviceaccount:$NAMESPACE:$sa"
        }
      }
    }
  ]
}
EOF
}

provision() {
  local account issuer oidc_id issuer_host_path policy_arn
  account=$(aws sts get-caller-identity --query Account --output text)

  # 1. The policy.
  policy_document >"$WORK/policy.json"
  aws iam create-policy --policy-name "$POLICY" \
    --policy-document "file://$WORK/policy.json" >/dev/null
  policy_arn="arn:aws:iam::$account:policy/$POLICY"

  # 2. The cluster's OIDC provider: check, create if missing.
  issuer=$(aws eks describe-cluster --name "$CLUSTER" \
    --query "cluster.identity.oidc.issuer" --output text)
  oidc_id=$(echo "$issuer" | cut -d '/' -f 5)
  issuer_host_path="${issuer#https://}"
  if ! grep -q "$oidc_id" <<<"$(aws iam list-open-id-connect-providers)"; then
    aws iam create-open-id-connect-provider --url "$issuer" \
      --client-id-list sts.amazonaws.com >/dev/null
  fi

  # 3. The server's role, its policy, its ServiceAccount.
  trust_document "$account" "$issuer_host_path" "$SERVER_SA" >"$WORK/trust-server.json"
  aws iam create-role --role-name "$SERVER_ROLE" \
    --assume-role-policy-document "file://$WORK/trust-server.json" >/dev/null
  aws iam attach-role-policy --role-name "$SERVER_ROLE" --policy-arn "$policy_arn"
  kubectl annotate serviceaccount -n "$NAMESPACE" "$SERVER_SA" \
    "eks.amazonaws.com/role-arn=arn:aws:iam::$account:role/$SERVER_ROLE" >/dev/null

  # 4. Staging (what `eksctl create iamserviceaccount` does): role, policy, ServiceAccount.
  trust_document "$account" "$issuer_host_path" "$STAGING_SA" >"$WORK/trust-staging.json"
  aws iam create-role --role-name "$STAGING_ROLE" \
    --assume-role-policy-document "file://$WORK/trust-staging.json" >/dev/null
  aws iam attach-role-policy --role-name "$STAGING_ROLE" --policy-arn "$policy_arn"
  cat >"$WORK/staging-sa.json" <<EOF
{"apiVersion": "v1", "kind": "ServiceAccount",
 "metadata": {"name": "$STAGING_SA", "namespace": "$NAMESPACE",
   "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::$account:role/$STAGING_ROLE"}}}
EOF
  kubectl create --validate=false -f "$WORK/staging-sa.json" >/dev/null

  # The running server only gets the credentials once its pods are recreated.
  kubectl rollout restart deployment -n "$NAMESPACE" epinio-server >/dev/null
}

# Everything an operator reads to convince themselves that the setup is complete.
check() {
  local account issuer oidc_id policy_arn role pair
  account=$(aws sts get-caller-identity --query Account --output text)
  issuer=$(aws eks describe-cluster --name "$CLUSTER" \
    --query "cluster.identity.oidc.issuer" --output text)
  oidc_id=$(echo "$issuer" | cut -d '/' -f 5)
  grep -q "$oidc_id" <<<"$(aws iam list-open-id-connect-providers)"
  policy_arn="arn:aws:iam::$account:policy/$POLICY"
  aws iam get-policy --policy-arn "$policy_arn" >/dev/null
  for role in "$SERVER_ROLE" "$STAGING_ROLE"; do
    aws iam get-role --role-name "$role" >/dev/null
    grep -q "$policy_arn" <<<"$(aws iam list-attached-role-policies --role-name "$role")"
  done
  for pair in "$SERVER_SA=$SERVER_ROLE" "$STAGING_SA=$STAGING_ROLE"; do
    grep -q "role/${pair#*=}\$" <<<"$(kubectl get serviceaccount -n "$NAMESPACE" "${pair%%=*}" \
      -o jsonpath='{.metadata.annotations.eks\.amazonaws\.com/role-arn}')"
  done
}

bucket_change() {
  local bucket="$1" account policy_arn oldest count
  account=$(aws sts get-caller-identity --query Account --output text)
  policy_arn="arn:aws:iam::$account:policy/$POLICY"
  # IAM keeps at most five versions: make room first.
  count=$(aws iam list-policy-versions --policy-arn "$policy_arn" \
    --query 'length(Versions)' --output text)
  if [[ "$count" -ge 5 ]]; then
    # shellcheck disable=SC2016 # JMESPath literal in backquotes, not a shell expansion
    oldest=$(aws iam list-policy-versions --policy-arn "$policy_arn" \
      --query 'Versions[?IsDefaultVersion==`false`] | sort_by(@, &CreateDate)[0].VersionId' \
      --output text)
    aws iam delete-policy-version --policy-arn "$policy_arn" --version-id "$oldest"
  fi
  policy_document "$bucket" >"$WORK/policy.json"
  aws iam create-policy-version --policy-arn "$policy_arn" \
    --policy-document "file://$WORK/policy.json" --set-as-default >/dev/null
}

teardown() {
  local account policy_arn role version
  account=$(aws sts get-caller-identity --query Account --output text)
  policy_arn="arn:aws:iam::$account:policy/$POLICY"
  kubectl annotate serviceaccount -n "$NAMESPACE" "$SERVER_SA" \
    eks.amazonaws.com/role-arn- >/dev/null
  kubectl delete serviceaccount -n "$NAMESPACE" "$STAGING_SA" >/dev/null
  for role in "$SERVER_ROLE" "$STAGING_ROLE"; do
    aws iam detach-role-policy --role-name "$role" --policy-arn "$policy_arn"
    aws iam delete-role --role-name "$role"
  done
  # A policy with non-default versions cannot be deleted (DeleteConflict).
  # shellcheck disable=SC2016 # JMESPath literal in backquotes, not a shell expansion
  for version in $(aws iam list-policy-versions --policy-arn "$policy_arn" \
    --query 'Versions[?IsDefaultVersion==`false`].VersionId' --output text); do
    aws iam delete-policy-version --policy-arn "$policy_arn" --version-id "$version"
  done
  aws iam delete-policy --policy-arn "$policy_arn"
  # The OIDC provider stays: it is the cluster's, shared by every IRSA user (as with the job).
}

case "${1:-}" in
  provision) provision ;;
  check) check ;;
  bucket-change)
    [[ $# -eq 2 ]] || { echo "usage: $0 bucket-change BUCKET" >&2; exit 2; }
    bucket_change "$2"
    ;;
  teardown) teardown ;;
  -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) echo "usage: $0 provision|check|bucket-change BUCKET|teardown (try --help)" >&2; exit 2 ;;
esac
