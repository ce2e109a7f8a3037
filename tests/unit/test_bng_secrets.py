"""pfrps.bng.secrets: pppd-format secrets files (pppd(8) AUTHENTICATION), lookup and authenticate."""

from __future__ import annotations

import os
from ipaddress import IPv4Address

import pytest

from pfrps.bng import secrets as s
from pfrps.bng.auth import AuthRequest, AuthResult, chap_md5
from pfrps.errors import UsageError

A = IPv4Address

# (description, file text, expected [(client, server, secret, addresses, any_address, no_address, line)])
PARSE_CASES = [
    ("plain entry, no addresses: any pool address", b"alice * pw\n", [(b"alice", b"*", b"pw", (), True, False, 1)]),
    ("comments and blank lines", b"# header\n\n   \n  # indented\nalice server pw # tail\n",
     [(b"alice", b"server", b"pw", (), True, False, 5)]),
    ("'#' inside an unquoted word ends it and starts a comment", b"alice srv pw#not-part\n",
     [(b"alice", b"srv", b"pw", (), True, False, 1)]),
    ("tabs and CRLF", b"alice\t*\tpw\t10.0.0.9\r\n", [(b"alice", b"*", b"pw", (A("10.0.0.9"),), False, False, 1)]),
    ("double quotes keep blanks and '#'", b'"my user" * "correct horse # battery"\n',
     [(b"my user", b"*", b"correct horse # battery", (), True, False, 1)]),
    ("single quotes", b"'a b' * 'c\"d'\n", [(b"a b", b"*", b'c"d', (), True, False, 1)]),
    ("empty quoted secret", b'guest * ""\n', [(b"guest", b"*", b"", (), True, False, 1)]),
    ("escapes: \\s \\t \\x21 \\101 \\\\ \\q", b"u * a\\sb\\tc\\x21\\101\\\\\\q\n",
     [(b"u", b"*", b"a b\tc!A\\q", (), True, False, 1)]),
    ("backslash continues the entry on the next line", b"alice * pw \\\n   10.0.0.9\nbob * pw2\n",
     [(b"alice", b"*", b"pw", (A("10.0.0.9"),), False, False, 1), (b"bob", b"*", b"pw2", (), True, False, 3)]),
    ("'*' address: any", b"u * pw *\n", [(b"u", b"*", b"pw", (), True, False, 1)]),
    ("fixed address then '*'", b"u * pw 10.0.0.9 *\n", [(b"u", b"*", b"pw", (A("10.0.0.9"),), True, False, 1)]),
    ("'/32' is a single address", b"u * pw 10.0.0.9/32\n", [(b"u", b"*", b"pw", (A("10.0.0.9"),), False, False, 1)]),
    ("several fixed addresses", b"u * pw 10.0.0.9 10.0.0.10\n",
     [(b"u", b"*", b"pw", (A("10.0.0.9"), A("10.0.0.10")), False, False, 1)]),
    ("'-' first: no address", b"u * pw -\n", [(b"u", b"*", b"pw", (), False, True, 1)]),
    ("'-' after an address ends the list (pppd)", b"u * pw 10.0.0.9 - 10.0.0.10\n",
     [(b"u", b"*", b"pw", (A("10.0.0.9"),), False, False, 1)]),
    ("a quoted '*' as a name is still the wildcard word", b'"*" * pw\n', [(b"*", b"*", b"pw", (), True, False, 1)]),
    ("empty file", b"", []),
    ("no final newline", b"a b c", [(b"a", b"b", b"c", (), True, False, 1)]),
    ("non-ASCII bytes are kept", "j\u00fcrgen * p\u00e4ss\n".encode(),
     [("j\u00fcrgen".encode(), b"*", "p\u00e4ss".encode(), (), True, False, 1)]),
]


