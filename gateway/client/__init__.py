"""The Python client for the Blindgate REST API.

``Client(url, api_key)`` covers every use case the REST API serves: identities, sites,
the catalogue, policies, licences and budgets, the trace, dry runs, submission, waiting
with progress, results and receipt verification; :mod:`gateway.client.he` adds the HE
keys (contexts created, and results decrypted, in the operator's process only)::

    from gateway.client import Client
    from gateway.client.he import HeKeys

    with Client("http://127.0.0.1:8080", api_key) as bg:
        print(bg.dry_run({"sql": "SELECT district, COUNT(*) FROM admissions GROUP BY district",
                          "assets": ["ast_..."], "epsilon": 1.0, "purpose": "research"}))
        keys = HeKeys.create()
        totals = bg.he_aggregate(keys, ["ast_..."], columns=["los_days"],
                                 groups={"district": ["north", "south"]},
                                 purpose="research", epsilon=1.0)

An error answer raises :class:`ApiError` (``status``, ``code``, ``message``, ``detail``,
``fields``); no answer at all raises :class:`GatewayUnreachable`.
"""

from __future__ import annotations

from gateway.client.audit import AuditApi
from gateway.client.directory import DirectoryApi
from gateway.client.errors import ApiError, ClientError, FieldError, GatewayUnreachable
from gateway.client.governance import GovernanceApi
from gateway.client.he_jobs import UPLOAD_CHUNK, HeJobsApi
from gateway.client.jobs import TERMINAL
from gateway.client.python_jobs import PythonJobsApi
from gateway.client.security import SecurityApi

__all__ = [
    "TERMINAL",
    "UPLOAD_CHUNK",
    "ApiError",
    "Client",
    "ClientError",
    "FieldError",
    "GatewayUnreachable",
]


class Client(HeJobsApi, PythonJobsApi, GovernanceApi, SecurityApi, AuditApi, DirectoryApi):
    """``Client(url, api_key)``: the gateway's REST API, one method per use case."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
