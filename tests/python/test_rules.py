"""The policy's python rules: approval by code hash (whole hashes or syft-bg objects),
no privacy budget, the projection's columns, and the grant both the gateway and the
sites derive."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from policies import PolicyDocumentError, evaluate, load_policy, load_policy_for
from policies.document import AssetShape
from policies.jobs.jobfolder import manifest_hash
from tests.policies.builders import POLICY_YAML, request_dict

FILES = {"main.py": hashlib.sha256(b"print(1)").hexdigest(), "params.json": "c" * 64}
CODE_HASH = manifest_hash(FILES)
PYTHON = """\
python:
  columns: [district, age, los_days]
  release: approved_code
"""


def python_request(approved: str = "", **python: Any) -> dict[str, Any]:
    text = POLICY_YAML.replace(
        "kinds: [sql_aggregate, he_aggregate]", "kinds: [sql_aggregate, python]"
    )
    text += PYTHON + approved
    req = request_dict()
    req["assets"][0]["policy"] = load_policy(text).model_dump(by_alias=True)
    req["licences"][0]["job_kinds"] = ["python"]
    req.update(job_kind="python", epsilon=0.0, delta=0.0, column_uses=[], group_keys=[])
    req["python"] = {"code_hash": CODE_HASH, "files": FILES, "operator_org_id": "org_op", **python}
    return req


def test_code_not_approved_in_advance_needs_a_holders_approval_even_under_auto() -> None:
    req = python_request()
    req["assets"][0]["policy"]["jobs"]["approval"] = {"mode": "auto"}
    decision = evaluate(req)
    assert decision.allow, decision.reasons
    params = decision.parameters
    assert params is not None
    assert params.approval_mode == "manual"
    grant = params.python["admissions"]
    assert grant.columns == ("district", "age", "los_days")
    assert not grant.pre_approved and not grant.release_without_review


def test_a_listed_code_hash_is_approved_in_advance() -> None:
    decision = evaluate(python_request(f"  approved_code: {{code_hashes: [{CODE_HASH}]}}\n"))
    assert decision.parameters is not None
    assert decision.parameters.approval_mode == "auto"
    grant = decision.parameters.python["admissions"]
    assert grant.pre_approved and grant.release_without_review


SYFT_BG = """\
  approved_code:
    auto_approvals:
      objects:
        mean-stay:
          file_contents:
            - relative_path: main.py
              path: ~/.syft-bg/auto_approvals/mean-stay/main.py
              hash: "sha256:{main}"
          file_paths: [params.json]
          peers: {peers}
"""


@pytest.mark.parametrize(
    ("files", "peers", "approved"),
    [
        (FILES, "[]", True),
        ({**FILES, "params.json": "d" * 64}, "[]", True),  # name-only files may change
        ({**FILES, "main.py": "e" * 64}, "[]", False),
        ({**FILES, "extra.py": "f" * 64}, "[]", False),
        ({"main.py": FILES["main.py"]}, "[]", False),
        (FILES, "[org_other]", False),
        (FILES, "[org_op]", True),
    ],
    ids=[
        "same",
        "params_change",
        "code_change",
        "extra_file",
        "missing_file",
        "other_peer",
        "this_peer",
    ],
)
def test_a_syft_bg_allow_list_carries_over(
    files: dict[str, str], peers: str, approved: bool
) -> None:
    listing = SYFT_BG.format(main=FILES["main.py"], peers=peers)
    decision = evaluate(python_request(listing, files=files, code_hash=manifest_hash(files)))
    assert decision.parameters is not None
    assert decision.parameters.python["admissions"].pre_approved is approved


def test_python_jobs_spend_no_budget_and_need_the_python_section() -> None:
    assert "python_not_private" in evaluate(python_request() | {"epsilon": 0.5}).codes
    req = python_request()
    req["assets"][0]["policy"].pop("python")
    req["assets"][0]["policy"]["jobs"]["kinds"] = ["sql_aggregate"]
    assert {"python_rules_missing", "job_kind_not_allowed"} <= set(evaluate(req).codes)


def test_short_hash_prefixes_are_not_accepted() -> None:
    listing = SYFT_BG.format(main=FILES["main.py"][:12], peers="[]")
    with pytest.raises(PolicyDocumentError, match="hash"):
        python_request(listing)


def test_a_policy_never_lets_python_jobs_read_an_identifier() -> None:
    text = POLICY_YAML.replace("kinds: [sql_aggregate, he_aggregate]", "kinds: [python]")
    text += "python:\n  columns: [patient_id, age]\n"
    shape = AssetShape(
        names=("admissions",),
        columns={
            "patient_id": ("text", "identifier"),
            "district": ("text", "quasi_identifier"),
            "age": ("integer", "quasi_identifier"),
            "los_days": ("integer", "attribute"),
            "cost": ("double", "sensitive"),
            "diagnosis": ("text", "sensitive"),
            "ward": ("text", "attribute"),
        },
        privacy_unit="patient_id",
    )
    with pytest.raises(PolicyDocumentError, match="identifier"):
        load_policy_for(text, shape)
