"""The three signature schemes as pure functions: known vectors, tampering, time, rotation."""

from __future__ import annotations

import base64

import pytest

from app.ingest.webhooks import signatures as sig
from app.ingest.webhooks.signatures import SignatureError

NOW = 1_700_000_000.0
ZOOM_SECRET = "zoom-secret"
ZOOM_BODY = b'{"event":"meeting.started","event_ts":1700000000000}'
ZOOM_SIGNATURE = "v0=0f1b5f239d6826eb7b6a25eac8cb0ca6ea5d8cc7bb303d766af97ef7b65f1e2e"

LK_KEY = "APIkey"
LK_SECRET = "lk-secret-with-32-bytes-minimum!!"
LK_TOKEN = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUElrZXkiLCJuYmYiOjE3MDAwMDAwMDAsImV4cC"
    "I6MTcwMDAwMDMwMCwic2hhMjU2IjoiRi9LL3Axa3UwV0dDMGo0MEZBcyt4N080OTFpQTJEMUlBclF1c0NSeUcvT"
    "T0ifQ.fJk3YgoIYgumegLA279BimweoW64RNL0f85KgpmcaTg"
)

# The test vector published with the Standard Webhooks specification.
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = "1614265330"
SW_BODY = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SW_NOW = 1614265330.0


def tamper(body: bytes) -> bytes:
    """Change one byte."""
    return body[:-2] + bytes([body[-2] ^ 0x01]) + body[-1:]


class TestZoom:
    def test_known_vector(self) -> None:
        assert sig.zoom_signature(ZOOM_SECRET, "1700000000", ZOOM_BODY) == ZOOM_SIGNATURE
        sig.verify_zoom(ZOOM_SECRET, ZOOM_BODY, ZOOM_SIGNATURE, "1700000000", now=NOW)

    def test_url_validation_answer(self) -> None:
        assert sig.zoom_url_validation(ZOOM_SECRET, "qgg8vlvZRS6UYooatFL8Aw") == {
            "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
            "encryptedToken": "b17f0320a1322a509340a1a835b3d9edbc491f0b0790ed2d20d0604d39dfe922",
        }

    def test_one_byte_tamper_is_refused(self) -> None:
        with pytest.raises(SignatureError, match="does not match"):
            sig.verify_zoom(ZOOM_SECRET, tamper(ZOOM_BODY), ZOOM_SIGNATURE, "1700000000", now=NOW)

    def test_reserialised_body_is_refused(self) -> None:
        same_json = b'{"event": "meeting.started", "event_ts": 1700000000000}'
        with pytest.raises(SignatureError, match="does not match"):
            sig.verify_zoom(ZOOM_SECRET, same_json, ZOOM_SIGNATURE, "1700000000", now=NOW)

    def test_wrong_secret_is_refused(self) -> None:
        with pytest.raises(SignatureError):
            sig.verify_zoom("other", ZOOM_BODY, ZOOM_SIGNATURE, "1700000000", now=NOW)

    @pytest.mark.parametrize("offset", [-301, 301])
    def test_timestamp_301_s_off_is_refused(self, offset: int) -> None:
        ts = str(int(NOW) + offset)
        signature = sig.zoom_signature(ZOOM_SECRET, ts, ZOOM_BODY)
        with pytest.raises(SignatureError, match="300 s"):
            sig.verify_zoom(ZOOM_SECRET, ZOOM_BODY, signature, ts, now=NOW)

    @pytest.mark.parametrize("offset", [-300, 300])
    def test_timestamp_300_s_off_is_accepted(self, offset: int) -> None:
        ts = str(int(NOW) + offset)
        signature = sig.zoom_signature(ZOOM_SECRET, ts, ZOOM_BODY)
        sig.verify_zoom(ZOOM_SECRET, ZOOM_BODY, signature, ts, now=NOW)

    def test_missing_headers_are_refused(self) -> None:
        with pytest.raises(SignatureError, match="missing x-zm-signature"):
            sig.verify_zoom(ZOOM_SECRET, ZOOM_BODY, None, "1700000000", now=NOW)
        with pytest.raises(SignatureError, match="missing x-zm-request-timestamp"):
            sig.verify_zoom(ZOOM_SECRET, ZOOM_BODY, ZOOM_SIGNATURE, None, now=NOW)
        with pytest.raises(SignatureError, match="not an integer"):
            sig.verify_zoom(ZOOM_SECRET, ZOOM_BODY, ZOOM_SIGNATURE, "yesterday", now=NOW)


