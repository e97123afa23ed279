//! Access tokens shaped like Entra's: `base64url(header).base64url(payload).sig`
//! with `aud`, `tid`, `appid`, `roles`/`scp` and `exp`, so clients that peek
//! inside (or log a token's expiry) see what they would in production. The
//! signature is a keyed SHA-256 over the first two parts with a key made at
//! start; only the sandbox itself verifies it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

pub(crate) fn random_token(bytes: usize) -> String {
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(raw)
}

pub(crate) fn guid() -> String {
    let v: u128 = rand::random();
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn sign(key: &[u8], input: &str) -> String {
    let mut h = Sha256::new();
    h.update(key);
    h.update(input.as_bytes());
    h.update(key);
    URL_SAFE_NO_PAD.encode(h.finalize())
}

/// Encode and sign `payload`.
pub(crate) fn mint(key: &[u8], payload: &serde_json::Value) -> String {
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "kid": "sandbox"});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let sig = sign(key, &input);
    format!("{input}.{sig}")
}

/// The payload of a token this key signed, or `None`.
pub(crate) fn verify(key: &[u8], token: &str) -> Option<serde_json::Value> {
    let (input, sig) = token.rsplit_once('.')?;
    if sign(key, input) != sig {
        return None;
    }
    let (_, payload) = input.split_once('.')?;
    let raw = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = b"k";
        let t = mint(key, &serde_json::json!({"aud": "x", "exp": 5}));
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(verify(key, &t).unwrap()["aud"], "x");
        assert!(verify(b"other", &t).is_none());
        let forged = format!("{}x", t);
        assert!(verify(key, &forged).is_none());
    }
}
