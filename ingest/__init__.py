"""fumewatch ingest: MQTT readings (JSON and HJ 212-2017) -> validated Readings -> store.

Public surface: :class:`Reading`, :class:`DeadLetter`, :func:`load_settings`, :func:`open_store`,
:class:`Registry`, :class:`IngestService`. Everything else is private to the package.
"""

from ingest.model import DeadLetter, Reading

__all__ = ["DeadLetter", "Reading"]
__version__ = "0.1.0"
