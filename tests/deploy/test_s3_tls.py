"""S3 over HTTPS with a private CA, on a real SeaweedFS: the store trusts the CA in its config and no other."""

from __future__ import annotations

import pytest

from edge.store import StoreConfig, StoreError, open_store
from pipelines.s3_server import SeaweedS3
from tests.deploy.mosquitto_repo import secrets  # noqa: F401  (the deployment's CA, made by make-secrets.sh)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_s3(secrets, tmp_path_factory):  # noqa: F811
    certs = secrets[0] / "deploy/mosquitto/certs"  # its server certificate names 127.0.0.1
    with SeaweedS3(workdir=tmp_path_factory.mktemp("s3-tls"), tls_cert_file=str(certs / "server.crt"),
                   tls_key_file=str(certs / "server.key")) as s3:
        yield s3, str(certs / "ca.crt")


def _config(s3: SeaweedS3, **overrides) -> StoreConfig:
    settings = {"secure": True, **overrides}
    return StoreConfig(kind="s3", endpoint=f"127.0.0.1:{s3.https_port}", bucket="tls", access_key=s3.access_key,
                       secret_key=s3.secret_key, **settings)


def test_a_store_over_https_with_the_deployment_ca_writes_conditionally_and_reads_back(tls_s3):
    s3, ca_file = tls_s3
    store = open_store(_config(s3, tls_ca_file=ca_file))
    assert store.put_if_absent("frames/a.jpg", b"jpeg bytes", content_type="image/jpeg")
    assert not store.put_if_absent("frames/a.jpg", b"other bytes")
    assert store.get("frames/a.jpg") == b"jpeg bytes"
    assert list(store.list("frames/")) == ["frames/a.jpg"]


def test_without_the_ca_the_server_is_not_trusted(tls_s3):
    s3, _ = tls_s3
    with pytest.raises(StoreError, match="CERTIFICATE_VERIFY_FAILED"):
        open_store(_config(s3))  # the system's CAs never signed the deployment's certificate


def test_a_missing_ca_file_is_named(tls_s3, tmp_path):
    s3, _ = tls_s3
    missing = tmp_path / "no-such-ca.crt"
    with pytest.raises(StoreError, match="no-such-ca.crt"):
        open_store(_config(s3, tls_ca_file=str(missing)))


def test_plain_http_to_the_https_port_is_an_error_not_a_hang(tls_s3):
    s3, _ = tls_s3
    with pytest.raises(StoreError):
        open_store(_config(s3, secure=False))
