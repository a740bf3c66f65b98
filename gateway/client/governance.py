"""Policies, licences, budgets, usage and settlements."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.client.signing import sign_policy, sign_revocation
from gateway.client.transport import Transport


class GovernanceApi(Transport):
    """What may be computed on an asset, by whom, and what it has cost so far."""

    def set_policy(
        self, asset_id: str, document: str, *, key: Ed25519PrivateKey | None = None
    ) -> Any:
        """Store ``document`` (YAML) as the asset's new policy version, signed with the
        holder organisation's ``key`` (a site accepts only policies its holder signed)."""
        if key is None:
            return self.request(
                "PUT",
                f"/v1/assets/{asset_id}/policy",
                content=document.encode("utf-8"),
                headers={"content-type": "application/yaml"},
            )
        me = self.get("/v1/me")
        card = self.get(f"/v1/assets/{asset_id}")
        signed = sign_policy(key, card, me["organisation"]["id"], document)
        return self.request(
            "PUT", f"/v1/assets/{asset_id}/policy", json={"document": document, **signed}
        )

    def policy(self, asset_id: str, version: int | None = None) -> Any:
        """The asset's policy: the latest version, or ``version``."""
        path = f"/v1/assets/{asset_id}/policy"
        return self.get(path if version is None else f"{path}/versions/{version}")

    def policy_versions(self, asset_id: str) -> list[Any]:
        found: list[Any] = self.get(f"/v1/assets/{asset_id}/policy/versions")
        return found

    def policy_schema(self) -> Any:
        return self.get("/v1/policy-schema")

    def offer_licence(self, terms: dict[str, Any], holder_signature: str) -> Any:
        """Offer licence terms signed by the holder (base64 signature)."""
        return self.post("/v1/licences", {"terms": terms, "holder_signature": holder_signature})

    def licences(self) -> list[Any]:
        return self.paginate("/v1/licences")

    def licence(self, licence_id: str) -> Any:
        return self.get(f"/v1/licences/{licence_id}")

    def accept_licence(self, licence_id: str, operator_signature: str) -> Any:
        return self.post(
            f"/v1/licences/{licence_id}/accept", {"operator_signature": operator_signature}
        )

    def revoke_licence(
        self, licence_id: str, reason: str, *, key: Ed25519PrivateKey | None = None
    ) -> Any:
        """Revoke a licence; signed with the holder's ``key``, the revocation also reaches
        the holder's sites, which then refuse the licence for good."""
        body: dict[str, Any] = {"reason": reason}
        if key is not None:
            me = self.get("/v1/me")
            body.update(sign_revocation(key, licence_id, me["organisation"]["id"]))
        return self.post(f"/v1/licences/{licence_id}/revoke", body)

    def budget(self, licence_id: str, epsilon_per_job: float | None = None) -> Any:
        """Remaining privacy budget per asset, and how many jobs of ``epsilon_per_job`` fit."""
        return self.get(f"/v1/licences/{licence_id}/budget", epsilon_per_job=epsilon_per_job)

    def usage(self, licence_id: str) -> Any:
        return self.get(f"/v1/licences/{licence_id}/usage")

    def settlement(self, period_start: datetime, period_end: datetime) -> Any:
        """The holder's statement over [period_start, period_end)."""
        return self.get(
            "/v1/settlements",
            period_start=period_start.isoformat(),
            period_end=period_end.isoformat(),
        )
