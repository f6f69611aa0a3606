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
