//! The ChaCha20-Poly1305 record cipher (RFC 8439 §2.8) of TLS 1.3 and
//! TLS 1.2 (RFC 7905), for rustls in WebAssembly.
//!
//! Why edgepoll has its own: ring, the provider, has no assembly for
//! WebAssembly, and its portable ChaCha20-Poly1305 seals 0.26 GB/s under
//! WasmEdge AOT here (1.9 GB/s natively with AVX2), which held a 64 MiB
//! https download to about 190 MB/s. [`super::chacha20`] runs four blocks
//! in SIMD registers (1.9 GB/s) and [`super::poly1305`] two blocks, with
//! limbs that suit WebAssembly's multiply (3.1 GB/s). Only the record cipher is
//! replaced: the handshake, key schedule and certificates stay ring's and
//! rustls'. Natively ring's assembly is faster, so there ring keeps the
//! record cipher too ([`super::config`] decides).
//!
//! Correctness: the RFC's test vectors, and agreement with ring on every
//! length, natively and as wasm on each runtime (`make test` runs the unit
//! tests both ways).

use super::chacha20::ChaCha20;
use super::poly1305::Poly1305;
use rustls::crypto::cipher::{
    make_tls12_aad, make_tls13_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv,
    KeyBlockShape, MessageDecrypter, MessageEncrypter, Nonce, OutboundChunks,
    OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload, Tls12AeadAlgorithm,
    Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::{
    CipherSuite, CipherSuiteCommon, ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion,
    SupportedCipherSuite, Tls12CipherSuite, Tls13CipherSuite,
};
use std::sync::OnceLock;
use zeroize::Zeroize;

/// Bytes of the authentication tag.
pub(crate) const TAG_LEN: usize = 16;

/// The largest plaintext of a TLS record.
const MAX_FRAGMENT: usize = 16 * 1024;

/// Encrypts `in_out` in place and returns its tag.
pub(crate) fn seal(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8], in_out: &mut [u8]) -> [u8; 16] {
    assert!(in_out.len() as u64 <= MAX_TEXT, "too long for one nonce");
    let (mut cipher, mut mac) = start(key, nonce, aad);
    cipher.apply(in_out);
    mac.update_padded(in_out);
    finish(mac, aad.len(), in_out.len())
}

