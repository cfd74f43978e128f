"""Errors a user can cause, with messages that name the file, dataset and field."""

from __future__ import annotations

from dataclasses import dataclass


class LakelineError(Exception):
    """Base class for every error lakeline raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the metadata, located as precisely as we can."""

    file: str
    dataset: str | None
    field: str | None
    message: str
    kind: str = "dataset"  # or "gold table"

    def __str__(self) -> str:
        where = self.file
        if self.dataset:
            where += f" [{self.kind} {self.dataset}]"
        if self.field:
            where += f" field '{self.field}'"
        return f"{where}: {self.message}"


class MetadataError(LakelineError):
    """The YAML metadata (or a gold SQL file) is invalid; lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the metadata:\n{lines}")


class DataError(LakelineError):
    """The data could not be processed as the metadata describes (named dataset and step)."""


class ReconciliationError(DataError):
    """Rows read do not add up to rows written, quarantined and dropped as duplicates."""
