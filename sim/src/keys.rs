//! Stellar keypairs (ed25519) with their strkey encodings (`G…` public, `S…` seed).
//! OWNER: helper "sim-chain". Interface agreed with "sim-platform"; do not change signatures
//! without updating both sides.

use ed25519_dalek::Signer;
use rand::RngCore;

/// An ed25519 keypair, as Pi wallets and Pioneer wallets are.
#[derive(Clone)]
pub struct Keypair {
    signing: ed25519_dalek::SigningKey,
}

/// Shows the public key only: a seed must never reach a log line through `{:?}`.
impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl Keypair {
    /// A fresh random keypair.
    pub fn random() -> Keypair {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Keypair::from_seed_bytes(seed)
    }
    /// From the 32 raw bytes of an ed25519 seed (what an `S…` strkey encodes).
    pub fn from_seed_bytes(seed: [u8; 32]) -> Keypair {
        Keypair {
            signing: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }
    /// From an `S…` secret seed; `None` if it is not a valid seed.
    pub fn from_seed(seed: &str) -> Option<Keypair> {
        let key = stellar_strkey::ed25519::PrivateKey::from_string(seed.trim()).ok()?;
        Some(Keypair::from_seed_bytes(key.0))
    }
    /// The `G…` account id.
    pub fn public_key(&self) -> String {
        stellar_strkey::ed25519::PublicKey(self.public_key_bytes())
            .to_string()
            .as_str()
            .to_owned()
    }
    /// The 32 raw bytes of the public key (what XDR `Uint256` account ids hold).
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }
    /// The `S…` secret seed.
    pub fn secret_seed(&self) -> String {
        let key = stellar_strkey::ed25519::PrivateKey(self.signing.to_bytes());
        // Deliberately unredacted: the caller asked for the seed itself.
        format!("{}", key.as_unredacted())
    }
    /// An ed25519 signature of `message` (for Stellar: the 32-byte transaction hash).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }
    /// The signature hint Stellar puts next to a signature: the last 4 bytes of the public key.
    pub fn signature_hint(&self) -> [u8; 4] {
        hint_of(&self.public_key_bytes())
    }
}

/// The signature hint of a raw ed25519 public key (its last 4 bytes).
pub fn hint_of(public_key: &[u8; 32]) -> [u8; 4] {
    [
        public_key[28],
        public_key[29],
        public_key[30],
        public_key[31],
    ]
}

/// Decodes a `G…` account id to its raw public key; `None` if it is not one.
pub fn decode_account_id(account_id: &str) -> Option<[u8; 32]> {
    stellar_strkey::ed25519::PublicKey::from_string(account_id)
        .ok()
        .map(|k| k.0)
}

/// Encodes a raw ed25519 public key as a `G…` account id.
pub fn encode_account_id(public_key: &[u8; 32]) -> String {
    stellar_strkey::ed25519::PublicKey(*public_key)
        .to_string()
        .as_str()
        .to_owned()
}

/// Checks an ed25519 signature strictly (non-canonical and small-order keys are refused, as
/// stellar-core's libsodium does).
pub fn verify(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(message, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_round_trips_and_hint_is_last_four_bytes() {
        let k = Keypair::random();
        let seed = k.secret_seed();
        assert!(seed.starts_with('S'));
        let k2 = Keypair::from_seed(&seed).unwrap();
        assert_eq!(k.public_key(), k2.public_key());
        assert!(k.public_key().starts_with('G'));
        assert_eq!(k.signature_hint(), k.public_key_bytes()[28..32]);
        let sig = k.sign(b"hello");
        assert!(verify(&k.public_key_bytes(), b"hello", &sig));
        assert!(!verify(&k.public_key_bytes(), b"hellO", &sig));
        assert!(Keypair::from_seed("not a seed").is_none());
        assert!(!format!("{k:?}").contains(&seed));
    }
}