/// Checks the tag at the end of `in_out` and then decrypts the rest in
/// place; returns the plaintext's length. Nothing is decrypted when the tag
/// is wrong.
pub(crate) fn open(
    key: &[u8; 32],
    nonce: &[u8; 12],
    aad: &[u8],
    in_out: &mut [u8],
) -> Result<usize, Error> {
    let Some(text_len) = in_out.len().checked_sub(TAG_LEN) else {
        return Err(Error::DecryptError);
    };
    if text_len as u64 > MAX_TEXT {
        return Err(Error::DecryptError);
    }
    let (text, tag) = in_out.split_at_mut(text_len);
    let (mut cipher, mut mac) = start(key, nonce, aad);
    mac.update_padded(text);
    let mut expected = finish(mac, aad.len(), text_len);
    // Compared in constant time: no early exit on the first difference
    // (`black_box` keeps the compiler from adding one).
    let difference = expected
        .iter()
        .zip(tag.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    expected.zeroize();
    if core::hint::black_box(difference) != 0 {
        return Err(Error::DecryptError);
    }
    cipher.apply(text);
    Ok(text_len)
}

/// Most bytes one key and nonce may seal: ChaCha20's 32-bit block counter
/// must not wrap back to block 0, the Poly1305 key (RFC 8439 §2.8). A TLS
/// record is 16 KiB.
const MAX_TEXT: u64 = 64 * (u32::MAX as u64 - 1);

/// The keystream from block 1 on, and the authenticator keyed by block 0,
/// with the additional data in.
fn start(key: &[u8; 32], nonce: &[u8; 12], aad: &[u8]) -> (ChaCha20, Poly1305) {
    let mut cipher = ChaCha20::new(key, nonce, 0);
    let mut first = cipher.next_block();
    let mut one_time_key = [0u8; 32];
    one_time_key.copy_from_slice(&first[..32]);
    let mut mac = Poly1305::new(&one_time_key);
    first.zeroize();
    one_time_key.zeroize();
    mac.update_padded(aad);
    (cipher, mac)
}

fn finish(mut mac: Poly1305, aad_len: usize, text_len: usize) -> [u8; 16] {
    let mut lengths = [0u8; 16];
    lengths[..8].copy_from_slice(&(aad_len as u64).to_le_bytes());
    lengths[8..].copy_from_slice(&(text_len as u64).to_le_bytes());
    mac.update_padded(&lengths);
    mac.finish()
}

/// Bytes of a sealed record: the text, the inner content type if any, the
/// tag.
fn sealed_len(text_len: usize, inner_type: bool) -> usize {
    text_len + usize::from(inner_type) + TAG_LEN
}

/// One direction's key and IV; the key is wiped when dropped.
struct RecordKey {
    key: [u8; 32],
    iv: Iv,
}

impl Drop for RecordKey {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl RecordKey {
    fn new(key: &AeadKey, iv: Iv) -> RecordKey {
        let mut bytes = [0u8; 32];
        // rustls sizes the key by `key_len()`/`key_block_shape()`: 32.
        bytes.copy_from_slice(&key.as_ref()[..32]);
        RecordKey { key: bytes, iv }
    }

    /// The sealed payload of record `seq`: `text`, then `inner_type` if
    /// given (TLS 1.3's real content type), then the tag.
    fn seal(
        &self,
        text: &OutboundChunks<'_>,
        inner_type: Option<ContentType>,
        seq: u64,
        aad: &[u8],
    ) -> PrefixedPayload {
        let mut payload =
            PrefixedPayload::with_capacity(sealed_len(text.len(), inner_type.is_some()));
        payload.extend_from_chunks(text);
        if let Some(typ) = inner_type {
            payload.extend_from_slice(&[u8::from(typ)]);
        }
        let nonce = Nonce::new(&self.iv, seq).0;
        let tag = seal(&self.key, &nonce, aad, payload.as_mut());
        payload.extend_from_slice(&tag);
        payload
    }

    /// Opens record `seq` in place; the plaintext's length.
    fn open(&self, payload: &mut [u8], seq: u64, aad: &[u8]) -> Result<usize, Error> {
        open(&self.key, &Nonce::new(&self.iv, seq).0, aad, payload)
    }
}

/// The TLS 1.3 suite's record cipher.
pub(crate) struct Tls13ChaCha20Poly1305;

/// The TLS 1.2 suites' record cipher.
pub(crate) struct Tls12ChaCha20Poly1305;

struct Tls13Encrypter(RecordKey);
struct Tls13Decrypter(RecordKey);
struct Tls12Encrypter(RecordKey);
struct Tls12Decrypter(RecordKey);

impl Tls13AeadAlgorithm for Tls13ChaCha20Poly1305 {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Tls13Encrypter(RecordKey::new(&key, iv)))
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Tls13Decrypter(RecordKey::new(&key, iv)))
    }

    fn key_len(&self) -> usize {
        32
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv })
    }
}

impl Tls12AeadAlgorithm for Tls12ChaCha20Poly1305 {
    fn encrypter(&self, key: AeadKey, iv: &[u8], _extra: &[u8]) -> Box<dyn MessageEncrypter> {
        Box::new(Tls12Encrypter(RecordKey::new(&key, Iv::copy(iv))))
    }

    fn decrypter(&self, key: AeadKey, iv: &[u8]) -> Box<dyn MessageDecrypter> {
        Box::new(Tls12Decrypter(RecordKey::new(&key, Iv::copy(iv))))
    }

    fn key_block_shape(&self) -> KeyBlockShape {
        // RFC 7905: a 12-byte fixed IV, no explicit nonce.
        KeyBlockShape {
            enc_key_len: 32,
            fixed_iv_len: 12,
            explicit_nonce_len: 0,
        }
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: &[u8],
        _explicit: &[u8],
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(ConnectionTrafficSecrets::Chacha20Poly1305 {
            key,
            iv: Iv::copy(iv),
        })
    }
}

