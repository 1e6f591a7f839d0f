"""The one atomic writer lives in `search_space.files` (every package may import it; `latency`
writes its tables with it too); `nas` code imports it from here."""

from search_space.files import atomic_path, fsync_path, write_bytes, write_text

__all__ = ["atomic_path", "fsync_path", "write_bytes", "write_text"]
