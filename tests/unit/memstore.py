"""An in-memory ``JsonStore`` with S3's conditional-write semantics, for unit tests of the
rules built on it (claims, status). Integration tests run the same rules on moto's S3."""

from __future__ import annotations

import itertools
from typing import Any

from worker.errors import PreconditionFailed
from worker.state.store import Versioned


class DictStore:
    """An in-memory JsonStore with S3's conditional-write semantics (etag per version)."""

    def __init__(self) -> None:
        self.docs: dict[str, Versioned] = {}
        self._etags = (f'"{n}"' for n in itertools.count())

    def create(self, key: str, doc: dict[str, Any]) -> str:
        if key in self.docs:
            raise PreconditionFailed(key)
        return self.put(key, doc)

    def replace(self, key: str, doc: dict[str, Any], etag: str) -> str:
        if key not in self.docs or self.docs[key].etag != etag:
            raise PreconditionFailed(key)
        return self.put(key, doc)

    def put(self, key: str, doc: dict[str, Any]) -> str:
        etag = next(self._etags)
        self.docs[key] = Versioned(dict(doc), etag)
        return etag

    def read(self, key: str) -> Versioned | None:
        return self.docs.get(key)
