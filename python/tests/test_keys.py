"""API keys through the Python package: made, checked, listed and revoked
in the store, seen alike by another Ingestor over it."""

from __future__ import annotations

from pathlib import Path

import pytest

import ingest


def test_keys_are_made_checked_listed_and_revoked(tmp_path: Path) -> None:
    db = str(tmp_path / "keys.db")
    ing = ingest.Ingestor(db)
    other = ingest.Ingestor(db)
    client = ing.add_key("acme")
    admin = ing.add_key(admin="ops")
    assert client["scope"] == {"kind": "client", "client_id": "acme"}
    assert admin["scope"] == {"kind": "admin", "name": "ops"}
    assert other.authenticate(client["token"]) == {"key_id": client["id"], "scope": client["scope"]}
    as_admin = other.authenticate(admin["token"])
    assert as_admin is not None and as_admin["scope"]["kind"] == "admin"
    for bad in ["", "nope", client["token"][:-1], client["token"][:-1] + "x"]:
        assert other.authenticate(bad) is None
    listed = {k["id"]: k for k in other.keys()}
    assert set(listed) == {client["id"], admin["id"]}
    assert all(k["revoked_at"] is None for k in listed.values())
    assert client["token"][20:] not in repr(listed)
    assert ing.revoke_key(client["id"]) is True
    assert ing.revoke_key(client["id"]) is False
    assert other.authenticate(client["token"]) is None
    with pytest.raises(ingest.InvalidArgument):
        ing.revoke_key("not-an-id")
    with pytest.raises(ingest.InvalidArgument):
        ing.add_key("acme", admin="ops")
    with pytest.raises(ingest.InvalidArgument):
        ing.add_key()
    ing.close()
    other.close()


def test_a_client_key_writes_and_reads_as_its_client_only(tmp_path: Path) -> None:
    ing = ingest.Ingestor(str(tmp_path / "scope.db"))
    ing.submit({"client_id": "other", "amount": 7, "timestamp": 1000})
    out = ing.submit({"amount": 1, "timestamp": 2000}, as_client="acme")
    assert out.status == "accepted" and out.event is not None
    assert out.event["client_id"] == "acme"
    outs = ing.submit_batch('[{"source": "acme", "amount": 2, "timestamp": 3000}]', as_client="acme")
    assert [o.status for o in outs] == ["accepted"]
    with pytest.raises(ingest.Forbidden) as e:
        ing.submit_batch(
            [{"amount": 3, "timestamp": 4000}, {"client": "other", "amount": 3, "timestamp": 4001}],
            as_client="acme",
        )
    assert e.value.kind == "forbidden"
    assert ing.stats()["stored_events"] == 3
    assert {ev["client_id"] for ev in ing.events(as_client="acme")} == {"acme"}
    assert ing.aggregate(as_client="acme")["count"] == 2
    with pytest.raises(ingest.Forbidden):
        ing.aggregate(client_id="other", as_client="acme")
    with pytest.raises(ingest.Forbidden):
        ing.events(client_id="other", as_client="acme")
    ing.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_client_lists_and_counts_only_its_own_dead_letters(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    where = str(tmp_path / "letters.db") if backend == "sqlite" else str(request.getfixturevalue("pg_url"))
    with ingest.Ingestor(where) as ing:
        for i in range(3):
            assert ing.submit({"n": i, "amount": "junk", "ts": 1}, as_client="acme").status == "rejected"
            assert ing.submit({"n": i, "amount": "junk", "ts": 1}, as_client="beta").status == "rejected"
        # Unscoped: the client the input names, under any alias; else nobody's.
        ing.submit({"clientId": " acme", "amount": "x", "ts": 2})
        ing.submit({"amount": "x", "ts": 2})
        ing.submit({"source": "acme", "amount": 1, "ts": 2}, as_client="acme")

        everyone = ing.rejected(limit=100)
        assert [r["client_id"] for r in everyone] == [None, "acme", "beta", "acme", "beta", "acme", "beta", "acme"]
        mine = ing.rejected(as_client="acme")
        assert [r["client_id"] for r in mine] == ["acme"] * 4
        assert [r["id"] for r in mine] == sorted((r["id"] for r in mine), reverse=True)
        paged = [r["id"] for offset in range(0, 6, 2) for r in ing.rejected(limit=2, offset=offset, as_client="acme")]
        assert paged == [r["id"] for r in mine]
        assert all(r["raw"].get("n") is not None for r in ing.rejected(as_client="beta"))
        assert ing.rejected(as_client="nobody") == []

        stats = ing.stats(as_client="acme")
        assert stats == {"client_id": "acme", "stored_events": 1, "stored_rejected": 4}
        assert ing.stats()["stored_rejected"] == 8
        with pytest.raises(ingest.InvalidArgument):
            ing.rejected(as_client="")
        with pytest.raises(ingest.InvalidArgument):
            ing.stats(as_client=" acme")
