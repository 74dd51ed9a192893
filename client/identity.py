"""Device identity and prekeys (DESIGN section 4; Signal PQXDH section 3.2).

A device identity is a hybrid signing key plus a DH identity key of its suite; the signing
key signs the DH key, every prekey and the sealed-sender key, each under its own context.
:class:`PrekeyPool` holds the private halves, hands out uploads, consumes one-time keys
exactly once and says when to replenish. :func:`verify_bundle` is what an initiator runs on
a fetched bundle before it trusts a single key in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from client.entropy import Entropy
from client.errors import InvalidBundle, SuiteMismatch
from suites import Suite, SuiteError, get_suite_by_id, labels
from suites.dh import DhPrivateKey
from suites.kem import KemPrivateKey, MlKemPrivateKey
from suites.sig import SigPrivateKey
from wire import encode
from wire.e2e import (
    IdentityKey,
    KemPrekey,
    OneTimePrekey,
    PrekeyBundle,
    PrekeyPayload,
    PrekeyUpload,
    SealedSenderKey,
    SignedPrekey,
)

ONE_TIME_BATCH = 100
REPLENISH_BELOW = 20


def _payload(suite: Suite, key_id: int, public: bytes) -> bytes:
    return encode(PrekeyPayload(suite=suite.suite_id, id=key_id, public=public))


def new_dh_key(suite: Suite, entropy: Entropy) -> DhPrivateKey:
    """A DH key pair from injected randomness (rejection-sampled for P-384 scalars)."""
    while True:
        try:
            return suite.dh.private_key_from_bytes(entropy.random_bytes(suite.dh.private_len))
        except SuiteError:
            continue


def new_mlkem_key(suite: Suite, entropy: Entropy) -> MlKemPrivateKey:
    return suite.ratchet_kem.private_key_from_seed(entropy.random_bytes(64))


@dataclass(eq=False)
class Identity:
    """The private identity of one device."""

    suite: Suite
    sig_key: SigPrivateKey
    dh_key: DhPrivateKey
    public: IdentityKey

    @classmethod
    def generate(cls, suite: Suite, entropy: Entropy) -> Identity:
        sig_key = suite.sig.private_key_from_bytes(entropy.random_bytes(suite.sig.private_len))
        return cls.from_keys(suite, sig_key, new_dh_key(suite, entropy))

    @classmethod
    def from_keys(cls, suite: Suite, sig_key: SigPrivateKey, dh_key: DhPrivateKey) -> Identity:
        sig_pub = suite.sig.public_key_bytes(sig_key)
        dh_pub = suite.dh.public_key_bytes(dh_key)
        dh_sig = suite.sig.sign(sig_key, dh_pub, labels.CTX_IDENTITY_DH)
        public = IdentityKey(suite=suite.suite_id, sig=sig_pub, dh=dh_pub, dh_sig=dh_sig)
        return cls(suite, sig_key, dh_key, public)

    def sign(self, message: bytes, context: bytes) -> bytes:
        return self.suite.sig.sign(self.sig_key, message, context)


def verify_identity(suite: Suite, identity: IdentityKey) -> None:
    """Check an identity key's suite and the signature binding its DH key."""
    if identity.suite != suite.suite_id:
        raise SuiteMismatch("identity key of another suite")
    try:
        suite.sig.check_public(identity.sig)
        suite.dh.check_public(identity.dh)
        suite.sig.verify(identity.sig, identity.dh, identity.dh_sig, labels.CTX_IDENTITY_DH)
    except SuiteError as exc:
        raise InvalidBundle(f"identity key does not verify ({exc.code})") from None


def identity_suite(identity: IdentityKey) -> Suite:
    try:
        return get_suite_by_id(identity.suite)
    except SuiteError:
        raise SuiteMismatch("unknown suite") from None


def verify_bundle(suite: Suite, bundle: PrekeyBundle) -> None:
    """Every check PQXDH section 3.3 asks of Alice before she uses Bob's bundle.

    Raises :class:`SuiteMismatch` for a bundle of another suite than ``suite`` and
    :class:`InvalidBundle` for any signature or key that does not check out.
    """
    if bundle.suite != suite.suite_id:
        raise SuiteMismatch("bundle of another suite")
    verify_identity(suite, bundle.identity)
    pk = bundle.identity.sig
    checks = [
        (
            bundle.signed_prekey.id,
            bundle.signed_prekey.public,
            bundle.signed_prekey.signature,
            labels.CTX_SIGNED_PREKEY,
        ),
        (
            bundle.kem_prekey.id,
            bundle.kem_prekey.public,
            bundle.kem_prekey.signature,
            labels.CTX_LAST_RESORT_KEM_PREKEY
            if bundle.kem_prekey.last_resort
            else labels.CTX_KEM_PREKEY,
        ),
        (
            bundle.sealed_key.id,
            bundle.sealed_key.public,
            bundle.sealed_key.signature,
            labels.CTX_SEALED_SENDER_KEY,
        ),
    ]
    try:
        for key_id, public, signature, context in checks:
            suite.sig.verify(pk, _payload(suite, key_id, public), signature, context)
        suite.dh.check_public(bundle.signed_prekey.public)
        if bundle.one_time is not None:
            suite.dh.check_public(bundle.one_time.public)
        suite.ratchet_kem.check_public(bundle.kem_prekey.public)
        suite.kem.check_public(bundle.sealed_key.public)
    except SuiteError as exc:
        raise InvalidBundle(f"prekey bundle does not verify ({exc.code})") from None


