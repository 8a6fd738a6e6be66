"""The licensed-agency registry (SIP3MI licences), read from the ministry's CSV export.

Columns: license_no, agency_name, status (active | suspended | revoked), valid_from, valid_until.
A file is read whole or refused whole: one bad row names its line and column.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from engine.case import MAX_TEXT, plain_text
from engine.errors import RegistryError

if TYPE_CHECKING:
    import _csv

COLUMNS = ("license_no", "agency_name", "status", "valid_from", "valid_until")
BYTE_ORDER_MARK = "\ufeff"  # Excel's "CSV UTF-8" begins with one
STATUSES = ("active", "suspended", "revoked")


def normalise_licence(number: str) -> str:
    """Licence numbers as officers type them: case, spaces and separators do not matter."""
    return "".join(char for char in number.upper() if char.isalnum())


def registry_text(data: bytes, *, source: str) -> str:
    """A registry file's bytes as text: UTF-8, a byte-order mark (as Excel writes) kept, so that
    the text encodes back to the very bytes (and SHA-256) received; `from_text` skips it. A
    byte that is not UTF-8 (Excel's plain CSV is Windows-1252) is refused naming its line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = error.object[: error.start]  # a byte-order mark holds no line end
        line = len(_LINE_END.findall(before)) + 1
        byte = error.object[error.start]
        raise RegistryError(
            f"byte 0x{byte:02X} is not UTF-8 (saved as Windows-1252?): save the file as CSV UTF-8",
            file=source,
            line=line,
        ) from None


_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Licence:
    license_no: str
    agency_name: str
    status: str
    valid_from: date | None
    valid_until: date | None

    def status_on(self, day: date) -> str:
        """active, expired, not_yet_valid, suspended or revoked on `day`."""
        if self.status != "active":
            return self.status
        if self.valid_from and day < self.valid_from:
            return "not_yet_valid"
        if self.valid_until and day > self.valid_until:
            return "expired"
        return "active"


class AgencyRegistry:
    """Immutable lookup of licences by number; a new file is a new registry."""

    def __init__(self, licences: Iterable[Licence], *, source: str = "") -> None:
        self._by_number: Mapping[str, Licence] = {
            normalise_licence(licence.license_no): licence for licence in licences
        }
        self.source = source

    def __len__(self) -> int:
        return len(self._by_number)

    def lookup(self, license_no: str) -> Licence | None:
        return self._by_number.get(normalise_licence(license_no))

    def status_on(self, license_no: str, day: date) -> str:
        """The licence's status on `day`, or not_found."""
        licence = self.lookup(license_no)
        return licence.status_on(day) if licence else "not_found"

    @classmethod
    def empty(cls) -> AgencyRegistry:
        return cls((), source="(empty)")

    @classmethod
    def from_csv(cls, path: str | Path) -> AgencyRegistry:
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as error:
            raise RegistryError(
                f"cannot read the registry: {error.strerror}", file=str(path)
            ) from None
        return cls.from_text(registry_text(data, source=str(path)), source=str(path))

    @classmethod
    def from_text(
        cls, text: str, *, source: str = "(upload)", stored: bool = False
    ) -> AgencyRegistry:
        """A registry CSV's text (past a byte-order mark), read whole or refused naming the
        line and column. `stored`: a registry the service accepted before and kept, read as it
        was accepted, rather than keep the service from starting: the checks uploads gained on
        2026-12-06 are skipped (a header naming a column twice: the last column's values; a row
        short of a value: empty, or with one too many: dropped; a control character, or a value
        over MAX_TEXT, kept; a licence number without letter or digit, which no desk can look
        up)."""
        text = text.removeprefix(BYTE_ORDER_MARK)
        # newline="": the csv module finds the line ends itself, old Mac CR-only ones too
        lines = csv.reader(io.StringIO(text, newline=""))
        try:
            # Excel may write "license_no, agency_name": the rows are read by the names stripped
            header = tuple(name.strip() for name in next(lines, []))
            twice = [name for name in COLUMNS if header.count(name) > 1]
            if twice and not stored:  # a row would keep the last one's values
                raise RegistryError(
                    f"column(s) {', '.join(twice)} appear more than once in the header",
                    file=source,
                    line=1,
                    field=twice[0],
                )
            missing = [name for name in COLUMNS if name not in header]
            if missing:
                raise RegistryError(_missing_columns(header, missing), file=source, line=1)
            records = _records(lines, header, source, stored)
            return cls._from_records(records, source=source, stored=stored)
        except csv.Error as error:  # a value over the csv module's limit (131,072 characters)
            raise RegistryError(
                f"not readable as CSV: {error}", file=source, line=lines.line_num
            ) from None

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, object]], *, source: str) -> AgencyRegistry:
        """Rows given as mappings (a rule example's registry), each named by its number."""
        return cls._from_records(enumerate(rows, start=1), source=source)

    @classmethod
    def _from_records(
        cls,
        records: Iterable[tuple[int, Mapping[str, object]]],
        *,
        source: str,
        stored: bool = False,
    ) -> AgencyRegistry:
        licences: dict[str, tuple[int, Licence]] = {}
        for line, row in records:
            licence = _licence(row, source, line, stored)
            key = normalise_licence(licence.license_no)
            if key in licences:
                earlier_line, earlier = licences[key]
                raise RegistryError(
                    f"licence {licence.license_no} appears twice: line {earlier_line} has "
                    f"{earlier.license_no} (numbers are compared without case, spaces or "
                    "separators)",
                    file=source,
                    line=line,
                    field="license_no",
                )
            licences[key] = line, licence
        return cls((licence for _, licence in licences.values()), source=source)


