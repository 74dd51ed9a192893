"""Sender keys: one sending chain per member device and group, signed messages
(Signal's sender keys, "Private Group Messaging", with a post-quantum signature; the
chain step follows the Double Ratchet's KDF_CK, Signal Double Ratchet spec section 5.2).

Chain step, with the suite's hash (HMAC-SHA-384 for ``cnsa2``, HMAC-SHA-256 for ``xwing``)::

    mk            = HMAC(ck, SENDER_KEY_MESSAGE_SEED)
    ck'           = HMAC(ck, SENDER_KEY_CHAIN_SEED)
    key || nonce  = HKDF(IKM = mk, salt = 0^HashLen, info = SENDER_KEY_AEAD_INFO), 32 + 12

A message is ``AES-256-GCM(key, nonce, pad(content), aad = encode(SenderKeyAad))``, signed
with the chain's own hybrid signing key (ML-DSA + ECDSA/Ed25519, :mod:`suites.sig`) over
``encode(SenderKeySigned)`` under ``CTX_SENDER_KEY_MESSAGE``. The signing key is per chain
and its public half travels only in the distribution, over authenticated pairwise sessions,
so another member (who holds the chain key) still cannot forge a message. The hybrid key is
used rather than a cheaper one because a member's forgery is exactly the attack the
signature exists for, and it must hold against a quantum adversary too; it costs one
signature per message whatever the group's size.

A sending chain is used for every message until :meth:`SenderKeys.rotate`; the key of
iteration ``i`` is deleted once used (forward secrecy). Receiving chains accept messages up
to :data:`MAX_SKIP` ahead, keep skipped keys (at most ``MAX_SKIPPED_KEYS`` per chain) for
late ones, and refuse replays. :meth:`SenderKeys.decrypt` is transactional.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from client.entropy import Entropy
from client.groups.errors import DistributionRefused, RotationNeeded, SenderKeyError, TooLarge
from client.groups.records import (
    ReceivingChainRecord,
    SenderKeysRecord,
    SendingChainRecord,
    SkippedKeyRecord,
)
from suites import Suite, SuiteError, get_suite_by_id, labels
from suites.sig import SigPrivateKey
from wire import WireError, decode, encode
from wire.group import (
    MAX_SKIPPED_KEYS,
    SenderKeyAad,
    SenderKeyDistribution,
    SenderKeyMessage,
    SenderKeySigned,
)

MAX_SKIP: Final = 1000
"""How far ahead of a receiving chain a message may be and still decrypt."""
MAX_CHAINS_PER_SENDER: Final = 2
"""Receiving chains kept per sender device: its current one and the one before, so messages
sent just before a rotation still open."""
MAX_ITERATION: Final = 2**32 - 1
"""A chain that reached this iteration (the wire's ``U32``) must be rotated."""
MAX_PLAINTEXT: Final = 1024 * 1024 - 1
"""Largest group message content: padded to 1 MiB, the message still decodes under the
codec's default size bound (larger content goes in an attachment)."""
CHAIN_ID_LEN: Final = 16
_KEY_LEN: Final = 32
_NONCE_LEN: Final = 12


def new_signing_key(suite: Suite, entropy: Entropy) -> SigPrivateKey:
    """A hybrid signing key from injected randomness (P-384 scalars rejection-sampled)."""
    while True:
        try:
            return suite.sig.private_key_from_bytes(entropy.random_bytes(suite.sig.private_len))
        except SuiteError:
            continue


def chain_step(suite: Suite, ck: bytes) -> tuple[bytes, bytes]:
    """(next chain key, message key)."""
    return (
        suite.kdf.hmac(ck, labels.SENDER_KEY_CHAIN_SEED),
        suite.kdf.hmac(ck, labels.SENDER_KEY_MESSAGE_SEED),
    )


def _aead_keys(suite: Suite, mk: bytes) -> tuple[bytes, bytes]:
    out = suite.kdf.derive(
        mk, bytes(suite.kdf.hash_len), labels.SENDER_KEY_AEAD_INFO, _KEY_LEN + _NONCE_LEN
    )
    return out[:_KEY_LEN], out[_KEY_LEN:]


def _aad(suite: Suite, group: bytes, chain: bytes, iteration: int) -> bytes:
    return encode(SenderKeyAad(v=suite.suite_id, group=group, chain=chain, iteration=iteration))


@dataclass(eq=False)
class SendingChain:
    """This device's chain: ``key`` is the chain key of the next ``iteration``."""

    chain: bytes
    iteration: int
    key: bytes
    sig_key: SigPrivateKey = field(repr=False)


@dataclass(eq=False)
class ReceivingChain:
    """Another member device's chain as far as it has been read."""

    sender: str
    device: int
    chain: bytes
    iteration: int
    key: bytes = field(repr=False)
    sig_public: bytes = field(repr=False)
    skipped: dict[int, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class GroupMessage:
    """A decrypted group message and the member device whose chain it came from."""

    sender: str
    device: int
    plaintext: bytes


@dataclass(eq=False)
class SenderKeys:
    """The sender-key state of one device in one group."""

    suite: Suite
    group: bytes
    own: SendingChain
    needs_rotation: bool = False
    chains: dict[bytes, ReceivingChain] = field(default_factory=dict)

    @classmethod
    def create(cls, suite: Suite, group: bytes, entropy: Entropy) -> SenderKeys:
        return cls(suite, group, _new_chain(suite, entropy))

    # --- sending --------------------------------------------------------------------------

    def distribution(self) -> bytes:
        """The current sending chain as a :class:`SenderKeyDistribution` (to send pairwise
        to a member): whoever gets it reads this chain from now on, not before."""
        own = self.own
        return encode(
            SenderKeyDistribution(
                v=self.suite.suite_id,
                group=self.group,
                chain=own.chain,
                iteration=own.iteration,
                key=own.key,
                sig_public=own.sig_key.public,
            )
        )

    def rotate(self, entropy: Entropy) -> bytes:
        """Start a new sending chain (new chain key and signing key); the distribution to
        send to every remaining member. Clears :attr:`needs_rotation`."""
        self.own = _new_chain(self.suite, entropy)
        self.needs_rotation = False
        return self.distribution()

    def encrypt(self, plaintext: bytes) -> bytes:
        """One group message (:class:`SenderKeyMessage` bytes); :class:`RotationNeeded`
        after a removal until :meth:`rotate`, :class:`TooLarge` above ``MAX_PLAINTEXT``."""
        if self.needs_rotation or self.own.iteration >= MAX_ITERATION:
            raise RotationNeeded()
        if len(plaintext) > MAX_PLAINTEXT:
            raise TooLarge(f"a group message holds at most {MAX_PLAINTEXT} bytes")
        own, suite = self.own, self.suite
        iteration = own.iteration
        own.key, mk = chain_step(suite, own.key)
        own.iteration += 1
        key, nonce = _aead_keys(suite, mk)
        c = suite.aead.seal(
            key, nonce, suite.pad(plaintext), _aad(suite, self.group, own.chain, iteration)
        )
        signed = SenderKeySigned(
            v=suite.suite_id, group=self.group, chain=own.chain, iteration=iteration, c=c
        )
        sig = suite.sig.sign(own.sig_key, encode(signed), labels.CTX_SENDER_KEY_MESSAGE)
        return encode(
            SenderKeyMessage(
                v=suite.suite_id,
                group=self.group,
                chain=own.chain,
                iteration=iteration,
                c=c,
                sig=sig,
            )
        )

    # --- receiving ------------------------------------------------------------------------

    def add_distribution(self, sender: str, device: int, data: bytes) -> None:
        """Take a member's chain from a distribution that came over the pairwise session
        with ``sender``/``device`` (the caller checked that it is a member). A chain already
        known is kept as it is (a distribution never winds a chain back)."""
        dist = self._parse_distribution(data)
        known = self.chains.get(dist.chain)
        if known is not None:
            if (known.sender, known.device) != (sender, device):
                raise DistributionRefused("that chain belongs to another member")
            return
        self.chains[dist.chain] = ReceivingChain(
            sender, device, dist.chain, dist.iteration, dist.key, dist.sig_public
        )
        mine = [c for c in self.chains.values() if (c.sender, c.device) == (sender, device)]
        for old in mine[:-MAX_CHAINS_PER_SENDER]:
            del self.chains[old.chain]

    def _parse_distribution(self, data: bytes) -> SenderKeyDistribution:
        try:
            dist = decode(data, SenderKeyDistribution)
            if dist.v != self.suite.suite_id or dist.group != self.group:
                raise DistributionRefused("distribution for another group or suite")
            if len(dist.key) != self.suite.kdf.hash_len:
                raise DistributionRefused("chain key of the wrong size")
            self.suite.sig.check_public(dist.sig_public)
        except (WireError, SuiteError):
            raise DistributionRefused("not a valid sender-key distribution") from None
        return dist

    def forget(self, addresses: frozenset[str]) -> None:
        """Drop the receiving chains of members who left or were removed."""
        for chain_id in [k for k, c in self.chains.items() if c.sender in addresses]:
            del self.chains[chain_id]

    def decrypt(self, data: bytes) -> GroupMessage:
        """Open a sender-key message; :class:`SenderKeyError` (opaque) for anything that
        does not open, leaving the state untouched."""
        try:
            msg = decode(data, SenderKeyMessage)
        except WireError:
            raise SenderKeyError() from None
        chain = self.chains.get(msg.chain)
        if chain is None or msg.v != self.suite.suite_id or msg.group != self.group:
            raise SenderKeyError()
        behind = msg.iteration < chain.iteration and msg.iteration not in chain.skipped
        if behind or msg.iteration - chain.iteration > MAX_SKIP:
            raise SenderKeyError()  # a replay or out of the window: no signature check needed
        self._verify(chain, msg)
        next_key, skipped, mk = self._message_key(chain, msg.iteration)
        plaintext = self._open(mk, msg)
        if next_key is None:
            del chain.skipped[msg.iteration]
        else:
            chain.key, chain.iteration = next_key, msg.iteration + 1
            chain.skipped.update(skipped)
            while len(chain.skipped) > MAX_SKIPPED_KEYS:
                del chain.skipped[next(iter(chain.skipped))]
        return GroupMessage(chain.sender, chain.device, plaintext)

    def _verify(self, chain: ReceivingChain, msg: SenderKeyMessage) -> None:
        signed = SenderKeySigned(
            v=msg.v, group=msg.group, chain=msg.chain, iteration=msg.iteration, c=msg.c
        )
        try:
            self.suite.sig.verify(
                chain.sig_public, encode(signed), msg.sig, labels.CTX_SENDER_KEY_MESSAGE
            )
        except SuiteError:
            raise SenderKeyError() from None

    def _message_key(
        self, chain: ReceivingChain, iteration: int
    ) -> tuple[bytes | None, dict[int, bytes], bytes]:
        """(next chain key or ``None`` for a stored key, keys skipped, message key)."""
        if iteration < chain.iteration:
            mk = chain.skipped.get(iteration)
            if mk is None:
                raise SenderKeyError()  # a replay, or older than the stored keys
            return None, {}, mk
        if iteration - chain.iteration > MAX_SKIP:
            raise SenderKeyError()
        ck, skipped = chain.key, {}
        for n in range(chain.iteration, iteration):
            ck, skipped[n] = chain_step(self.suite, ck)
        ck, mk = chain_step(self.suite, ck)
        return ck, skipped, mk

    def _open(self, mk: bytes, msg: SenderKeyMessage) -> bytes:
        key, nonce = _aead_keys(self.suite, mk)
        aad = _aad(self.suite, msg.group, msg.chain, msg.iteration)
        try:
            return self.suite.unpad(self.suite.aead.open(key, nonce, msg.c, aad))
        except SuiteError:
            raise SenderKeyError() from None


def to_record(keys: SenderKeys) -> SenderKeysRecord:
    """The stored form of ``keys`` (holds secrets: store it encrypted)."""
    own = keys.own
    return SenderKeysRecord(
        v=keys.suite.suite_id,
        group=keys.group,
        own=SendingChainRecord(
            chain=own.chain,
            iteration=own.iteration,
            key=own.key,
            sig_private=keys.suite.sig.private_key_bytes(own.sig_key),
        ),
        needs_rotation=keys.needs_rotation,
        chains=tuple(_chain_record(c) for c in keys.chains.values()),
    )


def _chain_record(c: ReceivingChain) -> ReceivingChainRecord:
    skipped = tuple(SkippedKeyRecord(iteration=i, key=k) for i, k in c.skipped.items())
    return ReceivingChainRecord(
        sender=c.sender,
        device=c.device,
        chain=c.chain,
        iteration=c.iteration,
        key=c.key,
        sig_public=c.sig_public,
        skipped=skipped,
    )


def from_record(record: SenderKeysRecord) -> SenderKeys:
    """Inverse of :func:`to_record` (chains and skipped keys in their original order)."""
    suite = get_suite_by_id(record.v)
    r = record.own
    own = SendingChain(r.chain, r.iteration, r.key, suite.sig.private_key_from_bytes(r.sig_private))
    chains = {
        c.chain: ReceivingChain(
            c.sender,
            c.device,
            c.chain,
            c.iteration,
            c.key,
            c.sig_public,
            {s.iteration: s.key for s in c.skipped},
        )
        for c in record.chains
    }
    return SenderKeys(suite, record.group, own, record.needs_rotation, chains)


def _new_chain(suite: Suite, entropy: Entropy) -> SendingChain:
    return SendingChain(
        chain=entropy.random_bytes(CHAIN_ID_LEN),
        iteration=0,
        key=entropy.random_bytes(suite.kdf.hash_len),
        sig_key=new_signing_key(suite, entropy),
    )
