"""The identity graph recovers the simulated people: every device a person identified on ends up
in that person's profile, with their user id and email, and no two people share a profile."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text

from tidings.app import build_container
from tidings.core.settings import Settings
from tidings.simulate.catalog import generate_catalog
from tidings.simulate.send import send_direct
from tidings.simulate.shoppers import simulate
from tidings.testing import prepare_database


def test_profiles_match_the_simulated_people(db_url: str, tmp_path: Path) -> None:
    creds = prepare_database(db_url)
    sim = simulate(5, 300, 10, datetime(2026, 11, 1, tzinfo=UTC), generate_catalog(5, 60))
    sent = send_direct(sim, db_url, creds.source_id, progress=False)
    assert sent.rejected == 0
    truth = sim.ground_truth

    container = build_container(Settings(database_url=db_url, data_dir=tmp_path))
    try:
        applied = container.pipeline.drain()
        with container.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT id_type, id_value, profile_id FROM identities"))
            profile_of = {(t, v): p for t, v, p in rows}
    finally:
        container.db.close()
    assert applied == truth.events

    owners: dict[str, str] = {}
    identified = 0
    for person in truth.persons:
        ids = [("anonymous_id", a) for a in person.linked_anonymous_ids]
        if person.user_id:
            ids.append(("user_id", person.user_id))
            identified += 1
        if person.email:
            ids.append(("email", person.email.strip().lower()))
        missing = [i for i in ids if i not in profile_of]
        assert not missing, (person.person_id, missing)
        profiles = {profile_of[i] for i in ids}
        assert len(profiles) <= 1, (person.person_id, ids, profiles)
        for pid in profiles:
            assert owners.setdefault(pid, person.person_id) == person.person_id, pid
    assert identified > 20, "the simulation should sign some shoppers in"
