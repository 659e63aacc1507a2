"""JWT bearer verification: every failure class is a bare 401, real clients' tokens pass."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from support import captured_logs
from auth_helpers import (BASE, ISSUER, JKU, SERVICE_PATH, SERVICE_URL, SigningKey, call, claims,
                          guarded_app, make_settings, mint)
from cds_service.auth import Authenticator
from cds_service.jwks import TrustConfigError, load_trusted_issuers
from cds_service.storage import Database
from support import SHARED, require_shared

def now() -> int:
    """Read per use: the module may be imported long before a test runs."""
    return int(time.time())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unsigned(header: dict, payload: dict) -> str:
    enc = lambda obj: b64url(json.dumps(obj).encode())  # noqa: E731
    return f"{enc(header)}.{enc(payload)}"


def public_pem(key: SigningKey) -> bytes:
    return key.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)


# ----------------------------------------------------------------------------- accepted tokens


def test_a_valid_es384_token_like_the_sandbox_sends_is_accepted(client, es384):
    assert call(client, mint(es384)).status_code == 200


def test_a_valid_rs384_token_shaped_like_epic_with_sub_and_nbf_is_accepted(client, rs384):
    payload = claims(sub="epic-client-id-123", nbf=now() - 300, iat=now(), exp=now() + 300, tenant="org-1")
    assert call(client, mint(rs384, payload, jku=None)).status_code == 200


@pytest.mark.parametrize("alg", ["RS256", "RS384"])
def test_an_rsa_key_without_a_declared_alg_verifies_rs256_and_rs384(client, rs256_no_alg, alg):
    assert call(client, mint(rs256_no_alg, alg=alg)).status_code == 200


def test_a_valid_es256_token_is_accepted(client, es256):
    assert call(client, mint(es256)).status_code == 200


def test_discovery_is_guarded_too_and_its_audience_is_the_discovery_url(client, es384):
    assert call(client, mint(es384, claims(aud=BASE + "/cds-services")), path="/cds-services").status_code == 200
    assert call(client, None, path="/cds-services").status_code == 401


def test_an_audience_list_containing_the_invoked_url_is_accepted(client, es384):
    payload = claims(aud=["https://other.example/cds-services", SERVICE_URL])
    assert call(client, mint(es384, payload)).status_code == 200


def test_the_query_string_is_not_part_of_the_audience(client, es384):
    token = mint(es384)
    assert client.post(SERVICE_PATH + "?x=1", json={}, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_behind_a_proxy_the_audience_is_the_public_base_url_plus_the_path(trust_dir, db, es384):
    public = "https://cds.example.org/her2"
    app = guarded_app(Authenticator(make_settings(trust_dir, public_base_url=public + "/"), db)).test_client()
    assert call(app, mint(es384, claims(aud=public + SERVICE_PATH))).status_code == 200
    assert call(app, mint(es384, claims(aud=SERVICE_URL))).status_code == 401


@pytest.mark.parametrize("skew", [-30, 30])
def test_clock_skew_within_the_leeway_is_tolerated(client, es384, skew):
    """exp 30 s ago / iat and nbf 30 s ahead: within the 60 s leeway."""
    if skew < 0:
        payload = claims(iat=now() - 330, exp=now() + skew)
    else:
        payload = claims(iat=now() + skew, nbf=now() + skew, exp=now() + 300)
    assert call(client, mint(es384, payload)).status_code == 200


def test_the_scheme_word_bearer_is_case_insensitive(client, es384):
    assert client.post(SERVICE_PATH, json={}, headers={"Authorization": f"bearer {mint(es384)}"}).status_code == 200


# ----------------------------------------------------------------------------- refused tokens


def test_no_authorization_header_is_401(client):
    assert call(client, None).status_code == 401


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "token-without-scheme"])
def test_an_authorization_header_that_is_not_a_bearer_token_is_401(client, value):
    assert client.post(SERVICE_PATH, json={}, headers={"Authorization": value}).status_code == 401


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "e30.e30.", "....", "x" * 20000])
def test_a_malformed_token_is_401(client, token):
    assert call(client, token).status_code == 401


def test_alg_none_is_401(client, es384):
    token = unsigned({"alg": "none", "typ": "JWT", "kid": es384.kid, "jku": JKU}, claims()) + "."
    assert call(client, token).status_code == 401


def test_hs256_keyed_with_the_public_key_pem_is_401(client, es384):
    """Algorithm confusion: an HMAC "signature" made with the verifier's public key."""
    signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": es384.kid, "jku": JKU}, claims())
    sig = hmac.new(public_pem(es384), signing_input.encode(), hashlib.sha256).digest()
    assert call(client, f"{signing_input}.{b64url(sig)}").status_code == 401


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_any_hmac_token_is_401(client, es384, alg):
    token = jwt.encode(claims(), "a-shared-secret-of-sufficient-length-for-hs512-" * 2, algorithm=alg,
                       headers={"kid": es384.kid})
    assert call(client, token).status_code == 401


