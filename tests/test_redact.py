"""Secrets that reach error logs stop at the host; the rest of the text stays readable."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import ConfigError, parse_config
from agent.record import ErrorRecord, Frame
from agent.redact import REDACTED, Redactor, env_values, redact_record
from agent.secret_keys import secret_key

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)

# (log text, the secret that must disappear, text around it that must survive)
LEAKS: list[tuple[str, str, list[str]]] = [
    (
        "request failed: Authorization: Bearer abcDEF123456.ghiJKL789",
        "abcDEF123456.ghiJKL789",
        ["request failed:", "Authorization: Bearer "],
    ),
    (
        "headers: { authorization: 'Basic dXNlcjpodW50ZXIy', accept: '*/*' }",
        "dXNlcjpodW50ZXIy",
        ["authorization: 'Basic ", "accept: '*/*'"],
    ),
    (f"JsonWebTokenError: invalid signature for {JWT}", JWT, ["invalid signature for"]),
    (
        "MongoServerSelectionError: connect mongodb://app:s3cr3t-Pw@db-1:27017/shop failed",
        "s3cr3t-Pw",
        ["mongodb://app:", "@db-1:27017/shop failed", "MongoServerSelectionError"],
    ),
    ("redis://:hunter2pass@cache:6379 refused", "hunter2pass", ["redis://:", "@cache:6379"]),
    ("login failed password=hunter2&user=bob", "hunter2", ["login failed password=", "user=bob"]),
    ("config: DB_PASSWORD=Tr0ub4dor&3 missing", "Tr0ub4dor", ["DB_PASSWORD=", "missing"]),
    ('body {"user":"bob","password":"hunter2","age":3}', "hunter2", ['"user":"bob"', '"age":3']),
    ('msg: "{\\"access_token\\":\\"at-99887766\\",\\"ok\\":1}"', "at-99887766", ["ok"]),
    ("{ username: 'bob', passwd: 'letmein', role: 'admin' }", "letmein", ["role: 'admin'"]),
    ("pwd=s3cr3t; path=/", "s3cr3t", ["pwd=", "path=/"]),
    ("GET /api/reset?token=a1b2c3d4e5&next=/home", "a1b2c3d4e5", ["GET /api/reset?token=", "next"]),
    ("refresh_token: 'rt.8f7e6d5c4b3a'", "rt.8f7e6d5c4b3a", ["refresh_token: '"]),
    ("client_secret=cs_0123456789abcdef", "cs_0123456789abcdef", ["client_secret="]),
    ("apiKey: 'k-1234567890', region: 'eu'", "k-1234567890", ["apiKey: '", "region: 'eu'"]),
    ("x-api-key: 7f3a9c2e1b", "7f3a9c2e1b", ["x-api-key: "]),
    ("Cookie: connect.sid=s%3Aabc123; theme=dark", "s%3Aabc123", ["Cookie: "]),
    ('{"set-cookie":"session=xyz789; HttpOnly"}', "xyz789", ['"set-cookie":"']),
    ("sessionId=9f8e7d6c5b4a failed", "9f8e7d6c5b4a", ["sessionId=", "failed"]),
    ("private_key: 'abcDEF0123'", "abcDEF0123", ["private_key: '"]),
    (
        f"loaded key {PEM} from env",
        "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun",
        ["loaded key", "from env", "PRIVATE KEY"],
    ),
    ("AWS creds AKIAIOSFODNN7EXAMPLE rejected", "AKIAIOSFODNN7EXAMPLE", ["AWS creds", "rejected"]),
    ("sts ASIAY34FZKBOKMUTVV7A expired", "ASIAY34FZKBOKMUTVV7A", ["sts", "expired"]),
    (
        "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ["aws_secret_access_key="],
    ),
    (
        "{ secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' }",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ["secretAccessKey: '"],
    ),
    (
        "git push with ghp_16C7e42F292c6912E7710c838347Ae178B4a failed",
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
        ["git push with", "failed"],
    ),
    (
        "token github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz used",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        ["used"],
    ),
    ("gho_abcdefghijklmnopqrstuvwxyz0123 / ghs_ABCDEFGHIJKLMNOPQRSTUV0123", "gho_abcdef", []),
    (
        "slack xoxb-2048-4096-AbCdEfGhIjKl failed",
        "xoxb-2048-4096-AbCdEfGhIjKl",
        ["slack", "failed"],
    ),
    ("slack app xapp-1-A01-123-abcdef", "xapp-1-A01-123-abcdef", ["slack app"]),
    (
        "POST https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX 404",
        "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        ["POST https://hooks.slack.com/services/", " 404"],
    ),
    (
        "Error: Stripe rejected sk_live_51H8xYzAbCdEfGhIjKlMnOp in charge",
        "sk_live_51H8xYzAbCdEfGhIjKlMnOp",
        ["Stripe rejected", "in charge"],
    ),
    ("using sk_test_4eC39HqLyjWDarjtT1zdp7dc", "sk_test_4eC39HqLyjWDarjtT1zdp7dc", ["using"]),
    ("restricted rk_live_51AbCdEfGh1234567890", "rk_live_51AbCdEfGh1234567890", ["restricted"]),
    (
        "webhook whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw bad",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ["webhook", "bad"],
    ),
    (
        "anthropic 401 for sk-ant-api03-AbCdEf0123456789_xyz-QRST",
        "sk-ant-api03-AbCdEf0123456789_xyz-QRST",
        ["anthropic 401 for"],
    ),
    (
        "openai 401 sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123",
        "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx0123",
        ["openai 401"],
    ),
    (
        "maps key AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI denied",
        "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI",
        ["maps key", "denied"],
    ),
    ("charge failed for card 4111 1111 1111 1111 (visa)", "4111 1111 1111 1111", ["(visa)"]),
    ("card=5555-5555-5555-4444 declined", "5555-5555-5555-4444", ["declined"]),
    ("amex 378282246310005 ok", "378282246310005", ["amex", "ok"]),
    ('{"password":"a1","passwordConfirm":"Hunter2x!"}', "Hunter2x!", ['"passwordConfirm":"']),
    ("{ newPasswordRepeat: 'Tr0ub4dor#9' }", "Tr0ub4dor#9", ["newPasswordRepeat: '"]),
    ("new_password_repeat=pw_Zk29xx&lang=de", "pw_Zk29xx", ["new_password_repeat=", "lang=de"]),
    ("mongodb://shop:ab/cd9Zq@db-1:27017/shop", "ab/cd9Zq", ["mongodb://shop:", "@db-1:27017"]),
    (
        "GET https://api.telegram.org/bot7595045983:AA5fcLQAaXMclRxCAUEf0a1b2c3d4e5f6g7/getMe",
        "7595045983:AA5fcLQAaXMclRxCAUEf0a1b2c3d4e5f6g7",
        ["https://api.telegram.org/bot", "/getMe"],
    ),
    (
        "AccountName=acme;AccountKey=Zm9vYmFy+YmF6/cXV4==;EndpointSuffix=core.windows.net",
        "Zm9vYmFy+YmF6/cXV4==",
        ["AccountName=acme;AccountKey=", ";EndpointSuffix"],
    ),
    ("blob?sv=2022-11-02&sig=abc%2Bdef123%3D&sp=r", "abc%2Bdef123%3D", ["sv=2022-11-02", "sp=r"]),
    ("Ocp-Apim-Subscription-Key: 7169169c57832f21", "7169169c57832f21", ["Ocp-Apim"]),
    (
        "POST https://discord.com/api/webhooks/1234567890123456789/AbC-dEf_gHi 429",
        "AbC-dEf_gHi",
        ["https://discord.com/api/webhooks/", " 429"],
    ),
    ("clone failed glpat-HDB0xYHAAZLnqm1B0znK", "glpat-HDB0xYHAAZLnqm1B0znK", ["clone failed"]),
    (
        "401 SG.o1cUeC-aKrLDhxT9yc_FxP.cmmQ0aBcDeFgHiJkLmNoPq",
        "SG.o1cUeC-aKrLDhxT9yc_FxP.cmmQ0aBcDeFgHiJkLmNoPq",
        ["401"],
    ),
    (
        "403 npm_neHJrSvrJVijmzeADJ4Tagkl6L0a1b2c3d4e",
        "npm_neHJrSvrJVijmzeADJ4Tagkl6L0a1b2c3d4e",
        ["403"],
    ),
    ("401 hf_QKvWp1ACutYvIRu7H8j3H5LHolIabcd", "hf_QKvWp1ACutYvIRu7H8j3H5LHolIabcd", ["401"]),
    ("'set-cookie': [ 'connect.sid=s%3Aql3c0c.Lx9; Path=/' ]", "s%3Aql3c0c.Lx9", ["set-cookie"]),
    ("GET /legacy/login?user=bob&pass=P62JMzrGT!9&remember=1", "P62JMzrGT!9", ["remember=1"]),
    (
        "GET /api/password/reset/1d356747ef6ba0bc164b7121aac8c4e2",
        "1d356747ef6ba0bc164b7121aac8c4e2",
        ["GET /api/password/reset/"],
    ),
    (
        "parsing {\\u0022user\\u0022:\\u0022bob\\u0022,"
        "\\u0022password\\u0022:\\u0022ZYi4c4aS\\u0022}",
        "ZYi4c4aS",
        ["bob"],
    ),
]


@pytest.mark.parametrize(("text", "secret", "kept"), LEAKS, ids=[s[:24] for _, s, _ in LEAKS])
def test_secret_is_removed_and_context_survives(text: str, secret: str, kept: list[str]) -> None:
    out = Redactor().redact(text)
    assert secret not in out
    assert REDACTED in out
    for fragment in kept:
        assert fragment in out, f"{fragment!r} lost from {out!r}"


@pytest.mark.parametrize(("text", "secret", "kept"), LEAKS, ids=[s[:24] for _, s, _ in LEAKS])
def test_redacting_twice_equals_once(text: str, secret: str, kept: list[str]) -> None:
    redactor = Redactor()
    once = redactor.redact(text)
    assert redactor.redact(once) == once


CLEAN = [
    "Cannot read properties of undefined (reading 'token')",
    "Cannot read properties of null (reading 'password')",
    "TypeError: req.session.user is not a function",
    "JsonWebTokenError: invalid token: jwt malformed",
    "TokenExpiredError: jwt expired",
    "Error: STRIPE_SECRET_KEY is not set",
    "Unexpected token u in JSON at position 0",
    "Unexpected token '<', \"<!DOCTYPE \"... is not valid JSON",
    "connect ECONNREFUSED 127.0.0.1:5999",
    "order 4111111111111112 not found",  # 16 digits, fails Luhn: an id, not a card
    "request id 1795659142646 took 1500ms",
    "password: undefined",
    "token=null",
    "Basic authentication is disabled",
    "Bearer token missing from request",
    "    at AuthService.verifyToken (/srv/pa/current/src/auth.js:42:11)",
    "    at Object.<anonymous> (/srv/pa/node_modules/jsonwebtoken/verify.js:75:21)",
    "author=bob tokenCount=5 keyboard=us",
    "GET /api/auth/session 500",
    "cannot fetch token: 401 Unauthorized",
    "{ keyboard: 'de-neo', primaryKey: 'user_id', tokenCount: 512 }",
    "    at AuthService.verifyToken (/srv/pa/current/src/auth/session.js:120:17)",
    "order 64b7f3a2c9e1d45f8a0b1c2d not found (request 8c1e4b7a-2d3f-4e5a-9b6c-7d8e9f0a1b2c)",
    "GET /api/orders/64b7f3a2c9e1d45f8a0b1c2d 404",
    "{ passwordMinLength: 12, SESSION_TIMEOUT: 30, tokenizer: 'wordpiece' }",
    "Password reset requested but the token expired; session ended for user 42",
    "key: 'email'",
    "",
]


@pytest.mark.parametrize("text", CLEAN)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert Redactor().redact(text) == text


def test_extra_patterns_replace_whole_match() -> None:
    redactor = Redactor([r"acct-\d{6}", r"(?i)internal\s+code\s+\w+"])
    out = redactor.redact("acct-123456 hit INTERNAL code ZX9 at edge")
    assert out == f"{REDACTED} hit {REDACTED} at edge"
    assert redactor.redact(out) == out


def test_invalid_extra_pattern_names_the_pattern() -> None:
    with pytest.raises(ValueError, match=r"pattern 'acct-.*' is not valid"):
        Redactor([r"acct-(\d"])


@pytest.mark.parametrize(
    "text",
    [
        "\x00\x01\x02 password=\x00secret\x7f",
        "\ud800 lone surrogate token=abc123",
        "password=" + "a" * 200_000,
        '"password":"' + "x" * 10_000,  # unterminated quote
        "-----BEGIN PRIVATE KEY-----" + "A" * 100_000,  # key block without an end
        "=" * 50_000 + ":" * 50_000,
        "\n".join(["token: x"] * 5_000),
        "4" * 10_000,
    ],
)
def test_weird_input_never_crashes(text: str) -> None:
    out = Redactor().redact(text)
    assert isinstance(out, str)
    assert Redactor().redact(out) == out


def test_non_string_input_is_converted_not_rejected() -> None:
    redactor = Redactor()
    assert redactor.redact(None) == ""  # type: ignore[arg-type]
    assert redactor.redact(12) == "12"  # type: ignore[arg-type]


def test_unterminated_key_block_is_cut_to_the_end() -> None:
    out = Redactor().redact("key: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBk")
    assert "MHcCAQEEIBk" not in out
    assert out.startswith("key: -----BEGIN EC PRIVATE KEY-----")


def test_clean_text_is_fast() -> None:
    redactor = Redactor(["acct-\\d{6}"])
    line = "    at OrderService.process (/srv/pa/current/src/orders/service.js:120:17)\n"
    text = "TypeError: Cannot read properties of undefined (reading 'sku')\n" + line * 30
    start = time.perf_counter()
    for _ in range(1_000):
        assert redactor.redact(text) == text
    elapsed = time.perf_counter() - start
    # ~2.3 MB of stack text; generous for a shared machine, far below a per-line budget.
    assert elapsed < 2.0, f"{elapsed:.2f}s for 1000 clean records"


def test_redact_record_covers_every_text_field() -> None:
    record = ErrorRecord(
        error_type="Error",
        message="auth failed password=hunter2",
        stack=[
            "    at login (/srv/pa/current/src/auth.js:3:9)",
            f"    at verify (/srv/pa/current/src/jwt.js:9:1) {JWT}",
        ],
        frames=[Frame("login", "/srv/pa/current/src/auth.js", 3, 9)],
        route="POST /api/login?token=a1b2c3d4e5",
        timestamp="2026-11-01T12:00:00.000Z",
        raw="ERROR POST /api/login?token=a1b2c3d4e5\nauth failed password=hunter2",
    )
    out = redact_record(record, Redactor())
    dumped = repr(out)
    for secret in ("hunter2", JWT, "a1b2c3d4e5"):
        assert secret not in dumped
    assert out.route == f"POST /api/login?token={REDACTED}"
    assert out.stack[0] == record.stack[0]
    assert out.frames == record.frames
    assert out.timestamp == record.timestamp
    assert record.message == "auth failed password=hunter2", "the input record is not mutated"


def test_redact_record_keeps_missing_route() -> None:
    out = redact_record(ErrorRecord(error_type="Error", message="x"), Redactor())
    assert out.route is None
    assert out.message == "x"


@pytest.mark.parametrize(
    ("key", "verdict"),
    [
        ("password", True),
        ("passwordConfirm", True),
        ("newPasswordRepeat", True),
        ("new_password_repeat", True),
        ("PASSWORD_NEW_REPEAT", True),
        ("confirm_password", True),
        ("x-api-key", True),
        ("Ocp-Apim-Subscription-Key", True),
        ("AccountKey", True),
        ("SharedAccessKey", True),
        ("sig", True),
        ("X-Amz-Signature", True),
        ("connect.sid", True),
        ("JSESSIONID", True),
        ("headers.authorization", True),
        ("accesstoken", True),
        ("keyboard", False),
        ("primaryKey", False),
        ("sortKey", False),
        ("tokenCount", False),
        ("passwordMinLength", False),
        ("SESSION_TIMEOUT", False),
        ("JsonWebTokenError", False),
        ("tokenizer", False),
        ("author", False),
        ("session.js", False),
        ("key", None),
    ],
)
def test_key_names_denote_a_credential_in_any_case_and_word_order(
    key: str, verdict: bool | None
) -> None:
    assert secret_key(key) is verdict


def test_private_key_printed_over_continuation_lines_goes_whole() -> None:
    body = ["MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj", "Zm9v=="]
    stack = [
        "    at sign (/srv/pa/current/src/sign.js:10:5) {",
        "  signingKey: '-----BEGIN PRIVATE KEY-----\\n' +",
        f"    '{body[0]}\\n' +",
        f"    '{body[1]}\\n' +",
        "    '-----END PRIVATE KEY-----\\n',",
        "  code: 'ERR_OSSL_UNSUPPORTED'",
        "}",
    ]
    record = ErrorRecord(error_type="Error", message="unsupported", stack=stack)
    out = redact_record(record, Redactor())
    assert len(out.stack) == len(stack), "line structure is kept"
    assert not any(part in line for part in body for line in out.stack)
    assert out.stack[0] == stack[0]
    assert out.stack[2] == f"    '{REDACTED}\\n' +"
    assert out.stack[5] == "  code: 'ERR_OSSL_UNSUPPORTED'"


def test_private_key_without_end_stops_at_the_first_line_that_is_not_key_body() -> None:
    text = "key: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBk0a1b2\n    at load (/srv/x.js:1:2)"
    out = Redactor().redact(text)
    assert "MHcCAQEEIBk0a1b2" not in out
    assert out.endswith("\n    at load (/srv/x.js:1:2)")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=40),
            st.sampled_from(
                [
                    "password=",
                    "'set-cookie': [",
                    "]",
                    "-----BEGIN PRIVATE KEY-----",
                    "-----END PRIVATE KEY-----",
                    "\\u0022token\\u0022:\\u0022",
                    "://u:",
                    "@h",
                    "/reset/",
                    "0a1B2c3D4e5F6g7H8i9J",
                    "'",
                    '"',
                    "\n",
                    " +",
                ]
            ),
        ),
        max_size=12,
    ).map("".join)
)
def test_redaction_keeps_every_line_break(text: str) -> None:
    assert Redactor().redact(text).count("\n") == text.count("\n")


def test_values_from_env_go_verbatim_and_in_their_escaped_spellings() -> None:
    value = 'pa/ss "w0rd"'
    redactor = Redactor(
        values=env_values(["DB_PASSWORD", "UNSET", "SHORT"], {"DB_PASSWORD": value, "SHORT": "abc"})
    )
    for text in (
        f"login with {value} failed",
        'body {"p":"pa/ss \\"w0rd\\""}',
        "url ?p=pa%2Fss%20%22w0rd%22 refused",
    ):
        out = redactor.redact(text)
        assert "w0rd" not in out, out
        assert REDACTED in out
    assert redactor.redact("abc stays abc") == "abc stays abc", "short values are not removed"


def test_values_from_env_config_is_validated_with_the_key_named() -> None:
    config = parse_config({"redaction": {"values_from_env": ["DB_PASSWORD", "STRIPE_KEY"]}})
    assert config.redaction.values_from_env == ("DB_PASSWORD", "STRIPE_KEY")
    with pytest.raises(
        ConfigError, match=r"^redaction\.values_from_env\[1\]: 'DB PASSWORD' is not"
    ):
        parse_config({"redaction": {"values_from_env": ["OK", "DB PASSWORD"]}})
    with pytest.raises(ConfigError, match=r"^redaction\.values_from_env: must be a list"):
        parse_config({"redaction": {"values_from_env": "DB_PASSWORD"}})
    with pytest.raises(ConfigError, match=r"^redaction\.values_from_env\[0\]: must be a string"):
        parse_config({"redaction": {"values_from_env": [3]}})
