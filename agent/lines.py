"""Reading text lines from outside the agent: any line ending, bounded memory.

`iter_lines(fh)` splits a binary stream at LF, CRLF or a lone CR (files from old Mac tools
and some serial consoles use CR only: read line by line they would merge into one record)
and never holds more than `max_bytes` + one read chunk of a line: a longer line is
yielded cut to max_bytes + 1 bytes (so the caller sees it is too long) and the rest of it
is skipped without being kept.
"""

from __future__ import annotations

MAX_LINE_BYTES = 64 * 1024
CHUNK = 64 * 1024


def iter_lines(fh, max_bytes: int = MAX_LINE_BYTES, chunk: int = CHUNK):
    buf = bytearray()
    skipping = False          # inside an over-long line: drop bytes until its end
    pending_cr = False        # the previous chunk ended with CR: a LF right after belongs to it
    while True:
        data = fh.read(chunk)
        if not data:
            break
        start = 0
        if pending_cr and data[:1] == b"\n":
            start = 1
        pending_cr = False
        n = len(data)
        while start < n:
            cr, lf = data.find(b"\r", start), data.find(b"\n", start)
            ends = [i for i in (cr, lf) if i >= 0]
            if not ends:
                if not skipping:
                    buf += data[start:]
                    if len(buf) > max_bytes:
                        yield bytes(buf[:max_bytes + 1])
                        buf.clear()
                        skipping = True
                break
            end = min(ends)
            if not skipping:
                buf += data[start:end]
                yield bytes(buf[:max_bytes + 1])
            buf.clear()
            skipping = False
            if data[end:end + 1] == b"\r":
                if end + 1 < n:
                    start = end + 2 if data[end + 1:end + 2] == b"\n" else end + 1
                else:
                    pending_cr = True
                    start = n
            else:
                start = end + 1
    if buf and not skipping:
        yield bytes(buf[:max_bytes + 1])