def test_an_es512_token_is_401_as_only_es384_rs384_es256_rs256_are_allowed(client):
    key = SigningKey("test-es384", "ES512", ec.generate_private_key(ec.SECP521R1()))
    assert call(client, mint(key)).status_code == 401


def test_an_expired_token_is_401(client, es384):
    assert call(client, mint(es384, claims(iat=now() - 3600, exp=now() - 3000))).status_code == 401


def test_a_token_expired_just_beyond_the_leeway_is_401(client, es384):
    assert call(client, mint(es384, claims(iat=now() - 400, exp=now() - 70))).status_code == 401


def test_nbf_in_the_future_beyond_the_leeway_is_401(client, es384):
    assert call(client, mint(es384, claims(nbf=now() + 600, exp=now() + 900))).status_code == 401


def test_iat_in_the_future_beyond_the_leeway_is_401(client, es384):
    assert call(client, mint(es384, claims(iat=now() + 600, exp=now() + 900))).status_code == 401


@pytest.mark.parametrize("aud", [BASE + "/cds-services", SERVICE_URL + "/", SERVICE_URL + "/feedback",
                                 "https://localhost" + SERVICE_PATH, ["https://other.example/x"]])
def test_a_wrong_audience_is_401(client, es384, aud):
    assert call(client, mint(es384, claims(aud=aud))).status_code == 401


@pytest.mark.parametrize("missing", ["iss", "aud", "exp", "iat", "jti"])
def test_a_token_missing_a_required_claim_is_401(client, es384, missing):
    payload = claims()
    del payload[missing]
    assert call(client, mint(es384, payload)).status_code == 401


@pytest.mark.parametrize("jti", ["", 42, "j" * 300])
def test_an_empty_non_string_or_oversized_jti_is_401(client, es384, jti):
    assert call(client, mint(es384, claims(jti=jti))).status_code == 401


@pytest.mark.parametrize("exp", [lambda: now() + 2 * 24 * 3600, lambda: 1e300])
def test_a_token_valid_for_more_than_a_day_is_401(client, es384, exp):
    """Its jti would have to be remembered for as long; CDS clients mint 5-minute tokens."""
    assert call(client, mint(es384, claims(exp=exp()))).status_code == 401


def test_an_unknown_kid_is_401(client, es384):
    assert call(client, mint(es384, kid="not-in-the-jwks")).status_code == 401


def test_a_missing_kid_is_401(client, es384):
    assert call(client, mint(es384, kid=None)).status_code == 401


@pytest.mark.parametrize("typ", ["at+jwt", "JOSE"])
def test_a_typ_other_than_jwt_is_401(client, es384, typ):
    assert call(client, mint(es384, typ=typ)).status_code == 401


def test_a_missing_typ_is_401(client, es384):
    token = jwt.encode(claims(), es384.private, algorithm="ES384", headers={"kid": es384.kid, "typ": ""})
    assert "typ" not in jwt.get_unverified_header(token)
    assert call(client, token).status_code == 401


def test_a_crit_header_is_401(client, es384):
    assert call(client, mint(es384, crit=["exp"])).status_code == 401


def test_a_signature_by_another_key_under_a_trusted_kid_is_401(client, es384):
    forged = SigningKey(es384.kid, "ES384", ec.generate_private_key(ec.SECP384R1()))
    assert call(client, mint(forged)).status_code == 401


def test_a_tampered_payload_is_401(client, es384):
    header, _, signature = mint(es384).split(".")
    tampered = b64url(json.dumps(claims(sub="someone-else")).encode())
    assert call(client, f"{header}.{tampered}.{signature}").status_code == 401


