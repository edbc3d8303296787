"""The operators' command line: JSON out, token on the last line, one-line errors."""

import json

from click.testing import CliRunner

from webhooks.admin.tokens import authenticate
from webhooks.core.db import new_session
from webhooks.ops.cli import main


def test_tenants_create_prints_json(clean_db: None) -> None:
    result = CliRunner().invoke(main, ["tenants", "create", "acme", "--name", "Acme Inc"])
    assert result.exit_code == 0, result.output
    tenant = json.loads(result.stdout)
    assert tenant["uid"] == "acme" and tenant["name"] == "Acme Inc"
    assert tenant["id"].startswith("ten_") and tenant["created_at"].endswith("Z")


def test_duplicate_tenant_is_one_readable_line(clean_db: None) -> None:
    runner = CliRunner()
    runner.invoke(main, ["tenants", "create", "acme"])
    result = runner.invoke(main, ["tenants", "create", "acme"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: a tenant with uid 'acme' exists"


def test_tenant_token_is_printed_last_and_authenticates(clean_db: None) -> None:
    runner = CliRunner()
    runner.invoke(main, ["tenants", "create", "acme"])
    result = runner.invoke(
        main, ["tokens", "create", "--tenant", "acme", "--scopes", "events:write,events:read"]
    )
    assert result.exit_code == 0, result.output
    plaintext = result.stdout.strip().splitlines()[-1]
    with new_session() as session:
        token = authenticate(session, plaintext)
        assert token is not None and not token.is_admin
        assert token.scopes == ["events:read", "events:write"]
        assert authenticate(session, plaintext + "x") is None


def test_admin_token(clean_db: None) -> None:
    result = CliRunner().invoke(main, ["tokens", "create", "--admin"])
    assert result.exit_code == 0
    with new_session() as session:
        token = authenticate(session, result.stdout.strip().splitlines()[-1])
        assert token is not None and token.is_admin


def test_token_errors(clean_db: None) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["tokens", "create"]).exit_code == 2
    unknown = runner.invoke(
        main, ["tokens", "create", "--tenant", "nope", "--scopes", "events:read"]
    )
    assert unknown.exit_code == 1 and "no tenant 'nope'" in unknown.stderr
    runner.invoke(main, ["tenants", "create", "acme"])
    bad = runner.invoke(main, ["tokens", "create", "--tenant", "acme", "--scopes", "root"])
    assert bad.exit_code == 1 and "unknown scopes root" in bad.stderr


def test_tenants_list_and_token_revoke(clean_db: None) -> None:
    runner = CliRunner()
    runner.invoke(main, ["tenants", "create", "acme"])
    runner.invoke(main, ["tenants", "create", "beta"])
    listed = runner.invoke(main, ["tenants", "list"])
    assert [json.loads(line)["uid"] for line in listed.stdout.splitlines()] == ["acme", "beta"]

    plaintext = runner.invoke(main, ["tokens", "create", "--admin"]).stdout.strip().splitlines()[-1]
    with new_session() as session:
        token = authenticate(session, plaintext)
        assert token is not None
        token_id = token.id
    revoked = runner.invoke(main, ["tokens", "revoke", token_id])
    assert revoked.exit_code == 0 and token_id in revoked.stdout
    with new_session() as session:
        assert authenticate(session, plaintext) is None
    unknown = runner.invoke(main, ["tokens", "revoke", "tok_nope"])
    assert unknown.exit_code == 1 and "no token 'tok_nope'" in unknown.stderr
