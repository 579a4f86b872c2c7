//! GitHub Actions secrets travel encrypted with the repository's (or the
//! environment's) public key as libsodium sealed boxes (`crypto_box_seal`:
//! an ephemeral X25519 key, XSalsa20-Poly1305), base64 both ways.

use base64::prelude::{Engine, BASE64_STANDARD};
use crypto_box::aead::OsRng;
use crypto_box::PublicKey;

/// `plaintext` sealed for the base64 `public_key`, base64-encoded, as
/// GitHub's "create or update a secret" expects in `encrypted_value`.
pub fn seal(public_key: &str, plaintext: &[u8]) -> Result<String, String> {
    let bytes = BASE64_STANDARD
        .decode(public_key.trim())
        .map_err(|e| format!("the public key is not base64: {e}"))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("the public key has {} bytes, not 32", b.len()))?;
    let sealed = PublicKey::from(key)
        .seal(&mut OsRng, plaintext)
        .map_err(|e| format!("cannot seal the secret: {e}"))?;
    Ok(BASE64_STANDARD.encode(sealed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crypto_box::SecretKey;

    #[test]
    fn a_sealed_secret_opens_with_the_matching_secret_key_only() {
        let secret = SecretKey::generate(&mut OsRng);
        let public = BASE64_STANDARD.encode(secret.public_key().as_bytes());
        let sealed = seal(&public, b"hunter2").unwrap();
        let bytes = BASE64_STANDARD.decode(&sealed).unwrap();
        assert_eq!(secret.unseal(&bytes).unwrap(), b"hunter2");
        // Sealing is randomised: the same plaintext never looks the same twice.
        assert_ne!(seal(&public, b"hunter2").unwrap(), sealed);
        let other = SecretKey::generate(&mut OsRng);
        assert!(other.unseal(&bytes).is_err());
        assert!(seal("not base64!", b"x").is_err());
        assert!(seal(&BASE64_STANDARD.encode([0u8; 16]), b"x")
            .unwrap_err()
            .contains("16 bytes"));
    }
}
