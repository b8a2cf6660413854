"""The test and lab SeaweedFS serves many buckets, however little disk is free (each bucket takes volumes)."""

import uuid

import pytest

from edge.store.s3 import S3Store

pytestmark = pytest.mark.integration

BUCKETS = 40  # the suite makes a bucket per test; with 1 GiB volumes and 19 GiB free the 17th failed


def test_many_buckets_each_take_a_write(s3_server):
    for i in range(BUCKETS):
        store = S3Store(s3_server.endpoint, f"many-{uuid.uuid4().hex[:10]}", s3_server.access_key,
                        s3_server.secret_key)
        store.put("frames/f.jpg", b"x" * 100)
        assert store.get("frames/f.jpg") == b"x" * 100, i
