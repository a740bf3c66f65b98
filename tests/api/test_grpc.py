"""The gRPC transport serves the same use cases with the same access rules."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from blindgate_proto.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.grpc.server import start_grpc
from tests.world import World


@pytest.fixture
def stub(world: World) -> Iterator[gateway_pb2_grpc.GatewayStub]:
    server, port = start_grpc(world.services, address="127.0.0.1:0", workers=4)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield gateway_pb2_grpc.GatewayStub(channel)
    channel.close()
    server.stop(grace=None)


def auth(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def test_whoami_and_missing_key(stub: gateway_pb2_grpc.GatewayStub, world: World) -> None:
    me = stub.WhoAmI(gateway_pb2.WhoAmIRequest(), metadata=auth(world.operator_key))
    assert me.role == "operator"
    assert me.org_name == "Operator Co"
    with pytest.raises(grpc.RpcError) as err:
        stub.WhoAmI(gateway_pb2.WhoAmIRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.value.details().startswith("unauthenticated:")


def test_list_and_get_follow_the_rest_rules(
    stub: gateway_pb2_grpc.GatewayStub, world: World
) -> None:
    listed = stub.ListAssets(gateway_pb2.ListAssetsRequest(), metadata=auth(world.holder_a_key))
    assert [c.id for c in listed.items] == [world.asset_a]
    card = listed.items[0].card
    assert card["basic"]["privacy_unit"] == "patient_id"
    with pytest.raises(grpc.RpcError) as err:
        stub.GetAsset(
            gateway_pb2.GetAssetRequest(asset_id=world.asset_b), metadata=auth(world.holder_a_key)
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    op_card = stub.GetAsset(
        gateway_pb2.GetAssetRequest(asset_id=world.asset_b), metadata=auth(world.operator_key)
    )
    assert "location" not in op_card.card or op_card.card["location"] is None
    with pytest.raises(grpc.RpcError) as err:
        stub.ListAssets(
            gateway_pb2.ListAssetsRequest(limit=100000), metadata=auth(world.holder_a_key)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("bad_pagination:")


def test_a_nul_character_is_refused_before_any_use_case(
    stub: gateway_pb2_grpc.GatewayStub, world: World
) -> None:
    before = world.services.audit.log.size()
    with pytest.raises(grpc.RpcError) as info:
        stub.GetAsset(
            gateway_pb2.GetAssetRequest(asset_id="ast\x00x"), metadata=auth(world.operator_key)
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "validation_failed" in (info.value.details() or "")
    with pytest.raises(grpc.RpcError) as job:
        stub.SubmitJob(
            gateway_pb2.SubmitJobRequest(sql="SELECT 1", assets=[world.asset_a], purpose="r\x00"),
            metadata=auth(world.operator_key),
        )
    assert job.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert world.services.audit.log.size() == before


def test_a_trace_entry_with_a_nul_in_an_index_column_commits(world: World) -> None:
    from gateway.audit.entry import make_entry

    # whatever reaches the trace's index columns cannot fail the commit of a whole batch
    record = make_entry(
        at=world.services.ctx.clock.now(),
        actor=None,
        action="asset.read",
        target={"asset": "a\x00b"},
        asset_id="a\x00b",
        subject_org="org\x00x",
    )
    pending = world.services.ctx.store.append_trace(record)
    assert pending.index is not None
    last = world.services.audit.entries(world.auditor, limit=1000, cursor=None).items[-1]
    assert last.entry["target"] == {"asset": "a\x00b"}  # the leaf keeps the exact value
