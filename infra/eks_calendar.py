"""EKS's Kubernetes version calendar: release, end of standard support, end of extended support, AL2 AMIs.

Every judgement of a version (config validation, `invoke plan/preview/up` warnings, the upgrade planner,
add-on and autoscaler pins) reads this one table against today's date, so a stack file that was creatable
when written is refused on the day EKS stops creating its version, not 20 minutes into a `pulumi up`.

Sources, checked 2026-12-05:
- "Understand the Kubernetes version lifecycle on EKS", Amazon EKS release calendar table
  (https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html; awsdocs/amazon-eks-user-guide
  latest/ug/versioning/kubernetes-versions.adoc) for 1.29 .. 1.34;
- the same table as copied on 2026-04-24 by aws-samples' eks-operation-review calendar and endoflife.date/amazon-eks
  for 1.35's end dates (its EKS release day derived: end of standard support minus 14 months);
- 1.36: EKS release 2026-06-02 from a secondary source (devopsdreams, 2026-08-16); both end dates derived with
  EKS's rule (14 months standard + 12 months extended) and marked estimated.
- AL2: EKS publishes no Amazon Linux 2 AMIs for Kubernetes 1.33 and later ("Review release notes for Kubernetes
  versions on extended support", Kubernetes 1.33).
- Cost: $0.10 per cluster-hour in standard support, $0.60 in extended support (Amazon EKS pricing; AWS containers
  blog "Amazon EKS extended support for Kubernetes versions pricing").
`invoke cluster.versions --refresh` compares this table with EKS's DescribeClusterVersions where credentials exist.

Dates are UTC days: extended support (and its billing) starts on the end-of-standard day, and on the
end-of-extended day EKS no longer creates clusters of the version and auto-upgrades existing ones.
No pulumi and no boto3 here.
"""
from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date

CHECKED = date(2026, 12, 5)
STANDARD_MONTHS, EXTENDED_MONTHS = 14, 12
STANDARD_USD_PER_HOUR, EXTENDED_USD_PER_HOUR = 0.10, 0.60
HOURS_PER_MONTH = 730  # 8760 hours / 12, as AWS's pricing examples count a month
TODAY_VARIABLE = "EKS_PLATFORM_TODAY"
DOCS = "https://docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html"


class UnknownVersion(ValueError):
    """A Kubernetes minor the calendar has no row for: nothing can be said about its support."""


class BadToday(ValueError):
    """EKS_PLATFORM_TODAY is set to something that is not a date."""


class Support(enum.Enum):
    UNRELEASED = "not yet on EKS"
    STANDARD = "standard support"
    EXTENDED = "extended support"
    ENDED = "ended"


def add_months(day: date, months: int) -> date:
    """The same day of the month `months` later (clamped to the month's last day), as EKS counts support."""
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days
    return date(year, month, min(day.day, last))


@dataclass(frozen=True)
class Release:
    """One Kubernetes minor on EKS."""

    minor: int
    released: date
    end_of_standard: date
    end_of_extended: date
    al2: bool
    estimated: bool = False
    source: str = "EKS release calendar"

    @classmethod
    def derived(cls, minor: int, released: date, al2: bool, source: str) -> Release:
        """A row whose end dates EKS has not published yet: 14 months standard, then 12 extended."""
        standard = add_months(released, STANDARD_MONTHS)
        return cls(minor, released, standard, add_months(standard, EXTENDED_MONTHS), al2, True, source)

    @property
    def version(self) -> str:
        return f"1.{self.minor}"

    def support(self, today: date) -> Support:
        if today < self.released:
            return Support.UNRELEASED
        if today < self.end_of_standard:
            return Support.STANDARD
        if today < self.end_of_extended:
            return Support.EXTENDED
        return Support.ENDED

    def creatable(self, today: date) -> bool:
        return self.support(today) in (Support.STANDARD, Support.EXTENDED)

    def phase_end(self, today: date) -> date | None:
        """When the current support phase ends (None once support has ended)."""
        return {Support.UNRELEASED: self.released, Support.STANDARD: self.end_of_standard,
                Support.EXTENDED: self.end_of_extended}.get(self.support(today))

    def days_left(self, today: date) -> int | None:
        end = self.phase_end(today)
        return (end - today).days if end else None


def extended_extra_usd_per_month() -> float:
    """What a month in extended support costs on top of standard support, per cluster."""
    return round((EXTENDED_USD_PER_HOUR - STANDARD_USD_PER_HOUR) * HOURS_PER_MONTH, 2)