class TestLiveKit:
    def test_known_vector(self) -> None:
        assert sig.body_sha256(ZOOM_BODY) == "F/K/p1ku0WGC0j40FAs+x7O491iA2D1IArQusCRyG/M="
        assert sig.livekit_token(LK_KEY, LK_SECRET, ZOOM_BODY, now=NOW) == LK_TOKEN
        sig.verify_livekit(LK_KEY, LK_SECRET, ZOOM_BODY, LK_TOKEN, now=NOW)

    def test_bearer_prefix_is_accepted(self) -> None:
        sig.verify_livekit(LK_KEY, LK_SECRET, ZOOM_BODY, f"Bearer {LK_TOKEN}", now=NOW)

    def test_one_byte_tamper_is_refused(self) -> None:
        with pytest.raises(SignatureError, match="sha256 claim does not match"):
            sig.verify_livekit(LK_KEY, LK_SECRET, tamper(ZOOM_BODY), LK_TOKEN, now=NOW)

    def test_reserialised_body_is_refused(self) -> None:
        same_json = b'{"event": "meeting.started", "event_ts": 1700000000000}'
        with pytest.raises(SignatureError, match="sha256 claim does not match"):
            sig.verify_livekit(LK_KEY, LK_SECRET, same_json, LK_TOKEN, now=NOW)

    def test_token_signed_with_another_secret_is_refused(self) -> None:
        token = sig.livekit_token(LK_KEY, "x" * 40, ZOOM_BODY, now=NOW)
        with pytest.raises(SignatureError, match="invalid token"):
            sig.verify_livekit(LK_KEY, LK_SECRET, ZOOM_BODY, token, now=NOW)

    def test_other_issuer_is_refused(self) -> None:
        token = sig.livekit_token("other-key", LK_SECRET, ZOOM_BODY, now=NOW)
        with pytest.raises(SignatureError, match="issuer"):
            sig.verify_livekit(LK_KEY, LK_SECRET, ZOOM_BODY, token, now=NOW)

    def test_expired_and_future_tokens_are_refused(self) -> None:
        # A token lives 300 s; 10 s of clock skew are allowed on exp and nbf.
        stale = sig.livekit_token(LK_KEY, LK_SECRET, ZOOM_BODY, now=NOW - 311)
        with pytest.raises(SignatureError, match="expired"):
            sig.verify_livekit(LK_KEY, LK_SECRET, ZOOM_BODY, stale, now=NOW)
        future = sig.livekit_token(LK_KEY, LK_SECRET, ZOOM_BODY, now=NOW + 301)
        with pytest.raises(SignatureError, match="not yet valid"):
            sig.verify_livekit(LK_KEY, LK_SECRET, ZOOM_BODY, future, now=NOW)

    def test_missing_header_is_refused(self) -> None:
        with pytest.raises(SignatureError, match="missing Authorization"):
            sig.verify_livekit(LK_KEY, LK_SECRET, ZOOM_BODY, None, now=NOW)
        with pytest.raises(SignatureError, match="invalid token"):
            sig.verify_livekit(LK_KEY, LK_SECRET, ZOOM_BODY, "Bearer not-a-jwt", now=NOW)