def verify_sealed_key(suite: Suite, identity: IdentityKey, key: SealedSenderKey) -> bool:
    """True when ``key`` is a valid sealed-sender key signed by ``identity``."""
    try:
        suite.sig.verify(
            identity.sig,
            _payload(suite, key.id, key.public),
            key.signature,
            labels.CTX_SEALED_SENDER_KEY,
        )
        suite.kem.check_public(key.public)
    except SuiteError:
        return False
    return True


@dataclass(eq=False)
class PrekeyPool:
    """The private prekeys of a device and the bookkeeping of their ids.

    PQXDH looks one-time keys up without removing them (:meth:`peek_one_time_dh`,
    :meth:`peek_kem`); the device deletes them (:meth:`consume`) once the first message
    of the session decrypted, so a forged prekey message cannot burn them.
    :meth:`needs_replenish` says when to publish more.
    """

    identity: Identity
    signed_prekey_id: int
    signed_prekey: DhPrivateKey
    sealed_key_id: int
    sealed_key: KemPrivateKey
    last_resort_id: int
    last_resort: MlKemPrivateKey
    one_time_dh: dict[int, DhPrivateKey] = field(default_factory=dict)
    one_time_kem: dict[int, MlKemPrivateKey] = field(default_factory=dict)
    next_id: int = 1
    published_dh: set[int] = field(default_factory=set)
    published_kem: set[int] = field(default_factory=set)
    base_keys_seen: set[bytes] = field(default_factory=set)
    """Base keys of the sessions accepted under the current signed prekey, so the first
    message of one cannot be replayed to set it up again (cleared on rotation)."""
    unsaved_consumed: set[int] = field(default_factory=set)
    unsaved_base_keys: set[bytes] = field(default_factory=set)
    """One-time key ids consumed and base keys seen since ``client.persist`` last recorded
    the pool (it clears both), so saving after a message writes only what changed."""

    @classmethod
    def create(cls, identity: Identity, entropy: Entropy) -> PrekeyPool:
        suite = identity.suite
        pool = cls(
            identity=identity,
            signed_prekey_id=1,
            signed_prekey=new_dh_key(suite, entropy),
            sealed_key_id=2,
            sealed_key=suite.kem.private_key_from_seed(entropy.random_bytes(32)),
            last_resort_id=3,
            last_resort=new_mlkem_key(suite, entropy),
            next_id=4,
        )
        pool.generate_one_time(entropy, ONE_TIME_BATCH)
        return pool

    @property
    def suite(self) -> Suite:
        return self.identity.suite

    def _take_id(self) -> int:
        key_id, self.next_id = self.next_id, self.next_id + 1
        return key_id

    def generate_one_time(self, entropy: Entropy, count: int) -> None:
        """Add ``count`` one-time DH and ``count`` one-time KEM prekeys (not yet published)."""
        for _ in range(count):
            self.one_time_dh[self._take_id()] = new_dh_key(self.suite, entropy)
            self.one_time_kem[self._take_id()] = new_mlkem_key(self.suite, entropy)

    def needs_replenish(self, remaining_on_server: int | None = None) -> bool:
        """True when fewer than ``REPLENISH_BELOW`` one-time keys are left (on the server, if
        it told us, otherwise locally)."""
        left = min(len(self.one_time_dh), len(self.one_time_kem))
        if remaining_on_server is not None:
            left = min(left, remaining_on_server)
        return left < REPLENISH_BELOW

    def rotate_signed_prekey(self, entropy: Entropy) -> None:
        self.signed_prekey_id = self._take_id()
        self.signed_prekey = new_dh_key(self.suite, entropy)
        self.base_keys_seen.clear()  # prekey messages naming the old one no longer open

    def _sign(self, key_id: int, public: bytes, context: bytes) -> bytes:
        return self.identity.sign(_payload(self.suite, key_id, public), context)

    def _kem_prekey(self, key_id: int, sk: MlKemPrivateKey, last_resort: bool) -> KemPrekey:
        public = self.suite.ratchet_kem.public_key_bytes(sk)
        ctx = labels.CTX_LAST_RESORT_KEM_PREKEY if last_resort else labels.CTX_KEM_PREKEY
        return KemPrekey(
            id=key_id,
            public=public,
            last_resort=last_resort,
            signature=self._sign(key_id, public, ctx),
        )

    def signed_prekey_public(self) -> SignedPrekey:
        public = self.suite.dh.public_key_bytes(self.signed_prekey)
        return SignedPrekey(
            id=self.signed_prekey_id,
            public=public,
            signature=self._sign(self.signed_prekey_id, public, labels.CTX_SIGNED_PREKEY),
        )

    def sealed_key_public(self) -> SealedSenderKey:
        public = self.suite.kem.public_key_bytes(self.sealed_key)
        return SealedSenderKey(
            id=self.sealed_key_id,
            public=public,
            signature=self._sign(self.sealed_key_id, public, labels.CTX_SEALED_SENDER_KEY),
        )

    def upload(self, only_new: bool = False) -> PrekeyUpload:
        """Everything public, signed; with ``only_new``, only keys not yet published."""
        dh_ids = [i for i in self.one_time_dh if not (only_new and i in self.published_dh)]
        kem_ids = [i for i in self.one_time_kem if not (only_new and i in self.published_kem)]
        self.published_dh.update(dh_ids)
        self.published_kem.update(kem_ids)
        dh = self.suite.dh
        return PrekeyUpload(
            suite=self.suite.suite_id,
            identity=self.identity.public,
            signed_prekey=self.signed_prekey_public(),
            one_time=tuple(
                OneTimePrekey(id=i, public=dh.public_key_bytes(self.one_time_dh[i])) for i in dh_ids
            ),
            kem_one_time=tuple(
                self._kem_prekey(i, self.one_time_kem[i], last_resort=False) for i in kem_ids
            ),
            last_resort=self._kem_prekey(self.last_resort_id, self.last_resort, last_resort=True),
            sealed_key=self.sealed_key_public(),
        )

    def bundle(self, address: str, device: int) -> PrekeyBundle:
        """A bundle as a node would serve it, taking the lowest one-time ids (tests, tools)."""
        upload = self.upload()
        return PrekeyBundle(
            suite=upload.suite,
            address=address,
            device=device,
            identity=upload.identity,
            signed_prekey=upload.signed_prekey,
            one_time=upload.one_time[0] if upload.one_time else None,
            kem_prekey=upload.kem_one_time[0] if upload.kem_one_time else upload.last_resort,
            sealed_key=upload.sealed_key,
        )

    def signed_prekey_for(self, key_id: int) -> DhPrivateKey | None:
        return self.signed_prekey if key_id == self.signed_prekey_id else None

    def peek_one_time_dh(self, key_id: int) -> DhPrivateKey | None:
        """The one-time DH prekey ``key_id``, left in place; ``None`` if unknown or used."""
        return self.one_time_dh.get(key_id)

    def peek_kem(self, key_id: int, last_resort: bool) -> MlKemPrivateKey | None:
        """The KEM prekey ``key_id`` of the kind ``last_resort`` names, left in place."""
        if last_resort:
            return self.last_resort if key_id == self.last_resort_id else None
        return self.one_time_kem.get(key_id)

    def consume(self, one_time_dh: int | None, one_time_kem: int | None) -> None:
        """Delete the one-time prekeys a session that decrypted was set up with."""
        if one_time_dh is not None:
            self.take_one_time_dh(one_time_dh)
        if one_time_kem is not None:
            self.take_kem(one_time_kem, last_resort=False)

    def accept_base_key(self, base_key: bytes) -> None:
        """Remember the base key of a session set up (its first message decrypted)."""
        self.base_keys_seen.add(base_key)
        self.unsaved_base_keys.add(base_key)

    def take_one_time_dh(self, key_id: int) -> DhPrivateKey | None:
        """Remove and return a one-time DH prekey; ``None`` if unknown or already used."""
        self.published_dh.discard(key_id)
        key = self.one_time_dh.pop(key_id, None)
        if key is not None:
            self.unsaved_consumed.add(key_id)
        return key

    def take_kem(self, key_id: int, last_resort: bool) -> MlKemPrivateKey | None:
        """The KEM prekey ``key_id``; a one-time key is removed, the last-resort key kept."""
        if last_resort:
            return self.last_resort if key_id == self.last_resort_id else None
        self.published_kem.discard(key_id)
        key = self.one_time_kem.pop(key_id, None)
        if key is not None:
            self.unsaved_consumed.add(key_id)
        return key
