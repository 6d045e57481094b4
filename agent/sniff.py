"""Whether a file handed to ``scan`` is a log at all, from its first bytes.

People point ``scan`` at whatever lies in a log directory: rotated and compressed logs,
core dumps, the app's binary. Reading those as text finds nothing and can take long, so a
file whose first block is clearly not text is skipped, with a message saying what it is.
A log with some binary garbage in it is still a log: only the file's opening decides.
"""

from __future__ import annotations

# The first block looked at; logs have text from their first line.
SNIFF_BYTES = 64 << 10
# A first block with more than this share of bytes that no text log holds (control bytes,
# bytes that are no UTF-8) is binary.
_MAX_NON_TEXT = 0.3

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an ELF executable or core dump"),
    (b"\x1f\x8b", "gzip-compressed (read it with: zcat FILE | autofix-agent scan -)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed (read it with: zstdcat FILE | autofix-agent scan -)"),
    (b"BZh", "bzip2-compressed (read it with: bzcat FILE | autofix-agent scan -)"),
    (b"\xfd7zXZ\x00", "xz-compressed (read it with: xzcat FILE | autofix-agent scan -)"),
    (b"PK\x03\x04", "a zip archive"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
)
# Bytes no text log holds: NUL and the C0 controls but tab, newline, CR and escape (colour
# codes), and DEL. Text in any encoding, UTF-8 above all, has none of them.
_NON_TEXT = bytes(b for b in range(256) if (b < 32 and b not in b"\t\n\r\x1b") or b == 127)


def binary_kind(head: bytes) -> str | None:
    """What the file starting with ``head`` is when it is no text log, else None."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if not head:
        return None
    non_text = len(head) - len(head.translate(None, _NON_TEXT))
    # Bytes that are no UTF-8 (a character cut at the end of the block is not counted).
    non_text += head[:-3].decode("utf-8", "replace").count("\ufffd")
    if non_text > len(head) * _MAX_NON_TEXT:
        return f"binary ({100 * non_text // len(head)}% of its first bytes are not text)"
    return None
