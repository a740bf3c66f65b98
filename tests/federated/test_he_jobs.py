"""HE jobs end to end: three real site agents (sandboxed TenSEAL), the gateway's own
sandbox for combining, the operator's client decrypting locally."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import tenseal as ts

from gateway.client import ApiError, Client
from gateway.client.he import HeKeys
from gateway.http import create_app
from gateway.siteclient.client import SiteClient
from gateway.store import open_store
from sandbox.agent.fragments import AgentRunner
from sandbox.he_format import pack_bundle, unpack_bundle
from sandbox.spec import FragmentSpec
from tests.federated.conftest import Federation, build_federation
from tests.server import running

HE_POLICY = """\
version: 1
asset: admissions
columns:
  patient_id: {control: join_key}
  district:
    control: group_by
    keys: {values: [north, south, east, west, nowhere]}
  age:
    control: aggregate
    clip: {lower: 0, upper: 100}
  los_days:
    control: aggregate
    clip: {lower: 0, upper: 30}
jobs:
  kinds: [he_aggregate, he_linear]
  aggregates: [count, sum]
  purposes: [research]
  min_group_size: 10
  max_rows_per_unit: 1
  approval: {mode: MODE}
privacy:
  epsilon_per_job_max: 5
  budget: {epsilon: 40, delta: 1.0e-6, period_days: 30}
