"""Reading a TOML config file with errors that name the file and what is wrong with it.

Shared by the agent's and the console's config loaders (the console depends on the agent
package; never the other way round).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def read_toml(path: Path, error: type[Exception]) -> dict[str, Any]:
    """The parsed document; any failure raises ``error`` with a message naming ``path``."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise error(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: config file is not UTF-8") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
