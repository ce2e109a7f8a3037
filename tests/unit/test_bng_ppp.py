"""pfrps.bng.ppp (codec, the RFC 1661 automaton), pfrps.bng.lcp and pfrps.bng.ipcp.

The automaton is checked cell by cell against RFC 1661 4.1's table, transcribed here a second
time as the RFC prints it (two halves), independently of the module's copy. Timers run on a
fake clock. Option handling is checked with tables of (description, peer options, expected
reply code and options), and packet bytes are cross-checked against scapy's PPP layers.
"""

from __future__ import annotations

import heapq
import random
import struct

import pytest
from scapy.layers.ppp import (PPP, PPP_IPCP, PPP_IPCP_Option_DNS1, PPP_IPCP_Option_DNS2, PPP_IPCP_Option_IPAddress,
                              PPP_LCP_Auth_Protocol_Option, PPP_LCP_Configure, PPP_LCP_Echo,
                              PPP_LCP_Magic_Number_Option, PPP_LCP_MRU_Option, PPP_LCP_Protocol_Reject,
                              PPP_LCP_Terminate)
from ipaddress import IPv4Address

from pfrps.bng import ppp
from pfrps.bng.ipcp import IpcpLayer, Ipv6cpLayer
from pfrps.bng.lcp import LcpLayer, build_echo_request, build_protocol_reject
from pfrps.bng.ppp import (CODE_REJ, CONF_ACK, CONF_NAK, CONF_REJ, CONF_REQ, ECHO_REP, ECHO_REQ, TERM_ACK, TERM_REQ,
                           Fsm, Packet, encode_options, encode_packet, parse_options, parse_packet)


# -- helpers ---------------------------------------------------------------------------------------
class Handle:
    __slots__ = ("when", "fn", "cancelled")

    def __init__(self, when, fn):
        self.when, self.fn, self.cancelled = when, fn, False

    def cancel(self):
        self.cancelled = True


class Clock:
    """A fake event loop clock: call_later + advance(seconds)."""

    def __init__(self):
        self.now = 0.0
        self._q = []
        self._seq = 0

    def call_later(self, delay, fn, *args):
        h = Handle(self.now + delay, (fn, args))
        heapq.heappush(self._q, (h.when, self._seq, h))
        self._seq += 1
        return h

    def advance(self, dt):
        end = self.now + dt
        while self._q and self._q[0][0] <= end:
            when, _, h = heapq.heappop(self._q)
            if h.cancelled:
                continue
            self.now = when
            h.cancelled = True
            fn, args = h.fn
            fn(*args)
        self.now = end

    def pending(self):
        return [h for _, _, h in self._q if not h.cancelled]


ADDR_OPT = (3, bytes([10, 0, 0, 1]))


class DummyLayer:
    """A Layer whose verdicts the test sets; it logs the FSM's callbacks."""

    protocol = ppp.PPP_IPCP
    name = "TEST"

    def __init__(self):
        self.log = []
        self.verdict = CONF_ACK
        self.opts = [ADDR_OPT]
        self.nak_ok = True
        self.reject_ok = True
        self.extra = False
        self.magic = 0x11223344
        self.reject_naks_seen = []

    def request_options(self):
        return list(self.opts)

    def check_request(self, opts, reject_naks):
        self.reject_naks_seen.append(reject_naks)
        if self.verdict == CONF_ACK:
            return CONF_ACK, opts
        if self.verdict == CONF_NAK and not reject_naks:
            return CONF_NAK, [(3, bytes([10, 0, 0, 2]))]
        return CONF_REJ, opts

    def on_ack(self, opts):
        return True

    def on_nak(self, opts):
        self.log.append("on_nak")
        return None if self.nak_ok else False

    def on_reject(self, opts):
        self.log.append("on_reject")
        return self.reject_ok

    def this_layer_up(self):
        self.log.append("tlu")

    def this_layer_down(self):
        self.log.append("tld")

    def this_layer_started(self):
        self.log.append("tls")

    def this_layer_finished(self):
        self.log.append("tlf")

    def extra_code(self, pkt):
        return self.extra


def make(**kw):
    clock = Clock()
    sent = []
    layer = DummyLayer()
    fsm = Fsm(layer, lambda proto, pkt: sent.append((proto, pkt)), clock.call_later, **kw)
    return fsm, layer, sent, clock


def codes(sent):
    return [pkt[0] for _, pkt in sent]


def last(sent) -> Packet:
    return parse_packet(sent[-1][1])


def opened(**kw):
    """An Fsm taken to Opened through real packets."""
    fsm, layer, sent, clock = make(**kw)
    fsm.open()
    fsm.up()
    req = last(sent)
    fsm.receive(encode_packet(CONF_ACK, req.identifier, req.data))
    fsm.receive(encode_packet(CONF_REQ, 0x40, encode_options([(3, bytes([10, 0, 0, 2]))])))
    assert fsm.state == "Opened"
    sent.clear()
    layer.log.clear()
    return fsm, layer, sent, clock


