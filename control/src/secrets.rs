//! Encryption of secret values at rest: ChaCha20-Poly1305 with a random 96-bit nonce per
//! value, and the value's place in the registry (`installation/field`) as associated data, so
//! a ciphertext copied into another slot does not decrypt. Each ciphertext names the key that
//! sealed it by a short id derived from the key, which is what makes rotation possible: start
//! control with the new key in `SLUICE_CONTROL_KEY` and the old ones in
//! `SLUICE_CONTROL_OLD_KEYS`; it re-encrypts every value under the new key when it opens the
//! store, after which the old keys can be dropped.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why a key could not be loaded or a value not be opened. Never holds key material or a
/// secret value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The key variable is not set.
    #[error("environment variable {0} is not set (32 random bytes, base64)")]
    MissingKey(String),
    /// A key is not 32 bytes of standard base64.
    #[error("{0} must hold 32 bytes in standard base64 (e.g. `openssl rand -base64 32`)")]
    BadKey(String),
    /// A value was sealed by a key that is neither the current one nor an old one.
    #[error("a secret is sealed by key {0}, which is not loaded; add it to the old keys")]
    UnknownKey(String),
    /// The ciphertext did not authenticate (tampered, or moved to another slot).
    #[error("a secret did not decrypt (damaged, or not sealed for this place)")]
    Corrupt,
}

/// A sealed value as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Id of the key that sealed it.
    pub kid: String,
    /// The nonce, base64.
    pub nonce: String,
    /// Ciphertext with its tag, base64.
    pub ct: String,
}

/// One 256-bit key and its id.
#[derive(Clone)]
struct NamedKey {
    id: String,
    cipher: ChaCha20Poly1305,
}

impl NamedKey {
    fn new(bytes: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"sluice-control key id\0")
            .chain_update(bytes)
            .finalize();
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        NamedKey {
            id,
            cipher: ChaCha20Poly1305::new(Key::from_slice(bytes)),
        }
    }
}

/// The current key, which seals, and old keys, which only open.
#[derive(Clone)]
pub struct KeyRing {
    current: NamedKey,
    old: Vec<NamedKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let old: Vec<&str> = self.old.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing")
            .field("current", &self.current.id)
            .field("old", &old)
            .finish()
    }
}

fn decode_key(text: &str, what: &str) -> Result<[u8; 32], SecretError> {
    STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|v| <[u8; 32]>::try_from(v).ok())
        .ok_or_else(|| SecretError::BadKey(what.to_owned()))
}

impl KeyRing {
    /// A ring from raw keys.
    pub fn new(current: [u8; 32], old: &[[u8; 32]]) -> Self {
        KeyRing {
            current: NamedKey::new(&current),
            old: old.iter().map(NamedKey::new).collect(),
        }
    }

    /// Reads the current key from `key_var` and comma-separated old keys from `old_var`
    /// (optional), through `env`.
    pub fn from_env(
        key_var: &str,
        old_var: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SecretError> {
        let current = env(key_var).ok_or_else(|| SecretError::MissingKey(key_var.to_owned()))?;
        let current = decode_key(&current, key_var)?;
        let mut old = Vec::new();
        if let Some(list) = env(old_var) {
            for part in list.split(',').filter(|p| !p.trim().is_empty()) {
                old.push(decode_key(part, old_var)?);
            }
        }
        Ok(KeyRing::new(current, &old))
    }

    /// Id of the current key.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Seals `plain` for `place` under the current key.
    pub fn seal(&self, place: &str, plain: &str) -> Sealed {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .current
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: place.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 sealing does not fail for in-memory sizes");
        Sealed {
            kid: self.current.id.clone(),
            nonce: STANDARD.encode(nonce),
            ct: STANDARD.encode(ct),
        }
    }

    /// Opens a value sealed for `place` by the current or an old key.
    pub fn open(&self, place: &str, sealed: &Sealed) -> Result<String, SecretError> {
        let key = std::iter::once(&self.current)
            .chain(&self.old)
            .find(|k| k.id == sealed.kid)
            .ok_or_else(|| SecretError::UnknownKey(sealed.kid.clone()))?;
        let nonce = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .filter(|n| n.len() == 12)
            .ok_or(SecretError::Corrupt)?;
        let ct = STANDARD
            .decode(&sealed.ct)
            .map_err(|_| SecretError::Corrupt)?;
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Corrupt)?;
        String::from_utf8(plain).map_err(|_| SecretError::Corrupt)
    }

    /// Whether `sealed` was sealed by an old key (and should be re-sealed).
    pub fn is_stale(&self, sealed: &Sealed) -> bool {
        sealed.kid != self.current.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_place_and_holds_no_plaintext() {
        let ring = KeyRing::new([7; 32], &[]);
        let sealed = ring.seal("github/api_key", "hunter2-hunter2");
        assert!(!serde_json::to_string(&sealed).unwrap().contains("hunter2"));
        assert_eq!(
            ring.open("github/api_key", &sealed).unwrap(),
            "hunter2-hunter2"
        );
        assert!(matches!(
            ring.open("gitlab/api_key", &sealed),
            Err(SecretError::Corrupt)
        ));
    }

    #[test]
    fn old_keys_open_and_mark_values_stale_unknown_keys_are_named() {
        let old = KeyRing::new([1; 32], &[]);
        let sealed = old.seal("p", "v");
        let rotated = KeyRing::new([2; 32], &[[1; 32]]);
        assert_eq!(rotated.open("p", &sealed).unwrap(), "v");
        assert!(rotated.is_stale(&sealed));
        let forgot = KeyRing::new([2; 32], &[]);
        assert!(
            matches!(forgot.open("p", &sealed), Err(SecretError::UnknownKey(k)) if k == old.current_id())
        );
    }

    #[test]
    fn keys_come_from_the_environment_as_base64() {
        let key = STANDARD.encode([3u8; 32]);
        let env = |k: &str| match k {
            "K" => Some(key.clone()),
            "OLD" => Some(format!("{key}, {key}")),
            _ => None,
        };
        let ring = KeyRing::from_env("K", "OLD", &env).unwrap();
        assert_eq!(ring.old.len(), 2);
        assert!(matches!(
            KeyRing::from_env("NOPE", "OLD", &env),
            Err(SecretError::MissingKey(_))
        ));
        let short = |_: &str| Some("c2hvcnQ=".to_owned());
        assert!(matches!(
            KeyRing::from_env("K", "OLD", &short),
            Err(SecretError::BadKey(_))
        ));
    }
}
