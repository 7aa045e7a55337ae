"""What an import is asked to do (its mode) and what it did (its report: counts, and issues tallied by problem)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from directory.imports.row_rules import Issue


@dataclass(frozen=True)
class ImportMode:
    """How to import: preview only, keep the valid rows when some are bad, unpublish listings not in the file."""

    dry_run: bool = False
    skip_invalid: bool = False
    replace: bool = False

    @property
    def label(self) -> str:
        """A short name for history and messages, e.g. "skip-invalid+replace"."""
        parts = [name for name, on in (("dry-run", self.dry_run), ("skip-invalid", self.skip_invalid),
                                       ("replace", self.replace)) if on]
        return "+".join(parts) or "strict"


REPORTED_IN_FULL = 1000  # issues of each sort kept whole in a report; all of them are counted, and in the errors CSV

# What varies from row to row inside a message: quoted values, and numbers and codes with digits in them.
_ROW_VALUES = re.compile(r"'[^']*'|\"[^\"]*\"|[\w-]*\d(?:,?[\w-])*")


def problem(issue: Issue) -> str:
    """An issue's message with its row's values left out, e.g. "ZIP code … is not in our US postcode data.": what
    issues are counted by. Messages come from a fixed set of templates, so there are few such problems."""
    return _ROW_VALUES.sub("…", issue.message)


@dataclass
class IssueTally:
    """Issues of one sort (errors or warnings): the first REPORTED_IN_FULL as they are, and every one counted by
    field and problem, so that a file of a million bad rows costs a count, not a million messages."""

    first: list[Issue] = field(default_factory=list)
    total: int = 0
    by_problem: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, issues: list[Issue]) -> None:
        """Count issues, keeping them whole while fewer than REPORTED_IN_FULL are kept."""
        self.total += len(issues)
        self.first += issues[:REPORTED_IN_FULL - len(self.first)]
        self.by_problem.update((issue.field, problem(issue)) for issue in issues)

    def counts(self) -> list[dict[str, Any]]:
        """Counts by field and problem, the most frequent first."""
        return [{"field": name, "problem": text, "count": count}
                for (name, text), count in self.by_problem.most_common()]

    def as_dict(self) -> dict[str, Any]:
        """JSON form: the total, the first issues whole, the counts."""
        return {"total": self.total, "first": [issue.as_dict() for issue in self.first], "counts": self.counts()}


@dataclass
class ImportReport:
    """What an import did, or (dry run, rejected) would have done."""

    mode: ImportMode
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unpublished: int = 0
    rejected: int = 0
    written: bool = False
    warnings: IssueTally = field(default_factory=IssueTally)
    errors: IssueTally = field(default_factory=IssueTally)
    errors_csv: str = ""  # each rejected row once, with its problems; empty when no row was rejected
    run_id: int | None = None
    index_error: str | None = None  # why the written rows are not searchable yet, when they are not

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the CLI's --json)."""
        return {
            "mode": self.mode.label, "written": self.written, "rows": self.rows, "created": self.created,
            "updated": self.updated, "unchanged": self.unchanged, "unpublished": self.unpublished,
            "rejected": self.rejected, "warnings": self.warnings.as_dict(), "errors": self.errors.as_dict(),
            "run_id": self.run_id, "index_error": self.index_error,
        }


def summary(report: ImportReport) -> str:
    """One line of counts (of a run of the history too)."""
    return (f"{report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
            f"{report.unpublished} unpublished, {report.rejected} rejected")
