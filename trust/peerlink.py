"""Node-to-node QUIC links: the connecting node proves it holds its domain's server key.

Both ends of a node-to-node link are authenticated (DESIGN section 9). The accepting node
(the QUIC server) is authenticated by TLS: the connecting node pins the certificate key
that the accepter's signed key document lists (``trust.media.media_pin``). The other
direction cannot be TLS client authentication: qh3 2.1.0 never sends a CertificateRequest
(see ``transport.quic``), and offers no TLS exporter (RFC 8446 section 7.5) to bind to.
So, on the control stream of the established connection:

1. the accepter sends :class:`~wire.server.LinkChallenge`: :data:`CHALLENGE_SIZE` fresh
   random bytes (:func:`issue`; randomness injected);
2. the connecting node answers :class:`~wire.server.LinkProof` (:func:`prove`): its
   domain, the id of its verify key and a signature, by that key with its domain's hybrid
   signature suite (the one that signs key documents), under
   :data:`~suites.labels.CTX_PEER_LINK`, over the canonical encoding of
   :class:`~wire.server.LinkProofBody`: the challenge, the pin of the accepter's QUIC
   certificate key (as the connecting node pinned it), and both domains in lower case;
3. the accepter reads the claimed domain (:func:`read_proof`), obtains that domain's key
   document verified and trusted by ``trust.documents`` (its federation keyring), and
   checks the proof (:meth:`Challenge.check`) against a body it rebuilds from its own
   values: its challenge, its own pin, its own domain.

What each binding stops: the fresh challenge, a proof recorded on an earlier link (or a
second use of one challenge: a :class:`Challenge` checks once); the accepter's pin, a
node M that the victim connects to forwarding M's challenge from the real accepter and
relaying the answer (the victim signs M's pin, not the accepter's); the target domain, a
proof made for another node; the origin domain and key id, a key of another domain or
one retired (``not_after`` passed). An answer later than :data:`PROOF_WINDOW_MS` after
the challenge is refused, so a link cannot be held half-open with a challenge pending.

Every refusal is :class:`~trust.errors.LinkRefused` (code ``fed.auth``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from suites import Suite, SuiteError, get_suite_by_id, labels
from suites.sig import SigPrivateKey
from trust.documents import verify_key
from trust.errors import LinkRefused
from trust.media import PIN_SIZE
from wire import WireError, decode, encode
from wire.media_link import MAX_LINK_CONTROL
from wire.server import LinkChallenge, LinkProof, LinkProofBody, ServerKeyDocument

CHALLENGE_SIZE: Final = 32
"""Random bytes of a challenge."""
PROOF_WINDOW_MS: Final = 10_000
"""Longest time from a challenge to the proof that answers it (milliseconds)."""
MAX_LINK_MESSAGE: Final = MAX_LINK_CONTROL
"""Largest encoded challenge or proof read (an ML-DSA-87 + P-384 signature is 4,723 bytes):
the bound of every link control message (``wire.media_link``)."""


def proof_body(challenge: bytes, accepter_pin: bytes, origin: str, target: str) -> LinkProofBody:
    """What a proof signs; both domains in lower case."""
    return LinkProofBody(challenge, accepter_pin, origin.lower(), target.lower())


@dataclass(eq=False)
class Challenge:
    """The accepter's side of one link: its challenge, its own domain and QUIC pin, and
    when it sent the challenge (Unix ms). It checks one proof, once."""

    challenge: bytes
    domain: str
    pin: bytes
    issued_ms: int
    _spent: bool = field(default=False, repr=False)

    def message(self) -> bytes:
        """The encoded :class:`~wire.server.LinkChallenge` to send."""
        return encode(LinkChallenge(self.challenge))

    def check(self, proof: LinkProof, origin_doc: ServerKeyDocument, now_ms: int) -> str:
        """The connecting node's domain (lower case) if ``proof`` answers this challenge
        by a current key of ``origin_doc`` (verified and trusted by the caller); else
        :class:`LinkRefused`. ``now_ms`` is when the proof arrived (the window does not
        count the time spent fetching the document). A second call is refused, whatever
        its arguments."""
        if self._spent:
            raise LinkRefused("this link challenge was already answered")
        self._spent = True
        origin = proof.origin.lower()
        if not 0 <= now_ms - self.issued_ms <= PROOF_WINDOW_MS:
            raise LinkRefused(f"the link proof of {origin} came too late")
        if origin_doc.body.server.lower() != origin:
            raise LinkRefused(f"the key document given for {origin} is not its own")
        if now_ms >= origin_doc.body.valid_until:
            raise LinkRefused(f"the key document of {origin} has expired")
        key = verify_key(origin_doc, proof.key_id, now_ms)
        if key is None:
            raise LinkRefused(f"the link proof of {origin} is by no current key of its domain")
        try:
            body = proof_body(self.challenge, self.pin, origin, self.domain)
            suite = get_suite_by_id(key.suite)
            suite.sig.verify(key.public, encode(body), proof.signature, labels.CTX_PEER_LINK)
        except (SuiteError, WireError):  # a name that lowercases past the bound, too
            raise LinkRefused(f"the link proof of {origin} does not verify") from None
        return origin


def issue(fresh: bytes, domain: str, pin: bytes, now_ms: int) -> Challenge:
    """A challenge from ``fresh`` (:data:`CHALLENGE_SIZE` fresh random bytes) for the
    accepter ``domain`` whose QUIC certificate key has ``pin``."""
    if len(fresh) != CHALLENGE_SIZE:
        raise ValueError(f"a link challenge is {CHALLENGE_SIZE} random bytes")
    if len(pin) != PIN_SIZE:
        raise ValueError(f"a QUIC pin is {PIN_SIZE} bytes")
    return Challenge(bytes(fresh), domain, bytes(pin), now_ms)


def prove(
    challenge: bytes,
    *,
    origin: str,
    target: str,
    target_pin: bytes,
    suite: Suite,
    sig_key: SigPrivateKey,
    key_id: bytes,
) -> bytes:
    """The encoded :class:`~wire.server.LinkProof` answering the encoded ``challenge``
    that ``target`` (whose QUIC key the connecting node pinned as ``target_pin``) sent:
    signed by ``origin``'s server key ``sig_key`` (id ``key_id``). :class:`LinkRefused`
    if ``challenge`` does not decode."""
    try:
        sent = decode(challenge, LinkChallenge, max_size=MAX_LINK_MESSAGE)
    except WireError:
        raise LinkRefused("the link challenge is malformed") from None
    body = proof_body(sent.challenge, target_pin, origin, target)
    signature = suite.sig.sign(sig_key, encode(body), labels.CTX_PEER_LINK)
    return encode(LinkProof(origin.lower(), key_id, signature))


def read_proof(data: bytes) -> LinkProof:
    """The decoded proof (its ``origin`` names the key document to check it with);
    :class:`LinkRefused` if it does not decode."""
    try:
        return decode(data, LinkProof, max_size=MAX_LINK_MESSAGE)
    except WireError:
        raise LinkRefused("the link proof is malformed") from None
