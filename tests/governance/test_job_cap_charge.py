"""The gateway's own charge holds a licence's job cap under concurrency: parallel charges
for distinct jobs, from one store or from two gateway processes on one PostgreSQL, never
charge more jobs than the cap."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from contracts import countersign, sign_offer
from gateway.errors import BudgetExhausted
from gateway.service import build_services
from gateway.store import open_store
from tests.conftest import SeededRandom
from tests.governance.conftest import Gov, b64, terms_for, terms_json

CAP = 3


def _capped_licence(gov: Gov) -> str:
    w = gov.world
    terms = terms_for(w, licence_id="lic-capped", job_cap=CAP)
    offer = sign_offer(terms, gov.holder_key)
    w.services.licences.offer(w.holder_a, terms_json(terms), b64(offer))
    accept = countersign(terms, offer, gov.operator_key)
    w.services.licences.accept(w.operator, terms.licence_id, b64(accept))
    return terms.licence_id


def test_parallel_charges_stop_at_the_job_cap(gov: Gov, store_url: str) -> None:
    w = gov.world
    licence = _capped_licence(gov)
    ledgers = [w.services.ledger]
    second = None
    if store_url.startswith("postgresql"):  # a second gateway process on the same database
        second = open_store(store_url)
        ledgers.append(
            build_services(
                second, w.services.ctx.settings, clock=w.services.ctx.clock, random=SeededRandom(3)
            ).ledger
        )

    def charge(n: int) -> bool:
        ledger = ledgers[n % len(ledgers)]
        try:
            ledger.charge(w.operator, licence, [w.asset_a], 0.01, 0.0, f"job-{n}")
        except BudgetExhausted:
            return False
        return True

    try:
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(charge, range(40)))
    finally:
        if second is not None:
            second.close()
    assert outcomes.count(True) == CAP
    assert w.services.ledger.usage(w.operator, licence).jobs == CAP
    # the next new job is refused at the charge
    with pytest.raises(BudgetExhausted, match="job cap"):
        w.services.ledger.charge(w.operator, licence, [w.asset_a], 0.01, 0.0, "job-new")