impl MessageEncrypter for Tls13Encrypter {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        // The inner plaintext is the data and its real content type; the
        // record says application data (RFC 8446 §5.2).
        let aad = make_tls13_aad(sealed_len(msg.payload.len(), true));
        let payload = self.0.seal(&msg.payload, Some(msg.typ), seq, &aad);
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        sealed_len(payload_len, true)
    }
}

impl MessageDecrypter for Tls13Decrypter {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let aad = make_tls13_aad(msg.payload.len());
        let text_len = self.0.open(&mut msg.payload, seq, &aad)?;
        msg.payload.truncate(text_len);
        msg.into_tls13_unpadded_message()
    }
}

impl MessageEncrypter for Tls12Encrypter {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let aad = make_tls12_aad(seq, msg.typ, msg.version, msg.payload.len());
        let payload = self.0.seal(&msg.payload, None, seq, &aad);
        Ok(OutboundOpaqueMessage::new(msg.typ, msg.version, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        sealed_len(payload_len, false)
    }
}

impl MessageDecrypter for Tls12Decrypter {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let Some(text_len) = msg.payload.len().checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let aad = make_tls12_aad(seq, msg.typ, msg.version, text_len);
        self.0.open(&mut msg.payload, seq, &aad)?;
        // RFC 5246 §6.2.3: a plaintext over 2^14 bytes is record_overflow
        // (rustls checks TLS 1.3's itself, in `into_tls13_unpadded_message`).
        if text_len > MAX_FRAGMENT {
            return Err(Error::PeerSentOversizedRecord);
        }
        msg.payload.truncate(text_len);
        Ok(msg.into_plain_message())
    }
}

