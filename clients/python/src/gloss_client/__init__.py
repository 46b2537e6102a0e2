"""Python client of a Gloss annotation cluster.

    from gloss_client import Client

    gloss = Client("127.0.0.1:7070", token="glt_...")
    gloss.create_project("news")
    summary = gloss.import_records("news", "raw", [{"text": "One fine day"}])
    df = gloss.to_pandas("news", "raw")

:class:`Client` wraps the generated stubs of :mod:`gloss_client.v1` (made from the repository's
``proto/`` when the package is built) and returns their protobuf messages; exports yield dicts.
Errors are :class:`GlossError` and its subclasses.
"""

from .client import Client, new_idempotency_key
from .errors import (
    GlossError,
    ImportInterrupted,
    ImportRejected,
    InvalidRecord,
    NoServerAvailable,
    WriteOutcomeUnknown,
)

__all__ = [
    "Client",
    "GlossError",
    "ImportInterrupted",
    "ImportRejected",
    "InvalidRecord",
    "NoServerAvailable",
    "WriteOutcomeUnknown",
    "new_idempotency_key",
]
__version__ = "0.1.0"
