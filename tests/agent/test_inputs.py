"""Uploading inputs: chunked, content-addressed, verified and capped."""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from blindgate_proto.v1 import site_pb2
from gateway.errors import BlindgateError
from gateway.siteclient.client import SiteClient
from sandbox.agent.server import AgentServer
from tests.agent.conftest import MAX_INPUT, Pki, raw_stub
from tests.agent.test_fragments import cells, python

MIB = 1024 * 1024


def payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def messages(data: bytes, declared_size: int, digest: str) -> Iterator[site_pb2.UploadInputRequest]:
    for index, start in enumerate(range(0, len(data), MIB)):
        chunk = data[start : start + MIB]
        if index == 0:
            yield site_pb2.UploadInputRequest(total_size=declared_size, sha256=digest, chunk=chunk)
        else:
            yield site_pb2.UploadInputRequest(chunk=chunk)


def upload_status(address: str, certs: Pki, data: bytes, size: int, digest: str) -> grpc.StatusCode:
    with (
        raw_stub(address, certs.ca, certs.gateway) as stub,
        pytest.raises(grpc.RpcError) as caught,
    ):
        stub.UploadInput(messages(data, size, digest), timeout=10)
    error = caught.value
    assert isinstance(error, grpc.Call)
    return error.code()


def stored(agent: AgentServer) -> set[str]:
    root = agent.config.cache_dir / "inputs"
    return {entry.name for entry in root.iterdir() if not entry.name.startswith(".")}


def test_a_5_mb_input_is_streamed_verified_and_readable_by_a_fragment(
    client: SiteClient, agent: AgentServer
) -> None:
    data = payload(5 * 1000 * 1000, seed=1)
    digest = hashlib.sha256(data).hexdigest()
    result = client.upload_input(data)
    assert (result.sha256, result.size, result.already_present) == (digest, len(data), False)
    path = agent.config.cache_dir / "inputs" / digest / "data"
    assert path.read_bytes() == data
    assert client.upload_input(data).already_present
    program = (
        "import hashlib, os\n"
        "with open(os.path.join(context.input_dir, 'data'), 'rb') as handle:\n"
        "    result = hashlib.sha256(handle.read()).hexdigest()\n"
    )
    request = python(program, input_sha256=digest)
    assert cells(client.run_fragment(request)) == [digest]


def test_a_file_is_streamed_from_disk(client: SiteClient, tmp_path: Path) -> None:
    source = tmp_path / "context.bin"
    source.write_bytes(payload(2 * MIB + 17, seed=2))
    result = client.upload_input(source, chunk_bytes=MIB // 2)
    assert result.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


def test_a_corrupted_digest_is_refused_and_nothing_is_stored(
    address: str, certs: Pki, agent: AgentServer
) -> None:
    data = payload(3 * MIB, seed=3)
    wrong = hashlib.sha256(data + b"!").hexdigest()
    before = stored(agent)
    assert upload_status(address, certs, data, len(data), wrong) == grpc.StatusCode.INVALID_ARGUMENT
    assert stored(agent) == before
    assert not list((agent.config.cache_dir / "inputs" / ".partial").iterdir())


def test_an_oversize_input_is_refused(
    address: str, certs: Pki, client: SiteClient, agent: AgentServer
) -> None:
    data = payload(MAX_INPUT + 1, seed=4)
    digest = hashlib.sha256(data).hexdigest()
    status = upload_status(address, certs, data, len(data), digest)
    assert status == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(BlindgateError) as caught:
        client.upload_input(data)
    assert caught.value.code == "body_too_large"
    assert digest not in stored(agent)


def test_more_data_than_declared_is_refused(address: str, certs: Pki) -> None:
    data = payload(2 * MIB, seed=5)
    digest = hashlib.sha256(data).hexdigest()
    assert upload_status(address, certs, data, MIB, digest) == grpc.StatusCode.INVALID_ARGUMENT


def test_a_malformed_digest_is_refused(address: str, certs: Pki) -> None:
    status = upload_status(address, certs, b"abc", 3, "../../etc/passwd")
    assert status == grpc.StatusCode.INVALID_ARGUMENT


def test_a_fragment_naming_an_unknown_input_is_bad_input(client: SiteClient) -> None:
    request = python("result = 1", input_sha256=os.urandom(32).hex())
    assert client.run_fragment(request).failure == "bad_input"
