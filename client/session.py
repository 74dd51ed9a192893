"""A device's sessions: PQXDH setup, the ratchet, sealed sender and identity trust together.

:class:`Device` is the pure end-to-end core a client shell drives: ``encrypt`` turns a
plaintext for ``(address, device)`` into a padded sealed envelope body; ``decrypt`` turns an
envelope body back into ``(sender, plaintext)``. Time and randomness are injected; network
and storage are the shell's business (``client.store`` persists the records).

Rules enforced here:

- the initiator sends prekey messages (PQXDH parameters + ratchet message) until its first
  reply, so losing the first message does not lose the session;
- the full sender certificate rides along until the peer has answered since it last
  changed, then only its hash;
- the certificate must be valid for the sender's own domain and name the session's
  identity key; a suite other than the device's is refused, never tried;
- a peer whose identity key changed is blocked for sending until :meth:`accept_identity`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final

from client import pqxdh, ratchet
from client.entropy import SYSTEM_ENTROPY, Entropy
from client.errors import (
    CertificateError,
    DecryptionFailed,
    NoSession,
    SuiteMismatch,
    UntrustedIdentity,
)
from client.formats import PrekeyMessage, RatchetHeader, RatchetMessage
from client.identity import Identity, PrekeyPool, verify_sealed_key
from client.sealed import Keyring, certificate_hash, seal, unseal, verify_certificate
from suites import Suite, labels
from suites.kdf import constant_time_equal as _ct_equal
from suites.kem import KemPrivateKey
from wire import WireError, decode, encode
from wire.e2e import IdentityKey, PrekeyBundle, SealedSenderKey, SenderCertificate
from wire.e2e import SenderDescriptor as Descriptor

Peer = tuple[str, int]

MAX_CERTIFICATE_BACKDATE_MS: Final = 30 * 86_400_000
"""How far before now an envelope's node timestamp may set the certificate check time: the
longest envelope life a node allows (30 days)."""


@dataclass(eq=False)
class Session:
    """One pairwise session with a peer device."""

    peer_identity: IdentityKey
    peer_sealed_key: SealedSenderKey | None
    state: ratchet.RatchetState
    pending: PrekeyMessage | None = None  # template: set until the first reply
    base_key: bytes = b""
    cert_acked: bytes = b""  # hash of our certificate the peer has answered after


@dataclass(frozen=True)
class Received:
    sender: str
    device: int
    plaintext: bytes


@dataclass(frozen=True)
class Trust:
    identity: bytes  # encoded IdentityKey
    accepted: bool


@dataclass(eq=False)
class Device:
    """One device's end-to-end state."""

    address: str
    device_id: int
    identity: Identity
    pool: PrekeyPool
    keyring: Keyring
    certificate: SenderCertificate
    entropy: Entropy = SYSTEM_ENTROPY
    clock: Callable[[], float] = field(default=lambda: 0.0)
    sessions: dict[Peer, Session] = field(default_factory=dict)
    trust: dict[str, Trust] = field(default_factory=dict)
    peer_certs: dict[Peer, tuple[bytes, SenderCertificate]] = field(default_factory=dict)
    _cert_hash_cache: tuple[SenderCertificate, bytes] | None = field(default=None, repr=False)

    @property
    def suite(self) -> Suite:
        return self.identity.suite

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- identity trust ---------------------------------------------------------------
    def _observe_identity(self, address: str, identity: IdentityKey) -> None:
        encoded = encode(identity)
        known = self.trust.get(address)
        if known is None:
            self.trust[address] = Trust(encoded, accepted=True)
        elif not _ct_equal(known.identity, encoded):
            self.trust[address] = Trust(encoded, accepted=False)

    def identity_changed(self, address: str) -> bool:
        known = self.trust.get(address)
        return known is not None and not known.accepted

    def accept_identity(self, address: str) -> None:
        """The user verified the new safety number: sending is allowed again."""
        known = self.trust.get(address)
        if known is not None:
            self.trust[address] = Trust(known.identity, accepted=True)

    # --- sending ----------------------------------------------------------------------
    def start_session(self, bundle: PrekeyBundle) -> None:
        """PQXDH as the initiator, from a bundle fetched for ``(address, device)``."""
        if bundle.suite != self.suite.suite_id:
            raise SuiteMismatch("the peer uses another suite")
        setup = pqxdh.initiate(self.identity, self.address, self.device_id, bundle, self.entropy)
        state = ratchet.init_initiator(
            self.suite, setup.sk, setup.ad, setup.remote_ratchet_key, self.entropy, self.clock()
        )
        template = PrekeyMessage(
            v=self.suite.suite_id,
            ik=self.identity.public,
            ek=setup.base_key,
            spk=setup.signed_prekey_id,
            opk=setup.one_time_id,
            kem=setup.kem_id,
            lr=setup.kem_last_resort,
            kc=setup.kem_ct,
            sk=self.pool.sealed_key_public(),
            m=_PLACEHOLDER,
        )
        self._observe_identity(bundle.address, bundle.identity)
        self.sessions[(bundle.address, bundle.device)] = Session(
            peer_identity=bundle.identity,
            peer_sealed_key=bundle.sealed_key,
            state=state,
            pending=template,
            base_key=setup.base_key,
        )

    def has_session(self, address: str, device: int) -> bool:
        return (address, device) in self.sessions

    def encrypt(self, address: str, device: int, plaintext: bytes) -> bytes:
        """A padded sealed envelope body carrying ``plaintext`` to ``(address, device)``."""
        session = self.sessions.get((address, device))
        if session is None or session.peer_sealed_key is None:
            raise NoSession(f"no session with {address}/{device}")
        if self.identity_changed(address):
            raise UntrustedIdentity(address)
        message = ratchet.encrypt(session.state, plaintext)
        if session.pending is not None:
            payload = encode(replace(session.pending, m=message))
            kind = labels.PAYLOAD_PREKEY_MESSAGE
        else:
            payload, kind = encode(message), labels.PAYLOAD_RATCHET_MESSAGE
        return seal(self.suite, session.peer_sealed_key, self._descriptor(session), kind, payload)

    def _own_cert_hash(self) -> bytes:
        cached = self._cert_hash_cache
        if cached is None or cached[0] is not self.certificate:
            cached = self._cert_hash_cache = (self.certificate, certificate_hash(self.certificate))
        return cached[1]

    def _descriptor(self, session: Session) -> Descriptor:
        digest = self._own_cert_hash()
        full = None if session.cert_acked == digest else self.certificate
        return Descriptor(a=self.address, d=self.device_id, cert=full, h=digest)

    # --- receiving --------------------------------------------------------------------
    def decrypt(self, body: bytes, *, sent_ms: int | None = None) -> Received:
        """Open an envelope body; every failure of authenticity is :class:`DecryptionFailed`
        (or :class:`CertificateError` / :class:`SuiteMismatch` for a bad sender claim).

        ``sent_ms`` is when the envelope reached the recipient's node (its ``ts``): the
        sender certificate is checked as of then, not now, as libsignal validates a sender
        certificate at the envelope's server timestamp; a message that waited in the
        mailbox longer than the certificate had left still opens. It is clamped to now and
        to at most ``MAX_CERTIFICATE_BACKDATE_MS`` before now, so a node cannot revive a
        long-expired certificate by backdating.

        Anyone can seal an envelope to us naming any sender, so nothing it claims (a new
        session, an identity, a certificate) is remembered until its message decrypted.
        """
        content = unseal(self.suite, self._sealed_key, body)
        sender = content.s
        cert = self._resolve_certificate(sender, self._check_time(sent_ms))
        setup: pqxdh.ResponderSetup | None = None
        try:
            if content.k == labels.PAYLOAD_PREKEY_MESSAGE:
                pm = decode(content.p, PrekeyMessage)
                session, setup = self._session_for_prekey_message(sender, cert, pm)
                message = pm.m
            elif content.k == labels.PAYLOAD_RATCHET_MESSAGE:
                message = decode(content.p, RatchetMessage)
                found = self.sessions.get((sender.a, sender.d))
                if found is None:
                    raise DecryptionFailed()
                session = found
            else:
                raise DecryptionFailed()
        except WireError:
            raise DecryptionFailed() from None
        if cert.body.identity != session.peer_identity:  # public keys: plain comparison
            raise CertificateError("certificate names another identity than the session")
        previous_chain = session.state.dhr
        plaintext = ratchet.decrypt(session.state, message, self.entropy, self.clock())
        # Authentic from here on.
        peer = (sender.a, sender.d)
        if sender.cert is not None:
            self.peer_certs[peer] = (sender.h, sender.cert)
        if setup is not None:
            self._observe_identity(sender.a, session.peer_identity)
            self.pool.consume(setup.one_time_dh, setup.one_time_kem)
            self.pool.accept_base_key(session.base_key)
            self.sessions[peer] = session
        if content.k == labels.PAYLOAD_RATCHET_MESSAGE:
            session.pending = None  # the peer answered: PQXDH is complete
        if previous_chain is not None and session.state.dhr != previous_chain:
            # A new chain from the peer answers one of ours, all of which carried our
            # certificate in full: from now on its hash is enough.
            session.cert_acked = self._own_cert_hash()
        return Received(sender.a, sender.d, plaintext)

    def _sealed_key(self, key_id: int) -> KemPrivateKey | None:
        return self.pool.sealed_key if key_id == self.pool.sealed_key_id else None

    def _check_time(self, sent_ms: int | None) -> int:
        now = self._now_ms()
        if sent_ms is None:
            return now
        return max(min(sent_ms, now), now - MAX_CERTIFICATE_BACKDATE_MS)

    def _resolve_certificate(self, sender: Descriptor, at_ms: int) -> SenderCertificate:
        """The sender's certificate, checked as of ``at_ms``; :meth:`decrypt` caches it
        once authentic."""
        peer = (sender.a, sender.d)
        if sender.cert is not None:
            if not _ct_equal(certificate_hash(sender.cert), sender.h):
                raise CertificateError("certificate hash mismatch")
            verify_certificate(self.suite, sender.cert, self.keyring, at_ms)
            if sender.cert.body.address != sender.a or sender.cert.body.device != sender.d:
                raise CertificateError("certificate names another sender")
            return sender.cert
        cached = self.peer_certs.get(peer)
        if cached is None or not _ct_equal(cached[0], sender.h):
            raise CertificateError("unknown sender certificate")
        if at_ms >= cached[1].body.expires:
            raise CertificateError("sender certificate expired")
        return cached[1]

    def _session_for_prekey_message(
        self, sender: Descriptor, cert: SenderCertificate, pm: PrekeyMessage
    ) -> tuple[Session, pqxdh.ResponderSetup | None]:
        """The session the prekey message belongs to and, for a new one, its PQXDH result
        (:meth:`decrypt` stores the session and consumes the one-time prekeys it used only
        once the message decrypted)."""
        if pm.v != self.suite.suite_id:
            raise SuiteMismatch("prekey message of another suite")
        peer = (sender.a, sender.d)
        existing = self.sessions.get(peer)
        if existing is not None and _ct_equal(existing.base_key, pm.ek):
            return existing, None
        if pm.ek in self.pool.base_keys_seen:
            # The first message of an earlier session, replayed: without a one-time prekey
            # PQXDH would accept it again (Signal X3DH section 4.2).
            raise DecryptionFailed()
        if not _ct_equal(encode(cert.body.identity), encode(pm.ik)):
            raise CertificateError("certificate names another identity than the message")
        if not verify_sealed_key(self.suite, pm.ik, pm.sk):
            raise DecryptionFailed()
        setup = pqxdh.respond(
            self.pool,
            self.address,
            self.device_id,
            pm.ik,
            sender.a,
            sender.d,
            pm.ek,
            pm.spk,
            pm.opk,
            pm.kem,
            pm.lr,
            pm.kc,
        )
        state = ratchet.init_responder(
            self.suite, setup.sk, setup.ad, setup.ratchet_key, self.entropy, self.clock()
        )
        session = Session(peer_identity=pm.ik, peer_sealed_key=pm.sk, state=state, base_key=pm.ek)
        return session, setup


_PLACEHOLDER = RatchetMessage(h=RatchetHeader(dh=b"", pn=0, n=0, kc=None, kp=None), c=b"")