class TestStandardWebhooks:
    keys = sig.standard_secrets(SW_SECRET)

    def test_published_vector(self) -> None:
        assert sig.standard_signature(self.keys[0], SW_ID, SW_TS, SW_BODY) == SW_SIGNATURE
        sig.verify_standard(self.keys, SW_BODY, SW_ID, SW_TS, SW_SIGNATURE, now=SW_NOW)

    def test_one_byte_tamper_is_refused(self) -> None:
        with pytest.raises(SignatureError, match="no webhook-signature matches"):
            sig.verify_standard(self.keys, tamper(SW_BODY), SW_ID, SW_TS, SW_SIGNATURE, now=SW_NOW)

    def test_reserialised_body_is_refused(self) -> None:
        with pytest.raises(SignatureError, match="no webhook-signature matches"):
            sig.verify_standard(
                self.keys, b'{"test":2432232314}', SW_ID, SW_TS, SW_SIGNATURE, now=SW_NOW
            )

    def test_other_message_id_is_refused(self) -> None:
        with pytest.raises(SignatureError):
            sig.verify_standard(self.keys, SW_BODY, "msg_other", SW_TS, SW_SIGNATURE, now=SW_NOW)

    @pytest.mark.parametrize("offset", [-301, 301])
    def test_timestamp_301_s_off_is_refused(self, offset: int) -> None:
        ts = str(int(SW_NOW) + offset)
        signature = sig.standard_signature(self.keys[0], SW_ID, ts, SW_BODY)
        with pytest.raises(SignatureError, match="300 s"):
            sig.verify_standard(self.keys, SW_BODY, SW_ID, ts, signature, now=SW_NOW)

    def test_missing_headers_are_refused(self) -> None:
        with pytest.raises(SignatureError, match="missing webhook-id"):
            sig.verify_standard(self.keys, SW_BODY, None, SW_TS, SW_SIGNATURE, now=SW_NOW)
        with pytest.raises(SignatureError, match="missing webhook-timestamp"):
            sig.verify_standard(self.keys, SW_BODY, SW_ID, None, SW_SIGNATURE, now=SW_NOW)
        with pytest.raises(SignatureError, match="missing webhook-signature"):
            sig.verify_standard(self.keys, SW_BODY, SW_ID, SW_TS, None, now=SW_NOW)
        with pytest.raises(SignatureError, match="no v1 signature"):
            sig.verify_standard(self.keys, SW_BODY, SW_ID, SW_TS, "v2,abc", now=SW_NOW)

    def test_rotation_several_signatures_in_the_header(self) -> None:
        new_key = b"a new key of 24 bytes!!!"
        old_sig = SW_SIGNATURE
        new_sig = sig.standard_signature(new_key, SW_ID, SW_TS, SW_BODY)
        # The sender signs with both keys during a rotation: either secret verifies.
        header = f"{new_sig} {old_sig}"
        sig.verify_standard(self.keys, SW_BODY, SW_ID, SW_TS, header, now=SW_NOW)
        sig.verify_standard([new_key], SW_BODY, SW_ID, SW_TS, header, now=SW_NOW)
        with pytest.raises(SignatureError):
            sig.verify_standard([b"unrelated"], SW_BODY, SW_ID, SW_TS, header, now=SW_NOW)

    def test_rotation_several_configured_secrets(self) -> None:
        second = "whsec_" + base64.b64encode(b"the second secret, 32 bytes long").decode()
        keys = sig.standard_secrets(f"{second} {SW_SECRET}")
        assert len(keys) == 2
        # Signed with the second configured secret only: accepted.
        signature = sig.standard_signature(keys[0], SW_ID, SW_TS, SW_BODY)
        sig.verify_standard(keys, SW_BODY, SW_ID, SW_TS, signature, now=SW_NOW)
        # Signed with the first one (the published vector): accepted too.
        sig.verify_standard(keys, SW_BODY, SW_ID, SW_TS, SW_SIGNATURE, now=SW_NOW)
        # The old secret dropped from the configuration: refused.
        with pytest.raises(SignatureError):
            sig.verify_standard(keys[:1], SW_BODY, SW_ID, SW_TS, SW_SIGNATURE, now=SW_NOW)

    def test_bad_secret_configuration(self) -> None:
        with pytest.raises(ValueError, match="whsec_"):
            sig.standard_secrets("whsec_not*base64")
