//! Keys: the wallet that signs payouts and the network its signatures are bound to.

use super::error::StellarError;
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};
use std::fmt;
use stellar_xdr::{BytesM, DecoratedSignature, Signature, SignatureHint};

/// Passphrase of the Pi mainnet (`PI_NETWORK=Pi Network`).
pub const PI_MAINNET_PASSPHRASE: &str = "Pi Network";
/// Passphrase of the Pi testnet (`PI_NETWORK=Pi Testnet`), also pi-sim's default.
pub const PI_TESTNET_PASSPHRASE: &str = "Pi Testnet";

/// A Stellar network, identified by its passphrase. Signatures are made over a hash that
/// includes `sha256(passphrase)`, so a transaction signed for one network is `tx_bad_auth` on
/// every other: the passphrase must match the Horizon the app submits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Network {
    passphrase: String,
    id: [u8; 32],
}

impl Network {
    /// The network with this exact passphrase (case and spaces matter).
    pub fn new(passphrase: &str) -> Network {
        Network {
            passphrase: passphrase.to_string(),
            id: Sha256::digest(passphrase.as_bytes()).into(),
        }
    }

    /// Pi mainnet ("Pi Network").
    pub fn pi_mainnet() -> Network {
        Network::new(PI_MAINNET_PASSPHRASE)
    }

    /// Pi testnet ("Pi Testnet").
    pub fn pi_testnet() -> Network {
        Network::new(PI_TESTNET_PASSPHRASE)
    }

    /// The passphrase, as configured.
    pub fn passphrase(&self) -> &str {
        &self.passphrase
    }

    /// The network id: `sha256(passphrase)`.
    pub fn id(&self) -> [u8; 32] {
        self.id
    }
}

/// An ed25519 key pair loaded from an `S…` seed: the app wallet or a channel account.
///
/// Its `Debug` and `Display` show only the public key; the seed leaves this type only through
/// [`Wallet::expose_seed`], which callers use deliberately (e.g. to print a new channel's seed once).
#[derive(Clone)]
pub struct Wallet {
    signing: SigningKey,
    public: [u8; 32],
    address: String,
}

impl Wallet {
    /// Load a wallet from its strkey secret seed (`S…`, 56 characters). Surrounding whitespace
    /// (a trailing newline from a secrets file) is ignored.
    pub fn from_seed(seed: &str) -> Result<Wallet, StellarError> {
        let key = stellar_strkey::ed25519::PrivateKey::from_string(seed.trim())
            .map_err(|_| StellarError::BadSeed)?;
        Ok(Wallet::from_signing_key(SigningKey::from_bytes(&key.0)))
    }

    /// A new random wallet (for channel accounts and tests). It exists on chain only once funded.
    pub fn generate() -> Wallet {
        Wallet::from_signing_key(SigningKey::generate(&mut rand::rngs::OsRng))
    }

    fn from_signing_key(signing: SigningKey) -> Wallet {
        let public = signing.verifying_key().to_bytes();
        Wallet {
            signing,
            address: encode_account(&public),
            public,
        }
    }

    /// The public address (`G…`).
    pub fn public_key(&self) -> String {
        self.address.clone()
    }

    /// The raw 32-byte public key.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.public
    }

    /// The secret seed (`S…`). Deliberately named: never log it, never put it in a job payload.
    pub fn expose_seed(&self) -> String {
        let key = stellar_strkey::ed25519::PrivateKey(self.signing.to_bytes());
        key.as_unredacted().to_string().as_str().to_string()
    }

    /// The last 4 bytes of the public key: how Stellar matches a signature to its signer.
    pub fn hint(&self) -> [u8; 4] {
        let mut hint = [0u8; 4];
        hint.copy_from_slice(&self.public[28..]);
        hint
    }

    /// Sign a transaction hash, producing the decorated signature that goes in the envelope.
    pub(crate) fn sign_hash(&self, hash: &[u8; 32]) -> Result<DecoratedSignature, StellarError> {
        let signature = self.signing.sign(hash).to_bytes();
        let bytes: BytesM<64> = signature
            .to_vec()
            .try_into()
            .map_err(|e| StellarError::Xdr(format!("{e}")))?;
        Ok(DecoratedSignature {
            hint: SignatureHint(self.hint()),
            signature: Signature(bytes),
        })
    }
}

