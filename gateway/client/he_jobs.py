"""HE jobs: the public context bundle, dry runs, submission and decrypted results."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from gateway.client.errors import ApiError
from gateway.client.jobs import JobsApi

if TYPE_CHECKING:
    from gateway.client.he import HeKeys

UPLOAD_CHUNK = 1 << 20


class HeJobsApi(JobsApi):
    """``he_aggregate`` and ``he_linear``: contexts made, results decrypted, here only."""

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

    def he_dry_run(self, job: dict[str, Any]) -> Any:
        """The decision on an HE job, every reason with its fix, without running or charging."""
        return self.post("/v1/he/jobs/dry-run", job)

    def he_check(self, job: dict[str, Any]) -> Any:
        """Deprecated name of :meth:`he_dry_run`."""
        warnings.warn(
            "Client.he_check is deprecated; use Client.he_dry_run",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.he_dry_run(job)

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
