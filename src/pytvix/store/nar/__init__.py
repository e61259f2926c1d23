"""Streaming NAR (Nix ARchive) reader and writer.

See `reader` (parse, validate, stream file contents), `writer` (emit), `tokens` (wire format),
`sizes` (encoded sizes without writing) and `io` (byte source/sink protocols and adapters).
"""

from pytvix.store.nar.errors import NarError, NarTruncatedError, NarUsageError, NarWriteError
from pytvix.store.nar.io import (
    ByteSink,
    ByteSource,
    BytesSource,
    FileSink,
    FileSource,
    HashingSink,
    ListSink,
)
from pytvix.store.nar.reader import NarDirectory, NarFile, NarNode, NarReader, NarSymlink
from pytvix.store.nar.writer import NarDirectoryWriter, NarNodeWriter, NarWriter

__all__ = [
    "ByteSink",
    "ByteSource",
    "BytesSource",
    "FileSink",
    "FileSource",
    "HashingSink",
    "ListSink",
    "NarDirectory",
    "NarDirectoryWriter",
    "NarError",
    "NarFile",
    "NarNode",
    "NarNodeWriter",
    "NarReader",
    "NarSymlink",
    "NarTruncatedError",
    "NarUsageError",
    "NarWriteError",
    "NarWriter",
]