# -- RFC 1661 4.1, as printed in the RFC ------------------------------------------------------------
RFC_A = """
 Up   |    2     irc,scr/6     -         -         -         -
 Down |    -         -         0       tls/1       0         1
 Open |  tls/1       1     irc,scr/6     3r        5r        5r
 Close|    0       tlf/0       2         2         4         4
  TO+ |    -         -         -         -       str/4     str/5
  TO- |    -         -         -         -       tlf/2     tlf/3
 RCR+ |    -         -       sta/2 irc,scr,sca/8   4         5
 RCR- |    -         -       sta/2 irc,scr,scn/6   4         5
 RCA  |    -         -       sta/2     sta/3       4         5
 RCN  |    -         -       sta/2     sta/3       4         5
 RTR  |    -         -       sta/2     sta/3     sta/4     sta/5
 RTA  |    -         -         2         3       tlf/2     tlf/3
 RUC  |    -         -       scj/2     scj/3     scj/4     scj/5
 RXJ+ |    -         -         2         3         4         5
 RXJ- |    -         -       tlf/2     tlf/3     tlf/2     tlf/3
 RXR  |    -         -         2         3         4         5
"""
RFC_B = """
 Up   |    -         -         -           -
 Down |    1         1         1         tld/1
 Open |    6         7         8           9r
 Close|irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4
  TO+ |  scr/6     scr/6     scr/8         -
  TO- |  tlf/3p    tlf/3p    tlf/3p        -
 RCR+ |  sca/8   sca,tlu/9   sca/8   tld,scr,sca/8
 RCR- |  scn/6     scn/7     scn/6   tld,scr,scn/6
 RCA  |  irc/7     scr/6x  irc,tlu/9   tld,scr/6x
 RCN  |irc,scr/6   scr/6x  irc,scr/8   tld,scr/6x
 RTR  |  sta/6     sta/6     sta/6   tld,zrc,sta/5
 RTA  |    6         6         8       tld,scr/6
 RUC  |  scj/6     scj/7     scj/8       scj/9
 RXJ+ |    6         6         8           9
 RXJ- |  tlf/3     tlf/3     tlf/3   tld,irc,str/5
 RXR  |    6         7         8         ser/9
"""
STATES = ["Initial", "Starting", "Closed", "Stopped", "Closing", "Stopping", "Req-Sent", "Ack-Rcvd", "Ack-Sent",
          "Opened"]


def rfc_cells():
    cells = {}
    for text, first in ((RFC_A, 0), (RFC_B, 6)):
        for line in text.strip().splitlines():
            event, _, row = line.partition("|")
            for i, cell in enumerate(row.split()):
                state = STATES[first + i]
                if cell == "-":
                    cells[(state, event.strip())] = None
                else:
                    acts, _, nxt = cell.rpartition("/")
                    cells[(state, event.strip())] = (tuple(acts.split(",")) if acts else (),
                                                     STATES[int(nxt.rstrip("prx"))])
    return cells


RFC = rfc_cells()
SEND_CODE = {"scr": CONF_REQ, "sca": CONF_ACK, "scn": CONF_NAK, "str": TERM_REQ, "sta": TERM_ACK, "scj": CODE_REJ,
             "ser": ECHO_REP}
CALLBACKS = ("tlu", "tld", "tls", "tlf")


def test_module_table_is_rfc_1661():
    assert len(RFC) == 160
    expected = {k: v for k, v in RFC.items() if v is not None}
    assert ppp.TABLE == expected
    assert len(ppp.TABLE) == 120


def fire(fsm, layer, event):
    """Make ``event`` happen to ``fsm`` (the state was set by the caller)."""
    if event == "Up":
        fsm.up()
    elif event == "Down":
        fsm.down()
    elif event == "Open":
        fsm.open()
    elif event == "Close":
        fsm.close(b"bye")
    elif event in ("TO+", "TO-"):
        fsm._restart_count = 1 if event == "TO+" else 0
        fsm._timeout()
    elif event in ("RCR+", "RCR-"):
        layer.verdict = CONF_ACK if event == "RCR+" else CONF_NAK
        fsm.receive(encode_packet(CONF_REQ, 0x33, encode_options([(3, bytes(4))])))
    elif event == "RCA":
        fsm.receive(encode_packet(CONF_ACK, 7, encode_options(layer.opts)))
    elif event == "RCN":
        fsm.receive(encode_packet(CONF_NAK, 7, encode_options([(3, bytes([10, 0, 0, 9]))])))
    elif event == "RTR":
        fsm.receive(encode_packet(TERM_REQ, 0x44, b"why"))
    elif event == "RTA":
        fsm.receive(encode_packet(TERM_ACK, 0x45))
    elif event == "RUC":
        fsm.receive(encode_packet(0x20, 0x46, b"??"))
    elif event == "RXJ+":
        fsm.receive(encode_packet(CODE_REJ, 0x47, encode_packet(9, 1, b"\0\0\0\0")))
    elif event == "RXJ-":
        fsm.receive(encode_packet(CODE_REJ, 0x48, encode_packet(CONF_REQ, 1, b"")))
    elif event == "RXR":
        fsm.rxr(Packet(ECHO_REQ, 0x49, b"\1\2\3\4data"))
    else:
        raise AssertionError(event)


