//! The key exchange groups of rustls' ring provider (X25519, P-256,
//! P-384), each private key made from [`entropy`](crate::entropy)'s bytes
//! instead of one call of the system's source (see there for why). ring
//! does the arithmetic as before.
//!
//! ring takes a key's bytes only from a source of its own (its trait is
//! sealed); the one that hands over given bytes is `ring::test::rand`'s,
//! marked internal. The workspace pins ring at the release that has it; one
//! without it fails to build here, it cannot weaken a key silently.

use crate::entropy;
use ring::agreement::{self, EphemeralPrivateKey, PublicKey, UnparsedPublicKey};
use rustls::crypto::{ActiveKeyExchange, GetRandomFailed, SharedSecret, SupportedKxGroup};
use rustls::ffdhe_groups::FfdheGroup;
use rustls::{NamedGroup, PeerMisbehaved};
use zeroize::Zeroize;

/// One group: its name in TLS, ring's algorithm, how many bytes a private
/// key takes, and the shape its peers' shares must have.
struct Group {
    name: NamedGroup,
    algorithm: &'static agreement::Algorithm,
    key_len: usize,
    valid_share: fn(&[u8]) -> bool,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} with edgepoll's entropy", self.name)
    }
}

/// An uncompressed point (RFC 8446 §4.2.8.2), the only form TLS 1.3 takes
/// and the only one offered in 1.2; ring checks the point itself.
fn uncompressed(share: &[u8]) -> bool {
    share.first() == Some(&0x04)
}

static X25519: Group = Group {
    name: NamedGroup::X25519,
    algorithm: &agreement::X25519,
    key_len: 32,
    valid_share: |share| share.len() == 32,
};

static SECP256R1: Group = Group {
    name: NamedGroup::secp256r1,
    algorithm: &agreement::ECDH_P256,
    key_len: 32,
    valid_share: uncompressed,
};

static SECP384R1: Group = Group {
    name: NamedGroup::secp384r1,
    algorithm: &agreement::ECDH_P384,
    key_len: 48,
    valid_share: uncompressed,
};

/// The groups, in the ring provider's order of preference.
pub(crate) static GROUPS: [&dyn SupportedKxGroup; 3] = [&X25519, &SECP256R1, &SECP384R1];

/// Draws of a P-256 or P-384 key before giving up: bytes that are not a
/// valid scalar (zero, or not below the group's order) are drawn again, as
/// ring draws again; that comes about once in 2^32 draws.
const TRIES: usize = 16;

impl SupportedKxGroup for Group {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        let mut bytes = [0u8; 48];
        let bytes = &mut bytes[..self.key_len];
        for _ in 0..TRIES {
            entropy::fill(bytes).map_err(|_| GetRandomFailed)?;
            #[allow(deprecated)]
            let given = ring::test::rand::FixedSliceRandom { bytes };
            let private = EphemeralPrivateKey::generate(self.algorithm, &given);
            bytes.zeroize();
            let Ok(private) = private else {
                continue;
            };
            let public = private.compute_public_key().map_err(|_| GetRandomFailed)?;
            return Ok(Box::new(Exchange {
                name: self.name,
                algorithm: self.algorithm,
                valid_share: self.valid_share,
                private,
                public,
            }));
        }
        Err(GetRandomFailed.into())
    }

    fn name(&self) -> NamedGroup {
        self.name
    }

    // Not finite-field Diffie-Hellman (the default looks the name up).
    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }
}

/// A key exchange under way: its group's parts, the private key, and the
/// public one sent.
struct Exchange {
    name: NamedGroup,
    algorithm: &'static agreement::Algorithm,
    valid_share: fn(&[u8]) -> bool,
    private: EphemeralPrivateKey,
    public: PublicKey,
}

impl ActiveKeyExchange for Exchange {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, rustls::Error> {
        if !(self.valid_share)(peer) {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        let peer = UnparsedPublicKey::new(self.algorithm, peer);
        agreement::agree_ephemeral(self.private, &peer, |secret| SharedSecret::from(secret))
            .map_err(|_| PeerMisbehaved::InvalidKeyShare.into())
    }

    fn pub_key(&self) -> &[u8] {
        self.public.as_ref()
    }

    fn group(&self) -> NamedGroup {
        self.name
    }

    // Not finite-field Diffie-Hellman (the default looks the name up).
    fn ffdhe_group(&self) -> Option<FfdheGroup<'static>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn each_group_agrees_with_ring_s_own_keys_and_makes_new_keys_each_time() {
        let rng = SystemRandom::new();
        for group in [&X25519, &SECP256R1, &SECP384R1] {
            let ours = group.start().expect("started");
            let again = group.start().expect("started");
            assert_ne!(ours.pub_key(), again.pub_key(), "{group:?}");
            assert_eq!(ours.group(), group.name);
            // A peer with ring's own key: both sides reach one secret.
            let theirs = EphemeralPrivateKey::generate(group.algorithm, &rng).expect("peer key");
            let their_public = theirs.compute_public_key().expect("peer public");
            let ours_public = UnparsedPublicKey::new(group.algorithm, ours.pub_key().to_vec());
            let theirs_secret =
                agreement::agree_ephemeral(theirs, &ours_public, |s| s.to_vec()).expect("agreed");
            let secret = ours.complete(their_public.as_ref()).expect("completed");
            assert_eq!(secret.secret_bytes(), &theirs_secret[..], "{group:?}");
        }
    }

    #[test]
    fn a_share_of_the_wrong_shape_or_off_the_curve_is_the_peer_s_fault() {
        for group in GROUPS {
            let share = group.start().expect("started").pub_key().to_vec();
            let mut compressed = share.clone();
            compressed[0] = 0x02;
            let short = &share[..share.len() - 1];
            let off_curve = {
                let mut bytes = share.clone();
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
                bytes
            };
            for bad in [&compressed[..], short, &off_curve[..], &[][..]] {
                let outcome = group.start().expect("started").complete(bad);
                // X25519 takes any 32 bytes (RFC 7748): only the length is
                // checked there.
                if group.name() == NamedGroup::X25519 && bad.len() == 32 {
                    continue;
                }
                let Err(error) = outcome else {
                    panic!("{group:?} took {bad:?}");
                };
                assert_eq!(error, PeerMisbehaved::InvalidKeyShare.into(), "{group:?}");
            }
        }
    }
}