@dataclass(frozen=True)
class Calendar:
    """The releases by minor; lookups refuse a version the table lacks instead of guessing."""

    releases: tuple[Release, ...]

    @property
    def minors(self) -> range:
        known = sorted(r.minor for r in self.releases)
        return range(known[0], known[-1] + 1)

    def get(self, minor: int) -> Release | None:
        return next((r for r in self.releases if r.minor == minor), None)

    def release(self, minor: int) -> Release:
        found = self.get(minor)
        if found is None:
            raise UnknownVersion(f"Kubernetes 1.{minor} is not in the EKS version calendar (it knows "
                                 f"1.{self.minors.start}..1.{self.minors.stop - 1}, checked {CHECKED}); add its row "
                                 f"to infra/eks_calendar.py from {DOCS}")
        return found

    def creatable(self, today: date) -> list[Release]:
        return [r for r in sorted(self.releases, key=lambda r: r.minor) if r.creatable(today)]

    def newest_creatable(self, today: date) -> Release | None:
        found = self.creatable(today)
        return found[-1] if found else None

    def standard_target(self, minor: int, today: date) -> Release | None:
        """The oldest version after `minor` (or `minor` itself) that is in standard support today: where an upgrade
        should go to stop paying for extended support with the fewest steps."""
        ordered = sorted(self.releases, key=lambda r: r.minor)
        return next((r for r in ordered if r.minor >= minor and r.support(today) is Support.STANDARD), None)

    def merged(self, rows: Iterable[Release]) -> Calendar:
        """This table updated with rows EKS returned (DescribeClusterVersions); EKS's dates win, the AL2 column
        stays ours (the API does not say), and a row EKS publishes is no longer an estimate."""
        ours = {r.minor: r for r in self.releases}
        for row in rows:
            known = ours.get(row.minor)
            ours[row.minor] = replace(row, al2=known.al2 if known else row.al2)
        return Calendar(tuple(sorted(ours.values(), key=lambda r: r.minor)))


def differences(ours: Calendar, fetched: Iterable[Release]) -> list[str]:
    """Where EKS's answer differs from this table, one line per minor (what to update in the table)."""
    lines = []
    for row in sorted(fetched, key=lambda r: r.minor):
        known = ours.get(row.minor)
        if known is None:
            lines.append(f"{row.version} is on EKS but not in the table (released {row.released})")
            continue
        changed = [f"{name} {getattr(known, name)} -> {getattr(row, name)}"
                   for name in ("released", "end_of_standard", "end_of_extended")
                   if getattr(known, name) != getattr(row, name)]
        if changed:
            lines.append(f"{row.version}: {', '.join(changed)}")
    return lines


def cost_line(today: date) -> str:
    return (f"Judged on {today} (EKS_PLATFORM_TODAY to pick another day). A cluster costs "
            f"${STANDARD_USD_PER_HOUR:.2f} per hour in standard support and ${EXTENDED_USD_PER_HOUR:.2f} in extended "
            f"support: about ${extended_extra_usd_per_month():.0f} more per cluster and month. Sources: {DOCS}")


_CALENDAR_SOURCE = f"EKS release calendar, checked {CHECKED}"
CALENDAR = Calendar((
    Release(29, date(2024, 1, 23), date(2025, 3, 23), date(2026, 3, 23), al2=True, source=_CALENDAR_SOURCE),
    Release(30, date(2024, 5, 23), date(2025, 7, 23), date(2026, 7, 23), al2=True, source=_CALENDAR_SOURCE),
    Release(31, date(2024, 9, 26), date(2025, 11, 26), date(2026, 11, 26), al2=True, source=_CALENDAR_SOURCE),
    Release(32, date(2025, 1, 23), date(2026, 3, 23), date(2027, 3, 23), al2=True, source=_CALENDAR_SOURCE),
    Release(33, date(2025, 5, 29), date(2026, 7, 29), date(2027, 7, 29), al2=False, source=_CALENDAR_SOURCE),
    Release(34, date(2025, 10, 2), date(2026, 12, 2), date(2027, 12, 2), al2=False, source=_CALENDAR_SOURCE),
    Release(35, date(2026, 1, 27), date(2027, 3, 27), date(2028, 3, 27), al2=False,
            source=f"EKS calendar end dates (copies of 2026-04-24), release day derived, checked {CHECKED}"),
    Release.derived(36, date(2026, 6, 2), al2=False,
                    source=f"release day from a secondary source, ends by the 14+12 month rule, checked {CHECKED}"),
))


def today() -> date:
    """The day versions are judged against: EKS_PLATFORM_TODAY=YYYY-MM-DD if set (what a stack file will hit on a
    planned day, or a fixed day for tests and reproducible verdicts), else the system date."""
    text = os.environ.get(TODAY_VARIABLE, "").strip()
    if not text:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadToday(f"{TODAY_VARIABLE}={text!r} is not a date; write it as YYYY-MM-DD or unset it") from None