@pytest.mark.parametrize("state,event", sorted(RFC), ids=lambda v: str(v))
def test_rfc1661_cell(state, event):
    """Every (state, event) of RFC 1661 4.1: the packets sent (in order), the layer callbacks,
    the next state, the restart counter and the timer."""
    fsm, layer, sent, clock = make(max_configure=10, max_terminate=2)
    fsm.state = state
    fsm._req_id, fsm._req_opts, fsm._req_data, fsm._replied = 7, list(layer.opts), encode_options(layer.opts), False
    fsm._restart_count = 5
    cell = RFC[(state, event)]
    fire(fsm, layer, event)
    if cell is None:  # RFC "-": cannot happen; ignored
        assert (sent, layer.log, fsm.state) == ([], [], state)
        return
    actions, nxt = cell
    assert fsm.state == nxt
    assert codes(sent) == [SEND_CODE[a] for a in actions if a in SEND_CODE]
    assert [x for x in layer.log if x in CALLBACKS] == [a for a in actions if a in CALLBACKS]
    retransmit = event == "TO+"
    sends = sum(a in ("scr", "str") for a in actions)
    if "zrc" in actions:
        assert fsm._restart_count == 0
    elif "irc" in actions:
        full = 2 if nxt in ("Closing", "Stopping") else 10
        assert fsm._restart_count == full - sends
    elif event not in ("TO+", "TO-"):  # the test set the counter to time out
        assert fsm._restart_count == 5 - sends
    if nxt not in ppp.TIMER_STATES:
        assert clock.pending() == []
    if {"scr", "str", "zrc"} & set(actions):
        assert len(clock.pending()) == 1
    for _, pkt in sent:
        p = parse_packet(pkt)
        if p.code == TERM_ACK and event == "RTR":
            assert p.identifier == 0x44
        if p.code == CONF_ACK:
            assert p.identifier == 0x33 and p.data == encode_options([(3, bytes(4))])
        if p.code == CONF_NAK:
            assert p.identifier == 0x33 and p.data == encode_options([(3, bytes([10, 0, 0, 2]))])
        if p.code == CODE_REJ:
            assert p.data == encode_packet(0x20, 0x46, b"??")
        if p.code == ECHO_REP:
            assert (p.identifier, p.data) == (0x49, struct.pack("!I", layer.magic) + b"data")
        if p.code == CONF_REQ and retransmit:
            assert p.identifier == 7 and p.data == fsm._req_data


# -- timers and counters ----------------------------------------------------------------------------
def test_max_configure_exactly():
    fsm, layer, sent, clock = make()
    fsm.open()
    fsm.up()
    assert fsm.state == "Req-Sent" and codes(sent) == [CONF_REQ]
    clock.advance(3.0 * 9 + 0.5)
    assert codes(sent) == [CONF_REQ] * 10
    ids = {parse_packet(p).identifier for _, p in sent}
    assert len(ids) == 1  # retransmissions keep the identifier
    assert "tlf" not in layer.log and fsm.state == "Req-Sent"
    clock.advance(2.5)  # t = 30: the 10th request timed out
    assert fsm.state == "Stopped" and layer.log == ["tls", "tlf"]
    clock.advance(100)
    assert len(sent) == 10 and fsm.counters["timeouts"] == 10 and fsm.counters["conf_req_tx"] == 10


@pytest.mark.parametrize("max_configure,restart", [(1, 3.0), (3, 1.0), (10, 0.5)])
def test_max_configure_parameters(max_configure, restart):
    fsm, layer, sent, clock = make(max_configure=max_configure, restart=restart)
    fsm.open()
    fsm.up()
    clock.advance(restart * max_configure - restart / 2)
    assert len(sent) == max_configure and fsm.state == "Req-Sent"
    clock.advance(restart)
    assert fsm.state == "Stopped" and len(sent) == max_configure


def test_max_terminate_exactly():
    fsm, layer, sent, clock = opened()
    fsm.close(b"admin")
    assert layer.log == ["tld"] and fsm.state == "Closing"
    assert codes(sent) == [TERM_REQ] and last(sent).data == b"admin"
    clock.advance(3.0)
    assert codes(sent) == [TERM_REQ, TERM_REQ]
    assert parse_packet(sent[0][1]).identifier == parse_packet(sent[1][1]).identifier
    clock.advance(2.9)
    assert fsm.state == "Closing"
    clock.advance(0.2)
    assert fsm.state == "Closed" and layer.log == ["tld", "tlf"] and len(sent) == 2


def test_terminate_ack_finishes_at_once():
    fsm, layer, sent, clock = opened()
    fsm.close()
    fsm.receive(encode_packet(TERM_ACK, last(sent).identifier))
    assert fsm.state == "Closed" and layer.log == ["tld", "tlf"] and clock.pending() == []


def test_peer_terminate_request_zero_restart_count():
    fsm, layer, sent, clock = opened()
    fsm.receive(encode_packet(TERM_REQ, 0x99, b"bye"))
    assert fsm.state == "Stopping" and codes(sent) == [TERM_ACK] and last(sent).identifier == 0x99
    clock.advance(3.0)  # zrc: one Restart period for the Ack to get there, then finished
    assert fsm.state == "Stopped" and layer.log == ["tld", "tlf"] and len(sent) == 1


def test_max_failure_turns_naks_into_rejects():
    fsm, layer, sent, clock = make(max_failure=5)
    fsm.open()
    fsm.up()
    sent.clear()
    layer.verdict = CONF_NAK
    for i in range(7):
        fsm.receive(encode_packet(CONF_REQ, i, encode_options([(3, bytes(4))])))
    assert codes(sent) == [CONF_NAK] * 5 + [CONF_REJ] * 2
    assert layer.reject_naks_seen == [False] * 5 + [True] * 2
    # an Ack we send resets the failure count
    layer.verdict = CONF_ACK
    fsm.receive(encode_packet(CONF_REQ, 8, b""))
    layer.verdict = CONF_NAK
    fsm.receive(encode_packet(CONF_REQ, 9, encode_options([(3, bytes(4))])))
    assert codes(sent)[-2:] == [CONF_ACK, CONF_NAK]
    assert fsm.counters["nak_tx"] == 6 and fsm.counters["reject_tx"] == 2


