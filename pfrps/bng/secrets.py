"""pppd-format ``pap-secrets`` / ``chap-secrets`` files: parsing, lookup, and checking a login.

Format (pppd(8), section AUTHENTICATION; the tokenizer follows pppd's ``getword()`` in
``options.c`` and the matching its ``scan_authfile()`` in ``auth.c``)::

    # client        server      secret              addresses
    alice           *           "correct horse"     10.0.0.9
    bob             pfrps-bng   b0b\\x21             *
    carol           *           'it is me'          -     # no IPv4 address: the login fails

* One entry per line: ``client server secret [address ...]``, words separated by blanks.
  A ``\\`` at the end of a line continues the entry on the next line.
* ``#`` at the start of a word starts a comment to the end of the line; blank lines are skipped.
* Unlike pppd, a backslash at the end of a line also ends the word before it (pppd joins the
  word with the next line's).
* A word may be quoted with ``"..."`` or ``'...'`` (blanks and ``#`` inside are literal; the
  quote must close on the same line). Outside or inside quotes ``\\`` escapes the next
  character: ``\\n \\t \\r \\s`` (space) ``\\a \\b \\f``, ``\\ooo`` (1-3 octal digits),
  ``\\xHH`` (1-2 hex digits), any other character stands for itself.
* ``*`` as the client or server matches any name. The most specific entry wins: exact client
  and server, then exact client with ``*`` server, then ``*`` client with exact server, then
  ``*`` and ``*``; among equals the first in file order (files in the order given to
  :meth:`Secrets.load`). This is pppd's NONWILD_CLIENT/NONWILD_SERVER scoring.
* Addresses: ``*`` any address (from the pool; pppd ends the list there); a dotted-quad IPv4
  address (optionally ``/32``) is a fixed address for the client, handed back in
  :attr:`pfrps.bng.auth.AuthResult.ipv4` (the first one when there are several); ``-`` as the
  first address word means no address at all (elsewhere it just ends the list, as in pppd).
* Two deliberate differences from pppd, where an entry with only three words allows *no*
  address: here it allows any pool address (what accel-ppp's chap-secrets does, and what a
  BNG's secrets file means); and an entry whose list starts with ``-`` *fails* authentication,
  because :class:`~pfrps.bng.auth.AuthResult` cannot say "no IPv4" and handing out a pool
  address would grant what the file denies (:attr:`Entry.no_address` says so).

Not supported (each is a :class:`~pfrps.errors.UsageError` naming ``file:line``, where pppd
would do something this BNG cannot): a secret starting with ``@`` (pppd reads the secret from
that file), per-peer pppd options after ``--``, address ranges (``a.b.c.d/n`` with n < 32),
negated addresses (``!addr``), host names in the address list, and entries with fewer than
three words (pppd silently skips those; here they are almost always a typo).

Unlike pppd, which reads ``pap-secrets`` for PAP and ``chap-secrets`` for CHAP, one
:class:`Secrets` holds every file it was given and serves both methods; load one object per
file to keep them apart.

Limits: a file is at most :data:`MAX_FILE_BYTES` bytes, a physical line at most
:data:`MAX_LINE_BYTES`, a word (after unquoting) at most :data:`MAX_WORD_BYTES` (pppd's
MAXWORDLEN); a longer one is a UsageError. Names and secrets are raw bytes, compared
exactly (case-sensitive, no Unicode normalisation); an empty secret ``""`` matches only an
empty PAP password (pppd's ``login`` option, where ``""`` matches any password, does not exist
here). Parsing takes about 1.5 s per 100,000 lines.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from ipaddress import AddressValueError, IPv4Address
from pathlib import Path
from typing import Optional, Sequence

from pfrps.bng.auth import AuthRequest, AuthResult, chap_md5
from pfrps.errors import UsageError

__all__ = ["MAX_FILE_BYTES", "MAX_LINE_BYTES", "MAX_WORD_BYTES", "WILDCARD", "FAILURE_MESSAGE",
           "PAP_OK_MESSAGE", "CHAP_OK_MESSAGE", "Entry", "Secrets", "parse_text"]

MAX_FILE_BYTES = 64 << 20   # 64 MiB: about a million subscribers
MAX_LINE_BYTES = 4096
MAX_WORD_BYTES = 1024       # pppd's MAXWORDLEN
WILDCARD = b"*"
#: The message of every failure: it never says whether the user exists.
FAILURE_MESSAGE = b"authentication failed"
PAP_OK_MESSAGE = b"Login ok"        # what pppd sends in its PAP Ack
CHAP_OK_MESSAGE = b"Access granted"  # what pppd sends in its CHAP Success

_BLANKS = b" \t\r\f\v"
_ESCAPES = {ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("s"): 32, ord("t"): 9}
_OCTAL = b"01234567"
_HEX = b"0123456789abcdefABCDEF"


@dataclass(frozen=True)
class Entry:
    """One secrets-file entry.

    Attributes:
        client: the client (user) name, or ``b"*"``.
        server: the server name, or ``b"*"``.
        secret: the PAP password or CHAP secret (raw bytes; left out of ``repr``).
        addresses: the fixed IPv4 addresses of the address list, in order (may be empty).
        any_address: ``*`` in the address list, or no address words at all.
        no_address: the address list starts with ``-``: the client may have no IPv4 address;
            :meth:`Secrets.authenticate` fails such a login (see the module docstring).
        source: ``"file:line"`` where the entry starts.
    """

    client: bytes
    server: bytes
    secret: bytes = field(repr=False)
    addresses: tuple[IPv4Address, ...] = ()
    any_address: bool = True
    no_address: bool = False
    source: str = ""

    @property
    def ipv4(self) -> Optional[IPv4Address]:
        """The fixed address handed out (the first of :attr:`addresses`), or None."""
        return self.addresses[0] if self.addresses else None


def _error(where: str, problem: str, hint: str) -> UsageError:
    return UsageError(f"{where}: {problem}", hint=hint)


def _words(text: bytes, name: str) -> list[tuple[int, list[tuple[bytes, bool]]]]:
    """Split ``text`` into entries: ``[(first line number, [(word, literal), ...]), ...]``.

    ``literal`` is true when the word's first character was quoted or escaped.
    Raises UsageError for an unterminated quote, a line or word over the limits.
    """
    entries: list[tuple[int, list[tuple[bytes, bool]]]] = []
    cur: list[tuple[bytes, bool]] = []
    start_line = 0
    lines = text.split(b"\n")
    cont = False  # the previous line ended in a backslash
    for lineno, line in enumerate(lines, 1):
        if line.endswith(b"\r"):  # CRLF files
            line = line[:-1]
        if len(line) > MAX_LINE_BYTES:
            raise _error(f"{name}:{lineno}", f"line of {len(line)} bytes, at most {MAX_LINE_BYTES}",
                         "split the entry with a backslash at the end of the line")
        if not cont and cur:
            entries.append((start_line, cur))
            cur = []
        cont = False
        if b'"' not in line and b"'" not in line and b"\\" not in line:  # the fast path: plain words
            plain = line.split(b"#", 1)[0].split()
            for w in plain:
                if len(w) > MAX_WORD_BYTES:
                    raise _error(f"{name}:{lineno}", f"a word of more than {MAX_WORD_BYTES} bytes",
                                 "shorten the name or secret")
            if plain and not cur:
                start_line = lineno
            cur.extend((w, False) for w in plain)
            continue
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if c in _BLANKS:
                i += 1
                continue
            if c == 0x23:  # '#': a comment to the end of the line
                break
            if c == 0x5C and i == n - 1:  # backslash-newline: continue the entry
                cont = True
                break
            word = bytearray()
            literal = False
            quote = 0
            if c in (0x22, 0x27):
                quote, literal = c, True
                i += 1
            first = True
            while True:
                if i >= n:
                    if quote:
                        raise _error(f"{name}:{lineno}", f"unterminated quote {chr(quote)}",
                                     f"close the quote with {chr(quote)} on the same line")
                    break
                c = line[i]
                if c == 0x5C:  # backslash escape
                    if i == n - 1:
                        if quote:
                            raise _error(f"{name}:{lineno}", f"unterminated quote {chr(quote)}",
                                         f"close the quote with {chr(quote)} on the same line")
                        cont = True  # backslash-newline inside a word: the word ends here
                        i += 1
                        break
                    literal = literal or first
                    i += 1
                    c = line[i]
                    if c in _ESCAPES:
                        word.append(_ESCAPES[c])
                        i += 1
                    elif c in _OCTAL:
                        j = i
                        while j < n and j - i < 3 and line[j] in _OCTAL:
                            j += 1
                        word.append(int(line[i:j], 8) & 0xFF)
                        i = j
                    elif c == 0x78:  # \xHH
                        j = i + 1
                        while j < n and j - i - 1 < 2 and line[j] in _HEX:
                            j += 1
                        word.append(int(line[i + 1:j] or b"0", 16))
                        i = j
                    else:
                        word.append(c)
                        i += 1
                elif quote and c == quote:
                    i += 1
                    break
                elif not quote and (c in _BLANKS or c == 0x23):
                    break
                else:
                    word.append(c)
                    i += 1
                first = False
                if len(word) > MAX_WORD_BYTES:
                    raise _error(f"{name}:{lineno}", f"a word of more than {MAX_WORD_BYTES} bytes",
                                 "shorten the name or secret")
            if not cur:
                start_line = lineno
            cur.append((bytes(word), literal))
            if cont:
                break
    if cur:
        entries.append((start_line, cur))
    return entries


def _address(word: bytes, where: str) -> IPv4Address:
    text = word.decode("ascii", "replace")
    hint = "use '*' (any pool address), '-' (none) or one IPv4 address like 10.0.0.9"
    if word.startswith(b"!"):
        raise _error(where, f"negated address {text!r} is not supported", hint)
    if b"/" in word:
        addr, _, bits = word.partition(b"/")
        if bits != b"32":
            raise _error(where, f"address range {text!r} is not supported, only single addresses", hint)
        word = addr
    try:
        a = IPv4Address(word.decode("ascii"))
    except (AddressValueError, UnicodeDecodeError):
        raise _error(where, f"{text!r} is not an IPv4 address (host names are not resolved)", hint) from None
    if a.is_loopback or a.is_multicast or a.is_unspecified or a.is_reserved or a == IPv4Address("255.255.255.255"):
        raise _error(where, f"{a} cannot be a client's address (loopback, multicast, reserved or unspecified)", hint)
    return a


def parse_text(text: bytes, name: str = "<secrets>") -> list[Entry]:
    """Parse the contents of one secrets file into entries, in file order.

    Args:
        text: the file's bytes.
        name: the file name used in errors (``name:line: problem``).

    Raises:
        UsageError: a malformed entry, naming ``name:line``, the problem and the fix.
    """
    out = []
    for lineno, words in _words(text, name):
        where = f"{name}:{lineno}"
        if len(words) < 3:
            raise _error(where, f"{len(words)} word{'s' if len(words) != 1 else ''}, need at least 3 "
                                "(client server secret [address ...])",
                         'quote a name or secret that contains blanks, like "my secret"')
        (client, _), (server, _), (secret, _) = words[:3]
        if secret.startswith(b"@"):
            raise _error(where, "a secret starting with '@' names a file in pppd: not supported",
                         "put the secret itself in this file (it cannot start with '@')")
        addrs: list[IPv4Address] = []
        any_address = len(words) == 3
        no_address = False
        for w, literal in words[3:]:
            if w == b"--" and not literal:
                raise _error(where, "per-peer pppd options after '--' are not supported",
                             "remove '--' and the words after it")
            if w == b"-" and not literal:  # pppd: the list ends; first word: no address at all
                no_address = not addrs
                break
            if w == b"*" and not literal:  # pppd: any address, the list ends
                any_address = True
                break
            addrs.append(_address(w, where))
        out.append(Entry(client, server, secret, tuple(addrs), any_address, no_address, where))
    return out


class Secrets:
    """The entries of one or more secrets files, indexed for O(1) lookup.

    Build with :meth:`load` (files) or ``Secrets(entries)`` (e.g. from :func:`parse_text`).
    Immutable after construction; reload by building a new one.
    """

    def __init__(self, entries: Sequence[Entry] = ()) -> None:
        self.entries: tuple[Entry, ...] = tuple(entries)
        # the first entry for each (client, server) key; "*" stays "*": score order in lookup()
        self._index: dict[tuple[bytes, bytes], Entry] = {}
        for e in self.entries:
            self._index.setdefault((e.client, e.server), e)
        # a stand-in secret so that an unknown user costs the same work as a known one
        self._dummy = b"\x00" * 16

    @property
    def fixed_ipv4(self) -> frozenset[IPv4Address]:
        """Every fixed address of every entry: pass it as ``Pool4(..., reserved=...)`` so that no
        worker hands one of them out dynamically."""
        return frozenset(a for e in self.entries for a in e.addresses)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return f"Secrets({len(self.entries)} entries)"

    @classmethod
    def load(cls, paths: Sequence[Path]) -> "Secrets":
        """Read and parse secrets files, in order (earlier files win among equally specific entries).

        Raises:
            UsageError: a file cannot be read or is over :data:`MAX_FILE_BYTES`, or an entry is
                malformed (the message names ``file:line``, the hint the fix).
        """
        entries: list[Entry] = []
        for path in paths:
            path = Path(path)
            try:
                with open(path, "rb") as f:
                    data = f.read(MAX_FILE_BYTES + 1)
            except OSError as e:
                raise UsageError(f"cannot read secrets file {path}: {e.strerror or e}", code=e.errno or 0,
                                 hint="check the path and that this user may read it") from None
            if len(data) > MAX_FILE_BYTES:
                raise UsageError(f"secrets file {path} is over {MAX_FILE_BYTES} bytes",
                                 hint="split it or use RADIUS for this many subscribers")
            entries.extend(parse_text(data, str(path)))
        return cls(entries)

    def lookup(self, client: bytes, server: bytes) -> Optional[Entry]:
        """The entry for ``client`` on ``server``: exact client and server, else exact client and
        ``*`` server, else ``*`` client and exact server, else ``*`` and ``*``; the first in file
        order among equals (pppd's ``scan_authfile``). None when nothing matches.

        A client or server literally named ``*`` matches only wildcard entries' field, as in pppd.
        """
        idx = self._index
        return (idx.get((client, server)) or idx.get((client, WILDCARD)) or idx.get((WILDCARD, server))
                or idx.get((WILDCARD, WILDCARD)))

    def authenticate(self, req: AuthRequest, server: bytes) -> AuthResult:
        """Check a PAP password or CHAP-MD5 response against the entry for ``req.user`` on ``server``.

        PAP: the password equals the secret (``hmac.compare_digest``, constant time for equal
        lengths). CHAP: ``req.response`` equals ``chap_md5(req.chap_id, secret, req.challenge)``
        (RFC 1994 4.1), compared the same way. A missing field (password, chap_id, challenge,
        response) fails, and so does an entry whose address list starts with ``-``
        (:attr:`Entry.no_address`). An unknown user costs the same compare as a known one.

        Returns:
            ``AuthResult(True, b"Login ok" | b"Access granted", fixed address or None)``, or
            ``AuthResult(False, b"authentication failed")`` whatever the reason.
        """
        entry = self.lookup(req.user, server)
        secret = entry.secret if entry is not None else self._dummy
        if req.method == "pap":
            given = req.password
            expected = secret
            ok_message = PAP_OK_MESSAGE
        else:
            given = req.response
            ident = req.chap_id if req.chap_id is not None and 0 <= req.chap_id <= 255 else 0
            expected = chap_md5(ident, secret, req.challenge or b"")
            ok_message = CHAP_OK_MESSAGE
            if req.chap_id is None or req.challenge is None or ident != req.chap_id:
                given = None
        match = hmac.compare_digest(given if given is not None else b"", expected)
        if entry is None or given is None or not match or entry.no_address:
            return AuthResult(False, FAILURE_MESSAGE)
        return AuthResult(True, ok_message, entry.ipv4)
