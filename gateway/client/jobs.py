"""Jobs: dry runs, submission, waiting, results, approval and cancellation."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.client.errors import ApiError
from gateway.client.signing import sign_approval
from gateway.client.transport import Transport

TERMINAL = frozenset({"succeeded", "failed", "denied", "cancelled"})
LONG_POLL_SECONDS = 25.0
"""How long one long poll may wait at the gateway (it keeps at most 30 s)."""


class JobsApi(Transport):
    """Every job kind is read, approved, cancelled and fetched the same way."""

    def dry_run(self, job: dict[str, Any]) -> Any:
        """The decision on a job, every reason with its fix; nothing is stored, run or charged.

        ``job`` is a SQL job as for :meth:`submit` (``sql``, ``assets``, ``epsilon``,
        ``purpose``…) or a structural description (``kind``, ``purpose``, ``epsilon``,
        ``assets``, ``columns`` with their usage).
        """
        return self.post("/v1/jobs/dry-run", job)

    def submit(self, job: dict[str, Any]) -> Any:
        """Submit a SQL aggregate job; returns the job (``state`` says if it was denied)."""
        return self.post("/v1/jobs", job)

    def jobs(self, state: str | None = None) -> list[Any]:
        """Your jobs (an operator's own, a holder's on its assets), optionally in ``state``."""
        return self.paginate("/v1/jobs", state=state)

    def job(self, job_id: str) -> Any:
        return self.get(f"/v1/jobs/{job_id}")

    def approve(
        self, job_id: str, reason: str = "", *, key: Ed25519PrivateKey | None = None
    ) -> Any:
        """A holder approves a job pending approval, signing it with the organisation's
        ``key`` (its site checks the signature; the job's digest is computed here from the
        job as the gateway shows it)."""
        body: dict[str, Any] = {"reason": reason}
        if key is not None:
            me = self.get("/v1/me")
            job = self.get(f"/v1/jobs/{job_id}")
            body.update(sign_approval(key, job, me["principal"]["id"], me["organisation"]["id"]))
        return self.post(f"/v1/jobs/{job_id}/approve", body)

    def reject(self, job_id: str, reason: str = "") -> Any:
        """A holder rejects a job pending approval."""
        return self.post(f"/v1/jobs/{job_id}/reject", {"reason": reason})

    def cancel(self, job_id: str) -> Any:
        return self.post(f"/v1/jobs/{job_id}/cancel")

    def wait(
        self,
        job_id: str,
        *,
        timeout: float = 600.0,
        poll: float = 0.25,
        progress: Callable[[dict[str, Any], float], None] | bool = False,
    ) -> Any:
        """Wait until the job is finished; ``progress`` is told each change of state.

        The gateway answers a long poll (``GET /v1/jobs/{id}?wait=S``) as soon as the job
        finishes, so the result is there without a polling delay; a gateway that answers
        at once without it is asked again every ``poll`` seconds.  ``progress=True``
        prints the states to stderr; a callable gets the job and the seconds waited.
        Raises ``TimeoutError`` past ``timeout``.
        """
        begin = time.monotonic()
        seen = None
        while True:
            waited = time.monotonic() - begin
            asked = max(0.0, min(LONG_POLL_SECONDS, timeout - waited, self._long_poll_limit()))
            job = self.get(f"/v1/jobs/{job_id}", wait=round(asked, 3) if asked else None)
            answered = time.monotonic() - begin - waited
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
            if answered < min(asked, poll):
                time.sleep(poll)

    def _long_poll_limit(self) -> float:
        """The longest wait the HTTP client's read timeout leaves room for."""
        read = self._http.timeout.read
        return LONG_POLL_SECONDS if read is None else max(0.0, read - 2.0)

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
