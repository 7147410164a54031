"""Scrubbing: real secret values never reach the agent, even when an upstream echoes them.

Every encoded form of a value a client would decode (see ``egress.secrets.forms``: plain,
percent with either hex case, JSON escapes of any kind and mix, base64 at every alignment and
wrapped into lines) is replaced by the same form of the placeholder.

Most answers hold no secret, so the work is split: *detection* is a few substring searches per
value over the data, once as sent and once with escapes decoded, line breaks removed and the
URL-safe base64 alphabet mapped to the standard one; only a value detected there is *fixed*
(every literal form replaced, the any-mix escape pattern, wrapped base64 blocks re-wrapped).
If a detected value survives the fix (a form with no same-form placeholder), the data is
rewritten in its decoded form and scrubbed again, or withheld: never passed on.

Streamed bodies are scrubbed chunk by chunk; only a tail that could be the start of a form is
held back, so a server-sent event ending in a blank line is never delayed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from egress.secrets.forms import (
    B64_NORMAL,
    WRAPPED_BLOCK,
    b64_forms,
    encoded_forms,
    hex_class,
    mixed_pattern,
    rewrap,
    unescape,
    unwrap,
)

WITHHELD = b"[egress: withheld, it held a secret in a form the proxy cannot rewrite]"
B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-="
_ESCAPE_ALPHABET = b'%\\u+/bfnrt"' + B64_ALPHABET
# a byte and the letter of its JSON short escape (``\\n``...)
_SHORT_ESCAPE = {ord(c): e.encode() for c, e in zip('/"\\\b\f\n\r\t', '/"\\bfnrt', strict=True)}
_SHORT_DECODED = {e: bytes([c]) for c, e in _SHORT_ESCAPE.items()}
# indices into encoded_forms() of the placeholder form that replaces a mixed match
_FORM_PLAIN, _FORM_PCT, _FORM_PLUS, _FORM_JSON_SLASH, _FORM_JSON_U, _FORM_LATIN1 = 0, 1, 3, 6, 7, 11


@dataclass(frozen=True, slots=True, eq=False)
class _Value:
    """One secret value: how to find it cheaply and how to replace each of its forms."""

    raw: bytes
    needles: tuple[bytes, ...]  # searched in the decoded data (raw, raw with + for spaces)
    fragments: tuple[bytes, ...]  # standard-alphabet base64 fragments, at every alignment
    pairs: tuple[tuple[bytes, bytes], ...]  # literal (real, fake), longest first
    mixed: tuple[str, ...]  # the value and its base64 forms: any mix of escapes of each
    fakes: tuple[tuple[bytes, ...], ...]  # placeholder forms for a mixed match of each alternative
    b64: tuple[tuple[bytes, bytes], ...]  # base64 (real, fake), for wrapped blocks
    escapes: tuple[re.Pattern[bytes], ...]  # escapes of this value's (and base64's) bytes

    def found_in(self, plain: bytes, decoded: bytes, flat: bytes) -> bool:
        return (
            self.raw in plain
            or any(n in decoded for n in self.needles)
            or any(f in flat for f in self.fragments)
        )

    def present(self, data: bytes) -> bool:
        """Some form of this value may be in ``data`` (as sent, or with escapes decoded)."""
        if self.found_in(data, data, _flat(data)):
            return True
        decoded = _decoded(data, self.escapes)
        return decoded is not data and self.found_in(data, decoded, _flat(decoded))

    def fix(self, data: bytes) -> bytes:
        """Replace every form found, cheapest step first, stopping once none is left."""
        for real, fake in self.pairs:
            if real in data:
                data = data.replace(real, fake)
        if not self.present(data):
            return data
        if (b"\n" in data or b"\\n" in data) and any(f in _flat(data) for f in self.fragments):
            data = WRAPPED_BLOCK.sub(self._unwrapped, data)
        if b"%" in data or b"\\" in data or b"+" in data:
            # one pattern per form (the value, each base64 form): alone, each scans at C speed
            # to its possible first characters; joined in one alternation they would not
            for text, fakes in zip(self.mixed, self.fakes, strict=True):
                if not self.present(data):
                    break
                data = _compiled(text).sub(functools.partial(_mixed_fake, fakes=fakes), data)
        return data

    def _unwrapped(self, m: re.Match[bytes]) -> bytes:
        block = m.group(0)
        text, lengths, brk = unwrap(block)
        clean = text
        for real, fake in self.b64:
            if real in clean:
                clean = clean.replace(real, fake)
        return block if clean == text else rewrap(clean, lengths, brk)


@dataclass(frozen=True, slots=True, eq=False)
class ScrubSet:
    """Everything needed to scrub a set of values; opaque to callers (build with
    ``scrub_pairs``). Truthy when it has anything to scrub."""

    values: tuple[_Value, ...]  # longest first, so a value containing another is fixed whole
    longest_literal: int
    longest_mixed: int
    longest_wrapped: int
    escape_alphabet: bytes  # bytes a mixed form can consist of
    escapes: tuple[re.Pattern[bytes], ...]  # an escape of a byte of a value or its base64
    needles: tuple[bytes, ...]  # every value's needles
    fragments: tuple[bytes, ...]  # every value's base64 fragments

    def __bool__(self) -> bool:
        return bool(self.values)

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return (pair for v in self.values for pair in v.pairs)

    def __len__(self) -> int:
        return len(self.values)

    def detect(self, data: bytes) -> list[_Value]:
        """The values some form of which may be in ``data`` (never misses one it can fix).
        The common answer holds none: that is decided by substring searches run from C
        (``map``), as sent and with the escapes of the values' bytes undone."""
        if not self.values:
            return []
        flat = _flat(data)
        decoded = flat_decoded = None
        if not self._maybe(data, flat):
            decoded = _decoded(data, self.escapes)
            flat_decoded = _flat(decoded) if decoded is not data else None
            if flat_decoded is None or not self._maybe(decoded, flat_decoded):
                return []
        # some value is here: which ones (the decodings are shared, made once)
        hits = [v for v in self.values if v.found_in(data, data, flat)]
        if len(hits) < len(self.values):
            if decoded is None:
                decoded = _decoded(data, self.escapes)
                flat_decoded = _flat(decoded) if decoded is not data else None
            if flat_decoded is not None:
                hits += [
                    v
                    for v in self.values
                    if v not in hits and v.found_in(data, decoded, flat_decoded)
                ]
        return hits

    def _maybe(self, data: bytes, flat: bytes) -> bool:
        return any(map(data.__contains__, self.needles)) or any(
            map(flat.__contains__, self.fragments)
        )


