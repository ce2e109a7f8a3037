"""PPP control-protocol codec and the RFC 1661 option-negotiation automaton, shared by LCP,
IPCP and IPv6CP.

Packets (RFC 1661 section 5)
    Every control packet is ``Code (1) | Identifier (1) | Length (2) | Data``; ``info`` below
    is one such packet without the PPP protocol field. Octets past Length are padding and
    ignored (RFC 1661 5). :func:`parse_packet` and :func:`parse_options` never raise: a bad
    packet gives a ``str`` saying why, and the automaton counts and silently discards it.

Options (RFC 1661 section 6)
    ``Type (1) | Length (1) | Value``; Length counts the two header octets, so 0 and 1 are
    malformed, as is an option running past the end of the packet.

The automaton (RFC 1661 section 4)
    :data:`TABLE` is the state transition table of RFC 1661 4.1 transcribed cell by cell:
    ``(state, event) -> (actions, next state)``, one table for every protocol (as in
    accel-ppp's ``ppp_fsm.c`` or pppd's ``fsm.c``). A cell the RFC marks ``-`` (cannot happen:
    e.g. a packet in Initial or Starting, where the lower layer is down) is absent from the
    table: the event is counted ``unexpected`` and ignored. The RFC's [p] (passive), [r]
    (restart) and [x] (crossed connection) notes select no extra behaviour here.

    :class:`Fsm` drives one protocol's instance: it turns received packets and timer
    expiries into events, runs the cell's actions in the RFC's order and hands option
    decisions to a :class:`Layer` (LCP, IPCP, IPv6CP). Timers go through a ``call_later``
    callable (an asyncio loop's, or a test's fake clock), so the module has no I/O.

Counters
    ``Fsm.counters`` is a plain ``dict[str, int]`` (keys :data:`FSM_COUNTERS`) a server can
    sum over sessions; ``malformed`` counts packets discarded as malformed, ``bad_id``
    replies that do not answer our outstanding Configure-Request, and so on.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Iterable, NamedTuple, Optional, Protocol, Union

__all__ = [
    "PPP_LCP", "PPP_PAP", "PPP_CHAP", "PPP_IPCP", "PPP_IPV6CP", "PPP_IPV4", "PPP_IPV6",
    "CONF_REQ", "CONF_ACK", "CONF_NAK", "CONF_REJ", "TERM_REQ", "TERM_ACK", "CODE_REJ",
    "PROTO_REJ", "ECHO_REQ", "ECHO_REP", "DISCARD_REQ", "CODE_NAMES",
    "STATES", "EVENTS", "ACTIONS", "TABLE", "TIMER_STATES", "FSM_COUNTERS",
    "Packet", "parse_packet", "encode_packet", "parse_options", "encode_options", "reply_for",
    "Layer", "Fsm",
]

# PPP protocol numbers (RFC 1661 section 2, RFC 1332, RFC 5072, RFC 1334, RFC 1994)
PPP_LCP = 0xC021
PPP_PAP = 0xC023
PPP_CHAP = 0xC223
PPP_IPCP = 0x8021
PPP_IPV6CP = 0x8057
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057

# Control packet codes (RFC 1661 section 5); 8..11 are LCP only.
CONF_REQ, CONF_ACK, CONF_NAK, CONF_REJ, TERM_REQ, TERM_ACK, CODE_REJ = 1, 2, 3, 4, 5, 6, 7
PROTO_REJ, ECHO_REQ, ECHO_REP, DISCARD_REQ = 8, 9, 10, 11
CODE_NAMES = {
    CONF_REQ: "Configure-Request", CONF_ACK: "Configure-Ack", CONF_NAK: "Configure-Nak",
    CONF_REJ: "Configure-Reject", TERM_REQ: "Terminate-Request", TERM_ACK: "Terminate-Ack",
    CODE_REJ: "Code-Reject", PROTO_REJ: "Protocol-Reject", ECHO_REQ: "Echo-Request",
    ECHO_REP: "Echo-Reply", DISCARD_REQ: "Discard-Request",
}

_HDR = struct.Struct("!BBH")  # Code, Identifier, Length

#: RFC 1661 4.2 state names, in the RFC's numbering (0..9).
STATES = ("Initial", "Starting", "Closed", "Stopped", "Closing", "Stopping", "Req-Sent", "Ack-Rcvd",
          "Ack-Sent", "Opened")
#: RFC 1661 4.3 events.
EVENTS = ("Up", "Down", "Open", "Close", "TO+", "TO-", "RCR+", "RCR-", "RCA", "RCN", "RTR", "RTA", "RUC",
          "RXJ+", "RXJ-", "RXR")
#: RFC 1661 4.4 actions.
ACTIONS = ("tlu", "tld", "tls", "tlf", "irc", "zrc", "scr", "sca", "scn", "str", "sta", "scj", "ser")
#: States in which the Restart timer runs (RFC 1661 4.6).
TIMER_STATES = frozenset(("Closing", "Stopping", "Req-Sent", "Ack-Rcvd", "Ack-Sent"))

# RFC 1661 section 4.1, verbatim (columns are states 0..9; "-" = cannot happen).
_RFC1661_TABLE = """
       Initial  Starting   Closed  Stopped        Closing  Stopping  Req-Sent   Ack-Rcvd   Ack-Sent   Opened
 Up   | 2       irc,scr/6  -       -              -        -         -          -          -          -
 Down | -       -          0       tls/1          0        1         1          1          1          tld/1
 Open | tls/1   1          irc,scr/6 3r           5r       5r        6          7          8          9r
 Close| 0       tlf/0      2       2              4        4         irc,str/4  irc,str/4  irc,str/4  tld,irc,str/4
 TO+  | -       -          -       -              str/4    str/5     scr/6      scr/6      scr/8      -
 TO-  | -       -          -       -              tlf/2    tlf/3     tlf/3p     tlf/3p     tlf/3p     -
 RCR+ | -       -          sta/2   irc,scr,sca/8  4        5         sca/8      sca,tlu/9  sca/8      tld,scr,sca/8
 RCR- | -       -          sta/2   irc,scr,scn/6  4        5         scn/6      scn/7      scn/6      tld,scr,scn/6
 RCA  | -       -          sta/2   sta/3          4        5         irc/7      scr/6x     irc,tlu/9  tld,scr/6x
 RCN  | -       -          sta/2   sta/3          4        5         irc,scr/6  scr/6x     irc,scr/8  tld,scr/6x
 RTR  | -       -          sta/2   sta/3          sta/4    sta/5     sta/6      sta/6      sta/6      tld,zrc,sta/5
 RTA  | -       -          2       3              tlf/2    tlf/3     6          6          8          tld,scr/6
 RUC  | -       -          scj/2   scj/3          scj/4    scj/5     scj/6      scj/7      scj/8      scj/9
 RXJ+ | -       -          2       3              4        5         6          6          8          9
 RXJ- | -       -          tlf/2   tlf/3          tlf/2    tlf/3     tlf/3      tlf/3      tlf/3      tld,irc,str/5
 RXR  | -       -          2       3              4        5         6          7          8          ser/9
