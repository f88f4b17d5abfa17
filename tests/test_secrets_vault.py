"""Vault transit secret envelopes (reference §4.3) against a local server that answers like
Vault's ``/v1/{mount}/decrypt/{key}``; secret values never reach errors, logs or the debug stream."""
import json

import pytest
from fakes import FakeVault, Guest
from helpers import base_config, decoded_body

from app import service_of as svc
from runner.contract import SecretEnvelope
from runner.secrets_envelope import EnvelopeOpener, SecretDecryptError
from runner.settings import RunnerSettings

SECRETS = {"ALGA_API_KEY": "sk_live_secret", "OTHER_TOKEN": "tok-2", "api_key": "ak-9"}


@pytest.fixture(scope="module")
def vault():
    server = FakeVault(token="s.vault-token", namespace="team-a")
    yield server
    server.close()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "vault_token"
    path.write_text("  s.vault-token\n")
    return path


def opener(vault, token_file, **overrides):
    return EnvelopeOpener(RunnerSettings(**{"vault_addr": vault.url, "vault_token_file": str(token_file),
                                            "vault_namespace": "team-a", **overrides}))


def envelope(ciphertext, **kw):
    return SecretEnvelope(ciphertext_b64=ciphertext, algorithm=kw.pop("algorithm", "vault-transit:v1"),
                          key_path=kw.pop("key_path", "alga-ext"), **kw)


def test_decrypts_with_token_namespace_and_default_mount(vault, token_file):
    ct = vault.encrypt(SECRETS)
    assert opener(vault, token_file).open(envelope(ct), "t", "e", "i") == SECRETS
    sent = vault.requests[-1]
    assert sent.path == "/v1/transit/decrypt/alga-ext"
    assert sent.headers["x-vault-token"] == "s.vault-token"  # trimmed from the file
    assert sent.headers["x-vault-namespace"] == "team-a"
    assert sent.json() == {"ciphertext": ct}


def test_mount_from_envelope_then_setting(vault, token_file):
    ct = vault.encrypt({"k": "v"}, mount="kv-transit", key="ext-key")
    assert opener(vault, token_file).open(envelope(ct, key_path="ext-key", mount="kv-transit"), "t", "e", "i") == {
        "k": "v"}
    ct2 = vault.encrypt({"k": "v2"}, mount="custom", key="ext-key")
    assert opener(vault, token_file, vault_transit_mount="custom").open(
        envelope(ct2, key_path="ext-key"), "t", "e", "i") == {"k": "v2"}
    assert vault.requests[-1].path == "/v1/custom/decrypt/ext-key"


def test_algorithm_prefix_is_case_insensitive(vault, token_file):
    ct = vault.encrypt({"k": "v"})
    assert opener(vault, token_file).open(envelope(ct, algorithm="  VAULT-TRANSIT:v2 "), "t", "e", "i") == {"k": "v"}


def test_no_namespace_header_when_unset(token_file):
    plain = FakeVault(token="s.vault-token")
    try:
        ct = plain.encrypt({"k": "v"})
        assert opener(plain, token_file, vault_namespace="").open(envelope(ct), "t", "e", "i") == {"k": "v"}
        assert "x-vault-namespace" not in plain.requests[-1].headers
    finally:
        plain.close()


@pytest.mark.parametrize("case,step", [
    ("no_addr", "vault_transit.address_missing"),
    ("no_key_path", "vault_transit.key_path_missing"),
    ("empty_token", "vault_transit.token_missing"),
    ("missing_token_file", "vault_transit.token_missing"),
    ("wrong_token", "vault_transit.http_403"),
    ("unknown_ciphertext", "vault_transit.http_400"),
    ("plaintext_not_base64", "vault_transit.plaintext_decode_failed"),
    ("plaintext_not_json", "vault_transit.json_parse_failed"),
    ("value_not_string", "vault_transit.json_parse_failed"),
    ("unreachable", "vault_transit.request_failed"),
])
def test_failures_name_the_step_never_the_values(vault, token_file, tmp_path, case, step, monkeypatch):
    ct = vault.encrypt(SECRETS)
    kw, env = {}, envelope(ct)
    if case == "no_addr":
        kw["vault_addr"] = ""
    elif case == "no_key_path":
        env = envelope(ct, key_path=None)
    elif case == "empty_token":
        token_file.write_text("   \n")
    elif case == "missing_token_file":
        kw["vault_token_file"] = str(tmp_path / "absent")
    elif case == "wrong_token":
        token_file.write_text("s.other")
    elif case == "unknown_ciphertext":
        env = envelope("vault:v1:unknown")
    elif case == "plaintext_not_base64":
        monkeypatch.setattr(vault.server, "handler", lambda req: (200, {}, {"data": {"plaintext": "!!not b64!!"}}))
    elif case == "plaintext_not_json":
        env = envelope(vault.encrypt(None, raw=b"sk_live_secret is not json"))
    elif case == "value_not_string":
        env = envelope(vault.encrypt({"ALGA_API_KEY": "sk_live_secret", "n": 5}))
    elif case == "unreachable":
        from helpers import free_port

        kw["vault_addr"] = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SecretDecryptError) as e:
        opener(vault, token_file, **kw).open(env, "t", "e", "i")
    assert str(e.value).startswith(step)
    assert "sk_live_secret" not in str(e.value) and "s.vault-token" not in str(e.value)


