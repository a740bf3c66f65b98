"""Organisations, principals, API keys, sites, assets and federated assets."""

from __future__ import annotations

from typing import Any

from gateway.client.transport import Transport


class DirectoryApi(Transport):
    """Who is who, where the data lives, and the catalogue of asset cards."""

    # identities -------------------------------------------------------------------------
    def whoami(self) -> Any:
        return self.get("/v1/me")

    def create_org(self, name: str, description: str = "") -> Any:
        return self.post("/v1/organisations", {"name": name, "description": description})

    def orgs(self) -> list[Any]:
        return self.paginate("/v1/organisations")

    def org(self, org_id: str) -> Any:
        return self.get(f"/v1/organisations/{org_id}")

    def set_org_key(self, org_id: str, public_key: str | None) -> Any:
        """Register (or with ``None`` clear) the organisation's Ed25519 public key."""
        return self.request(
            "PUT", f"/v1/organisations/{org_id}/public-key", json={"public_key": public_key}
        )

    def create_principal(self, name: str, org_id: str, role: str) -> Any:
        """A new principal; the answer carries its API key, shown this once."""
        return self.post("/v1/principals", {"name": name, "org_id": org_id, "role": role})

    def principals(self, org_id: str | None = None) -> list[Any]:
        return self.paginate("/v1/principals", org_id=org_id)

    def principal(self, principal_id: str) -> Any:
        return self.get(f"/v1/principals/{principal_id}")

    def set_principal_disabled(self, principal_id: str, disabled: bool) -> Any:
        return self.request("PATCH", f"/v1/principals/{principal_id}", json={"disabled": disabled})

    def rotate_key(self, principal_id: str, *, revoke_existing: bool = True) -> Any:
        """A new API key (shown this once); the others are revoked unless told otherwise."""
        return self.post(
            f"/v1/principals/{principal_id}/keys", {"revoke_existing": revoke_existing}
        )

    def api_keys(self, principal_id: str) -> list[Any]:
        found: list[Any] = self.get(f"/v1/principals/{principal_id}/keys")
        return found

    def revoke_key(self, principal_id: str, key_id: str) -> Any:
        return self.request("DELETE", f"/v1/principals/{principal_id}/keys/{key_id}")

    # sites ------------------------------------------------------------------------------
    def register_site(self, name: str, grpc_address: str, tls_fingerprint: str) -> Any:
        """Register your organisation's site; its agent must prove your key endorsed it."""
        body = {"name": name, "grpc_address": grpc_address, "tls_fingerprint": tls_fingerprint}
        return self.post("/v1/sites", body)

    def sites(self) -> list[Any]:
        return self.paginate("/v1/sites")

    def site(self, site_id: str) -> Any:
        return self.get(f"/v1/sites/{site_id}")

    def site_health(self, site_id: str) -> Any:
        """The gateway asks the site agent for its health and isolation layers."""
        return self.get(f"/v1/sites/{site_id}/health")

    # assets -----------------------------------------------------------------------------
    def register_asset(self, card: dict[str, Any]) -> Any:
        """Register an asset; the answer carries its card and the receipt of its entry."""
        return self.post("/v1/assets", card)

    def assets(self, status: str | None = None) -> list[Any]:
        return self.paginate("/v1/assets", status=status)

    def asset(self, asset_id: str) -> Any:
        return self.get(f"/v1/assets/{asset_id}")

    def freeze_asset(self, asset_id: str, reason: str) -> Any:
        return self.post(f"/v1/assets/{asset_id}/freeze", {"reason": reason})

    def unfreeze_asset(self, asset_id: str) -> Any:
        return self.post(f"/v1/assets/{asset_id}/unfreeze")

    def dispose_asset(self, asset_id: str, method: str, destroyed_digest: str, note: str) -> Any:
        """Record the secure destruction of the asset's data (irreversible)."""
        return self.post(
            f"/v1/assets/{asset_id}/dispose",
            {"method": method, "destroyed_digest": destroyed_digest, "note": note},
        )

    # federated assets -------------------------------------------------------------------
    def register_federated(self, name: str, partitions: list[str], description: str = "") -> Any:
        return self.post(
            "/v1/federated-assets",
            {"name": name, "partitions": partitions, "description": description},
        )

    def federated_assets(self) -> list[Any]:
        return self.paginate("/v1/federated-assets")

    def federated_asset(self, fed_id: str) -> Any:
        return self.get(f"/v1/federated-assets/{fed_id}")
