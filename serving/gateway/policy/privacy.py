"""Private requests: which ones, decided in linear time and failing closed.

A request is private when its header says so, when the calling key's policy says so, or when a
detector finds personal data or a secret in its decoded text (`RequestFacts.text`, facts.py).
Private requests go to `local` targets only (routing.py); with none able to serve, the client
gets `PrivacyBlocked` and no hosted upstream is contacted.

Linear worst case, whatever the input:
- detectors without a checksum (secrets, email, phone, national id, custom patterns) are each
  one RE2 search: RE2 runs automata, never backtracks, and releases the GIL while it scans;
- the checksum detectors (card: Luhn, IBAN: mod-97) find bounded-width candidates with
  Python's `re` (each start position costs at most the pattern's width; a lookbehind makes a
  start inside a digit run fail at once), in 16 KiB windows, handing the GIL back between
  windows and every 128 candidates, then check each candidate in a few microseconds.
`make bench` (scripts/bench/privacy.py) measures the budget on adversarial inputs.

Fail closed: when the scan cannot complete (text over `privacy.max_scan_bytes`, past
`privacy.scan_timeout`, a detector raising) `ScanDoubt` says why, and the caller treats the
request as private. Findings and doubts carry a name only, never the matched text.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import re2

from serving.gateway.settings import Privacy

Check = Callable[[str], bool]

# Detectors walk `_CHUNK` bytes at a time; a candidate is at most `_OVERLAP` bytes long.
_CHUNK = 16 * 1024
_OVERLAP = 128
_YIELD_EVERY = 128  # candidates checked between two hand-overs of the GIL


class ScanDoubt(Exception):
    """The scan could not finish; `reason` names why (a metric label, never content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")  # digit -> digit sum of 2 x digit


def luhn_ok(digits: str | bytes) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    b = digits.encode("ascii") if isinstance(digits, str) else digits
    odd, even = b[-1::-2], b[-2::-2]
    total = sum(odd) + sum(even.translate(_DOUBLED)) - 48 * len(b)
    return total % 10 == 0


_IBAN_LETTERS = {ord(ch): str(ord(ch) - 55) for ch in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def iban_ok(candidate: str) -> bool:
    """ISO 13616 mod-97: move the first four characters to the end, letters to numbers."""
    s = candidate.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s.isalnum() or not s.isascii():
        return False
    return int((s[4:] + s[:4]).translate(_IBAN_LETTERS)) % 97 == 1


def _groups_ok(match: str, check: Check) -> bool:
    """Whether the match, or the match less some trailing groups, passes `check`: a greedy
    match may have swallowed a following number ("4111 1111 1111 1111 2024")."""
    groups = match.replace("-", " ").split(" ")
    # At most two trailing groups are dropped: each extra candidate is another chance for a
    # random string to pass a checksum by luck.
    return any(check("".join(groups[:k])) for k in range(len(groups), max(0, len(groups) - 3), -1))


def _card_digits_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _card_candidate(match: bytes) -> bool:
    """The hot path of digit-dense text: the whole match first (C-level byte ops), the
    group-dropping retry only for a match with separators."""
    digits = match.translate(None, b" -")
    if luhn_ok(digits):
        return True
    if len(digits) == len(match):
        return False
    groups = match.replace(b"-", b" ").split(b" ")
    for k in (len(groups) - 1, len(groups) - 2):  # as `_groups_ok`, on bytes
        head = b"".join(groups[:k])
        if len(head) >= 13 and luhn_ok(head):
            return True
    return False


def _iban_candidate(match: bytes) -> bool:
    return _groups_ok(match.decode("ascii"), iban_ok)


# ---- patterns --------------------------------------------------------------------------------
# RE2 has no lookarounds; a boolean search does not need them: "not preceded by a digit" is
# "at the start or after a non-digit", and consuming that character changes no yes/no answer.
_NOT_DIGIT_BEFORE = rb"(?:^|[^0-9])"
_NOT_DIGIT_AFTER = rb"(?:[^0-9]|$)"
_RE2_PATTERNS: dict[str, bytes] = {
    "secret": rb"sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20}"  # OpenAI and Anthropic keys
    rb"|AKIA[0-9A-Z]{16}"  # AWS access key ids
    rb"|-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"  # PEM private keys
    rb"|gh[pousr]_[A-Za-z0-9]{36}"  # GitHub tokens
    rb"|xox[abpr]-[A-Za-z0-9-]{10}",  # Slack tokens
    # One local-part character is enough for a yes/no answer.
    "email": rb"[A-Za-z0-9._%+-]@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2}",
    # US SSN in its written form; the never-issued areas 000, 666 and 9xx, group 00 and serial
    # 0000 are spelled out as the ranges that remain.
    "national_id": _NOT_DIGIT_BEFORE
    + rb"(?:00[1-9]|0[1-9][0-9]|[1-5][0-9]{2}|6[0-5][0-9]|66[0-57-9]|6[7-9][0-9]|[78][0-9]{2})"
    rb"-(?:0[1-9]|[1-9][0-9])-(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
    + _NOT_DIGIT_AFTER,
    # Separators are required so plain long numbers (ids, timestamps) are not phone numbers.
    "phone": _NOT_DIGIT_BEFORE
    + rb"\(?[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4}"
    + _NOT_DIGIT_AFTER
    + rb"|\+[1-9][0-9]{0,2}[ .-]?(?:\(?[0-9]{1,4}\)?[ .-]?){2,4}[0-9]{2,4}"
    + _NOT_DIGIT_AFTER,
}
# Bounded width (at most 37 and 64 bytes): linear for a backtracking engine too.
_CARD = re.compile(rb"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_IBAN = re.compile(rb"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}")


def _re2(pattern: bytes) -> re2._Regexp[bytes]:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 64 << 20
    return re2.compile(pattern, options)


def compile_custom(pattern: str) -> re2._Regexp[bytes]:
    """A `privacy.custom` pattern on RE2 (linear time); raises `re2.error` when RE2 cannot
    run it (lookarounds and backreferences)."""
    return _re2(pattern.encode("utf-8"))


class _Scan:
    """One request's text as UTF-8 bytes, with the scan's deadline."""

    __slots__ = ("data", "deadline")

    def __init__(self, text: str, deadline: float) -> None:
        self.data = text.encode("utf-8", "replace")  # a lone surrogate becomes "?"
        self.deadline = deadline

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise ScanDoubt("timeout")

    def candidates(self, pattern: re.Pattern[bytes]) -> Iterator[bytes]:
        """Non-overlapping matches, window by window; a window reaches `_OVERLAP` bytes
        past its end so a match that starts in it is seen whole."""
        data, n, last_end, seen = self.data, len(self.data), 0, 0
        for start in range(0, n, _CHUNK):
            self.check_time()
            time.sleep(0)  # hand the GIL to the event loop between windows
            stop = start + _CHUNK
            for m in pattern.finditer(data, start, min(n, stop + _OVERLAP)):
                if m.start() >= stop:
                    break
                if m.start() >= last_end:
                    last_end = m.end()
                    seen += 1
                    if seen % _YIELD_EVERY == 0:  # dense candidates: yield within a window too
                        time.sleep(0)
                    yield m.group(0)


def _search(pattern: re2._Regexp[bytes]) -> Callable[[_Scan], bool]:
    return lambda scan: pattern.search(scan.data) is not None


# The shortest shape each candidate pattern can match: when RE2 finds none (most texts), the
# candidate walk is skipped.
_CARD_SHAPE = rb"[0-9](?:[ -]?[0-9]){12}"
_IBAN_SHAPE = rb"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11}"


def _checked(
    shape: bytes, pattern: re.Pattern[bytes], check: Callable[[bytes], bool]
) -> Callable[[_Scan], bool]:
    prefilter = _re2(shape)

    def found(scan: _Scan) -> bool:
        if prefilter.search(scan.data) is None:
            return False
        return any(check(m) for m in scan.candidates(pattern))

    return found


def _builtin() -> dict[str, Callable[[_Scan], bool]]:
    found = {name: _search(_re2(p)) for name, p in _RE2_PATTERNS.items()}
    # In the order they are tried; the first that finds something names the reason.
    order = ("secret", "email", "card", "iban", "national_id", "phone")
    found["card"] = _checked(_CARD_SHAPE, _CARD, _card_candidate)
    found["iban"] = _checked(_IBAN_SHAPE, _IBAN, _iban_candidate)
    return {name: found[name] for name in order}


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    found: Callable[[_Scan], bool]


def build_detectors(config: Privacy) -> tuple[Detector, ...]:
    """The enabled detectors, every pattern compiled once (at app build)."""
    if not config.detect:
        return ()
    out = [Detector(name, fn) for name, fn in _builtin().items() if name in config.detectors]
    out += [Detector(d.name, _search(compile_custom(d.pattern))) for d in config.custom]
    return tuple(out)


_TRUE = frozenset({"1", "true", "yes", "on"})


class PrivacyPolicy:
    def __init__(self, config: Privacy, private_keys: frozenset[str]) -> None:
        self.config = config
        self._header = config.header.lower()
        self._private_keys = private_keys
        self.detectors = build_detectors(config)

    def marked(self, headers: Mapping[str, str], key: str | None) -> str | None:
        """ "header" or "key" when the caller marked the request private, else None."""
        if headers.get(self._header, "").strip().lower() in _TRUE:
            return "header"
        if key is not None and key in self._private_keys:
            return "key"
        return None

    def scan(self, text: str, *, started: float | None = None) -> str | None:
        """The name of the first detector that finds something in `text`, else None.

        Raises `ScanDoubt` when the scan cannot answer within its limits; a detector that
        raises is a doubt too, never a "nothing found".
        """
        if not self.detectors:
            return None
        if len(text) > self.config.max_scan_bytes:  # chars <= bytes: a cheap first test
            raise ScanDoubt("too_large")
        begun = time.monotonic() if started is None else started
        scan = _Scan(text, begun + self.config.scan_timeout)
        if len(scan.data) > self.config.max_scan_bytes:
            raise ScanDoubt("too_large")
        for detector in self.detectors:
            scan.check_time()
            try:
                if detector.found(scan):
                    return detector.name
            except ScanDoubt:
                raise
            except Exception as exc:  # any failure of a detector is a doubt, not a pass
                raise ScanDoubt("detector_error") from exc
        scan.check_time()
        return None