def _flat(data: bytes) -> bytes:
    """For base64 detection: line breaks (also JSON-escaped ones) removed, ``\\/`` as ``/``,
    the URL-safe alphabet mapped to the standard one."""
    if b"\\" in data:
        data = data.replace(b"\\n", b"").replace(b"\\r", b"").replace(b"\\/", b"/")
    return data.translate(B64_NORMAL, b"\r\n")


def _escapes_of(chars: set[int]) -> tuple[re.Pattern[bytes], ...]:
    """Escape sequences (``\\uXXXX`` in either hex case, JSON's short ones, ``%XX``) of
    these bytes, in the order they are undone: only they can hide part of a value, so an
    answer full of other escapes (``\\u00e9``, ``\\n``, ``%20``) costs no decoding."""
    hexes = sorted({f"{c:02x}" for c in chars if c < 0x80})
    pct = b"|".join(hex_class(h) for h in hexes)
    uni = b"|".join(hex_class("00" + h) for h in hexes)
    if any(c >= 0x80 for c in chars):
        pct += b"|[89a-fA-F][0-9a-fA-F]"  # a byte of a non-ASCII character
        pair = rb"[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
        uni = pair + b"|" + uni + b"|(?![0]{2}[0-7])[0-9a-fA-F]{4}"
    short = b"".join(re.escape(_SHORT_ESCAPE[c]) for c in sorted(chars) if c in _SHORT_ESCAPE)
    # patterns with a literal start each: the regex engine skips to it at C speed
    found = [re.compile(rb"\\u(?:" + uni + b")")]
    if short:
        found.append(re.compile(rb"\\[" + short + b"]"))
    found.append(re.compile(b"%(?:" + pct + b")"))
    return tuple(found)


def _decode_one(m: re.Match[bytes]) -> bytes:
    t = m.group(0)
    if t[:1] == b"%":
        return bytes([int(t[1:3], 16)])
    if t[1:2] != b"u":
        return _SHORT_DECODED[t[1:2]]
    if len(t) == 12:  # a surrogate pair
        hi, lo = int(t[2:6], 16), int(t[8:12], 16)
        return chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)).encode()
    return chr(int(t[2:6], 16)).encode("utf-8", "surrogatepass")


def _decoded(data: bytes, escapes: tuple[re.Pattern[bytes], ...]) -> bytes:
    """``data`` with the given escapes undone (``data`` itself when it holds none)."""
    if b"\\" not in data and b"%" not in data:
        return data
    out = data
    for pattern in escapes:
        out = pattern.sub(_decode_one, out)
    return data if out == data else out


