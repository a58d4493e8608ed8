"""The demo's stand-in for the EKS Pod Identity agent, for the gateway (scripts/demo.sh).

On EKS a pod never holds a key: the Pod Identity agent serves it its role's session at
AWS_CONTAINER_CREDENTIALS_FULL_URI, to callers that present the token EKS mounted at
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE. This endpoint does the same on loopback for the
gateway process the demo runs: it checks the Authorization header against the token file,
finds the role the hook gave the gateway's ServiceAccount (its Pod Identity association in
moto, else its eks.amazonaws.com/role-arn annotation in the Kubernetes stand-in, which is what
EKS reads in IRSA mode), and answers with an sts:AssumeRole session of that role from moto:
{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}. Until the hook has made the role it
answers 404, as the agent does for a ServiceAccount with no association.

Run with the venv's python (boto3):
  python demo-credentials-endpoint.py PORT TOKEN_FILE CLUSTER NAMESPACE SERVICE_ACCOUNT KUBECTL
AWS_ENDPOINT_URL, the region and moto's keys come from the environment (the endpoint is on the
AWS side of the line, as the agent is); KUBECONFIG names the Kubernetes stand-in.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


def role_of(cluster: str, namespace: str, service_account: str, kubectl: str) -> str | None:
    """The role EKS would give the ServiceAccount's pods: association first, then annotation."""
    eks = boto3.client("eks")
    found = eks.list_pod_identity_associations(
        clusterName=cluster, namespace=namespace, serviceAccount=service_account
    )["associations"]
    if found:
        association = eks.describe_pod_identity_association(
            clusterName=cluster, associationId=found[0]["associationId"]
        )["association"]
        return association["roleArn"]
    sa = subprocess.run(
        [kubectl, "get", "serviceaccount", "-n", namespace, service_account, "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if sa.returncode != 0:
        return None
    return json.loads(sa.stdout)["metadata"].get("annotations", {}).get(ROLE_ANNOTATION)


def main() -> None:
    port, token_file, cluster, namespace, service_account, kubectl = sys.argv[1:7]
    sts = boto3.client("sts")

    class Agent(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            with open(token_file, encoding="utf-8") as f:
                token = f.read().strip()
            if self.headers.get("Authorization") != token:
                return self.reply(401, {"message": "the Authorization header is not the pod's token"})
            try:
                role = role_of(cluster, namespace, service_account, kubectl)
                if not role:
                    return self.reply(
                        404,
                        {"message": f"no IAM role for ServiceAccount {namespace}/{service_account} yet"},
                    )
                session = sts.assume_role(RoleArn=role, RoleSessionName=service_account)["Credentials"]
            except Exception as e:  # noqa: BLE001 (the agent answers 500 with the reason)
                return self.reply(500, {"message": str(e)})
            self.reply(
                200,
                {
                    "AccessKeyId": session["AccessKeyId"],
                    "SecretAccessKey": session["SecretAccessKey"],
                    "Token": session["SessionToken"],
                    "Expiration": session["Expiration"].astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            )

        def reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write("credentials endpoint: " + format % args + "\n")

    ThreadingHTTPServer(("127.0.0.1", int(port)), Agent).serve_forever()


if __name__ == "__main__":
    main()
