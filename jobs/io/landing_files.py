"""What a delivered file is, seen independently of Spark: one streaming pass over its bytes.

`inspect_file` gives the file's sha256 (as delivered), whether it is gzip (by its magic bytes, not
its name), its physical line count after decompression, and where a damaged gzip stops. Ingest
compares these counts with what Spark read, so a line lost or read twice cannot balance the books.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
_HEAD_MAX = 1 << 16


@dataclass(frozen=True)
class FileFacts:
    size: int  # bytes as delivered
    sha256: str  # of the bytes as delivered
    gzip: bool  # content is gzip (whatever the name says)
    lines: int  # physical lines of the (decompressed) content, split on '\n'
    damaged: str | None  # why the gzip stream could not be read to its end, else None
    readable_bytes: int  # decompressed bytes that could be read (all of them unless damaged)
    first_line: bytes  # the first line of the content (at most 64 KiB, without its '\n')
    ends_with_newline: bool


def inspect_file(path: Path) -> FileFacts:
    """One pass: hash, sniff, gunzip (multi-member streams too) and count lines.

    A line is what Spark's text reader yields with `lineSep='\\n'`: the content split on '\\n',
    without an empty piece after a final '\\n'. A damaged gzip counts the lines decompressed
    before the damage; its last, possibly cut, line is one of them."""
    digest = hashlib.sha256()
    size = newlines = out_bytes = 0
    last_byte = b""
    head_line = b""
    head_done = False
    damaged = None
    with open(path, "rb") as handle:
        head = handle.read(2)
        handle.seek(0)
        is_gzip = head == GZIP_MAGIC
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if is_gzip else None
        while chunk := handle.read(_CHUNK):
            size += len(chunk)
            digest.update(chunk)
            if inflater is None:
                data = chunk
            elif damaged is None:
                try:
                    data = inflater.decompress(chunk)
                    while inflater.eof and inflater.unused_data:  # concatenated gzip members
                        rest = inflater.unused_data
                        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                        data += inflater.decompress(rest)
                except zlib.error as err:
                    damaged, data = f"corrupt gzip data ({err})", b""
            else:
                data = b""
            if data:
                if not head_done:
                    cut = data.find(b"\n")
                    head_line += data if cut < 0 else data[:cut]
                    head_done = cut >= 0 or len(head_line) >= _HEAD_MAX
                    head_line = head_line[:_HEAD_MAX]
                newlines += data.count(b"\n")
                out_bytes += len(data)
                last_byte = data[-1:]
        if inflater is not None and damaged is None and not inflater.eof:
            damaged = "truncated gzip (the stream ends before its end marker)"
    lines = newlines + (1 if out_bytes and last_byte != b"\n" else 0)
    return FileFacts(
        size=size,
        sha256=digest.hexdigest(),
        gzip=is_gzip,
        lines=lines,
        damaged=damaged,
        readable_bytes=out_bytes,
        first_line=head_line,
        ends_with_newline=last_byte == b"\n",
    )


def rescue_readable(path: Path, target: Path) -> None:
    """Write the decompressed bytes of a damaged gzip, up to the damage, to `target`: what can be
    read of a truncated delivery is ingested, not lost with the rest."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    with open(path, "rb") as handle, open(target, "wb") as out:
        while chunk := handle.read(_CHUNK):
            try:
                out.write(inflater.decompress(chunk))
                while inflater.eof and inflater.unused_data:
                    rest = inflater.unused_data
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    out.write(inflater.decompress(rest))
            except zlib.error:
                break
