"""Checks the EKS Pod Identity stand-in against the AWS service model as botocore ships it.

Run by tests/pod_identity.rs (`the_stand_in_answers_in_the_shapes_of_the_service_model`) with
the test proxy's URL, the region, the cluster, two existing IAM role ARNs and the id of an
add-on's association. Every raw response body is
validated against the operation's output shape (wire types: REST-JSON timestamps are epoch
seconds), every error against the modelled error codes and HTTP statuses, and boto3 must parse
it into the documented fields. Prints one line per check; exits non-zero on the first mismatch.
"""

import json
import sys

import boto3
import botocore.exceptions

endpoint, region, cluster, role_a, role_b, owned = sys.argv[1:7]
eks = boto3.client(
    "eks",
    endpoint_url=endpoint,
    region_name=region,
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
model = eks.meta.service_model
raw = {}


def keep_raw(http_response, parsed, model, **_):
    raw[model.name] = (http_response.status_code, http_response.content)


eks.meta.events.register("after-call.eks", keep_raw)


def check(shape, value, path):
    t = shape.type_name
    if t == "structure":
        assert isinstance(value, dict), f"{path}: not an object: {value!r}"
        for k in value:
            assert k in shape.members, f"{path}.{k}: not in the service model"
        for k in shape.required_members:
            assert k in value, f"{path}.{k}: required by the model, missing"
        for k, v in value.items():
            check(shape.members[k], v, f"{path}.{k}")
    elif t == "list":
        assert isinstance(value, list), f"{path}: not a list"
        for i, v in enumerate(value):
            check(shape.member, v, f"{path}[{i}]")
    elif t == "map":
        assert isinstance(value, dict), f"{path}: not a map"
        for k, v in value.items():
            check(shape.key, k, f"{path} key")
            check(shape.value, v, f"{path}.{k}")
    elif t == "string":
        assert isinstance(value, str), f"{path}: not a string: {value!r}"
        if shape.enum:
            assert value in shape.enum, f"{path}: {value!r} not one of {shape.enum}"
    elif t == "timestamp":
        assert isinstance(value, (int, float)), f"{path}: not epoch seconds: {value!r}"
    elif t in ("integer", "long"):
        assert isinstance(value, int), f"{path}: not an integer"
    elif t == "boolean":
        assert isinstance(value, bool), f"{path}: not a boolean"
    else:
        raise AssertionError(f"{path}: unchecked type {t}")


def ok(op, **kwargs):
    parsed = getattr(eks, op)(**kwargs)
    name = model.operation_model(
        "".join(p.capitalize() for p in op.split("_"))
    ).name
    status, body = raw[name]
    assert status == 200, f"{name}: HTTP {status}"
    check(model.operation_model(name).output_shape, json.loads(body), name)
    print(f"ok {name}")
    return parsed


def fails(code, status, op, **kwargs):
    try:
        getattr(eks, op)(**kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        name = e.operation_name
        modelled = [s.name for s in model.operation_model(name).error_shapes]
        assert got == code, f"{name}: {got}, expected {code}"
        assert code in modelled, f"{name}: {code} is not one of its modelled errors {modelled}"
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == status, e.response
        assert e.response["Error"].get("Message"), f"{name}: no message"
        print(f"ok {name} -> {code}")
        return
    raise AssertionError(f"{op} {kwargs} did not fail with {code}")


created = []
for sa in ["sa-1", "sa-2", "sa-3"]:
    out = ok(
        "create_pod_identity_association",
        clusterName=cluster,
        namespace="shapes",
        serviceAccount=sa,
        roleArn=role_a,
        tags={"k": "v"},
    )
    a = out["association"]
    assert a["serviceAccount"] == sa and a["roleArn"] == role_a and a["tags"] == {"k": "v"}
    assert a["associationId"].startswith("a-") and a["associationArn"].endswith(a["associationId"])
    created.append(a["associationId"])

fails(
    "ResourceInUseException", 409, "create_pod_identity_association",
    clusterName=cluster, namespace="shapes", serviceAccount="sa-1", roleArn=role_a,
)
fails(
    "InvalidParameterException", 400, "create_pod_identity_association",
    clusterName=cluster, namespace="shapes", serviceAccount="sa-9",
    roleArn=role_a.rsplit("/", 1)[0] + "/no-such-role",
)
fails(
    "ResourceNotFoundException", 404, "create_pod_identity_association",
    clusterName="no-such-cluster", namespace="shapes", serviceAccount="sa-9", roleArn=role_a,
)

# Pagination: one per page, the paginator follows nextToken to the end.
pages = list(
    eks.get_paginator("list_pod_identity_associations").paginate(
        clusterName=cluster, namespace="shapes", PaginationConfig={"PageSize": 1}
    )
)
ids = [a["associationId"] for p in pages for a in p["associations"]]
assert ids == created, f"paginated {ids}, created {created}"
assert len(pages) == 3 and "nextToken" in pages[0], pages
ok("list_pod_identity_associations", clusterName=cluster, namespace="shapes", maxResults=1)
one = ok(
    "list_pod_identity_associations",
    clusterName=cluster, namespace="shapes", serviceAccount="sa-2",
)
assert [a["associationId"] for a in one["associations"]] == [created[1]], one
fails(
    "InvalidParameterException", 400, "list_pod_identity_associations",
    clusterName=cluster, nextToken="not-a-token",
)

d = ok("describe_pod_identity_association", clusterName=cluster, associationId=created[0])
assert d["association"]["createdAt"].year >= 2024, d
fails(
    "InvalidParameterException", 400, "describe_pod_identity_association",
    clusterName=cluster, associationId="bogus",
)
fails(
    "ResourceNotFoundException", 404, "describe_pod_identity_association",
    clusterName=cluster, associationId="a-00000000000000000",
)
u = ok(
    "update_pod_identity_association",
    clusterName=cluster, associationId=created[0], roleArn=role_b,
)
assert u["association"]["roleArn"] == role_b, u
arn = u["association"]["associationArn"]
ok("tag_resource", resourceArn=arn, tags={"team": "platform"})
d = ok("describe_pod_identity_association", clusterName=cluster, associationId=created[0])
assert d["association"]["tags"] == {"k": "v", "team": "platform"}, d
fails(
    "NotFoundException", 404, "tag_resource",
    resourceArn=arn.rsplit("/", 1)[0] + "/a-00000000000000000", tags={"team": "platform"},
)
fails("BadRequestException", 400, "tag_resource", resourceArn=arn, tags={"aws:x": "y"})
ok("delete_pod_identity_association", clusterName=cluster, associationId=created[0])
fails(
    "ResourceNotFoundException", 404, "delete_pod_identity_association",
    clusterName=cluster, associationId=created[0],
)

addon = ok("describe_addon", clusterName=cluster, addonName="eks-pod-identity-agent")
assert addon["addon"]["status"] == "ACTIVE", addon
fails(
    "ResourceNotFoundException", 404, "describe_addon",
    clusterName=cluster, addonName="vpc-cni",
)

# An add-on's association: ownerArn in list and describe; not updatable or deletable directly.
d = ok("describe_pod_identity_association", clusterName=cluster, associationId=owned)
assert d["association"]["ownerArn"].startswith("arn:aws:eks:"), d
listed = ok(
    "list_pod_identity_associations",
    clusterName=cluster, namespace="kube-system",
)
assert listed["associations"][0]["ownerArn"] == d["association"]["ownerArn"], listed
fails(
    "InvalidRequestException", 400, "delete_pod_identity_association",
    clusterName=cluster, associationId=owned,
)
print("all shapes match the service model")