def test_new_request_gets_a_new_identifier():
    fsm, layer, sent, clock = make()
    fsm.open()
    fsm.up()
    first = last(sent)
    fsm.receive(encode_packet(CONF_NAK, first.identifier, b""))
    second = last(sent)
    assert second.code == CONF_REQ and second.identifier != first.identifier


def test_replies_with_wrong_identifier_are_discarded():
    fsm, layer, sent, clock = make()
    fsm.open()
    fsm.up()
    req = last(sent)
    sent.clear()
    for code in (CONF_ACK, CONF_NAK, CONF_REJ):
        fsm.receive(encode_packet(code, (req.identifier + 1) & 0xFF, req.data))
    assert fsm.state == "Req-Sent" and sent == [] and fsm.counters["bad_id"] == 3
    fsm.receive(encode_packet(CONF_ACK, req.identifier, req.data))
    assert fsm.state == "Ack-Rcvd"
    # a second reply to the same request is discarded too (only the first counts)
    fsm.receive(encode_packet(CONF_NAK, req.identifier, b""))
    assert fsm.state == "Ack-Rcvd" and fsm.counters["bad_id"] == 4


def test_duplicate_ack_does_not_reset_opened_link():
    fsm, layer, sent, clock = make()
    fsm.open()
    fsm.up()
    req = last(sent)
    ack = encode_packet(CONF_ACK, req.identifier, req.data)
    fsm.receive(ack)
    fsm.receive(encode_packet(CONF_REQ, 1, b""))
    assert fsm.state == "Opened"
    fsm.receive(ack)
    assert fsm.state == "Opened" and fsm.counters["bad_id"] == 1


def test_ack_must_echo_our_options():
    fsm, layer, sent, clock = make()
    fsm.open()
    fsm.up()
    req = last(sent)
    fsm.receive(encode_packet(CONF_ACK, req.identifier, encode_options([(3, bytes(4))])))
    assert fsm.state == "Req-Sent" and fsm.counters["bad_ack"] == 1


def test_reject_must_name_our_options():
    fsm, layer, sent, clock = make()
    fsm.open()
    fsm.up()
    req = last(sent)
    fsm.receive(encode_packet(CONF_REJ, req.identifier, encode_options([(3, bytes(4))])))
    assert fsm.counters["bad_reject"] == 1 and layer.log == ["tls"]
    fsm.receive(encode_packet(CONF_REJ, req.identifier, req.data))
    assert layer.log == ["tls", "on_reject"] and codes(sent)[-1] == CONF_REQ


def test_indispensable_reject_closes():
    fsm, layer, sent, clock = make()
    layer.reject_ok = False
    fsm.open()
    fsm.up()
    req = last(sent)
    fsm.receive(encode_packet(CONF_REJ, req.identifier, req.data))
    assert fsm.state == "Closing" and codes(sent)[-1] == TERM_REQ


def test_nak_returning_false_closes():
    fsm, layer, sent, clock = make()
    layer.nak_ok = False
    fsm.open()
    fsm.up()
    req = last(sent)
    fsm.receive(encode_packet(CONF_NAK, req.identifier, b""))
    assert fsm.state == "Closing" and codes(sent)[-1] == TERM_REQ


@pytest.mark.parametrize("desc,info", [
    ("empty", b""),
    ("3 bytes", b"\x01\x01\x00"),
    ("length 3", b"\x01\x01\x00\x03"),
    ("length 0", b"\x01\x01\x00\x00"),
    ("length past end", b"\x01\x01\x00\x09abcd"),
    ("option length 0", encode_packet(CONF_REQ, 1, b"\x03\x00\x0a\x00\x00\x01")),
    ("option length 1", encode_packet(CONF_REQ, 1, b"\x03\x01")),
    ("option past end", encode_packet(CONF_REQ, 1, b"\x03\x06\x0a\x00")),
    ("option header cut", encode_packet(CONF_REQ, 1, b"\x03\x06\x0a\x00\x00\x01\x81")),
    ("nak option length 1", "nak"),
    ("code-reject without data", encode_packet(CODE_REJ, 1, b"")),
])
def test_malformed_counted_and_dropped(desc, info):
    fsm, layer, sent, clock = make()
    fsm.open()
    fsm.up()
    if info == "nak":
        info = encode_packet(CONF_NAK, last(sent).identifier, b"\x03\x01")
    sent.clear()
    fsm.receive(info)
    assert sent == [] and fsm.state == "Req-Sent" and fsm.counters["malformed"] == 1


def test_padding_after_length_is_ignored():
    fsm, layer, sent, clock = make()
    fsm.open()
    fsm.up()
    fsm.receive(encode_packet(CONF_REQ, 5, encode_options([ADDR_OPT])) + b"\0" * 20)
    ack = last(sent)
    assert ack.code == CONF_ACK and ack.data == encode_options([ADDR_OPT])