/// `suite` with edgepoll's record cipher if it is one of the
/// ChaCha20-Poly1305 suites, else `suite` itself. Everything but the
/// record cipher is the given suite's. Each suite is built once, from the
/// first one given: always ring's (`config.rs`), so all calls agree.
pub(crate) fn with_own_record_cipher(suite: SupportedCipherSuite) -> SupportedCipherSuite {
    static TLS13: OnceLock<Tls13CipherSuite> = OnceLock::new();
    static TLS12_ECDSA: OnceLock<Tls12CipherSuite> = OnceLock::new();
    static TLS12_RSA: OnceLock<Tls12CipherSuite> = OnceLock::new();
    let common = |c: &CipherSuiteCommon| CipherSuiteCommon {
        suite: c.suite,
        hash_provider: c.hash_provider,
        confidentiality_limit: c.confidentiality_limit,
    };
    let tls12 = |once: &'static OnceLock<Tls12CipherSuite>, s: &'static Tls12CipherSuite| {
        SupportedCipherSuite::Tls12(once.get_or_init(|| Tls12CipherSuite {
            common: common(&s.common),
            prf_provider: s.prf_provider,
            kx: s.kx,
            sign: s.sign,
            aead_alg: &Tls12ChaCha20Poly1305,
        }))
    };
    match suite {
        SupportedCipherSuite::Tls13(s)
            if s.common.suite == CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 =>
        {
            SupportedCipherSuite::Tls13(TLS13.get_or_init(|| Tls13CipherSuite {
                common: common(&s.common),
                hkdf_provider: s.hkdf_provider,
                aead_alg: &Tls13ChaCha20Poly1305,
                // QUIC protects its packets with its own keys, apart from
                // the record cipher: ring's stays.
                quic: s.quic,
            }))
        }
        SupportedCipherSuite::Tls12(s)
            if s.common.suite == CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 =>
        {
            tls12(&TLS12_ECDSA, s)
        }
        SupportedCipherSuite::Tls12(s)
            if s.common.suite == CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 =>
        {
            tls12(&TLS12_RSA, s)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::test_support::*;
    use ring::aead::{Aad, LessSafeKey, Nonce as RingNonce, UnboundKey, CHACHA20_POLY1305};

    #[test]
    fn aead_of_rfc8439_2_8_2() {
        let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
        let nonce: [u8; 12] = hex("070000004041424344454647").try_into().unwrap();
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let mut text = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".to_vec();
        let tag = seal(&key, &nonce, &aad, &mut text);
        assert_eq!(tag.to_vec(), hex("1ae10b594f09e26a7e902ecbd0600691"));
        assert_eq!(text[..16].to_vec(), hex("d31a8d34648e60db7b86afbc53ef7ec2"));
        text.extend_from_slice(&tag);
        let len = open(&key, &nonce, &aad, &mut text).unwrap();
        assert!(text[..len].starts_with(b"Ladies and Gentlemen"));
    }

    #[test]
    fn agrees_with_ring_on_every_length() {
        let mut next = bytes_from(0x2545_f491_4f6c_dd1du64);
        // Every length around the 64- and 256-byte strides, then some big
        // ones: a TLS record is up to 16 KiB + 256.
        let lengths = (0..=600).chain([1023, 1024, 1025, 4096 + 17, 16384, 16384 + 256]);
        for len in lengths {
            let key: [u8; 32] = core::array::from_fn(|_| next());
            let nonce: [u8; 12] = core::array::from_fn(|_| next());
            let aad: Vec<u8> = (0..len % 20).map(|_| next()).collect();
            let plain: Vec<u8> = (0..len).map(|_| next()).collect();

            let mut ours = plain.clone();
            let tag = seal(&key, &nonce, &aad, &mut ours);
            let ring_key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &key).unwrap());
            let mut theirs = plain.clone();
            let ring_tag = ring_key
                .seal_in_place_separate_tag(
                    RingNonce::assume_unique_for_key(nonce),
                    Aad::from(&aad),
                    &mut theirs,
                )
                .unwrap();
            assert_eq!(ours, theirs, "ciphertext of {len} bytes");
            assert_eq!(&tag[..], ring_tag.as_ref(), "tag of {len} bytes");

            ours.extend_from_slice(&tag);
            let opened = open(&key, &nonce, &aad, &mut ours).unwrap();
            assert_eq!(&ours[..opened], &plain[..]);
        }
    }

    /// Through rustls' interfaces: a record sealed by one side opens on
    /// the other, in both versions, in pieces or whole; TLS 1.2's oversized
    /// plaintext is refused as RFC 5246 says.
    #[test]
    fn records_round_trip_through_the_rustls_interfaces() {
        let mut next = bytes_from(0x1234_5678_9abc_def1);
        let key_bytes: [u8; 32] = core::array::from_fn(|_| next());
        let iv: [u8; 12] = core::array::from_fn(|_| next());
        let text: Vec<u8> = (0..5000).map(|_| next()).collect();
        let (first, second) = text.split_at(1234);
        let pieces = [first, second];
        let key = || AeadKey::from(key_bytes);

        let mut tls13_seal = Tls13ChaCha20Poly1305.encrypter(key(), Iv::new(iv));
        let mut tls13_open = Tls13ChaCha20Poly1305.decrypter(key(), Iv::new(iv));
        let plain = OutboundPlainMessage {
            typ: ContentType::Handshake,
            version: ProtocolVersion::TLSv1_3,
            payload: OutboundChunks::new(&pieces),
        };
        let mut sealed = tls13_seal.encrypt(plain, 7).unwrap();
        assert_eq!(sealed.typ, ContentType::ApplicationData);
        assert_eq!(
            sealed.payload.as_ref().len(),
            tls13_seal.encrypted_payload_len(5000)
        );
        let inbound =
            InboundOpaqueMessage::new(sealed.typ, sealed.version, sealed.payload.as_mut());
        let opened = tls13_open.decrypt(inbound, 7).unwrap();
        assert_eq!(opened.typ, ContentType::Handshake, "the inner content type");
        assert_eq!(opened.payload, &text[..]);
        let inbound =
            InboundOpaqueMessage::new(sealed.typ, sealed.version, sealed.payload.as_mut());
        assert!(
            tls13_open.decrypt(inbound, 8).is_err(),
            "another sequence number"
        );

        let tls12 = Tls12ChaCha20Poly1305;
        let mut tls12_seal = tls12.encrypter(key(), &iv, &[]);
        let mut tls12_open = tls12.decrypter(key(), &iv);
        let plain = OutboundPlainMessage {
            typ: ContentType::ApplicationData,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::new(&pieces),
        };
        let mut sealed = tls12_seal.encrypt(plain, 3).unwrap();
        assert_eq!(sealed.payload.as_ref().len(), 5000 + TAG_LEN);
        let inbound =
            InboundOpaqueMessage::new(sealed.typ, sealed.version, sealed.payload.as_mut());
        assert_eq!(tls12_open.decrypt(inbound, 3).unwrap().payload, &text[..]);

        let big = vec![0u8; MAX_FRAGMENT + 1];
        let plain = OutboundPlainMessage {
            typ: ContentType::ApplicationData,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(&big),
        };
        let mut sealed = tls12_seal.encrypt(plain, 4).unwrap();
        let inbound =
            InboundOpaqueMessage::new(sealed.typ, sealed.version, sealed.payload.as_mut());
        assert_eq!(
            tls12_open.decrypt(inbound, 4).err(),
            Some(Error::PeerSentOversizedRecord)
        );
    }

    /// A record too short to hold a tag, or with one byte changed, is
    /// refused by both versions' decrypters (a peer's garbage must end the
    /// connection, never panic or hand over bytes).
    #[test]
    fn records_cut_short_or_changed_are_refused_by_the_decrypters() {
        let key = || AeadKey::from([9u8; 32]);
        let iv = [3u8; 12];
        let mut decrypters = [
            Tls13ChaCha20Poly1305.decrypter(key(), Iv::new(iv)),
            Tls12ChaCha20Poly1305.decrypter(key(), &iv),
        ];
        for open in decrypters.iter_mut() {
            for len in [0, 1, TAG_LEN - 1] {
                let mut record = vec![0u8; len];
                let inbound = InboundOpaqueMessage::new(
                    ContentType::ApplicationData,
                    ProtocolVersion::TLSv1_2,
                    &mut record[..],
                );
                assert_eq!(
                    open.decrypt(inbound, 0).err(),
                    Some(Error::DecryptError),
                    "{len}"
                );
            }
        }
        let mut seal = Tls13ChaCha20Poly1305.encrypter(key(), Iv::new(iv));
        let text = [5u8; 40];
        let plain = OutboundPlainMessage {
            typ: ContentType::ApplicationData,
            version: ProtocolVersion::TLSv1_3,
            payload: OutboundChunks::Single(&text),
        };
        let sealed = seal.encrypt(plain, 0).unwrap();
        for at in [0, 20, sealed.payload.as_ref().len() - 1] {
            let mut changed = sealed.payload.as_ref().to_vec();
            changed[at] ^= 1;
            let inbound = InboundOpaqueMessage::new(sealed.typ, sealed.version, &mut changed[..]);
            assert_eq!(
                decrypters[0].decrypt(inbound, 0).err(),
                Some(Error::DecryptError),
                "{at}"
            );
        }
    }

    #[test]
    fn a_changed_byte_fails_and_decrypts_nothing() {
        let key = [1u8; 32];
        let nonce = [2u8; 12];
        let mut sealed = b"attack at dawn".to_vec();
        let tag = seal(&key, &nonce, b"", &mut sealed);
        sealed.extend_from_slice(&tag);
        for at in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[at] ^= 0x40;
            let before = tampered.clone();
            assert_eq!(
                open(&key, &nonce, b"", &mut tampered),
                Err(Error::DecryptError)
            );
            assert_eq!(tampered, before, "nothing decrypted");
        }
        assert_eq!(
            open(&key, &nonce, b"x", &mut sealed.clone()),
            Err(Error::DecryptError)
        );
        assert_eq!(
            open(&key, &nonce, b"", &mut [0u8; 15]),
            Err(Error::DecryptError)
        );
    }
}
