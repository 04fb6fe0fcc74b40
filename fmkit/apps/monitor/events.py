"""An event is a JSON object with ``id``, ``time`` (ISO 8601) and ``text``; this checks one and says what is wrong.

A bad event never stops the stream: ``parse_line`` returns the reason (a corrupt line, no time, an
unparsable time, an empty or over-long text) and the caller reports it with its line number and goes
on. Times become UTC; a time without an offset is read as UTC (said in docs/monitor.md). Fields beyond
the three are kept as ``extra`` (stored with the event, e.g. a source or a URL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

REQUIRED = ("id", "time", "text")
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
MAX_FUTURE = timedelta(days=1)  # clocks drift; a time further ahead is a typo or a wrong timezone


@dataclass(frozen=True)
class Event:
    id: str
    time: datetime  # timezone-aware, UTC
    text: str
    extra: dict = field(default_factory=dict)


class BadEvent(ValueError):
    """Why one event was refused (the message is what the report shows)."""


def parse_time(value) -> datetime:
    """ISO 8601 (``2020-03-09T10:00:00Z``, ``2020-03-09 10:00+01:00``, ``2020-03-09``) -> aware UTC datetime."""
    if not isinstance(value, str) or not value.strip():
        raise BadEvent(f"time={value!r} is not an ISO 8601 string; write e.g. \"2020-03-09T10:00:00Z\"")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=timezone.utc)
        parsed = parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: an offset that moves year 1 or 9999 out of range
        raise BadEvent(f"time={value!r} is not ISO 8601; write e.g. \"2020-03-09T10:00:00Z\"") from None
    latest = datetime.now(timezone.utc) + MAX_FUTURE
    if not EARLIEST <= parsed <= latest:
        # a stored event far from the others would stretch every topic's series over all the intervals between
        raise BadEvent(f"time={value!r} is outside {EARLIEST:%Y-%m-%d} .. {latest:%Y-%m-%d} (now + 1 day); check "
                       "the year and the clock of the source")
    return parsed


def parse_event(record, *, max_text_chars: int) -> Event:
    """One decoded JSON value -> an ``Event``, or ``BadEvent`` naming every missing field or the bad value."""
    if not isinstance(record, dict):
        raise BadEvent(f"an event is a JSON object with {', '.join(REQUIRED)}, not a {type(record).__name__}")
    missing = [name for name in REQUIRED if record.get(name) is None or record.get(name) == ""]
    if missing:
        raise BadEvent(f"no {' and no '.join(missing)}: every event needs {', '.join(REQUIRED)}")
    identifier = record["id"]
    if isinstance(identifier, bool) or not isinstance(identifier, (str, int)):
        raise BadEvent(f"id={identifier!r}: use a string or an integer")
    identifier = str(identifier).strip()
    if not identifier or len(identifier) > 200:
        raise BadEvent(f"id={record['id']!r}: must be 1-200 characters")
    text = record["text"]
    if not isinstance(text, str):
        raise BadEvent(f"text is a {type(text).__name__}, not a string")
    if not text.strip():
        raise BadEvent("text is empty")
    if len(text) > max_text_chars:
        raise BadEvent(f"text has {len(text)} characters, over the limit of {max_text_chars} (max_text_chars); "
                       "shorten it or raise --max-text-chars")
    extra = {key: value for key, value in record.items() if key not in REQUIRED}
    return Event(identifier, parse_time(record["time"]), text, extra)


def parse_line(line: str, *, max_text_chars: int) -> Event:
    """One JSONL line -> an ``Event``; a line that is not JSON is a ``BadEvent`` with the decoder's reason."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise BadEvent(f"not valid JSON ({error.msg} at column {error.colno})") from None
    except (ValueError, RecursionError) as error:  # an integer of > 4,300 digits; nesting deeper than Python's stack
        raise BadEvent(f"not valid JSON ({type(error).__name__}: {str(error)[:80]})") from None
    return parse_event(record, max_text_chars=max_text_chars)