"""
KINDS = ("he_aggregate", "he_linear")
TAIL = 25.0  # Laplace noise beyond 25 scales has probability e^-25


@pytest.fixture(scope="module")
def keys() -> HeKeys:
    return HeKeys.create()


@contextmanager
def he_world(
    tmp: Path, store_url: str, mode: str = "auto", kinds: tuple[str, ...] = KINDS
) -> Iterator[Federation]:
    """The three hospitals under :data:`HE_POLICY`, with a running job runner."""
    store = open_store(store_url)
    fed, agents = build_federation(tmp, store, mode, policy=HE_POLICY, kinds=kinds)
    fed.runner.start()
    try:
        yield fed
    finally:
        fed.runner.stop()
        for agent in agents:
            agent.stop()
        fed.services.site_pool.close()
        fed.services.he.workspace.close()
        store.close()


@pytest.fixture
def he_federation(tmp_path: Path, store_url: str) -> Iterator[Federation]:
    with he_world(tmp_path, store_url) as fed:
        yield fed


@pytest.fixture
def client(he_federation: Federation) -> Iterator[Client]:
    with (
        running(create_app(he_federation.services)) as url,
        Client(url, he_federation.operator_key, timeout=120) as bg,
    ):
        yield bg


def _scale(charges: list[dict[str, Any]], quantity: str) -> float:
    return next(float(c["scale"]) for c in charges if c["quantity"] == quantity)


def _truth(fed: Federation) -> dict[str, tuple[int, float, float]]:
    """Per district: rows, sum of los_days, sum of squares (every partition)."""
    out: dict[str, tuple[int, float, float]] = {}
    for hospital in fed.hospitals:
        for _, district, _, los in hospital.rows:
            n, s, q = out.get(district, (0, 0.0, 0.0))
            out[district] = (n + 1, s + min(los, 30), q + min(los, 30) ** 2)
    return out


def test_he_aggregate_matches_plaintext_within_noise(
    he_federation: Federation, client: Client, keys: HeKeys
) -> None:
    fed = he_federation
    totals = client.he_aggregate(
        keys,
        fed.asset_ids,
        columns=["los_days"],
        groups={"district": ["north", "south", "east", "nowhere"]},
        purpose="research",
        epsilon=3.0,
    )
    truth = _truth(fed)
    charges = totals["charges"]
    released = {tuple(g["key"]): g for g in totals["groups"]}
    # The key no row has is below the minimum group size: never released.
    assert set(released) == {("north",), ("south",), ("east",)}
    for (district,), group in released.items():
        n, s, q = truth[district]
        assert isinstance(group["count"], int)
        assert abs(group["count"] - n) <= TAIL * _scale(charges, "count")
        cell = group["columns"]["los_days"]
        assert abs(cell["sum"] - s) <= TAIL * _scale(charges, "sum:los_days") + 1e-3
        assert (
            abs(cell["sum_of_squares"] - q)
            <= TAIL * _scale(charges, "sum_of_squares:los_days") + 1e-2
        )
    assert totals["epsilon_spent"] <= 3.0
    checkpoint = client.verify_receipt(totals["receipt"])
    assert checkpoint.size >= 1


def test_he_linear_matches_plaintext_within_noise(
    he_federation: Federation, client: Client, keys: HeKeys
) -> None:
    fed = he_federation
    w = 0.75
    out = client.he_linear(
        keys,
        fed.asset_ids,
        features=["los_days"],
        label="age",
        weights=[w],
        purpose="research",
        epsilon=5.0,
    )
    rows = [r for h in fed.hospitals for r in h.rows]
    score = sum(w * min(r[3], 30) for r in rows)
    residual = sum((min(r[2], 100) - w * min(r[3], 30)) ** 2 for r in rows)
    charges = out["charges"]
    assert out["suppressed"] is False
    assert abs(out["rows"] - len(rows)) <= TAIL * _scale(charges, "n")
    assert abs(out["score_sum"] - score) <= TAIL * w * _scale(charges, "x") + 1e-3
    bound = TAIL * (
        _scale(charges, "yy") + w * w * _scale(charges, "gram") + 2 * w * _scale(charges, "xy")
    )
    assert abs(out["squared_residual_sum"] - residual) <= bound + 1e-2
    # Noise is a small fraction of these totals at this epsilon: the answer is usable.
    # (Σx carries the three sites' Laplace noises, scale 60 each: they pass a tenth of the
    # score, 26 scales, with probability 5e-10; a twentieth, 13 scales, with 7e-5.)
    assert abs(out["score_sum"] - score) / score < 0.1


def test_operator_cannot_target_fewer_than_k_rows(
    he_federation: Federation, client: Client, keys: HeKeys
) -> None:
    fed = he_federation
    only = [{"column": "district", "op": "=", "value": "nowhere"}]
    out = client.he_linear(
        keys,
        fed.asset_ids,
        features=["los_days"],
        label="age",
        weights=[1.0],
        purpose="research",
        epsilon=1.0,
        where=only,
    )
    assert out["suppressed"] is True
    assert "score_sum" not in out
    # A suppressed he_linear spent only the ε of its count of people, and is charged that.
    charged = fed.services.ledger.usage(fed.operator, fed.licences[0]).epsilon_spent
    assert charged == pytest.approx(out["epsilon_spent"])
    assert charged < 1.0 * 0.51
    totals = client.he_aggregate(
        keys,
        fed.asset_ids,
        columns=["los_days"],
        purpose="research",
        epsilon=1.0,
        where=only,
    )
    assert totals["groups"] == []


def test_only_ciphertexts_and_public_contexts_cross(
    he_federation: Federation,
    client: Client,
    keys: HeKeys,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fed = he_federation
    sent: list[str] = []
    received: list[dict[str, str]] = []
    uploaded: list[bytes] = []
    run_fragment = SiteClient.run_fragment
    upload_input = SiteClient.upload_input

    def capture_run(self: SiteClient, request: Any, timeout: Any = None) -> Any:
        sent.append(request.ticket.decode())
        outcome = run_fragment(self, request, timeout)
        if outcome.table is not None:
            received.append({str(r[0]): str(r[1]) for r in outcome.table.rows})
        return outcome

    def capture_upload(self: SiteClient, data: Any, *args: Any, **kwargs: Any) -> Any:
        uploaded.append(Path(data).read_bytes() if isinstance(data, Path) else data)
        return upload_input(self, data, *args, **kwargs)

    monkeypatch.setattr(SiteClient, "run_fragment", capture_run)
    monkeypatch.setattr(SiteClient, "upload_input", capture_upload)
    client.he_aggregate(
        keys,
        fed.asset_ids,
        columns=["los_days"],
        groups={"district": ["north", "south", "east"]},
        purpose="research",
        epsilon=1.0,
    )
    assert len(received) == 3
    # What each site sent back: a BFV and a CKKS ciphertext and the counts of people.
    for site, hospital in zip(received, fed.hospitals, strict=True):
        assert set(site) == {"counts", "sums", "units"}
        for name in ("counts", "sums"):
            raw = base64.b64decode(site[name], validate=True)
            assert len(raw) > 100_000  # a ciphertext, not a handful of numbers
        sums = dict.fromkeys(("north", "south", "east"), 0)
        for _, district, _, los in hospital.rows:
            sums[district] += los
        text = json.dumps(site)
        for value in sums.values():
            assert f"{float(value)}" not in text
            assert f'"{value}"' not in text
    # What went to the sites: the public contexts, with no secret key anywhere.
    assert uploaded and all(u == keys.public_bundle() for u in uploaded)
    for raw in unpack_bundle(uploaded[0]).values():
        public = ts.context_from(raw)
        assert not public.is_private()
        assert not public.has_secret_key()
    assert all("los_days" in program for program in sent)


def _refusal(client: Client, bundle: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        client.request(
            "POST",
            "/v1/he/contexts",
            content=bundle,
            headers={
                "Content-Type": "application/octet-stream",
                "X-Content-SHA256": hashlib.sha256(bundle).hexdigest(),
            },
        )
    return caught.value


def test_bad_contexts_are_refused(client: Client, he_federation: Federation) -> None:
    secret = ts.context(ts.SCHEME_TYPE.BFV, poly_modulus_degree=8192, plain_modulus=1073692673)
    carrying = _refusal(client, pack_bundle(None, secret.serialize(save_secret_key=True)))
    assert carrying.status == 422
    assert "secret key" in str(carrying.detail)
    weak = ts.context(
        ts.SCHEME_TYPE.CKKS, poly_modulus_degree=4096, coeff_mod_bit_sizes=[40, 20, 40]
    )
    weak.global_scale = 2**20
    small = _refusal(client, pack_bundle(weak.serialize(save_secret_key=False), None))
    assert "allow-list" in str(small.detail)
    garbage = _refusal(client, pack_bundle(b"\x00" * 5000, None))
    assert "not a context bundle" in str(garbage.detail)
    not_bundle = _refusal(client, b"hello, this is not a bundle at all" * 10)
    assert not_bundle.status == 422
    # A declared length past the limit is refused before any byte is stored.
    host, port = str(client._http.base_url.host), int(client._http.base_url.port or 80)
    with socket.create_connection((host, port), timeout=30) as raw:
        raw.sendall(
            b"POST /v1/he/contexts HTTP/1.1\r\nHost: x\r\n"
            + f"Authorization: Bearer {he_federation.operator_key}\r\n".encode()
            + b"Content-Type: application/octet-stream\r\n"
            + f"Content-Length: {512 * 1024 * 1024}\r\n".encode()
            + b"X-Content-SHA256: "
            + b"0" * 64
            + b"\r\n\r\nxx"
        )
        assert raw.recv(200).startswith(b"HTTP/1.1 413")
    # Nothing refused stays stored, and the trace says who tried.
    workspace = he_federation.services.he.workspace
    assert not any(p.name != ".partial" for p in workspace.contexts.root.iterdir())


def test_malformed_ciphertexts_fail_the_job_with_bad_input(
    client: Client, keys: HeKeys, he_federation: Federation
) -> None:
    fed = he_federation
    client.upload_context(keys)
    w, ww = keys.encrypt_weights([1.0, 2.0])  # two weights for one feature
    base = {
        "kind": "he_linear",
        "assets": fed.asset_ids,
        "context_sha256": keys.bundle_sha256,
        "purpose": "research",
        "epsilon": 1.0,
        "features": ["los_days"],
        "label": "age",
    }
    oversized = base64.b64encode(b"\x01" * (5 * 1024 * 1024)).decode()
    with pytest.raises(ApiError) as refused:
        client.he_submit({**base, "weights": oversized, "weights_outer": oversized})
    assert refused.value.status == 422
    noise = base64.b64encode(b"\x01" * 4096).decode()
    for weights, outer in ((w, ww), (noise, noise)):
        job = client.he_submit({**base, "weights": weights, "weights_outer": outer})
        done = client.wait(job["id"], timeout=120)
        assert done["state"] == "failed"
        assert done["error_code"] == "fragment_bad_input"
    # Nothing was charged for the failed jobs.
    good_w, good_ww = keys.encrypt_weights([1.0])
    check = client.he_dry_run({**base, "weights": good_w, "weights_outer": good_ww})
    assert check["allow"] is True


def test_unknown_context_and_disallowed_columns_are_denied(
    client: Client, keys: HeKeys, he_federation: Federation
) -> None:
    fed = he_federation
    body = {
        "kind": "he_aggregate",
        "assets": fed.asset_ids,
        "context_sha256": "ab" * 32,
        "purpose": "research",
        "epsilon": 1.0,
        "columns": ["los_days"],
    }
    denied = client.he_dry_run(body)
    assert not denied["allow"]
    assert denied["reasons"][0]["code"] == "he_context_unusable"
    client.upload_context(keys)
    never = client.he_dry_run(
        {**body, "context_sha256": keys.bundle_sha256, "columns": ["patient_id"]}
    )
    assert not never["allow"]
    assert client.he_dry_run({**body, "context_sha256": keys.bundle_sha256})["allow"]


def test_release_is_charged_and_nothing_secret_reaches_trace_or_logs(
    he_federation: Federation,
    client: Client,
    keys: HeKeys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fed = he_federation
    caplog.set_level("DEBUG")
    w, ww = keys.encrypt_weights([0.5])
    client.upload_context(keys)
    job = client.he_submit(
        {
            "kind": "he_linear",
            "assets": fed.asset_ids,
            "context_sha256": keys.bundle_sha256,
            "purpose": "research",
            "epsilon": 2.0,
            "features": ["los_days"],
            "label": "age",
            "weights": w,
            "weights_outer": ww,
        }
    )
    assert client.wait(job["id"], timeout=120)["state"] == "succeeded"
    released = client.result(job["id"])["he"]["ciphertexts"]
    budget = client.get(f"/v1/licences/{fed.licences[0]}/budget")
    assert budget["licence_epsilon_used"] == pytest.approx(2.0)
    with fed.services.ctx.store.read() as tx:
        leaves = [bytes(row.leaf).decode() for row in tx.trace_entries(after=None, limit=10_000)]
    secrets = [w[100:164], ww[100:164], *(text[100:164] for text in released.values())]
    logged = caplog.text
    for needle in secrets:
        assert all(needle not in leaf for leaf in leaves)
        assert needle not in logged
    actions = [json.loads(leaf)["action"] for leaf in leaves]
    assert "he.context.upload" in actions
    assert "job.release" in actions


def test_a_holder_approves_an_he_job_seeing_what_it_computes(
    tmp_path: Path, store_url: str, keys: HeKeys
) -> None:
    with (
        he_world(tmp_path, store_url, "manual", ("he_aggregate",)) as fed,
        running(create_app(fed.services)) as url,
        Client(url, fed.operator_key) as bg,
    ):
        bg.upload_context(keys)
        job = bg.he_submit(
            {
                "kind": "he_aggregate",
                "assets": fed.asset_ids,
                "context_sha256": keys.bundle_sha256,
                "purpose": "research",
                "epsilon": 1.0,
                "columns": ["los_days"],
            }
        )
        assert job["state"] == "pending_approval"
        shown = fed.services.jobs.get(fed.hospitals[0].actor, job["id"])
        assert shown.kind == "he_aggregate"
        assert shown.spec is not None and shown.spec["columns"] == ["los_days"]
        for index in range(len(fed.hospitals)):
            fed.approve(index, job["id"])
        done = bg.wait(job["id"], timeout=120)
        assert done["state"] == "succeeded"
        totals = bg.result(job["id"])
        assert totals["he"]["released"] == [0]
        assert "weights_sha256" not in shown.spec


def test_the_release_threshold_keeps_small_targets_out() -> None:
    from gateway.service.jobs.kinds.he_common import release_threshold
    from policies.jobs.mechanisms import OpenDPNoise

    k = 10
    # Each draw reaches the threshold with probability below 1e-9: a thousand draws, 4e-7.
    noised = OpenDPNoise().laplace([k - 1] * 1_000, sensitivity=1, epsilon=0.2, integer=True)
    threshold = release_threshold(k, noised.scale)
    assert threshold > k + noised.scale * 20
    assert max(noised.values) < threshold
    assert max(noised.values) >= k  # without the margin, some would pass


def test_holders_see_dry_runs_of_every_kind_on_their_assets(
    client: Client, keys: HeKeys, he_federation: Federation
) -> None:
    """A dry run names the holder as its trace entry's subject, for HE jobs as for SQL."""
    fed = he_federation
    client.upload_context(keys)
    body = {
        "kind": "he_aggregate",
        "assets": fed.asset_ids,
        "context_sha256": keys.bundle_sha256,
        "purpose": "research",
        "epsilon": 1.0,
        "columns": ["los_days"],
    }
    assert client.he_dry_run(body)["allow"]
    client.dry_run(
        {
            "sql": "SELECT COUNT(*) AS n FROM admissions",
            "assets": fed.asset_ids,
            "epsilon": 1.0,
            "purpose": "research",
        }
    )
    holder = fed.hospitals[0].actor
    page = fed.services.audit.entries(holder, limit=1000, cursor=None, action="job.check")
    kinds = [e.entry.get("detail", {}).get("kind") for e in page.items]
    assert "he_aggregate" in kinds  # the HE dry run
    assert None in kinds  # the SQL dry run (its detail names the SQL by digest)


