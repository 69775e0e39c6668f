"""Whether `ce_time` texts are times with a zone, as `_parse_time` decides, mostly without
parsing them.

A check of a record asks of its time only `_parse_time(text).tzinfo is not None` (False
where it raises), and parsing the text was a tenth of a replay's CPU per record. The
times of a stream share their second in bursts, so the verdict is kept per second:
a text whose first 19 characters (`YYYY-MM-DDTHH:MM:SS`) were accepted before, by
`datetime.fromisoformat` on the regular-expression path of `_parse_time`, is accepted
when the rest is a zone seen that way too (`Z` or `+HH:MM`), with or without a fraction
of 1-6 ASCII digits in between. Why that verdict is `_parse_time`'s own:

- the text matches `_RFC3339` (ASCII digits where `\\d` stands), so `_parse_time`
  takes `datetime.fromisoformat`;
- `fromisoformat` reads the date, the time of day, the fraction and the zone each on
  its own and builds one datetime of them: a second that built (kept only if it comes
  back unchanged: a later Python's hour 24, the next day's midnight, is valid only
  without a fraction), 1-6 digits of fraction (always under a million microseconds)
  and a zone that built give a datetime with that zone.

Anything else (another form, 7-9 fraction digits, a second or zone not seen yet) is
decided by `_parse_time` itself, and what it accepts the regular way is learned.
tests/schemas/test_zoned_times.py holds both ways to the same verdict.
"""

from __future__ import annotations

from datetime import datetime

from schemas.codec import _RFC3339, _parse_time

# seconds kept at most; forgotten all at once when full, so memory stays bounded
MAX_SECONDS = 4096
_SECOND = len("2026-01-01T00:00:00")
_from_iso = datetime.fromisoformat  # `_parse_time`'s first way (a name tests can replace)
_ZONE = len("+00:00")


class ZonedTimes:
    """`zoned(text)`: `_parse_time(text).tzinfo is not None`, False where it raises."""

    def __init__(self, limit: int = MAX_SECONDS) -> None:
        self._seconds: set[str] = set()  # texts up to the second, accepted
        self._zones: set[str] = set()  # "Z" or "+HH:MM", accepted
        self._limit = limit

    def zoned(self, text: str) -> bool:
        if text[:_SECOND] in self._seconds:
            rest = text[_SECOND:]
            if rest in self._zones:
                return True
            if rest[:1] == ".":
                # ASCII digits only (str.isdigit would take any script's digits)
                zone = rest[1:].lstrip("0123456789")
                if zone in self._zones and 1 < len(rest) - len(zone) <= 7:
                    return True
        return self._decide(text)

    def _decide(self, text: str) -> bool:
        """`_parse_time`'s verdict; a text it accepts by `fromisoformat` is learned."""
        try:
            zoned = _parse_time(text).tzinfo is not None
        except (ValueError, OverflowError):
            return False
        if zoned:
            self._learn(text)
        return zoned

    def _learn(self, text: str) -> None:
        if not _RFC3339.match(text):
            return  # isoparse decided: not the path argued above
        try:
            moment = _from_iso(text)  # the path itself, not isoparse after it
        except ValueError:
            return
        second = text[:_SECOND]
        if moment.strftime("%Y-%m-%dT%H:%M:%S") != second:
            return  # normalised (a later Python's hour 24): the second is not on its own
        rest = text[_SECOND:]
        if len(self._seconds) >= self._limit:
            self._seconds.clear()
        self._seconds.add(second)
        # a handful: one per offset the stream's writers use
        self._zones.add(rest[-1:] if rest[-1:] == "Z" else rest[-_ZONE:])