"""


def _parse_table(text: str) -> dict[tuple[str, str], tuple[tuple[str, ...], str]]:
    table: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {}
    for line in text.strip().splitlines()[1:]:
        event, _, cells = line.partition("|")
        event = event.strip()
        row = cells.split()
        if event not in EVENTS or len(row) != len(STATES):
            raise ValueError(f"bad RFC 1661 table row {line!r}")
        for state, cell in zip(STATES, row):
            if cell == "-":
                continue
            acts, _, nxt = cell.rpartition("/")
            actions = tuple(acts.split(",")) if acts else ()
            if any(a not in ACTIONS for a in actions):
                raise ValueError(f"unknown action in {cell!r}")
            table[(state, event)] = (actions, STATES[int(nxt.rstrip("prx"))])
    return table


#: ``(state, event) -> (actions, next state)``: RFC 1661 4.1; missing pairs are the RFC's "-".
TABLE: dict[tuple[str, str], tuple[tuple[str, ...], str]] = _parse_table(_RFC1661_TABLE)

#: Keys of :attr:`Fsm.counters` (packets unless noted).
FSM_COUNTERS = (
    "rx",              # control packets received (any, malformed included)
    "tx",              # control packets sent
    "malformed",       # discarded: Length < 4 or past the end, bad options, bad Code-Reject/echo
    "bad_id",          # Ack/Nak/Reject not answering our outstanding Configure-Request (RFC 1661 5.2)
    "bad_ack",         # Ack whose options differ from our request (RFC 1661 5.2)
    "bad_reject",      # Reject naming an option we did not request as sent (RFC 1661 5.4)
    "unexpected",      # an event the table has no cell for (RFC 1661 "-")
    "code_reject_tx",  # Code-Rejects sent (unknown code)
    "code_reject_rx",  # Code-Rejects received
    "conf_req_tx",     # Configure-Requests sent (retransmissions included)
    "nak_tx",          # Configure-Naks sent
    "reject_tx",       # Configure-Rejects sent
    "timeouts",        # Restart timer expiries (TO+ and TO-)
)


class Packet(NamedTuple):
    """One control packet (RFC 1661 5): ``code``, ``identifier`` (0..255), ``data`` (bytes after
    the 4-byte header, up to Length)."""

    code: int
    identifier: int
    data: bytes


def parse_packet(info) -> Union[Packet, str]:
    """Parse one control packet (after the PPP protocol field); never raises.

    Returns:
        a :class:`Packet`, or a ``str`` saying why it is malformed: shorter than the 4-byte
        header, Length under 4 or past the end (RFC 1661 5: such packets are silently
        discarded). Octets past Length are padding and dropped.
    """
    n = len(info)
    if n < 4:
        return f"{n} bytes, need 4 for the header"
    code, ident, length = _HDR.unpack_from(info)
    if length < 4:
        return f"Length {length} is under the 4-byte header"
    if length > n:
        return f"Length {length} runs past the {n} bytes received"
    return Packet(code, ident, bytes(info[4:length]))


def encode_packet(code: int, identifier: int, data: bytes = b"") -> bytes:
    """``Code | Identifier | Length | data``: one control packet (RFC 1661 5), without the PPP
    protocol field.

    Raises:
        struct.error: code or identifier outside 0..255, or more than 65531 data bytes.
    """
    return _HDR.pack(code, identifier, 4 + len(data)) + data


def parse_options(data) -> Union[list[tuple[int, bytes]], str]:
    """The Configuration Options of a Configure-Request/-Ack/-Nak/-Reject (RFC 1661 6), in
    order, as ``(type, value)``; never raises.

    Returns:
        the list (repeated types kept, in order), or a ``str`` saying why ``data`` is malformed:
        an option Length of 0 or 1, or an option (or its header) running past the end.
    """
    opts = []
    off = 0
    n = len(data)
    while off < n:
        if n - off < 2:
            return f"option header at offset {off} needs 2 bytes, {n - off} left"
        otype = data[off]
        olen = data[off + 1]
        if olen < 2:
            return f"option {otype} has Length {olen} (at least 2)"
        if off + olen > n:
            return f"option {otype} of Length {olen} at offset {off} runs past the {n} bytes"
        opts.append((otype, bytes(data[off + 2:off + olen])))
        off += olen
    return opts


def encode_options(opts: Iterable[tuple[int, bytes]]) -> bytes:
    """``Type | Length | Value`` for each ``(type, value)``, in order (RFC 1661 6).

    Raises:
        ValueError: a value over 253 bytes or a type outside 0..255.
    """
    return b"".join(bytes((t, len(v) + 2)) + v for t, v in opts)


def reply_for(rejects: list[tuple[int, bytes]], naks: list[tuple[Optional[tuple[int, bytes]], tuple[int, bytes]]],
              opts: list[tuple[int, bytes]], reject_naks: bool) -> tuple[int, list[tuple[int, bytes]]]:
    """The answer to a Configure-Request, for :meth:`Layer.check_request` (RFC 1661 5.2-5.4).

    Args:
        rejects: received options to Reject, as received.
        naks: ``(received option or None, suggested option)``; None: an option the peer did
            not send but must (a Nak may carry such a suggestion, RFC 1661 5.3).
        opts: all received options (what an Ack echoes).
        reject_naks: Max-Failure reached: would-be Naks become Rejects of the received option
            (a suggestion for an option the peer did not send is dropped), RFC 1661 4.6.

    Returns:
        ``(CONF_REJ, options)`` when anything is rejected (Rejects take precedence: only they
        are sent), else ``(CONF_NAK, suggestions)``, else ``(CONF_ACK, opts)``.
    """
    if naks and reject_naks:
        rejects = rejects + [orig for orig, _ in naks if orig is not None]
        naks = []
    if rejects:
        return CONF_REJ, rejects
    if naks:
        return CONF_NAK, [sugg for _, sugg in naks]
    return CONF_ACK, opts


class Layer(Protocol):
    """What an LCP, IPCP or IPv6CP implementation gives :class:`Fsm` (RFC 1661 4.4, 5.2-5.4).

    ``check_request`` returns ``(CONF_ACK, opts)``, ``(CONF_NAK, suggested options)`` or
    ``(CONF_REJ, rejected options as received)``; ``reject_naks`` is true once Max-Failure
    Naks were sent without an Ack (RFC 1661 4.6): would-be Naks must become Rejects.
    ``on_ack`` False: the Ack does not fit (it is discarded). ``on_nak`` may return False:
    the layer cannot converge (e.g. no authentication protocol left) and the Fsm closes;
    None or True: adjust the next request and carry on. ``on_reject`` False: a rejected
    option is indispensable and the Fsm closes. ``extra_code`` gets packets of codes the
    Fsm does not handle (0, 8 and above): False means unknown -> Code-Reject.
    """

    protocol: int
    name: str

    def request_options(self) -> list[tuple[int, bytes]]:
        """Our next Configure-Request's options, in order (RFC 1661 5.1)."""

    def check_request(self, opts: list[tuple[int, bytes]],
                      reject_naks: bool) -> tuple[int, list[tuple[int, bytes]]]:
        """Ack, Nak or Reject the peer's Configure-Request (RFC 1661 5.2-5.4; see :func:`reply_for`)."""

    def on_ack(self, opts: list[tuple[int, bytes]]) -> bool:
        """Our request was acked (RFC 1661 5.2); False: discard the Ack."""

    def on_nak(self, opts: list[tuple[int, bytes]]) -> Optional[bool]:
        """Adjust to a Nak (RFC 1661 5.3); False: cannot converge, close."""

    def on_reject(self, opts: list[tuple[int, bytes]]) -> bool:
        """Drop rejected options (RFC 1661 5.4); False: one was indispensable, close."""

    def this_layer_up(self) -> None:
        """tlu: the automaton entered Opened (RFC 1661 4.4)."""

    def this_layer_down(self) -> None:
        """tld: the automaton left Opened."""

    def this_layer_started(self) -> None:
        """tls: the lower layer is needed."""

    def this_layer_finished(self) -> None:
        """tlf: the lower layer is no longer needed (negotiation over or failed)."""

    def extra_code(self, pkt: Packet) -> bool:
        """A packet of a code past 7 (or 0); False: unknown, Code-Reject (RFC 1661 5.6)."""