/// Shows the public key only.
impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Wallet({})", self.address)
    }
}

/// Shows the public key only.
impl fmt::Display for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

/// Check an ed25519 signature by a `G…` key's bytes over a 32-byte hash.
pub(crate) fn verify_hash(public: &[u8; 32], hash: &[u8; 32], signature: &[u8]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public) else {
        return false;
    };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    key.verify_strict(hash, &sig).is_ok()
}

/// Parse a `G…` address into its 32 key bytes, naming the field in the error.
pub(crate) fn parse_account(what: &'static str, text: &str) -> Result<[u8; 32], StellarError> {
    stellar_strkey::ed25519::PublicKey::from_string(text)
        .map(|k| k.0)
        .map_err(|_| StellarError::BadAddress {
            what,
            value: text.chars().take(80).collect(),
        })
}

/// Encode 32 key bytes as a `G…` address.
pub(crate) fn encode_account(key: &[u8; 32]) -> String {
    stellar_strkey::ed25519::PublicKey(*key)
        .to_string()
        .as_str()
        .to_string()
}

#[cfg(test)]
mod tests {
    use crate::stellar::keys::*;

    // A fixed, test-only seed (never funded anywhere).
    const SEED: &str = "SAAACAQDAQCQMBYIBEFAWDANBYHRAEISCMKBKFQXDAMRUGY4DUPB6NKI";
    const PUBLIC: &str = "GAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3QZ6Q";

    #[test]
    fn network_id_is_sha256_of_passphrase() {
        let n = Network::pi_testnet();
        assert_eq!(n.passphrase(), "Pi Testnet");
        assert_eq!(n.id(), <[u8; 32]>::from(Sha256::digest(b"Pi Testnet")));
        assert_ne!(Network::pi_mainnet().id(), n.id());
    }

    #[test]
    fn seed_round_trip_and_public_key() {
        let w = Wallet::from_seed(SEED).unwrap();
        assert_eq!(
            w.public_key(),
            PUBLIC,
            "same key as Python stellar-sdk derives"
        );
        assert_eq!(w.public_key().len(), 56);
        assert_eq!(w.expose_seed(), SEED);
        let w2 = Wallet::from_seed(&format!("  {SEED}\n")).unwrap();
        assert_eq!(w2.public_key(), w.public_key());
        assert_eq!(&w.hint(), &w.public_key_bytes()[28..]);
    }

    #[test]
    fn debug_and_display_never_show_the_seed() {
        let w = Wallet::from_seed(SEED).unwrap();
        for shown in [format!("{w:?}"), format!("{w}"), format!("{w:#?}")] {
            assert!(!shown.contains(SEED), "{shown}");
            assert!(!shown.contains(&SEED[1..20]), "{shown}");
            assert!(shown.contains(&w.public_key()), "{shown}");
        }
        let g = Wallet::generate();
        assert!(!format!("{g:?}").contains(&g.expose_seed()));
    }

    #[test]
    fn bad_seeds_are_refused_without_echo() {
        let public = Wallet::from_seed(SEED).unwrap().public_key();
        let mut corrupted = SEED.to_string();
        corrupted.replace_range(10..11, if &SEED[10..11] == "A" { "B" } else { "A" });
        for bad in ["", "S", public.as_str(), corrupted.as_str()] {
            let err = Wallet::from_seed(bad).unwrap_err();
            assert_eq!(err, StellarError::BadSeed);
            let msg = err.to_string();
            assert!(!msg.contains(&corrupted), "{msg}");
        }
    }

    #[test]
    fn signatures_verify() {
        let w = Wallet::generate();
        let hash = [7u8; 32];
        let sig = w.sign_hash(&hash).unwrap();
        assert_eq!(sig.hint.0, w.hint());
        assert!(verify_hash(&w.public_key_bytes(), &hash, &sig.signature.0));
        assert!(!verify_hash(
            &w.public_key_bytes(),
            &[8u8; 32],
            &sig.signature.0
        ));
    }
}