def test_unknown_code_gets_code_reject_cut_to_mru():
    fsm, layer, sent, clock = opened()
    fsm.mru = 100
    bad = encode_packet(0x42, 9, bytes(200))
    fsm.receive(bad + b"pad")
    rej = last(sent)
    assert rej.code == CODE_REJ and rej.data == bad[:96] and len(sent[-1][1]) == 100
    assert fsm.counters["code_reject_tx"] == 1 and fsm.state == "Opened"


def test_extra_code_handled_by_layer_is_not_rejected():
    fsm, layer, sent, clock = opened()
    layer.extra = True
    fsm.receive(encode_packet(0x42, 9, b""))
    assert sent == []


def test_protocol_reject_is_rxj_minus():
    fsm, layer, sent, clock = opened()
    fsm.protocol_reject()
    assert fsm.state == "Stopping" and layer.log == ["tld"] and codes(sent) == [TERM_REQ]
    fsm2, layer2, sent2, _ = make()
    fsm2.open()
    fsm2.up()
    fsm2.protocol_reject()
    assert fsm2.state == "Stopped" and layer2.log == ["tls", "tlf"]


def test_reentrant_close_from_this_layer_up():
    """A callback closing its own Fsm (e.g. the session has no address): the rest of the cell
    is dropped and the close wins."""
    fsm, layer, sent, clock = make()
    layer.this_layer_up = lambda: fsm.close(b"no")
    fsm.open()
    fsm.up()
    fsm.receive(encode_packet(CONF_REQ, 1, b""))
    req = [parse_packet(p) for _, p in sent if p[0] == CONF_REQ][-1]
    fsm.receive(encode_packet(CONF_ACK, req.identifier, req.data))
    assert fsm.state == "Closing" and codes(sent)[-1] == TERM_REQ


# -- codec ------------------------------------------------------------------------------------------
def test_codec_round_trip_and_scapy():
    opts = [(1, struct.pack("!H", 1492)), (3, b"\xc0\x23"), (5, struct.pack("!I", 0x12345678))]
    mine = encode_packet(CONF_REQ, 0x21, encode_options(opts))
    theirs = bytes(PPP_LCP_Configure(code=1, id=0x21, options=[
        PPP_LCP_MRU_Option(max_recv_unit=1492), PPP_LCP_Auth_Protocol_Option(auth_protocol=0xC023),
        PPP_LCP_Magic_Number_Option(magic_number=0x12345678)]))
    assert mine == theirs
    pkt = parse_packet(theirs)
    assert pkt == Packet(CONF_REQ, 0x21, encode_options(opts))
    assert parse_options(pkt.data) == opts
    term = bytes(PPP_LCP_Terminate(code=5, id=3, data=b"bye"))
    assert parse_packet(term) == Packet(TERM_REQ, 3, b"bye") and encode_packet(TERM_REQ, 3, b"bye") == term


def test_parse_options_repeated_kept_in_order():
    assert parse_options(b"\x03\x06\x01\x02\x03\x04\x03\x06\x05\x06\x07\x08\x10\x02") == [
        (3, b"\x01\x02\x03\x04"), (3, b"\x05\x06\x07\x08"), (16, b"")]
    assert parse_options(b"") == []


def test_parse_never_raises_on_random_bytes():
    rng = random.Random(1661)
    for _ in range(3000):
        data = rng.randbytes(rng.randrange(0, 40))
        assert isinstance(parse_packet(data), (Packet, str))
        assert isinstance(parse_options(data), (list, str))


# -- LCP --------------------------------------------------------------------------------------------
def seeded(seed=7):
    return random.Random(seed).randbytes


def lcp(**kw):
    kw.setdefault("rand", seeded())
    return LcpLayer(**kw)


def U16(v):
    return struct.pack("!H", v)


def U32(v):
    return struct.pack("!I", v)


LCP_CASES = [
    ("MRU 1492 accepted", [(1, U16(1492))], CONF_ACK, [(1, U16(1492))]),
    ("MRU 64 accepted", [(1, U16(64))], CONF_ACK, [(1, U16(64))]),
    ("MRU 1500 over our max: Nak with ours", [(1, U16(1500))], CONF_NAK, [(1, U16(1492))]),
    ("MRU 63 too small: Nak with ours", [(1, U16(63))], CONF_NAK, [(1, U16(1492))]),
    ("MRU with 3-byte value rejected", [(1, b"\x05\xd4\x00")], CONF_REJ, [(1, b"\x05\xd4\x00")]),
    ("magic accepted", [(5, U32(0xDEADBEEF))], CONF_ACK, [(5, U32(0xDEADBEEF))]),
    ("ACCM rejected (RFC 2516 7)", [(2, U32(0))], CONF_REJ, [(2, U32(0))]),
    ("ACFC rejected (RFC 2516 7)", [(8, b"")], CONF_REJ, [(8, b"")]),
    ("FCS-Alternatives rejected (RFC 2516 7)", [(9, b"\x01")], CONF_REJ, [(9, b"\x01")]),
    ("PFC rejected", [(7, b"")], CONF_REJ, [(7, b"")]),
    ("Quality-Protocol rejected", [(4, b"\xc0\x25\x00\x00\x00\x0a")], CONF_REJ, [(4, b"\xc0\x25\x00\x00\x00\x0a")]),
    ("peer asks us to authenticate: rejected", [(3, b"\xc0\x23")], CONF_REJ, [(3, b"\xc0\x23")]),
    ("callback (13) unknown: rejected", [(13, b"\x06")], CONF_REJ, [(13, b"\x06")]),
    ("reject wins over nak", [(1, U16(9000)), (2, U32(0))], CONF_REJ, [(2, U32(0))]),
    ("repeated MRU: second rejected", [(1, U16(1400)), (1, U16(1300))], CONF_REJ, [(1, U16(1300))]),
    ("typical Windows request", [(1, U16(1492)), (5, U32(0x01020304)), (7, b""), (8, b"")], CONF_REJ,
     [(7, b""), (8, b"")]),
    ("typical Linux pppd request", [(1, U16(1492)), (5, U32(0x0a0b0c0d))], CONF_ACK,
     [(1, U16(1492)), (5, U32(0x0a0b0c0d))]),
    ("empty request", [], CONF_ACK, []),
]