@pytest.mark.parametrize("desc,text,want", PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse(desc, text, want):
    got = [(e.client, e.server, e.secret, e.addresses, e.any_address, e.no_address, int(e.source.split(":")[-1]))
           for e in s.parse_text(text, "f")]
    assert got == want, desc


# (description, file text, what the message must contain)
BAD_FILES = [
    ("two words", b"alice *\n", "f:1: 2 words, need at least 3"),
    ("one word on line 3", b"# x\n\nalice\n", "f:3: 1 word, need at least 3"),
    ("unterminated double quote", b'alice * "pw\n', "f:1: unterminated quote \""),
    ("unterminated single quote on line 2", b"a b c\nalice * 'pw\n", "f:2: unterminated quote '"),
    ("a quote cannot span lines", b'alice * "pw\nmore"\n', "f:1: unterminated quote"),
    ("@file secret", b"alice * @/etc/ppp/alice\n", "f:1: a secret starting with '@'"),
    ("@ secret, quoted", b'alice * "@x"\n', "secret starting with '@'"),
    ("options after --", b"alice * pw 10.0.0.9 -- mtu 1400\n", "f:1: per-peer pppd options after '--'"),
    ("subnet", b"alice * pw 10.0.0.0/24\n", "address range '10.0.0.0/24'"),
    ("negated address", b"alice * pw !10.0.0.9\n", "negated address"),
    ("host name", b"alice * pw host.example\n", "'host.example' is not an IPv4 address"),
    ("IPv6 address", b"alice * pw 2001:db8::1\n", "not an IPv4 address"),
    ("loopback", b"alice * pw 127.0.0.1\n", "127.0.0.1 cannot be a client's address"),
    ("multicast", b"alice * pw 224.0.0.1\n", "cannot be a client's address"),
    ("0.0.0.0", b"alice * pw 0.0.0.0\n", "cannot be a client's address"),
    ("line too long", b"alice * " + b"p" * s.MAX_LINE_BYTES + b"\n", f"line of {s.MAX_LINE_BYTES + 8} bytes"),
    ("word too long (quoted)", b'alice * "' + b"p" * (s.MAX_WORD_BYTES + 1) + b'"\n', "a word of more than"),
    ("word too long (plain)", b"alice * " + b"p" * (s.MAX_WORD_BYTES + 1) + b"\n", "a word of more than"),
]


@pytest.mark.parametrize("desc,text,word", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_malformed_files_name_file_and_line_with_a_hint(desc, text, word):
    with pytest.raises(UsageError) as ei:
        s.parse_text(text, "f")
    e = ei.value
    assert word in e.msg, (desc, e.msg)
    assert e.hint and e.exit_status == 2
    assert "\n" not in e.one_line()


def test_load_reads_files_in_order_and_names_the_path(tmp_path):
    pap = tmp_path / "pap-secrets"
    chap = tmp_path / "chap-secrets"
    pap.write_bytes(b"alice * first\n")
    chap.write_bytes(b"# chap\nalice * second\nbob * b\n")
    sec = s.Secrets.load([pap, chap])
    assert len(sec) == 3 and repr(sec) == "Secrets(3 entries)"
    assert sec.lookup(b"alice", b"bng").secret == b"first"  # earlier file wins among equals
    assert sec.lookup(b"bob", b"bng").source == f"{chap}:3"
    chap.write_bytes(b"ok * x\nbad\n")
    with pytest.raises(UsageError, match=f"{chap}:2: 1 word"):
        s.Secrets.load([pap, chap])


def test_load_unreadable_files(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(UsageError, match=f"cannot read secrets file {missing}") as ei:
        s.Secrets.load([missing])
    assert ei.value.hint
    with pytest.raises(UsageError, match="cannot read secrets file"):
        s.Secrets.load([tmp_path])  # a directory
    if os.geteuid() != 0:
        f = tmp_path / "secret"
        f.write_bytes(b"a b c\n")
        f.chmod(0)
        with pytest.raises(UsageError, match="Permission denied"):
            s.Secrets.load([f])


def test_load_refuses_huge_files(tmp_path, monkeypatch):
    monkeypatch.setattr(s, "MAX_FILE_BYTES", 100)
    f = tmp_path / "big"
    f.write_bytes(b"a b c\n" * 20)
    with pytest.raises(UsageError, match="over 100 bytes"):
        s.Secrets.load([f])


LOOKUP_TEXT = b"""\
*      *     any-any
alice  *     alice-any
*      bng   any-bng
alice  bng   alice-bng
alice  bng   alice-bng-second
bob    *     bob-any
*      other any-other
carol  other carol-other
"""

# (client, server, expected secret or None): exact client beats *, then exact server beats *
LOOKUP_CASES = [
    (b"alice", b"bng", b"alice-bng"),          # exact/exact, first of two equals
    (b"alice", b"x", b"alice-any"),            # exact client, * server
    (b"bob", b"bng", b"bob-any"),              # exact client with * server beats * client with exact server
    (b"dave", b"bng", b"any-bng"),             # * client, exact server
    (b"dave", b"x", b"any-any"),               # * *
    (b"carol", b"bng", b"any-bng"),
    (b"carol", b"other", b"carol-other"),
    (b"", b"", b"any-any"),                    # empty names match wildcards only
    (b"ALICE", b"bng", b"any-bng"),            # case matters
]


@pytest.mark.parametrize("client,server,want", LOOKUP_CASES)
def test_lookup_most_specific_first(client, server, want):
    sec = s.Secrets(s.parse_text(LOOKUP_TEXT))
    e = sec.lookup(client, server)
    assert (e.secret if e else None) == want


def test_lookup_without_wildcards_can_miss():
    sec = s.Secrets(s.parse_text(b"alice bng pw\n"))
    assert sec.lookup(b"alice", b"other") is None and sec.lookup(b"bob", b"bng") is None


AUTH_TEXT = b"""\
alice  *    "alice pw"   10.0.0.9
bob    bng  bobpw        *
nobody *    nopw         -
"""
CH = bytes(range(16))


def pap(user, pw):
    return AuthRequest("pap", user, password=pw)


def chap(user, ident, secret, challenge=CH):
    return AuthRequest("chap", user, chap_id=ident, challenge=challenge, response=chap_md5(ident, secret, challenge))


FAIL = AuthResult(False, b"authentication failed")
AUTH_CASES = [
    ("PAP ok, fixed address", pap(b"alice", b"alice pw"), b"bng", AuthResult(True, b"Login ok", A("10.0.0.9"))),
    ("PAP ok, pool address", pap(b"bob", b"bobpw"), b"bng", AuthResult(True, b"Login ok", None)),
    ("PAP wrong password", pap(b"alice", b"alice PW"), b"bng", FAIL),
    ("PAP password prefix", pap(b"alice", b"alice"), b"bng", FAIL),
    ("PAP unknown user: the same message", pap(b"mallory", b"x"), b"bng", FAIL),
    ("PAP entry for another server", pap(b"bob", b"bobpw"), b"other", FAIL),
    ("PAP no password", AuthRequest("pap", b"alice"), b"bng", FAIL),
    ("PAP '-' entry: no address, so no login", pap(b"nobody", b"nopw"), b"bng", FAIL),
    ("PAP empty user and secret (pppd's refuse-to-authenticate entry)", pap(b"", b""), b"bng",
     AuthResult(True, b"Login ok", None)),
    ("CHAP ok, fixed address", chap(b"alice", 7, b"alice pw"), b"bng",
     AuthResult(True, b"Access granted", A("10.0.0.9"))),
    ("CHAP ok, pool", chap(b"bob", 255, b"bobpw"), b"bng", AuthResult(True, b"Access granted", None)),
    ("CHAP wrong secret", chap(b"alice", 7, b"wrong"), b"bng", FAIL),
    ("CHAP response for another identifier",
     AuthRequest("chap", b"alice", chap_id=8, challenge=CH, response=chap_md5(7, b"alice pw", CH)), b"bng", FAIL),
    ("CHAP response for another challenge",
     AuthRequest("chap", b"alice", chap_id=7, challenge=CH, response=chap_md5(7, b"alice pw", bytes(16))), b"bng",
     FAIL),
    ("CHAP truncated response",
     AuthRequest("chap", b"alice", chap_id=7, challenge=CH, response=chap_md5(7, b"alice pw", CH)[:15]), b"bng", FAIL),
    ("CHAP unknown user", chap(b"mallory", 1, b"x"), b"bng", FAIL),
    ("CHAP missing response", AuthRequest("chap", b"alice", chap_id=7, challenge=CH), b"bng", FAIL),
    ("CHAP missing challenge",
     AuthRequest("chap", b"alice", chap_id=7, response=chap_md5(7, b"alice pw", b"")), b"bng", FAIL),
    ("CHAP missing identifier", AuthRequest("chap", b"alice", challenge=CH, response=chap_md5(0, b"alice pw", CH)),
     b"bng", FAIL),
    ("CHAP identifier out of range", AuthRequest("chap", b"alice", chap_id=256, challenge=CH,
                                                  response=chap_md5(0, b"alice pw", CH)), b"bng", FAIL),
    ("CHAP '-' entry", chap(b"nobody", 1, b"nopw"), b"bng", FAIL),
]


@pytest.mark.parametrize("desc,req,server,want", AUTH_CASES, ids=[c[0] for c in AUTH_CASES])
def test_authenticate(desc, req, server, want):
    sec = s.Secrets(s.parse_text(AUTH_TEXT + b'"" * ""\n'))
    assert sec.authenticate(req, server) == want, desc


def test_authenticate_uses_constant_time_compare(monkeypatch):
    calls = []
    real = s.hmac.compare_digest

    def spy(x, y):
        calls.append((x, y))
        return real(x, y)

    monkeypatch.setattr(s.hmac, "compare_digest", spy)
    sec = s.Secrets(s.parse_text(AUTH_TEXT))
    sec.authenticate(pap(b"alice", b"guess"), b"bng")
    sec.authenticate(pap(b"mallory", b"guess"), b"bng")  # an unknown user does the same work
    sec.authenticate(chap(b"alice", 1, b"guess"), b"bng")
    assert len(calls) == 3 and calls[0] == (b"guess", b"alice pw") and len(calls[2][1]) == 16


def test_entry_repr_hides_the_secret():
    (e,) = s.parse_text(b"alice * hunter2 10.0.0.9\n", "f")
    assert "hunter2" not in repr(e) and e.ipv4 == A("10.0.0.9") and e.source == "f:1"


def test_fixed_ipv4_lists_every_fixed_address_for_pool_reservation():
    sec = s.Secrets(s.parse_text(b"a * x 10.0.0.9 10.0.0.10\nb * y *\nc * z 10.0.0.9\n"))
    assert sec.fixed_ipv4 == {A("10.0.0.9"), A("10.0.0.10")}