@pytest.mark.parametrize("field,value,step", [
    ("key_path", "../../sys/seal", "vault_transit.invalid_key_path"),
    ("key_path", "alga-ext/./x", "vault_transit.invalid_key_path"),
    ("key_path", "alga-ext?x=1", "vault_transit.invalid_key_path"),
    ("key_path", "alga ext", "vault_transit.invalid_key_path"),
    ("key_path", "alga-ext\n", "vault_transit.invalid_key_path"),
    ("mount", "transit/decrypt/../../sys", "vault_transit.invalid_mount"),
    ("mount", "transit#", "vault_transit.invalid_mount"),
    ("vault_transit_mount", "..", "vault_transit.invalid_mount"),
])
def test_key_path_and_mount_cannot_leave_the_decrypt_endpoint(vault, token_file, field, value, step):
    ct = vault.encrypt(SECRETS)
    sent = len(vault.requests)
    if field == "vault_transit_mount":
        o, env = opener(vault, token_file, vault_transit_mount=value), envelope(ct)
    else:
        o, env = opener(vault, token_file), envelope(ct, **{field: value})
    with pytest.raises(SecretDecryptError) as e:
        o.open(env, "t", "e", "i")
    assert str(e.value) == step
    assert len(vault.requests) == sent


def test_nested_key_path_and_mount_are_allowed(vault, token_file):
    ct = vault.encrypt({"k": "v"}, mount="team/transit", key="ext.key_1")
    assert opener(vault, token_file).open(
        envelope(ct, key_path="/ext.key_1/", mount="team/transit"), "t", "e", "i") == {"k": "v"}
    assert vault.requests[-1].path == "/v1/team/transit/decrypt/ext.key_1"


def test_cache_and_reopen_on_change(vault, token_file):
    o = opener(vault, token_file)
    ct = vault.encrypt({"k": "v1"})
    before = len(vault.requests)
    assert o.open(envelope(ct, version="1"), "t", "e", "i") == {"k": "v1"}
    assert o.open(envelope(ct, version="1"), "t", "e", "i") == {"k": "v1"}
    assert len(vault.requests) == before + 1  # cached
    ct2 = vault.encrypt({"k": "v2"})
    assert o.open(envelope(ct2, version="2"), "t", "e", "i") == {"k": "v2"}
    assert o.open(envelope(ct, version="1"), "t", "e", "other-install") == {"k": "v1"}
    assert len(vault.requests) == before + 3


# -- from the component ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def guest(shared_dirs, tmp_path_factory, sdk_wasm, vault):
    from app import create_app

    tmp = tmp_path_factory.mktemp("vault")
    (tmp / "token").write_text("s.vault-token")
    app = create_app({**base_config(shared_dirs, tmp), "workers": 1, "vault_addr": vault.url,
                      "vault_token_file": str(tmp / "token"), "vault_namespace": "team-a"})
    app.testing = True
    yield Guest(app, sdk_wasm)
    svc(app).lifecycle.stop()


def vault_envelope(ciphertext):
    return {"ciphertext_b64": ciphertext, "algorithm": "vault-transit:v1", "key_path": "alga-ext", "version": "v1"}


@pytest.mark.slow
def test_guest_reads_vault_secrets(guest, vault):
    """Scenario 15 with a Vault transit envelope."""
    out = guest.execute("/dynamic/secrets", providers=["cap:secrets.get"],
                        secret_envelope=vault_envelope(vault.encrypt(SECRETS)))
    body = decoded_body(out)
    assert body["secrets"]["value"] == "sk_live_secret" and body["secrets"]["error"] is None
    assert set(body["secrets"]["keys"]) == set(SECRETS)


@pytest.mark.slow
def test_guest_denied_without_capability(guest, vault):
    """Scenario 16."""
    body = decoded_body(guest.execute("/dynamic/secrets", secret_envelope=vault_envelope(vault.encrypt(SECRETS))))
    assert body["ok"] is False and "denied" in body["secrets"]["error"] and body["secrets"]["keys"] == []


@pytest.mark.slow
def test_vault_failure_is_secret_decrypt_failed_without_values(guest, vault, capfd):
    executor = svc(guest.client.application).executor
    out = guest.execute("/dynamic/secrets", providers=["cap:secrets.get"],
                        secret_envelope=vault_envelope("vault:v1:never-issued"))
    assert out == {"status": 500, "headers": {}, "body_b64": None, "error": "secret_decrypt_failed"}
    events = executor.debug.recent("tenant-a", "ext-a")
    assert events[-1]["message"] == "secret envelope decryption failed: vault_transit.http_400"
    # a plaintext that is not a JSON map of strings: still no value anywhere
    leaky = vault.encrypt(None, raw=json.dumps({"ALGA_API_KEY": "sk_live_secret", "n": [1]}).encode())
    out = guest.execute("/dynamic/secrets", providers=["cap:secrets.get"], secret_envelope=vault_envelope(leaky))
    assert out["error"] == "secret_decrypt_failed"
    logged = capfd.readouterr()
    assert "sk_live_secret" not in logged.out + logged.err
    assert all("sk_live_secret" not in json.dumps(e) for e in executor.debug.recent("tenant-a", "ext-a"))
