"""The ``otlp`` source key: the address forms it takes and the errors that name it."""

from __future__ import annotations

import pytest

from agent.config import ConfigError, OtlpConfig, parse_config


def _sources(*sources: dict) -> dict:
    return {"sources": list(sources)}


@pytest.mark.parametrize(
    ("given", "host", "port"),
    [
        ("127.0.0.1:4318", "127.0.0.1", 4318),
        ("0.0.0.0:14318", "0.0.0.0", 14318),
        ("[::1]:4318", "::1", 4318),
        ("localhost:4318", "localhost", 4318),
        ("4318", "127.0.0.1", 4318),
    ],
)
def test_an_otlp_source_listens_where_its_address_says(given: str, host: str, port: int) -> None:
    (src,) = parse_config(_sources({"otlp": given})).sources
    assert src.otlp == OtlpConfig(host, port)
    assert src.service == "unknown_service"
    assert src.label == f"otlp {f'[{host}]' if ':' in host else host}:{port}"


def test_an_otlp_source_may_name_the_service_of_records_without_one() -> None:
    (src,) = parse_config(_sources({"otlp": "4318", "service": "edge"})).sources
    assert (src.service, src.label) == ("edge", "otlp 127.0.0.1:4318")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"otlp": 4318}, r"sources\[0\]\.otlp: must be an address"),
        ({"otlp": "127.0.0.1:0"}, r"sources\[0\]\.otlp: port must be a number from 1 to 65535"),
        ({"otlp": "127.0.0.1:http"}, r"sources\[0\]\.otlp: port must be a number"),
        ({"otlp": "[::1]4318"}, r"sources\[0\]\.otlp: '\[::1\]4318' must look like \[::1\]:4318"),
        ({"otlp": "bad host!:4318"}, r"sources\[0\]\.otlp: 'bad host!' is not an IP address"),
        ({"otlp": "4318", "paths": ["/x"]}, r"sources\[0\]\.otlp: a source has one of"),
    ],
)
def test_a_bad_otlp_source_is_refused_naming_the_key(source: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_sources(source))


def test_two_otlp_sources_cannot_listen_on_one_address() -> None:
    with pytest.raises(ConfigError, match=r"sources\[1\]\.otlp: another otlp source already"):
        parse_config(_sources({"otlp": "4318"}, {"otlp": "127.0.0.1:4318"}))
