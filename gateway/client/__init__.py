"""The operator's Python client for the Blindgate REST API.

``Client(url, api_key)`` covers the catalogue, dry runs, submission, waiting with
progress, results and receipt verification; :mod:`gateway.client.he` adds the HE
helpers (contexts created, and results decrypted, in the operator's process only)::

    from gateway.client import Client
    from gateway.client.he import HeKeys

    with Client("http://127.0.0.1:8080", api_key) as bg:
        keys = HeKeys.create()
        totals = bg.he_aggregate(keys, ["asset_..."], columns=["los_days"],
                                 groups={"district": ["north", "south"]},
                                 purpose="research", epsilon=1.0)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from gateway.client.he import HeKeys

TERMINAL = frozenset({"succeeded", "failed", "denied", "cancelled"})
UPLOAD_CHUNK = 1 << 20


class ApiError(Exception):
    """An error answer from the gateway, with its stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        detail: str | None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.body = body
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        super().__init__(f"{status} {code}: {detail or message}")


class Client:
    """``Client(url, api_key)``: typed-enough access to the gateway's REST API."""

    def __init__(
        self,
        url: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one request; raise :class:`ApiError` on an error answer."""
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                raise ApiError(
                    response.status_code, err["code"], err["message"], err.get("detail"), err
                )
            except (ValueError, KeyError, TypeError):
                raise ApiError(
                    response.status_code, "http_error", response.text[:200], None
                ) from None
        if not response.content:
            return None
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.request("POST", path, json=body if body is not None else {})

    def paginate(self, path: str, **params: Any) -> list[Any]:
        """Follow ``next_cursor`` until the listing is exhausted."""
        items: list[Any] = []
        cursor: str | None = None
        while True:
            page = self.get(path, cursor=cursor, **params)
            items.extend(page["items"])
            cursor = page.get("next_cursor")
            if not cursor:
                return items

    # convenience ----------------------------------------------------------------------
    def whoami(self) -> Any:
        return self.get("/v1/me")

    def assets(self, status: str | None = None) -> list[Any]:
        return self.paginate("/v1/assets", status=status)

    def asset(self, asset_id: str) -> Any:
        return self.get(f"/v1/assets/{asset_id}")

    def verifier_key(self) -> str:
        """The trace's checkpoint verifier key, as the gateway states it."""
        key: str = self.get("/v1/audit/log")["verifier_key"]
        return key

    def verify_receipt(self, receipt: dict[str, Any], verifier_key: str | None = None) -> Any:
        """Check a receipt (signature, leaf hash, inclusion proof); return its checkpoint.

        Pass a ``verifier_key`` obtained out of band to not rely on the gateway for it.
        Raises :class:`gateway.audit.errors.TraceError` on any defect.
        """
        from gateway.audit.receipt import verify_receipt

        return verify_receipt(receipt, verifier_key or self.verifier_key())

    # jobs -------------------------------------------------------------------------------
    def dry_run(self, job: dict[str, Any]) -> Any:
        """The decision on a SQL job (``sql``, ``assets``, ``epsilon``, ``purpose``)."""
        return self.post("/v1/jobs/check", job)

    def submit(self, job: dict[str, Any]) -> Any:
        """Submit a SQL aggregate job; returns the job (``state`` says if it was denied)."""
        return self.post("/v1/jobs", job)

    def job(self, job_id: str) -> Any:
        return self.get(f"/v1/jobs/{job_id}")

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        poll: float = 0.25,
        progress: Callable[[dict[str, Any], float], None] | bool = False,
    ) -> Any:
        """Wait until the job is finished; ``progress`` is told each change of state.

        ``progress=True`` prints the states to stderr; a callable gets the job and the
        seconds waited.  Raises ``TimeoutError`` past ``timeout``.
        """
        begin = time.monotonic()
        seen = None
        while True:
            job = self.job(job_id)
            waited = time.monotonic() - begin
            if job["state"] != seen:
                seen = job["state"]
                if progress is True:
                    print(f"job {job_id}: {seen} ({waited:.1f} s)", file=sys.stderr)
                elif callable(progress):
                    progress(job, waited)
            if job["state"] in TERMINAL:
                return job
            if waited > timeout:
                raise TimeoutError(f"job {job_id} is still {seen} after {timeout:.0f} s")
            time.sleep(poll)

    def result(self, job_id: str) -> Any:
        """The released result with its receipt."""
        return self.get(f"/v1/jobs/{job_id}/result")

    def run(self, job: dict[str, Any], **wait: Any) -> Any:
        """Submit, wait and return the result; raises :class:`ApiError` if it did not succeed."""
        return self._finish(self.submit(job), wait)

    def _finish(self, submitted: dict[str, Any], wait: dict[str, Any]) -> Any:
        job = submitted
        if job["state"] not in TERMINAL:
            job = self.wait(job["id"], **wait)
        if job["state"] != "succeeded":
            code = job.get("error_code") or job["state"]
            reasons = job.get("decision", {}).get("reasons", [])
            detail = "; ".join(str(r.get("message") or r.get("code")) for r in reasons) or None
            raise ApiError(409, str(code), f"job {job['id']} {job['state']}", detail, job)
        return self.result(job["id"])

    # HE ---------------------------------------------------------------------------------
    def upload_context(self, keys: HeKeys, *, chunk: int = UPLOAD_CHUNK) -> Any:
        """Send the public context bundle unless the gateway has it already."""
        digest = keys.bundle_sha256
        try:
            return self.get(f"/v1/he/contexts/{digest}")
        except ApiError as exc:
            if exc.status != 404:
                raise
        data = keys.public_bundle()

        def pieces() -> Iterator[bytes]:
            for start in range(0, len(data), chunk):
                yield data[start : start + chunk]

        return self.request(
            "POST",
            "/v1/he/contexts",
            content=pieces(),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(data)),
                "X-Content-SHA256": digest,
            },
            timeout=max(60.0, len(data) / 2e6),
        )

    def he_check(self, job: dict[str, Any]) -> Any:
        """The decision on an HE job, without running or charging it."""
        return self.post("/v1/he/jobs/check", job)

    def he_submit(self, job: dict[str, Any]) -> Any:
        return self.post("/v1/he/jobs", job)

    def he_aggregate(
        self,
        keys: HeKeys,
        assets: Sequence[str],
        *,
        columns: Sequence[str],
        purpose: str,
        epsilon: float,
        groups: dict[str, Sequence[Any]] | None = None,
        where: Sequence[dict[str, Any]] | None = None,
        **wait: Any,
    ) -> Any:
        """Secure aggregation: upload the context, run, wait, decrypt the noisy totals."""
        from gateway.client.he import decode_aggregate

        self.upload_context(keys)
        body = {
            "kind": "he_aggregate",
            "assets": list(assets),
            "context_sha256": keys.bundle_sha256,
            "purpose": purpose,
            "epsilon": epsilon,
            "columns": list(columns),
            "groups": [{"column": c, "values": list(v)} for c, v in (groups or {}).items()],
            "where": list(where or []),
        }
        result = self._finish(self.he_submit(body), wait)
        return decode_aggregate(keys, result)

    def he_linear(
        self,
        keys: HeKeys,
        assets: Sequence[str],
        *,
        features: Sequence[str],
        label: str,
        weights: Sequence[float],
        purpose: str,
        epsilon: float,
        where: Sequence[dict[str, Any]] | None = None,
        **wait: Any,
    ) -> Any:
        """Encrypted model evaluation: the weights stay encrypted; returns decrypted totals."""
        from gateway.client.he import decode_linear

        self.upload_context(keys)
        w, ww = keys.encrypt_weights(weights)
        body = {
            "kind": "he_linear",
            "assets": list(assets),
            "context_sha256": keys.bundle_sha256,
            "purpose": purpose,
            "epsilon": epsilon,
            "features": list(features),
            "label": label,
            "weights": w,
            "weights_outer": ww,
            "where": list(where or []),
        }
        result = self._finish(self.he_submit(body), wait)
        return decode_linear(keys, result)