@pytest.mark.parametrize("desc,opts,code,reply", LCP_CASES, ids=[c[0] for c in LCP_CASES])
def test_lcp_peer_request(desc, opts, code, reply):
    layer = lcp()
    assert layer.check_request(opts, False) == (code, reply)


def test_lcp_records_peer_values_on_ack_only():
    layer = lcp(mru=1492)
    layer.check_request([(1, U16(1400)), (5, U32(7)), (2, U32(0))], False)
    assert (layer.peer_mru, layer.peer_magic) == (1492, 0)
    layer.check_request([(1, U16(1400)), (5, U32(7))], False)
    assert (layer.peer_mru, layer.peer_magic) == (1400, 7)
    layer.check_request([], False)
    assert (layer.peer_mru, layer.peer_magic) == (1492, 0)


@pytest.mark.parametrize("peer_magic", ["zero", "ours"])
def test_lcp_magic_loopback_or_zero_nakked_with_new_random(peer_magic):
    layer = lcp()
    v = 0 if peer_magic == "zero" else layer.magic
    code, opts = layer.check_request([(5, U32(v))], False)
    assert code == CONF_NAK and opts[0][0] == 5
    suggested = struct.unpack("!I", opts[0][1])[0]
    assert suggested not in (0, layer.magic)


def test_lcp_max_failure_rejects_instead():
    layer = lcp()
    assert layer.check_request([(1, U16(1500))], True) == (CONF_REJ, [(1, U16(1500))])


def test_lcp_our_request_and_scapy():
    layer = lcp(mru=1492, auth=("pap", "chap"))
    opts = layer.request_options()
    assert opts == [(1, U16(1492)), (3, b"\xc0\x23"), (5, U32(layer.magic))] and layer.magic != 0
    data = encode_packet(CONF_REQ, 1, encode_options(opts))
    s = PPP(b"\xc0\x21" + data)
    o = s[PPP_LCP_Configure].options
    assert o[0].max_recv_unit == 1492 and o[1].auth_protocol == 0xC023 and o[2].magic_number == layer.magic
    chap = lcp(auth=("chap",)).request_options()
    assert chap[1] == (3, b"\xc2\x23\x05")
    assert [t for t, _ in lcp(auth=()).request_options()] == [1, 5]


def test_lcp_auth_nak_switches():
    layer = lcp(auth=("pap", "chap"))
    layer.on_nak([(3, b"\xc2\x23\x05")])
    assert layer.request_options()[1] == (3, b"\xc2\x23\x05")
    # now nothing is left: any further Nak of the auth protocol fails
    assert layer.on_nak([(3, b"\xc0\x23")]) is False and layer.failure


def test_lcp_auth_nak_unknown_suggestion_takes_next():
    layer = lcp(auth=("chap", "pap"))
    assert layer.on_nak([(3, b"\xc2\x23\x81")]) is None  # MS-CHAPv2: not ours, take the next
    assert layer.request_options()[1] == (3, b"\xc0\x23")


def test_lcp_auth_rejected_closes():
    layer = lcp()
    assert layer.on_reject([(3, b"\xc0\x23")]) is False and layer.failure


def test_lcp_magic_nak_and_reject():
    layer = lcp()
    old = layer.magic
    layer.on_nak([(5, U32(old))])
    assert layer.magic not in (0, old)
    layer.on_reject([(5, U32(layer.magic))])
    assert [t for t, _ in layer.request_options()] == [1, 3]
    layer.on_ack([])
    assert layer.magic == 0


def test_lcp_mru_nak():
    layer = lcp(mru=1492)
    layer.on_nak([(1, U16(1400))])
    assert layer.request_options()[0] == (1, U16(1400))
    layer.on_nak([(1, U16(9000))])  # too big for us: keep asking 1400
    assert layer.request_options()[0] == (1, U16(1400))


def lcp_opened(**kw):
    events = []
    layer = lcp(up=lambda: events.append("up"), on_protocol_reject=lambda p: events.append(("rej", p)),
                on_echo_reply=lambda: events.append("echo"), **kw)
    clock = Clock()
    sent = []
    fsm = Fsm(layer, lambda proto, pkt: sent.append((proto, pkt)), clock.call_later)
    assert layer.fsm is fsm
    fsm.open()
    fsm.up()
    req = last(sent)
    fsm.receive(encode_packet(CONF_ACK, req.identifier, req.data))
    fsm.receive(encode_packet(CONF_REQ, 1, encode_options([(5, U32(0xCAFEBABE))])))
    assert fsm.state == "Opened" and events == ["up"]
    sent.clear()
    events.clear()
    return fsm, layer, sent, events


