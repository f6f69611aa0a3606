"""Manage the server's API keys: `python examples/server/manage.py COMMAND`.

    add-key CLIENT_ID        a key that writes and reads as that client only
    add-key --admin NAME     a key that reads every client and drives the
                             failure switch
    list-keys                every key (id, scope, created, revoked)
    revoke-key ID            no process over the store accepts it from now on

DB (default ./data.db; a SQLite file or a postgres:// URL) selects the
store: keys live in it, so every server over one database knows the same
ones. add-key prints the token alone on its last line; it is shown once
(the store keeps only its SHA-256).
"""

from __future__ import annotations

import argparse
import os
import sys

import ingest


def describe(scope: dict[str, str]) -> str:
    if scope["kind"] == "client":
        return f"client {scope['client_id']}"
    return f"admin {scope['name']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="manage.py", description="API keys of the ingest server")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-key", help="make a key for one client, or an admin key")
    add.add_argument("client_id", nargs="?", help="the client the key writes and reads as")
    add.add_argument("--admin", metavar="NAME", help="make an admin key held by NAME")
    commands.add_parser("list-keys", help="list every key")
    revoke = commands.add_parser("revoke-key", help="revoke a key by its id")
    revoke.add_argument("id")
    args = parser.parse_args(argv)

    db = os.environ.get("DB") or "data.db"
    try:
        ing = ingest.Ingestor(db)
    except ingest.IngestError as e:
        print(f"cannot open the store {db!r}: {e}", file=sys.stderr)
        return 1
    try:
        if args.command == "add-key":
            key = ing.add_key(args.client_id, admin=args.admin)
            who = describe(key["scope"])
            print(f"key {key['id']} for {who} in {ing.path}; its token (shown once):")
            print(key["token"])
        elif args.command == "list-keys":
            for k in ing.keys():
                state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "valid"
                print(f"{k['id']}  {describe(k['scope'])}  created {k['created_at']}  {state}")
        else:
            if not ing.revoke_key(args.id):
                print(f"no valid key {args.id} (unknown, or revoked already)", file=sys.stderr)
                return 1
            print(f"revoked {args.id}")
    except ingest.InvalidArgument as e:
        print(str(e).removeprefix("invalid argument: "), file=sys.stderr)
        return 2
    finally:
        ing.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
