"""Loading a TOML config file into a declared config table, with errors that name the file.

Shared by the agent's and the console's config loaders (the console depends on the agent
package; never the other way round).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from agent.configschema import ConfigError, parse_table

T = TypeVar("T")


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed document; any failure is a ConfigError whose message names ``path``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8") from None
    import tomllib  # here, not at the top: `scan` reads no config file

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None


def load_table(path: Path, table: type[T]) -> T:
    """The file at ``path`` validated against ``table``; every error names the file first."""
    data = read_toml(path)
    try:
        return parse_table(table, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
