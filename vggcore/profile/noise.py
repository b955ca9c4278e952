"""The profiler's native chatter kept off the user's terminal, its real errors kept on it.

    with native_stderr_filtered():
        with torch.profiler.profile(...):
            ...

torch.profiler's Kineto writes from C++ straight to file descriptor 2: a `USDT: ... profiler_start` and
`profiler_stop` line per session (14 for one `vggcore profile` on a CPU) and, on a machine without a GPU,
`ERROR: ... gpuGetDeviceCount failed with code 35`. Kineto's own log level (KINETO_LOG_LEVEL) hides its errors but
not its USDT lines, and Python's sys.stderr cannot reach a native write. So the descriptor itself is pointed at a
temporary file for the block (saved and restored with dup/dup2), and afterwards every line of it except those known
lines is written to stderr: a real error, a Python warning, anything else is kept and shown.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

# The lines dropped: Kineto's session markers and its failed GPU probe on a machine without one.
NOISE = re.compile(r"^(USDT:.*SyncActivityProfilerHandler|ERROR:.*gpuGetDeviceCount failed)")


def kept_lines(text: str) -> str:
    """`text` without the NOISE lines."""
    return "".join(line for line in text.splitlines(keepends=True) if not NOISE.match(line))


@contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Descriptor 2 into a temporary file for the block; afterwards its lines, less NOISE, to sys.stderr."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):   # a stderr without a descriptor (captured by a test): as is
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            rest = kept_lines(sink.read().decode(errors="replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()
