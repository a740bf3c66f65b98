"""Mutual TLS in both directions: who the agent accepts, which agent the gateway accepts."""

from __future__ import annotations

import grpc
import pytest
from prometheus_client import CollectorRegistry

from blindgate_proto.v1 import site_pb2, site_pb2_grpc
from gateway.siteclient.client import SiteClient, SiteIdentityMismatch, SiteMetrics, SiteUnavailable
from tests.agent.conftest import Identity, Pki, metric, raw_stub


def _calls(stub: site_pb2_grpc.SiteAgentStub) -> dict[str, object]:
    return {
        "Health": lambda: stub.Health(site_pb2.HealthRequest(), timeout=5),
        "RunFragment": lambda: stub.RunFragment(
            site_pb2.RunFragmentRequest(fragment_id="tls-probe", ticket=b"{}"),
            timeout=5,
        ),
        "UploadInput": lambda: stub.UploadInput(
            iter([site_pb2.UploadInputRequest(total_size=1, sha256="0" * 64, chunk=b"x")]),
            timeout=5,
        ),
        "Cancel": lambda: stub.Cancel(site_pb2.CancelRequest(fragment_id="tls-probe"), timeout=5),
    }


def _status(call: object) -> grpc.StatusCode:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert isinstance(error, grpc.Call)
    return error.code()


def test_the_gateway_certificate_is_accepted(address: str, certs: Pki) -> None:
    with raw_stub(address, certs.ca, certs.gateway) as stub:
        assert stub.Health(site_pb2.HealthRequest(), timeout=5).isolation_level == "strong"


def test_no_client_certificate_is_refused(address: str, certs: Pki) -> None:
    with raw_stub(address, certs.ca, None) as stub:
        assert _status(_calls(stub)["Health"]) == grpc.StatusCode.UNAVAILABLE


def test_a_client_certificate_from_another_ca_is_refused(address: str, certs: Pki) -> None:
    with raw_stub(address, certs.ca, certs.foreign) as stub:
        assert _status(_calls(stub)["Health"]) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("method", ["Health", "RunFragment", "UploadInput", "Cancel"])
def test_the_right_ca_but_another_fingerprint_is_refused_on_every_method(
    address: str, certs: Pki, method: str
) -> None:
    with raw_stub(address, certs.ca, certs.intruder) as stub:
        assert _status(_calls(stub)[method]) == grpc.StatusCode.UNAUTHENTICATED


def test_the_refused_cancel_did_not_reach_the_service(address: str, certs: Pki) -> None:
    with raw_stub(address, certs.ca, certs.intruder) as stub:
        _status(_calls(stub)["Cancel"])
    with raw_stub(address, certs.ca, certs.gateway) as stub:
        answer = stub.Cancel(site_pb2.CancelRequest(fragment_id="tls-probe-unseen"), timeout=5)
        assert answer.outcome == site_pb2.CANCEL_OUTCOME_NOT_STARTED
        answer = stub.Cancel(site_pb2.CancelRequest(fragment_id="tls-probe"), timeout=5)
        assert answer.outcome == site_pb2.CANCEL_OUTCOME_NOT_STARTED


def _client(address: str, certs: Pki, expected: str, **options: object) -> SiteClient:
    return SiteClient(
        address,
        certs.ca,
        certs.gateway.cert,
        certs.gateway.key,
        expected,
        sleep=lambda _: None,
        **options,  # type: ignore[arg-type]
    )


def test_the_gateway_refuses_an_agent_with_another_fingerprint(address: str, certs: Pki) -> None:
    registry = CollectorRegistry()
    client = _client(
        address, certs, certs.impostor.fingerprint, metrics=SiteMetrics(registry), site="s"
    )
    with client, pytest.raises(SiteIdentityMismatch):
        client.health()
    labels = {"site": "s", "method": "connect", "reason": "identity_mismatch"}
    assert metric(registry, "blindgate_site_failures_total", **labels) == 1
    assert not client.healthy()


def test_fingerprints_compare_without_case_or_colons(address: str, certs: Pki) -> None:
    fingerprint = certs.site.fingerprint.upper()
    spaced = ":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2))
    with _client(address, certs, spaced) as client:
        assert client.health().agent_version


@pytest.mark.parametrize(
    ("pinned", "accepted"), [("site", True), ("impostor", False)], ids=["registered", "other"]
)
def test_the_channel_trusts_only_the_pinned_certificate(
    address: str, certs: Pki, pinned: str, accepted: bool
) -> None:
    """Reconnects are pinned by TLS itself: the only trust root is the site's certificate."""
    identity: Identity = getattr(certs, pinned)
    with raw_stub(address, identity.cert, certs.gateway) as stub:
        if accepted:
            assert stub.Health(site_pb2.HealthRequest(), timeout=5).agent_version
        else:
            assert _status(_calls(stub)["Health"]) == grpc.StatusCode.UNAVAILABLE


def test_an_agent_not_signed_by_the_expected_ca_is_unavailable(address: str, certs: Pki) -> None:
    client = SiteClient(
        address,
        certs.foreign_ca,
        certs.gateway.cert,
        certs.gateway.key,
        certs.site.fingerprint,
        attempts=2,
        sleep=lambda _: None,
    )
    with client, pytest.raises(SiteUnavailable):
        client.health()


def test_an_agent_that_refuses_the_gateway_is_unavailable(address: str, certs: Pki) -> None:
    client = SiteClient(
        address,
        certs.ca,
        certs.intruder.cert,
        certs.intruder.key,
        certs.site.fingerprint,
        sleep=lambda _: None,
    )
    with client, pytest.raises(SiteUnavailable, match="refused the gateway"):
        client.health()
