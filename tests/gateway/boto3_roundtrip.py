"""boto3 against the gateway: upload (multipart where boto3 chooses it, above its 8 MiB
threshold), head, get, ranged get and delete, each object checked by SHA-256.

Run by tests/gateway_clients.rs: boto3_roundtrip.py ENDPOINT BUCKET SIZE...
Credentials and region come from the environment (the gateway's key pair, us-east-1).
Prints one JSON line per object; exits non-zero on the first mismatch.
"""
import hashlib
import io
import json
import os
import sys

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def content(size, seed):
    # Deterministic, different at every offset: SHA-256 in counter mode.
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(b"%d/%d" % (seed, counter)).digest()
        counter += 1
    return bytes(out[:size])


def main():
    endpoint, bucket, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    transfer = TransferConfig()  # boto3's defaults: multipart from 8 MiB, 8 MiB parts
    for size in sizes:
        key = "boto3/blob-%d" % size
        data = content(size, size)
        want = hashlib.sha256(data).hexdigest()
        s3.upload_fileobj(io.BytesIO(data), bucket, key, Config=transfer)
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == size, (size, head["ContentLength"])
        multipart = "-" in head["ETag"]
        got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.sha256(got).hexdigest() == want, "GetObject %d B differs" % size
        if size > 2:
            lo, hi = size // 3, size - 2
            part = s3.get_object(Bucket=bucket, Key=key, Range="bytes=%d-%d" % (lo, hi))["Body"].read()
            assert part == data[lo : hi + 1], "range of %d B differs" % size
        s3.delete_object(Bucket=bucket, Key=key)
        print(json.dumps({"size": size, "sha256": want, "multipart": multipart}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