def _value(value: str, placeholder: str) -> _Value:
    real_forms, fake_forms = encoded_forms(value), encoded_forms(placeholder)
    chosen: dict[bytes, bytes] = {}
    for real, fake in zip(real_forms, fake_forms, strict=True):
        if real and fake and real not in chosen:
            chosen[real] = fake
    b64 = [(r, f) for r, f in zip(b64_forms(value), b64_forms(placeholder), strict=True) if r and f]
    fakes = [
        tuple(
            fake_forms[i]
            for i in (_FORM_PLAIN, _FORM_PCT, _FORM_PLUS, _FORM_JSON_SLASH, _FORM_JSON_U)
        )
    ]
    for _, fake in b64:
        fakes.append((fake, *(e for e in _pct_json(fake.decode()))))
    chars = set(value.encode())
    for real, _ in b64:
        chars.update(real)
    needles = {value.encode()}
    if encoded_forms(value)[_FORM_LATIN1]:
        needles.add(encoded_forms(value)[_FORM_LATIN1])
    if " " in value:
        needles.add(value.replace(" ", "+").encode())
    return _Value(
        raw=value.encode(),
        needles=tuple(sorted(needles)),
        fragments=_minimal({r.translate(B64_NORMAL) for r, _ in b64}),
        pairs=tuple(sorted(chosen.items(), key=lambda p: len(p[0]), reverse=True)),
        mixed=(value, *(real.decode() for real, _ in b64)),
        fakes=tuple(fakes),
        b64=tuple(sorted(b64, key=lambda p: len(p[0]), reverse=True)),
        escapes=_escapes_of(chars),
    )


def _mixed_fake(m: re.Match[bytes], fakes: tuple[bytes, ...]) -> bytes:
    """The placeholder in the form of the match: escaped the way it was, or plain."""
    found = m.group(0)
    plain, pct, plus, json_slash, json_u = fakes
    if b"\\u" in found:
        return json_u
    if b"%" in found:
        return pct
    if b"\\" in found:
        return json_slash
    return plus if b"+" in found else plain


@functools.lru_cache(maxsize=1024)
def _compiled(text: str) -> re.Pattern[bytes]:
    """Built on first use: only a value found in an answer needs its (large) pattern."""
    return re.compile(mixed_pattern(text))


def _minimal(needles: set[bytes]) -> tuple[bytes, ...]:
    """Needles none of which contains another (a form holding a fragment is found by it)."""
    return tuple(sorted(n for n in needles if not any(o != n and o in n for o in needles)))


def _pct_json(text: str) -> tuple[bytes, bytes, bytes, bytes]:
    forms = encoded_forms(text)
    return forms[_FORM_PCT], forms[_FORM_PLUS], forms[_FORM_JSON_SLASH], forms[_FORM_JSON_U]


def scrub_pairs(secrets: Iterable[tuple[str, str]]) -> ScrubSet:
    """The scrub set replacing each value by its placeholder: ``[(value, placeholder), ...]``."""
    return _build(tuple(secrets))


@functools.lru_cache(maxsize=4096)
def _build(secrets: tuple[tuple[str, str], ...]) -> ScrubSet:
    values = [_value(v, p) for v, p in dict(secrets).items() if v]
    values.sort(key=lambda v: len(v.raw), reverse=True)
    alphabet = set(_ESCAPE_ALPHABET)
    chars: set[int] = set()
    for v in values:
        alphabet.update(v.raw)
        chars.update(v.raw)
        for real, _ in v.b64:
            chars.update(real)
    literal = [real for v in values for real, _ in v.pairs]
    longest_b64 = max((len(r) for v in values for r, _ in v.b64), default=0)
    return ScrubSet(
        values=tuple(values),
        longest_literal=max(map(len, literal), default=0),
        longest_mixed=12 * max((len(v.raw) * 4 // 3 + 4 for v in values), default=0),
        longest_wrapped=longest_b64 + 4 * (longest_b64 // 16 + 2),
        escape_alphabet=bytes(sorted(alphabet)),
        escapes=_escapes_of(chars),
        needles=tuple(n for v in values for n in v.needles),
        fragments=tuple(f for v in values for f in v.fragments),
    )


def scrub(data: bytes, pairs: ScrubSet) -> bytes:
    """``data`` with every form of every value replaced by the same form of its placeholder."""
    hits = pairs.detect(data)
    if not hits:
        return data
    for value in hits:
        data = value.fix(data)
    if not pairs.detect(data):
        return data
    # a form the fix could not rewrite in place: pass on the decoded text, scrubbed, or nothing
    data = unescape(data)
    for value in pairs.detect(data):
        data = value.fix(data)
    return WITHHELD if pairs.detect(data) else data