def test_lcp_echo_request_answered_in_opened_only():
    fsm, layer, sent, events = lcp_opened()
    req = bytes(PPP_LCP_Echo(code=9, id=0x42, magic_number=0xCAFEBABE, data=b"ping"))
    fsm.receive(req)
    rep = PPP(b"\xc0\x21" + sent[-1][1])[PPP_LCP_Echo]
    assert (rep.code, rep.id, rep.magic_number, rep.data) == (10, 0x42, layer.magic, b"ping")
    fsm2, layer2, sent2, _ = make()
    lay = lcp()
    f = Fsm(lay, lambda proto, pkt: sent2.append(pkt), Clock().call_later)
    f.open()
    f.up()
    sent2.clear()
    f.receive(req)
    assert sent2 == []


def test_lcp_echo_reply_and_discard():
    fsm, layer, sent, events = lcp_opened()
    fsm.receive(encode_packet(ECHO_REP, 1, U32(0xCAFEBABE)))
    assert events == ["echo"]
    fsm.receive(encode_packet(ECHO_REP, 2, U32(0x1)))
    assert events == ["echo"] and layer.counters["echo_bad_magic"] == 1
    fsm.receive(encode_packet(11, 3, U32(0xCAFEBABE) + b"junk"))
    fsm.receive(encode_packet(ECHO_REQ, 4, b"\x01"))  # too short for a magic number
    assert sent == [] and layer.counters["discard_rx"] == 1 and layer.counters["extra_malformed"] == 1


def test_lcp_protocol_reject_goes_to_session():
    fsm, layer, sent, events = lcp_opened()
    fsm.receive(bytes(PPP_LCP_Protocol_Reject(id=5, rejected_protocol=0x8057)) + b"\x01\x01\x00\x04")
    assert events == [("rej", 0x8057)] and sent == []
    fsm.receive(encode_packet(8, 6, b"\x80"))  # malformed
    assert layer.counters["extra_malformed"] == 1


def test_lcp_unknown_code_rejected():
    fsm, layer, sent, events = lcp_opened()
    fsm.receive(encode_packet(0x0C, 6, b"identification"))
    assert last(sent).code == CODE_REJ


def test_build_protocol_reject_and_echo_request_match_scapy():
    info = encode_packet(1, 1, b"\x02\x06\x00\x2d\x0f\x01")
    mine = build_protocol_reject(0x80FD, info, 7, mru=1492)
    s = PPP(b"\xc0\x21" + mine)[PPP_LCP_Protocol_Reject]
    assert (s.code, s.id, s.rejected_protocol, s.len) == (8, 7, 0x80FD, 4 + 2 + len(info))
    assert mine[6:] == info
    assert len(build_protocol_reject(0x1234, bytes(3000), 1, mru=1492)) == 1492
    echo = build_echo_request(9, 0xAABBCCDD)
    assert echo == bytes(PPP_LCP_Echo(code=9, id=9, magic_number=0xAABBCCDD))


# -- IPCP -------------------------------------------------------------------------------------------
def A(s):
    return IPv4Address(s).packed


ASSIGNED = "100.64.0.7"
IPCP_CASES = [
    # (description, dns4, peer options, expected code, expected options)
    ("asks 0.0.0.0: Nak with the assigned address", (), [(3, A("0.0.0.0"))], CONF_NAK, [(3, A(ASSIGNED))]),
    ("asks the assigned address: Ack", (), [(3, A(ASSIGNED))], CONF_ACK, [(3, A(ASSIGNED))]),
    ("asks another address: Nak", (), [(3, A("192.0.2.1"))], CONF_NAK, [(3, A(ASSIGNED))]),
    ("no IP-Address: Nak suggesting it", (), [], CONF_NAK, [(3, A(ASSIGNED))]),
    ("DNS asked, we have two: Nak with ours", ("8.8.8.8", "1.1.1.1"),
     [(3, A(ASSIGNED)), (129, A("0.0.0.0")), (131, A("0.0.0.0"))], CONF_NAK,
     [(129, A("8.8.8.8")), (131, A("1.1.1.1"))]),
    ("DNS equal to ours: Ack", ("8.8.8.8", "1.1.1.1"),
     [(3, A(ASSIGNED)), (129, A("8.8.8.8")), (131, A("1.1.1.1"))], CONF_ACK,
     [(3, A(ASSIGNED)), (129, A("8.8.8.8")), (131, A("1.1.1.1"))]),
    ("DNS, we have one: secondary rejected", ("8.8.8.8",),
     [(3, A(ASSIGNED)), (129, A("0.0.0.0")), (131, A("0.0.0.0"))], CONF_REJ, [(131, A("0.0.0.0"))]),
    ("DNS, we have none: both rejected", (), [(3, A("0.0.0.0")), (129, A("0.0.0.0")), (131, A("0.0.0.0"))],
     CONF_REJ, [(129, A("0.0.0.0")), (131, A("0.0.0.0"))]),
    ("VJ compression rejected", (), [(2, b"\x00\x2d\x0f\x01"), (3, A(ASSIGNED))], CONF_REJ,
     [(2, b"\x00\x2d\x0f\x01")]),
    ("IP-Addresses (deprecated) rejected", (), [(1, A("0.0.0.0") + A("0.0.0.0"))], CONF_REJ,
     [(1, bytes(8))]),
    ("NBNS rejected", ("8.8.8.8",), [(3, A(ASSIGNED)), (130, bytes(4)), (132, bytes(4))], CONF_REJ,
     [(130, bytes(4)), (132, bytes(4))]),
    ("unknown option rejected", (), [(3, A(ASSIGNED)), (200, b"x")], CONF_REJ, [(200, b"x")]),
    ("IP-Address of 3 bytes rejected", (), [(3, b"\x0a\x00\x00")], CONF_REJ, [(3, b"\x0a\x00\x00")]),
    ("IP-Address repeated: second rejected", (), [(3, A(ASSIGNED)), (3, A(ASSIGNED))], CONF_REJ,
     [(3, A(ASSIGNED))]),
    ("typical Windows request", ("8.8.8.8", "1.1.1.1"),
     [(3, bytes(4)), (129, bytes(4)), (130, bytes(4)), (131, bytes(4)), (132, bytes(4))], CONF_REJ,
     [(130, bytes(4)), (132, bytes(4))]),
]