def test_a_kid_of_another_key_type_cannot_verify_the_token(client, es384, rs384):
    """An ES384 token naming the RSA key's kid (and an ES256 token naming the P-384 key) is refused."""
    assert call(client, mint(SigningKey(rs384.kid, "ES384", es384.private))).status_code == 401
    p256 = SigningKey(es384.kid, "ES256", ec.generate_private_key(ec.SECP256R1()))
    assert call(client, mint(p256)).status_code == 401


def test_an_untrusted_issuer_is_401(client, es384):
    assert call(client, mint(es384, claims(iss="https://untrusted.invalid"))).status_code == 401


def test_a_jku_outside_the_allowlist_is_401(client, es384):
    assert call(client, mint(es384, jku="https://attacker.example/jwks.json")).status_code == 401


def test_without_a_jku_allowlist_any_jku_is_tolerated_and_never_fetched(tmp_path, db, es384, jwks_document):
    (tmp_path / "jwks.json").write_text(json.dumps(jwks_document))
    (tmp_path / "issuers.json").write_text(json.dumps([{"iss": ISSUER, "jwks_file": "jwks.json"}]))
    authenticator = Authenticator(make_settings(None, trusted_issuers_file=str(tmp_path / "issuers.json")), db)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        status = call(guarded_app(authenticator).test_client(), mint(es384, jku="https://x.invalid/j")).status_code
        assert status == 200
        assert len(mocked.calls) == 0


def test_a_replayed_jti_is_401(client, es384):
    token = mint(es384)
    assert call(client, token).status_code == 200
    assert call(client, token).status_code == 401


def test_the_same_jti_from_two_issuers_is_not_a_replay(tmp_path, db, es384, jwks_document):
    (tmp_path / "jwks.json").write_text(json.dumps(jwks_document))
    (tmp_path / "issuers.json").write_text(json.dumps(
        [{"iss": ISSUER, "jwks_file": "jwks.json"}, {"iss": "https://second.test", "jwks_file": "jwks.json"}]))
    app = guarded_app(Authenticator(make_settings(None, trusted_issuers_file=str(tmp_path / "issuers.json")),
                                    db)).test_client()
    assert call(app, mint(es384, claims(jti="shared-jti"))).status_code == 200
    assert call(app, mint(es384, claims(jti="shared-jti", iss="https://second.test"))).status_code == 200


def test_a_replay_is_caught_by_another_authenticator_on_another_connection_to_the_same_file(
        trust_dir, tmp_path, es384):
    """Two workers = two Database objects (two engines, two pools) on one SQLite file."""
    url = f"sqlite:///{tmp_path / 'shared' / 'replay.sqlite3'}"
    worker_a, worker_b = Database(url), Database(url)
    worker_a.create_all()
    worker_b.create_all()
    app_a = guarded_app(Authenticator(make_settings(trust_dir), worker_a)).test_client()
    app_b = guarded_app(Authenticator(make_settings(trust_dir), worker_b)).test_client()
    token = mint(es384)
    assert call(app_a, token).status_code == 200
    assert call(app_b, token).status_code == 401
    worker_a.dispose()
    worker_b.dispose()


def test_the_401_body_is_a_bare_operation_outcome_that_does_not_tell_the_reason(client, es384):
    reply = call(client, mint(es384, claims(iss="https://untrusted.invalid")))
    assert reply.status_code == 401
    body = reply.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert "issuer" not in json.dumps(body).lower()


def test_the_reason_is_logged_but_never_the_token(client, es384, caplog):
    token = mint(es384, claims(iat=now() - 3600, exp=now() - 3000))
    with captured_logs(caplog, "her2cds.auth") as records:
        assert call(client, token).status_code == 401
    record = next(r for r in records if r.getMessage().startswith("auth.rejected"))
    assert "Expired" in record.reason and record.status == 401 and record.path == SERVICE_PATH
    everything = " ".join([r.getMessage() for r in records] + [repr(vars(r)) for r in records])
    assert token not in everything and token.split(".")[2] not in everything


# ----------------------------------------------------------------------------- modes


def test_there_is_no_optional_mode(trust_dir):
    """`optional` let an unauthenticated caller reach patient data (issue 14): it no longer exists."""
    with pytest.raises(ValueError, match="HER2CDS_AUTH_MODE must be one of"):
        make_settings(trust_dir, auth_mode="optional")


def test_required_mode_without_a_public_base_url_does_not_start(trust_dir, db):
    """aud must never be derived from the Host header: HER2CDS_PUBLIC_BASE_URL is mandatory."""
    with pytest.raises(ValueError, match="HER2CDS_PUBLIC_BASE_URL is required"):
        Authenticator(make_settings(trust_dir, public_base_url=None), db)


