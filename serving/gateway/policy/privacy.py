"""Private requests: which ones, decided cheaply and failing closed.

A request is private when its header says so, when the calling key's policy says so, or when a
detector finds personal data or a secret in its text. Private requests go to `local` targets
only (routing.py); with none able to serve, the client gets `PrivacyBlocked` and no hosted
upstream is contacted.

The scan runs on the raw request body as a string (no re-parsing, no canonical objects), with
every pattern compiled once when the app is built. Each detector has a cheap substring or
character-class pre-check so typical prompts skip most regexes. Findings carry the detector's
name only, never the matched text: a private request's content is never logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from serving.gateway.settings import Privacy

Check = Callable[[str], bool]


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_ok(candidate: str) -> bool:
    """ISO 13616 mod-97: move the first four characters to the end, letters to numbers."""
    s = candidate.replace(" ", "").upper()
    if not 15 <= len(s) <= 34:
        return False
    rearranged = s[4:] + s[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _groups_ok(match: str, check: Check) -> bool:
    """Whether the match, or the match less some trailing groups, passes `check`: a greedy
    match may have swallowed a following number ("4111 1111 1111 1111 2024")."""
    groups = match.replace("-", " ").split(" ")
    # At most two trailing groups are dropped: each extra candidate is another chance for a
    # random string to pass a checksum by luck.
    return any(check("".join(groups[:k])) for k in range(len(groups), max(0, len(groups) - 3), -1))


def _card_digits_ok(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


def _card(match: str) -> bool:
    return _groups_ok(match, _card_digits_ok)


def _iban(match: str) -> bool:
    return _groups_ok(match, iban_ok)


# Speed: a pattern that starts with a literal is fast (the engine searches for the literal
# first); one that starts with a character class costs a step per character of the body. So the
# numeric detectors (card, national id, phone) share one such pass that yields short candidate
# runs and test only those; email looks only around each "@"; secrets and international phone
# numbers start with literals.
# A digit run with separators, 9-26 characters ([0-9] scans faster than a Unicode \d).
_NUMBER = re.compile(r"[0-9][0-9 ().-]{7,24}[0-9]")
_CARD = re.compile(r"\d(?:[ -]?\d){12,18}")
# US SSN in its written form; the never-issued areas 000, 666 and 9xx are excluded.
_SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
# Separators are required so plain long numbers (ids, timestamps) are not phone numbers.
_PHONE_NA = re.compile(r"(?<!\d)\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\d)")
_PHONE_INTL = re.compile(r"\+[1-9]\d{0,2}[ .-]?(?:\(?\d{1,4}\)?[ .-]?){2,4}\d{2,4}(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"[A-Z][A-Z][0-9][0-9](?: ?[A-Z0-9]){11,30}")
_SECRETS = tuple(
    re.compile(p)
    for p in (
        r"sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}",  # OpenAI and Anthropic keys
        r"AKIA[0-9A-Z]{16}",  # AWS access key ids
        r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----",  # PEM private keys
        r"gh[pousr]_[A-Za-z0-9]{36}",  # GitHub tokens
        r"xox[abpr]-[A-Za-z0-9-]{10,}",  # Slack tokens
    )
)


class _Scan:
    """One body's text, with the numeric candidates computed once for every detector."""

    __slots__ = ("_numbers", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._numbers: list[str] | None = None

    def numbers(self) -> list[str]:
        if self._numbers is None:
            self._numbers = [m.group(0) for m in _NUMBER.finditer(self.text)]
        return self._numbers


def _email(scan: _Scan) -> bool:
    text = scan.text
    at = text.find("@")
    while at >= 0:
        if _EMAIL.search(text, max(0, at - 64), at + 256):
            return True
        at = text.find("@", at + 1)
    return False


def _phone(scan: _Scan) -> bool:
    if "+" in scan.text and _PHONE_INTL.search(scan.text):
        return True
    return any(_PHONE_NA.search(n) for n in scan.numbers())


def _card_found(scan: _Scan) -> bool:
    return any(_card(m.group(0)) for n in scan.numbers() for m in _CARD.finditer(n))


def _iban_found(scan: _Scan) -> bool:
    return any(_iban(m.group(0)) for m in _IBAN.finditer(scan.text))


def _national_id(scan: _Scan) -> bool:
    return "-" in scan.text and any(_SSN.search(n) for n in scan.numbers())


def _secret(scan: _Scan) -> bool:
    return any(p.search(scan.text) for p in _SECRETS)


# In the order they are tried; the first that finds something names the reason.
_BUILTIN: dict[str, Callable[[_Scan], bool]] = {
    "secret": _secret,
    "email": _email,
    "card": _card_found,
    "iban": _iban_found,
    "national_id": _national_id,
    "phone": _phone,
}


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    found: Callable[[_Scan], bool]


def _custom(pattern: re.Pattern[str]) -> Callable[[_Scan], bool]:
    return lambda scan: pattern.search(scan.text) is not None


def build_detectors(config: Privacy) -> tuple[Detector, ...]:
    """The enabled detectors, custom patterns compiled once (at app build)."""
    if not config.detect:
        return ()
    out = [Detector(name, fn) for name, fn in _BUILTIN.items() if name in config.detectors]
    out += [Detector(d.name, _custom(re.compile(d.pattern))) for d in config.custom]
    return tuple(out)


_TRUE = frozenset({"1", "true", "yes", "on"})


class PrivacyPolicy:
    def __init__(self, config: Privacy, private_keys: frozenset[str]) -> None:
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

    def scan(self, body: bytes) -> str | None:
        """The name of the first detector that finds something in the body, else None."""
        if not self.detectors:
            return None
        scan = _Scan(body.decode("utf-8", "replace"))
        for detector in self.detectors:
            if detector.found(scan):
                return detector.name
        return None