@pytest.mark.parametrize("desc,dns4,opts,code,reply", IPCP_CASES, ids=[c[0] for c in IPCP_CASES])
def test_ipcp_peer_request(desc, dns4, opts, code, reply):
    layer = IpcpLayer(IPv4Address("100.64.0.1"), tuple(IPv4Address(d) for d in dns4))
    layer.assign(IPv4Address(ASSIGNED))
    assert layer.check_request(opts, False) == (code, reply)


def test_ipcp_max_failure():
    layer = IpcpLayer(IPv4Address("100.64.0.1"))
    layer.assign(IPv4Address(ASSIGNED))
    assert layer.check_request([(3, bytes(4))], True) == (CONF_REJ, [(3, bytes(4))])
    assert layer.check_request([], True) == (CONF_ACK, [])  # a missing option cannot be rejected


def test_ipcp_our_request_nak_and_reject():
    layer = IpcpLayer(IPv4Address("100.64.0.1"))
    assert layer.request_options() == [(3, A("100.64.0.1"))]
    layer.on_nak([(3, A("10.9.9.9"))])
    assert layer.request_options() == [(3, A("100.64.0.1"))]  # we are the router: keep ours
    layer.on_reject([(3, A("100.64.0.1"))])
    assert layer.request_options() == []
    none = IpcpLayer(IPv4Address("0.0.0.0"))
    none.on_nak([(3, A("10.9.9.9"))])
    assert none.request_options() == [(3, A("10.9.9.9"))]


def test_ipcp_bytes_match_scapy():
    layer = IpcpLayer(IPv4Address("100.64.0.1"), (IPv4Address("8.8.8.8"), IPv4Address("1.1.1.1")))
    layer.assign(IPv4Address(ASSIGNED))
    peer = bytes(PPP_IPCP(code=1, id=3, options=[PPP_IPCP_Option_IPAddress(data="0.0.0.0"),
                                                 PPP_IPCP_Option_DNS1(data="0.0.0.0"),
                                                 PPP_IPCP_Option_DNS2(data="0.0.0.0")]))
    sent = []
    fsm = Fsm(layer, lambda proto, pkt: sent.append((proto, pkt)), Clock().call_later)
    fsm.open()
    fsm.up()
    ours = PPP(b"\x80\x21" + sent[0][1])[PPP_IPCP]
    assert ours.code == 1 and ours.options[0].data == "100.64.0.1"
    fsm.receive(peer)
    nak = PPP(b"\x80\x21" + sent[-1][1])[PPP_IPCP]
    assert nak.code == 3 and nak.id == 3
    assert [(o.type, o.data) for o in nak.options] == [(3, ASSIGNED), (129, "8.8.8.8"), (131, "1.1.1.1")]


# -- IPv6CP -----------------------------------------------------------------------------------------
def test_ipv6cp():
    layer = Ipv6cpLayer(seeded(3))
    ours = layer.ifid
    assert len(ours) == 8 and ours != bytes(8)
    assert layer.request_options() == [(1, ours)]
    peer = bytes.fromhex("0211223344556677")
    assert layer.check_request([(1, peer)], False) == (CONF_ACK, [(1, peer)]) and layer.peer_ifid == peer
    for bad in (bytes(8), ours):
        code, opts = layer.check_request([(1, bad)], False)
        assert code == CONF_NAK and opts[0][0] == 1 and opts[0][1] not in (bytes(8), ours, bad)
    assert layer.check_request([(1, bytes(8))], True) == (CONF_REJ, [(1, bytes(8))])
    assert layer.check_request([(2, b"\x00\x4f"), (1, peer)], False) == (CONF_REJ, [(2, b"\x00\x4f")])
    assert layer.check_request([(1, peer), (1, peer)], False) == (CONF_REJ, [(1, peer)])
    assert layer.check_request([(1, b"\x01\x02")], False) == (CONF_REJ, [(1, b"\x01\x02")])
    assert layer.check_request([(9, b"")], False) == (CONF_REJ, [(9, b"")])
    # a Nak of ours: a usable suggestion is taken, an unusable one replaced by a random one
    layer.on_nak([(1, bytes.fromhex("0000000000000abc"))])
    assert layer.ifid == bytes.fromhex("0000000000000abc")
    layer.on_nak([(1, bytes(8))])
    assert layer.ifid not in (bytes(8), bytes.fromhex("0000000000000abc"))
    layer.on_reject([(1, layer.ifid)])
    assert layer.request_options() == []