def test_he_fragments_read_the_bounded_view_as_sql_fragments_do(
    he_federation: Federation, client: Client, keys: HeKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which of a person's rows count is fixed per asset version whatever the job's kind:
    each site hands its HE step the same contribution-bounded view (unit, ``c`` and the
    version's secret seed) that its SQL fragments read, not a bound drawn per job."""
    fed = he_federation
    seen: list[FragmentSpec] = []
    run_stoppable = AgentRunner.run_stoppable

    def spy(self: AgentRunner, spec: FragmentSpec, switch: Any, label: str) -> Any:
        seen.append(spec)
        return run_stoppable(self, spec, switch, label)

    monkeypatch.setattr(AgentRunner, "run_stoppable", spy)
    for _ in range(2):
        client.he_aggregate(
            keys,
            fed.asset_ids,
            columns=["los_days"],
            groups={"district": ["north", "south"]},
            where=[{"column": "district", "op": "in", "value": ["north", "south"]}],
            purpose="research",
            epsilon=0.5,
        )
    steps = [spec for spec in seen if spec.executor == "tenseal_he"]
    assert len(steps) == 6
    by_asset: dict[Path, set[tuple[str, int, str]]] = {}
    for spec in steps:
        assert spec.bound is not None
        by_asset.setdefault(spec.asset_path, set()).add(
            (spec.bound.unit, spec.bound.rows, spec.bound.seed)
        )
    assert len(by_asset) == 3
    for bounds in by_asset.values():
        ((unit, rows, seed),) = bounds  # the same bound for both jobs
        assert (unit, rows) == ("patient_id", 1)
        assert len(seed) >= 32
    seeds = {seed for bounds in by_asset.values() for _, _, seed in bounds}
    assert len(seeds) == 3  # each site's own secret
