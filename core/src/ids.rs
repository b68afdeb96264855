//! Random identifiers: ingest keys, login tokens, object name nonces.

use crate::Error;

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> Result<String, Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(Error::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A new random ingest key: 32 lowercase hex characters (128 bits).
pub fn new_key() -> Result<String, Error> {
    random_hex(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_32_lowercase_hex_characters_and_differ() {
        let (a, b) = (new_key().expect("key"), new_key().expect("key"));
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
        assert_ne!(a, b);
    }
}
