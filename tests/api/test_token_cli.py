"""``fundtrail token``: passwords and API tokens from the command line."""

from __future__ import annotations

import json


def test_token_commands_make_list_and_revoke(agency, cli) -> None:
    home = str(agency.home)
    made = cli("token", "create", "ivo", "--name", "nightly", "--days", "7", "--home", home,
               "--format", "json")
    assert made.exit_code == 0, made.output
    doc = json.loads(made.output)
    token = doc["token"]
    assert doc["username"] == "ivo" and token.startswith("ftk_")
    assert agency.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    listed = json.loads(cli("token", "list", "--user", "ivo", "--home", home, "--format", "json").output)
    assert [t["id"] for t in listed["tokens"]] == [doc["id"]]
    assert token not in json.dumps(listed)
    assert cli("token", "revoke", doc["id"], "--home", home).exit_code == 0
    assert agency.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_password_command_lets_the_user_sign_in(agency, cli) -> None:
    done = cli("token", "password", "ana", "--password-stdin", "--home", str(agency.home),
               input="a fine long password\n")
    assert done.exit_code == 0, done.output
    login = agency.client.post("/api/auth/login",
                               json={"username": "ana", "password": "a fine long password"})
    assert login.status_code == 200
    short = cli("token", "password", "ana", "--password-stdin", "--home", str(agency.home), input="short\n")
    assert short.exit_code == 2


def test_unknown_user_is_bad_input(agency, cli) -> None:
    done = cli("token", "create", "nobody", "--home", str(agency.home))
    assert done.exit_code == 2
