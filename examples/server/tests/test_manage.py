"""manage.py: keys made, listed and revoked in the store that DB names, the
token alone on add-key's last line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import ingest

MANAGE = Path(__file__).resolve().parent.parent / "manage.py"


def manage(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE), *args],
        env={**os.environ, "DB": db},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_add_list_and_revoke_keys(tmp_path: Path) -> None:
    db = str(tmp_path / "keys.db")
    made = manage(db, "add-key", "acme")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    admin = manage(db, "add-key", "--admin", "ops")
    assert admin.returncode == 0, admin.stderr
    ing = ingest.Ingestor(db)
    who = ing.authenticate(token)
    assert who is not None and who["scope"] == {"kind": "client", "client_id": "acme"}
    listed = manage(db, "list-keys")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.strip().splitlines()
    assert len(lines) == 2, lines
    assert any("client acme" in line and "valid" in line for line in lines), lines
    assert token.split("_")[2] not in listed.stdout, "no secret listed"
    revoked = manage(db, "revoke-key", who["key_id"])
    assert revoked.returncode == 0, revoked.stderr
    assert ing.authenticate(token) is None
    again = manage(db, "revoke-key", who["key_id"])
    assert again.returncode == 1 and "no valid key" in again.stderr
    bad = manage(db, "add-key", "acme", "--admin", "ops")
    assert bad.returncode == 2 and "not both" in bad.stderr
    ing.close()