_NEGOTIATING = frozenset(("Req-Sent", "Ack-Rcvd", "Ack-Sent"))
_AWAITING_REPLY = frozenset(("Req-Sent", "Ack-Rcvd", "Ack-Sent", "Opened"))
_CHECK_RCR = frozenset(("Stopped", "Req-Sent", "Ack-Rcvd", "Ack-Sent", "Opened"))


class Fsm:
    """One protocol's RFC 1661 option-negotiation automaton (section 4), driven by :data:`TABLE`.

    Args:
        layer: the protocol's :class:`Layer`. When it has a ``fsm`` attribute, it is set to
            this Fsm (LCP uses it to answer Echo-Requests through :meth:`rxr`).
        send: ``send(protocol, packet)``: one control packet (:func:`encode_packet` bytes)
            to put in a PPP frame of ``protocol``.
        call_later: ``call_later(seconds, callback)`` returning a handle with ``.cancel()``
            (asyncio's ``loop.call_later``).
        restart: the Restart timer, seconds (RFC 1661 4.6, default 3).
        max_configure: Configure-Requests sent without an answer before giving up (TO-),
            the first included (RFC 1661 4.6, default 10).
        max_failure: Configure-Naks sent without sending an Ack, after which would-be Naks
            are sent as Rejects (RFC 1661 4.6, default 5).
        max_terminate: Terminate-Requests sent without a Terminate-Ack (default 2).

    Attributes:
        state: one of :data:`STATES`.
        counters: ``dict[str, int]`` over :data:`FSM_COUNTERS`.
        mru: the peer's MRU, bytes: a Code-Reject's copy of the rejected packet is cut so the
            reply fits (RFC 1661 5.6); the session sets it once LCP has negotiated it.
        last_event: the event being handled (or last handled), e.g. ``"TO-"``: a
            ``this_layer_finished`` can tell a timeout from a peer's Terminate-Ack.

    Identifiers: a new Configure-Request (or Terminate-Request) gets the next identifier; a
    retransmission (TO+) keeps it (RFC 1661 5.1 allows either). An Ack/Nak/Reject must
    carry the identifier of our last Configure-Request, and only the first reply to it
    counts; others are counted ``bad_id`` and discarded (RFC 1661 5.2). An Ack must echo
    our options exactly; a Reject may only name options of our request, unmodified.

    Callbacks (``layer.this_layer_*``) may call back into this Fsm (e.g. close it from
    ``this_layer_up``): the state is set before the cell's actions run, and the rest of a
    cell is dropped when a callback started another transition.
    """

    __slots__ = ("layer", "protocol", "_send", "_call_later", "restart", "max_configure", "max_failure",
                 "max_terminate", "state", "counters", "mru", "last_event", "_timer", "_restart_count",
                 "_failures", "_next_id", "_req_id", "_req_data", "_req_opts", "_replied", "_term_id",
                 "_term_reason", "_rx", "_reply", "_gen", "_retransmit")

    def __init__(self, layer: Layer, send: Callable[[int, bytes], None],
                 call_later: Callable[[float, Callable[[], None]], Any], restart: float = 3.0,
                 max_configure: int = 10, max_failure: int = 5, max_terminate: int = 2) -> None:
        self.layer = layer
        self.protocol = layer.protocol
        self._send = send
        self._call_later = call_later
        self.restart = restart
        self.max_configure = max_configure
        self.max_failure = max_failure
        self.max_terminate = max_terminate
        self.state = "Initial"
        self.counters = dict.fromkeys(FSM_COUNTERS, 0)
        self.mru = 1500
        self.last_event = ""
        self._timer: Any = None
        self._restart_count = 0
        self._failures = 0
        self._next_id = 1
        self._req_id = -1
        self._req_data = b""
        self._req_opts: list[tuple[int, bytes]] = []
        self._replied = True       # our last Configure-Request got its (one) reply
        self._term_id = 0
        self._term_reason = b""
        self._rx: Optional[Packet] = None
        self._reply: tuple[int, list[tuple[int, bytes]]] = (CONF_ACK, [])
        self._gen = 0
        self._retransmit = False
        if hasattr(layer, "fsm"):
            layer.fsm = self  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"<Fsm {self.layer.name} {self.state}>"

    # -- administrative and lower-layer events (RFC 1661 4.3) ----------------------------------
    def up(self) -> None:
        """The lower layer is up (LCP: the PPPoE session exists; an NCP: LCP reached the
        network phase)."""
        self._run("Up")

    def down(self) -> None:
        """The lower layer went down (stops the Restart timer)."""
        self._run("Down")

    def open(self) -> None:
        """Administrative Open: negotiate."""
        self._run("Open")

    def close(self, reason: bytes = b"") -> None:
        """Administrative Close: Terminate-Request (Data = ``reason``) when the link is
        negotiating or open, then This-Layer-Finished."""
        self._term_reason = reason
        self._run("Close")

    def protocol_reject(self) -> None:
        """The peer rejected this protocol (LCP Protocol-Reject): RXJ- (RFC 1661 5.7)."""
        self._run("RXJ-")

    def rxr(self, pkt: Packet) -> None:
        """An Echo-Request, Echo-Reply or Discard-Request (LCP, RFC 1661 5.8-5.9): RXR; in
        Opened an Echo-Request is answered (ser) with ``layer.magic`` (0 when none)."""
        self._rx = pkt
        self._run("RXR")

    def next_id(self) -> int:
        """A fresh identifier (0..255) for a packet this protocol originates."""
        i = self._next_id
        self._next_id = (i + 1) & 0xFF
        return i

    def send_packet(self, code: int, identifier: int, data: bytes = b"") -> None:
        """Send one control packet of this protocol (counted ``tx``)."""
        self.counters["tx"] += 1
        self._send(self.protocol, _HDR.pack(code, identifier, 4 + len(data)) + data)

    def stop_timer(self) -> None:
        """Cancel the Restart timer (the state is unchanged)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- received packets ----------------------------------------------------------------------
    def receive(self, info) -> None:
        """Handle one control packet of this protocol (after the PPP protocol field).

        Malformed packets are counted and dropped; codes 1..7 become RFC 1661 events; any
        other code goes to ``layer.extra_code`` and, when it returns False, gets a
        Code-Reject (RUC). Never raises on bad input.
        """
        c = self.counters
        c["rx"] += 1
        n = len(info)
        if n < 4:
            c["malformed"] += 1
            return
        code, ident, length = _HDR.unpack_from(info)
        if length < 4 or length > n:
            c["malformed"] += 1
            return
        pkt = Packet(code, ident, bytes(info[4:length]))
        state = self.state
        self._rx = pkt  # sta/sca/scn answer with its identifier
        if code == CONF_REQ:
            opts = parse_options(pkt.data)
            if type(opts) is str:
                c["malformed"] += 1
                return
            if state in _CHECK_RCR:
                self._reply = self.layer.check_request(opts, self._failures >= self.max_failure)
                self._run("RCR+" if self._reply[0] == CONF_ACK else "RCR-")
            else:
                self._run("RCR+")
        elif code == CONF_ACK or code == CONF_NAK or code == CONF_REJ:
            self._configure_reply(pkt, state)
        elif code == TERM_REQ:
            self._run("RTR")
        elif code == TERM_ACK:
            self._run("RTA")
        elif code == CODE_REJ:
            c["code_reject_rx"] += 1
            if not pkt.data:
                c["malformed"] += 1
                return
            # a peer may do without our codes past 7 (echo, discard, protocol-reject), not 1..7
            self._run("RXJ-" if 1 <= pkt.data[0] <= 7 else "RXJ+")
        elif not self.layer.extra_code(pkt):
            self._run("RUC", bytes(info[:length]))

    def _configure_reply(self, pkt: Packet, state: str) -> None:
        c = self.counters
        code = pkt.code
        if state in _AWAITING_REPLY:
            if pkt.identifier != self._req_id or self._replied:
                c["bad_id"] += 1
                return
            if code == CONF_ACK:
                if pkt.data != self._req_data:
                    c["bad_ack"] += 1
                    return
                if not self.layer.on_ack(self._req_opts):
                    c["bad_ack"] += 1
                    return
                self._replied = True
                self._run("RCA")
                return
            opts = parse_options(pkt.data)
            if type(opts) is str:
                c["malformed"] += 1
                return
            if code == CONF_REJ:
                req = self._req_opts
                if any(o not in req for o in opts):
                    c["bad_reject"] += 1
                    return
                self._replied = True
                ok = self.layer.on_reject(opts)
            else:
                self._replied = True
                ok = self.layer.on_nak(opts) is not False
            if not ok:
                self.close(b"cannot agree on " + self.layer.name.encode() + b" options")
                return
            self._run("RCN")
        else:
            self._run("RCA" if code == CONF_ACK else "RCN")

    # -- the automaton -------------------------------------------------------------------------
    def _run(self, event: str, raw: bytes = b"") -> None:
        self.last_event = event
        cell = TABLE.get((self.state, event))
        if cell is None:
            self.counters["unexpected"] += 1
            return
        actions, nxt = cell
        prev = self.state
        self._gen += 1
        gen = self._gen
        self.state = nxt
        if nxt not in TIMER_STATES and self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._retransmit = event == "TO+"
        layer = self.layer
        for a in actions:
            if a == "scr":
                self._scr()
            elif a == "irc":
                if nxt == "Closing" or nxt == "Stopping":
                    self._restart_count = self.max_terminate
                else:
                    self._restart_count = self.max_configure
                    if prev not in _NEGOTIATING:
                        self._failures = 0
            elif a == "sca":
                self._failures = 0
                self.send_packet(CONF_ACK, self._rx.identifier, self._rx.data)
            elif a == "scn":
                code, opts = self._reply
                if code == CONF_NAK:
                    self._failures += 1
                    self.counters["nak_tx"] += 1
                else:
                    self.counters["reject_tx"] += 1
                self.send_packet(code, self._rx.identifier, encode_options(opts))
            elif a == "sta":
                # only received packets lead to sta: answer with their identifier
                self.send_packet(TERM_ACK, self._rx.identifier if self._rx is not None else self.next_id())
            elif a == "str":
                if not self._retransmit:
                    self._term_id = self.next_id()
                self._restart_count -= 1
                self.send_packet(TERM_REQ, self._term_id, self._term_reason)
                self._start_timer()
            elif a == "zrc":
                self._restart_count = 0
                self._start_timer()
            elif a == "scj":
                self.counters["code_reject_tx"] += 1
                self.send_packet(CODE_REJ, self.next_id(), raw[:max(0, self.mru - 4)])
            elif a == "ser":
                rx = self._rx
                if rx is not None and rx.code == ECHO_REQ:
                    magic = getattr(layer, "magic", 0) or 0
                    self.send_packet(ECHO_REP, rx.identifier, magic.to_bytes(4, "big") + rx.data[4:])
            else:  # tlu, tld, tls, tlf: the layer's callbacks, which may re-enter this Fsm
                if a == "tlu":
                    layer.this_layer_up()
                elif a == "tld":
                    layer.this_layer_down()
                elif a == "tls":
                    layer.this_layer_started()
                else:
                    layer.this_layer_finished()
                if self._gen != gen:
                    return

    def _scr(self) -> None:
        if not self._retransmit or self._req_id < 0:
            self._req_opts = self.layer.request_options()
            self._req_data = encode_options(self._req_opts)
            self._req_id = self.next_id()
        self._replied = False
        self._restart_count -= 1
        self.counters["conf_req_tx"] += 1
        self.send_packet(CONF_REQ, self._req_id, self._req_data)
        self._start_timer()

    def _start_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._call_later(self.restart, self._timeout)

    def _timeout(self) -> None:
        self._timer = None
        if self.state not in TIMER_STATES:
            return
        self.counters["timeouts"] += 1
        self._run("TO+" if self._restart_count > 0 else "TO-")
