"""Python jobs at a real site agent: syft-rds job folders run unchanged in the sandbox on
the projection the policy allows, their outputs held until the holder reviews them."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.tickets import Ticket
from gateway.siteclient.client import SiteClient
from sandbox.agent.config import SiteConfig
from sandbox.wire import FragmentOutcome
from tests.agent.python_jobs import PyMinter, folder, policy, review, spec_of
from tests.agent.tickets import request

pytestmark = pytest.mark.slow

READ = """\
    import csv, syft as sy
    rows = list(csv.DictReader(open(sy.resolve_dataset_file_path("admissions"))))
    {body}
"""


def job(body: str) -> bytes:
    return folder(READ.format(body=body.replace("\n", "\n    ")))


def run(
    site: SiteClient,
    archive: bytes,
    minter: PyMinter | None = None,
    *,
    approve: bool = True,
    **fields: object,
) -> tuple[Ticket, FragmentOutcome]:
    """Upload the archive and run its ticket (approved by the holder unless told not to)."""
    minter = minter or PyMinter()
    ticket = minter.python_ticket(archive, **fields)  # type: ignore[arg-type]
    if approve:
        ticket = minter.approve(ticket)
    site.upload_input(archive)
    digest = spec_of(archive)["archive_sha256"]
    return ticket, site.run_fragment(request(ticket, input_sha256=digest), 60)


def state_of(outcome: FragmentOutcome) -> str:
    return str(json.loads(outcome.release)["python"]["state"])


def test_a_job_reads_only_the_permitted_columns_and_its_outputs_wait_for_review(
    site: SiteClient, py_config: SiteConfig
) -> None:
    archive = job(
        "import json, os\n"
        "os.makedirs('outputs', exist_ok=True)\n"
        "json.dump({'columns': sorted(rows[0]), 'rows': len(rows)}, open('outputs/r.json', 'w'))\n"
        "print('done', len(rows))"
    )
    ticket, outcome = run(site, archive)
    assert outcome.ok, outcome
    assert state_of(outcome) == "held"
    held = site.fetch_outputs(ticket.fragment_id)
    assert held.state == "held"
    assert held.files == ()  # nothing of held outputs leaves the site
    assert review(py_config.state, ticket.fragment_id, release=True)
    released = site.fetch_outputs(ticket.fragment_id)
    assert released.state == "released"
    assert released.reviewer == "dr-review"
    files = {f.path: f.content for f in released.files}
    assert json.loads(files["r.json"]) == {"columns": ["age", "district", "los"], "rows": 40}
    assert files["::stdout.txt"] == b"done 40\n"
    detail = json.loads(released.detail)
    assert detail["code_hash"] == spec_of(archive)["code_hash"]
    assert detail["exit_code"] == 0


def test_a_review_signed_with_another_key_decides_nothing(
    site: SiteClient, py_config: SiteConfig
) -> None:
    ticket, outcome = run(site, job("open('outputs/n.txt', 'w').write(str(len(rows)))"))
    assert state_of(outcome) == "held"
    forger = Ed25519PrivateKey.generate()
    assert review(py_config.state, ticket.fragment_id, release=True, key=forger)
    assert site.fetch_outputs(ticket.fragment_id).state == "held"
    other_org = review(py_config.state, ticket.fragment_id, release=True, organisation="org_x")
    assert other_org
    assert site.fetch_outputs(ticket.fragment_id).state == "held"
    assert review(py_config.state, ticket.fragment_id, release=False, reason="too detailed")
    rejected = site.fetch_outputs(ticket.fragment_id)
    assert (rejected.state, rejected.reason) == ("rejected", "too detailed")
    assert all(f.content == b"" for f in rejected.files)


def test_pre_approved_code_is_released_after_the_checks(site: SiteClient) -> None:
    archive = job("open('outputs/n.txt', 'w').write(str(len(rows)))")
    minter = PyMinter()
    minter.policy = policy(release="approved_code", hashes=(spec_of(archive)["code_hash"],))
    ticket, outcome = run(site, archive, minter, approve=False)
    assert state_of(outcome) == "released"
    released = site.fetch_outputs(ticket.fragment_id)
    assert released.reviewer.startswith("policy:")
    assert {f.path: f.content for f in released.files}["n.txt"] == b"40"


def test_code_not_approved_in_advance_needs_a_signed_approval(site: SiteClient) -> None:
    archive = job("print(len(rows))")
    minter = PyMinter()
    minter.policy = policy(approval="manual")
    _, refused = run(site, archive, minter, approve=False)
    assert (refused.failure, refused.reasons[:1]) == ("refused", ("approval_missing",))
    ticket = minter.approve(minter.python_ticket(archive))
    outcome = site.run_fragment(request(ticket, input_sha256=spec_of(archive)["archive_sha256"]))
    assert outcome.ok and state_of(outcome) == "held"


def test_an_archive_that_is_not_the_job_stated_is_refused(site: SiteClient) -> None:
    archive = job("print(1)")
    other = job("print(2)")
    minter = PyMinter()
    ticket = minter.approve(minter.python_ticket(archive))
    site.upload_input(other)
    outcome = site.run_fragment(request(ticket, input_sha256=spec_of(other)["archive_sha256"]))
    assert outcome.reasons == ("python_archive_mismatch",)


def test_dependencies_off_the_sites_list_are_refused(site: SiteClient) -> None:
    archive = folder("print(1)", deps=["syft==0.10.0", "requests"])
    _, outcome = run(site, archive)
    assert outcome.reasons == ("python_dependency",)


def test_outputs_holding_identifiers_or_quasi_identifier_rows_are_rejected(
    site: SiteClient,
) -> None:
    rows_out = job(
        "import csv\n"
        "w = csv.writer(open('outputs/rows.csv', 'w'))\n"
        "[w.writerow([r['district'], r['age'], r['los']]) for r in rows]"
    )
    ticket, outcome = run(site, rows_out)
    assert state_of(outcome) == "rejected"
    assert "output_quasi_identifiers:rows.csv" in site.fetch_outputs(ticket.fragment_id).reason
    named = job("open('outputs/x.txt', 'w').write('the patient is PAT00007')")
    ticket, outcome = run(site, named)
    assert state_of(outcome) == "rejected"
    assert "output_identifier:x.txt" in site.fetch_outputs(ticket.fragment_id).reason
    shadow = job("open('outputs/::stdout.txt', 'w').write('all is well')")
    ticket, outcome = run(site, shadow)
    assert "output_name:::stdout.txt" in site.fetch_outputs(ticket.fragment_id).reason
    wrong_type = job("open('outputs/x.exe', 'wb').write(b'MZ')")
    ticket, outcome = run(site, wrong_type)
    assert "output_type:x.exe" in site.fetch_outputs(ticket.fragment_id).reason
