"""One-shot job: create the S3 bucket that BUNDLE_STORE_BASE names (compose.yaml's create-bucket).

It reads the runner's own settings (BUNDLE_STORE_BASE, S3_ACCESS_KEY, S3_SECRET_KEY, S3_REGION)
and the runner's own parsing of them, so the bucket it creates is the one the runner reads and
writes. It waits for the endpoint to answer (MinIO takes a moment to start) and exits 0 once the
bucket exists, whether it made it or found it.

    python deploy/create_bucket.py [--wait SECONDS]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from botocore.exceptions import ClientError, EndpointConnectionError  # noqa: E402

from settings import Settings  # noqa: E402
from storage.bundles.stores import S3BundleStore, open_bundle_store  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the endpoint")
    args = parser.parse_args(argv)
    settings = Settings.from_env().bundles
    store = open_bundle_store(settings)
    if not isinstance(store, S3BundleStore):
        print(f"create-bucket: {store.describe()} is not S3; nothing to do")
        return 0
    client = store.client("probe")  # the runner's own signing settings, one attempt per try
    deadline = time.monotonic() + args.wait
    while True:
        try:
            client.head_bucket(Bucket=store.bucket)
            print(f"create-bucket: {store.bucket} exists at {store.endpoint}")
            return 0
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            extra = {} if settings.s3_region == "us-east-1" else {
                "CreateBucketConfiguration": {"LocationConstraint": settings.s3_region}}
            client.create_bucket(Bucket=store.bucket, **extra)
            print(f"create-bucket: created {store.bucket} at {store.endpoint}")
            return 0
        except EndpointConnectionError:
            if time.monotonic() > deadline:
                print(f"create-bucket: {store.endpoint} did not answer within {args.wait:.0f} s", file=sys.stderr)
                return 1
            time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