# Another separator than the comma leaves the header one name; Excel saves its "CSV" with the
# computer's list separator, which is ';' in an Indonesian (or most European) locale.
SEPARATORS = {";": "';' (as Excel saves CSV in an Indonesian locale)", "\t": "tabs"}


def _missing_columns(header: tuple[str, ...], missing: list[str]) -> str:
    for separator, received in SEPARATORS.items():
        if any(separator in name for name in header):
            return (
                f"the file's columns are separated by {received}, not commas: send "
                f"comma-separated CSV, the header reading {','.join(COLUMNS)}"
            )
    return f"missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}"


def _records(
    lines: _csv.Reader, header: tuple[str, ...], source: str, stored: bool
) -> Iterator[tuple[int, Mapping[str, object]]]:
    """Each record with the file line it starts on (a quoted value may span lines; blank lines
    are skipped but counted). A record short of a value, or with one too many, has lost or
    gained a comma: its values are in the wrong columns (unless `stored`: then the missing
    are empty and the extra dropped, as the first release read them)."""
    width = len(header)
    ended = lines.line_num  # the header's last line
    for values in lines:
        line, ended = ended + 1, lines.line_num
        if not values:  # a blank line
            continue
        if len(values) != width and not stored:
            raise RegistryError(
                f"{len(values)} value(s) where the header names {width}", file=source, line=line
            )
        yield line, dict(zip(header, values, strict=False))


def _licence(row: Mapping[str, object], source: str, line: int, stored: bool) -> Licence:
    def text(name: str) -> str:
        value = row.get(name)
        value = "" if value is None else str(value).strip()
        if stored:  # text accepted once is never refused on reading it back
            return value
        try:
            plain_text(value)
        except ValueError as error:
            raise RegistryError(f"{name}: {error}", file=source, line=line, field=name) from None
        if len(value) > MAX_TEXT:
            raise RegistryError(
                f"{name}: longer than {MAX_TEXT} characters", file=source, line=line, field=name
            )
        return value

    def day(name: str) -> date | None:
        value = text(name)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise RegistryError(
                f"{name}: expected a date as YYYY-MM-DD, got {value!r}",
                file=source,
                line=line,
                field=name,
            ) from None

    number = text("license_no")
    if not number:
        raise RegistryError("license_no: is empty", file=source, line=line, field="license_no")
    if not normalise_licence(number) and not stored:  # no desk could look it up
        raise RegistryError(
            f"license_no: {number!r} has no letter or digit",
            file=source,
            line=line,
            field="license_no",
        )
    status = text("status").lower()
    if status not in STATUSES:
        raise RegistryError(
            f"status: {status!r} is not allowed; expected one of {', '.join(STATUSES)}",
            file=source,
            line=line,
            field="status",
        )
    valid_from, valid_until = day("valid_from"), day("valid_until")
    if valid_from and valid_until and valid_until < valid_from:
        raise RegistryError(
            "valid_until: is before valid_from", file=source, line=line, field="valid_until"
        )
    return Licence(number, text("agency_name"), status, valid_from, valid_until)
