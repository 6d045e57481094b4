"""Which key names denote a credential: ``passwordConfirm`` does, ``keyboard`` does not.

A key is split into words (camelCase, snake_case, kebab-case, dotted paths), so any case
and word order is seen the same way: ``new_password_repeat``, ``newPasswordRepeat`` and
``PASSWORD_NEW_REPEAT`` all hold a password. A last word such as ``count`` or ``length``
makes the key describe a credential rather than hold one (``tokenCount``,
``passwordMinLength``), and ``key`` counts only after a word that makes it a secret
(``x-api-key``, ``AccountKey``), never ``primaryKey`` or ``sortKey``.
"""

from __future__ import annotations

import re

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# A whole word of the key that makes it a credential.
_SECRET_WORDS = frozenset(
    [
        "password",
        "passwords",
        "passwd",
        "pass",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "tokens",
        "credential",
        "credentials",
        "creds",
        "auth",
        "authorization",
        "cookie",
        "cookies",
        "session",
        "sessions",
        "sid",
        "sessid",
        "sig",
        "signature",
        "apikey",
    ]
)
# One-word keys that end in a credential (accesstoken, jsessionid, newpassword, apikey).
_SECRET_ENDINGS = (
    "password",
    "passwd",
    "secret",
    "token",
    "apikey",
    "accesskey",
    "privatekey",
    "secretkey",
    "accountkey",
    "subscriptionkey",
    "sessionid",
    "sessid",
    "cookie",
    "credential",
    "credentials",
    "signature",
)
_SECRET_STARTS = ("password", "passwd", "passphrase", "secret", "credential")
# Words before "key" that make it a credential (x-api-key, AccountKey, SharedAccessKey).
_KEY_QUALIFIERS = frozenset(
    [
        "api",
        "access",
        "secret",
        "private",
        "account",
        "subscription",
        "signing",
        "encryption",
        "master",
        "client",
        "app",
        "license",
        "shared",
        "storage",
        "auth",
        "session",
        "webhook",
        "hmac",
        "service",
        "sas",
        "ssh",
    ]
)
# A last word that makes the key describe a credential rather than hold one.
_DESCRIBING_WORDS = frozenset(
    [
        "count",
        "counts",
        "type",
        "types",
        "length",
        "len",
        "size",
        "expiry",
        "expires",
        "expired",
        "expiration",
        "ttl",
        "name",
        "names",
        "field",
        "fields",
        "policy",
        "hint",
        "required",
        "rules",
        "rule",
        "min",
        "max",
        "age",
        "at",
        "mode",
        "format",
        "version",
        "status",
        "strength",
        "enabled",
        "disabled",
        "changed",
        "updated",
        "created",
        "file",
        "path",
        "url",
        "uri",
        "endpoint",
        "attempts",
        "retries",
        "valid",
        "invalid",
        "missing",
        "error",
        "errors",
        "exception",
        "lifetime",
        "algorithm",
        "alg",
        "scheme",
        "method",
        "provider",
        "strategy",
        "limit",
        "timeout",
        "index",
        "schema",
        "label",
        "placeholder",
        "visible",
        "prompt",
        "store",
        "storage",
        "header",
        "headers",
        "in",
        "js",
        "mjs",
        "cjs",
        "jsx",
        "ts",
        "tsx",
        "py",
        "rb",
        "go",
        "java",
        "php",
        "json",
        "yml",
        "yaml",
        "toml",
    ]
)


def _key_words(key: str) -> list[str]:
    return [w.lower() for w in _WORD_SPLIT.split(key) if w]


def secret_key(key: str) -> bool | None:
    """Whether a key name denotes a credential: True, False, or None for a bare ``key``.

    A bare ``key`` (``key=...``, ``{ key: 'email' }``) is too common for ordinary lookups
    to decide on its name alone; its value has to look like a credential as well.
    """
    words = _key_words(key)
    if not words:
        return False
    if len(words) > 1 and words[-1] in _DESCRIBING_WORDS:
        return False
    if words == ["key"] or words == ["keys"]:
        return None
    for i, word in enumerate(words):
        if word in _SECRET_WORDS:
            return True
        if word in ("key", "keys") and i > 0 and words[i - 1] in _KEY_QUALIFIERS:
            return True
        if word.endswith(_SECRET_ENDINGS) or word.startswith(_SECRET_STARTS):
            return True
    return False