@pytest.mark.parametrize("iat_ago, exp_ahead, reason", [
    (-50, 300 + 60 + 5, "exp more than 300 s"),        # iat 50 s ahead (skew), lifetime 315 s, exp 365 s ahead
    (400, 120, "lifetime exp - iat over 300 s"),        # 520 s lifetime, exp near
    (30, 331, "lifetime exp - iat over 300 s"),         # 361 s lifetime: just beyond 300 + 60 leeway
], ids=["exp-too-far-ahead", "long-lifetime", "lifetime-just-over-leeway"])
def test_a_long_lived_token_is_401_with_its_reason_logged(client, es384, caplog, iat_ago, exp_ahead, reason):
    caplog.set_level("WARNING", logger="her2cds.auth")
    t = now()
    assert call(client, mint(es384, claims(iat=t - iat_ago, exp=t + exp_ahead))).status_code == 401
    assert any(reason in getattr(r, "reason", "") for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_token_living_exactly_five_minutes_is_accepted(client, es384):
    t = now()
    assert call(client, mint(es384, claims(iat=t, exp=t + 300))).status_code == 200


def test_an_audience_mismatch_logs_the_expected_and_the_presented_audience(client, es384, caplog):
    caplog.set_level("WARNING", logger="her2cds.auth")
    presented = "https://elsewhere.example/cds-services/x"
    assert call(client, mint(es384, claims(aud=presented))).status_code == 401
    reason = next(r.reason for r in caplog.records if r.getMessage().startswith("auth.rejected"))
    assert f"expected {SERVICE_URL!r}" in reason and f"presented {presented!r}" in reason


def test_off_mode_accepts_anything(db):
    app = guarded_app(Authenticator(make_settings(None, auth_mode="off"), db)).test_client()
    assert call(app, None).status_code == 200
    assert call(app, "garbage").status_code == 200


def test_required_mode_without_trusted_issuers_refuses_every_token(db, es384, caplog):
    with captured_logs(caplog, "her2cds.auth"):
        app = guarded_app(Authenticator(make_settings(None), db)).test_client()
    assert "no trusted issuer" in caplog.text
    assert call(app, mint(es384)).status_code == 401


# ----------------------------------------------------------------------------- the trusted-issuers file


def test_jwks_file_paths_are_relative_to_the_trusted_issuers_file(trust_dir, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    issuers = load_trusted_issuers(trust_dir / "trusted-issuers.json")
    assert issuers[ISSUER].keys.key_for("test-es384") is not None
    assert issuers[ISSUER].jku_allowlist == frozenset({JKU})


@pytest.mark.parametrize("entries", [
    {"iss": ISSUER},                                                       # not a list
    [{"jwks_file": "client-jwks.json"}],                                   # no iss
    [{"iss": ISSUER}],                                                     # no key source
    [{"iss": ISSUER, "jwks_file": "client-jwks.json", "jwks_url": "https://x.test/jwks"}],   # both
    [{"iss": ISSUER, "jwks_file": "missing.json"}],                        # unreadable JWKS
    [{"iss": ISSUER, "jwks_file": "client-jwks.json"}, {"iss": ISSUER, "jwks_file": "client-jwks.json"}],
    [{"iss": ISSUER, "jwks_file": "client-jwks.json", "jku": 5}],          # bad jku
    [{"iss": ISSUER, "jwks_url": "ftp://x.test/jwks"}],                    # not http(s)
    [{"iss": ISSUER, "jwks_file": "client-jwks.json", "jwks": {}}],        # unknown field (typo guard)
])
def test_an_unusable_trusted_issuers_file_is_a_startup_error(trust_dir, entries):
    path = trust_dir / "bad.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(TrustConfigError):
        load_trusted_issuers(path)


def test_a_jwks_file_without_usable_keys_is_a_startup_error(tmp_path):
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}))
    (tmp_path / "issuers.json").write_text(json.dumps([{"iss": ISSUER, "jwks_file": "jwks.json"}]))
    with pytest.raises(TrustConfigError):
        load_trusted_issuers(tmp_path / "issuers.json")


def test_a_rotated_jwks_file_is_picked_up_on_an_unknown_kid(trust_dir, db, es384, jwks_document):
    app = guarded_app(Authenticator(make_settings(trust_dir), db)).test_client()
    new_key = SigningKey("rotated-key", "ES384", ec.generate_private_key(ec.SECP384R1()))
    assert call(app, mint(new_key)).status_code == 401
    path = trust_dir / "client-jwks.json"
    path.write_text(json.dumps({"keys": jwks_document["keys"] + [new_key.jwk()]}))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000_000))
    assert call(app, mint(new_key)).status_code == 200


# ----------------------------------------------------------------------------- the acceptance probe's key


def test_a_token_signed_with_the_probe_key_is_accepted_with_the_probe_trust_file(tmp_path, db):
    keys = require_shared(SHARED / "probe" / "keys")
    (tmp_path / "issuers.json").write_text(json.dumps([{
        "iss": "https://probe.invalid", "jwks_file": str(keys / "jwks.json"), "jku": "https://probe.invalid/jwks.json"}]))
    app = guarded_app(Authenticator(make_settings(None, trusted_issuers_file=str(tmp_path / "issuers.json")),
                                    db)).test_client()
    private = serialization.load_pem_private_key((keys / "private-key.pem").read_bytes(), None)
    probe_key = SigningKey(json.loads((keys / "jwks.json").read_text())["keys"][0]["kid"], "ES384", private)
    payload = claims(iss="https://probe.invalid")
    assert call(app, mint(probe_key, payload, jku="https://probe.invalid/jwks.json")).status_code == 200
    signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": probe_key.kid,
                              "jku": "https://probe.invalid/jwks.json"}, claims(iss="https://probe.invalid"))
    sig = hmac.new((keys / "public-key.pem").read_bytes(), signing_input.encode(), hashlib.sha256).digest()
    assert call(app, f"{signing_input}.{b64url(sig)}").status_code == 401



# ----------------------------------------------------------------------------- the refusal's kind (the metric's label)

def _expired(k):
    return mint(k, claims(iat=now() - 3600, exp=now() - 3000))


def _without_jti(k):
    payload = claims()
    del payload["jti"]
    return mint(k, payload)


def _tampered(k):
    header, _, signature = mint(k).split(".")
    return f"{header}.{b64url(json.dumps(claims(sub='someone-else')).encode())}.{signature}"


REFUSALS = {   # how a token is refused -> its kind
    "no token": (lambda k: None, "missing-token"),
    "not a JWT": (lambda k: "not-a-jwt", "malformed-token"),
    "expired": (_expired, "expired"),
    "not yet valid": (lambda k: mint(k, claims(nbf=now() + 600, exp=now() + 900)), "not-yet-valid"),
    "wrong audience": (lambda k: mint(k, claims(aud=BASE + "/cds-services")), "audience"),
    "no jti": (_without_jti, "missing-claim"),
    "lives two days": (lambda k: mint(k, claims(exp=now() + 2 * 24 * 3600)), "lifetime"),
    "unknown kid": (lambda k: mint(k, kid="not-in-the-jwks"), "unknown-key"),
    "untrusted issuer": (lambda k: mint(k, claims(iss="https://untrusted.invalid")), "untrusted-issuer"),
    "jku not allowed": (lambda k: mint(k, jku="https://attacker.example/jwks.json"), "jku-not-allowed"),
    "tampered payload": (_tampered, "signature"),
    "key of another type": (lambda k: mint(SigningKey(k.kid, "ES256", ec.generate_private_key(ec.SECP256R1()))),
                            "algorithm"),
    "typ not JWT": (lambda k: mint(k, typ="JOSE"), "malformed-token"),
}


@pytest.mark.parametrize("make_token, kind", REFUSALS.values(), ids=REFUSALS.keys())
def test_each_refusal_is_logged_with_its_kind_for_the_metric(client, es384, caplog, make_token, kind):
    from cds_service.auth import REFUSAL_KINDS
    with captured_logs(caplog, "her2cds.auth"):
        assert call(client, make_token(es384)).status_code == 401
    kinds = [r.kind for r in caplog.records if r.getMessage().startswith("auth.rejected") and hasattr(r, "kind")]
    assert set(kinds) == {kind} and kind in REFUSAL_KINDS


def test_a_replayed_token_is_refused_as_a_replay(client, es384, caplog):
    token = mint(es384)
    assert call(client, token).status_code == 200
    with captured_logs(caplog, "her2cds.auth"):
        assert call(client, token).status_code == 401
    assert {r.kind for r in caplog.records if hasattr(r, "kind")} == {"replay"}
