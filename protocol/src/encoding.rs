//! The text encodings of the JSON bodies: strict base64 (RFC 4648 §4, padded, canonical) and
//! lowercase hex, with serde adapters for the API types.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// `STANDARD` requires canonical padding and rejects non-zero pad bits, as §1 asks.
pub fn base64_encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Strict standard base64: padding required, non-zero pad bits refused.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// Decodes lowercase hex of exactly `N` bytes.
pub fn hex_decode<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// `#[serde(with = "base64_bytes")]` for `Vec<u8>` fields.
pub(crate) mod base64_bytes {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::base64_encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::base64_decode(&text).ok_or_else(|| D::Error::custom("invalid base64"))
    }
}

/// `#[serde(with = "base64_digests")]` for proofs: lists of 32-byte hashes, each checked to be
/// exactly 32 bytes when decoded.
pub(crate) mod base64_digests {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(
        hashes: &[[u8; 32]],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(hashes.iter().map(|hash| super::base64_encode(hash)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<[u8; 32]>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| {
                super::base64_decode(text)
                    .and_then(|bytes| bytes.try_into().ok())
                    .ok_or_else(|| D::Error::custom("expected the base64 of 32 bytes"))
            })
            .collect()
    }
}

/// `#[serde(with = "hex32")]` for 32-byte digests.
pub(crate) mod hex32 {
    use serde::{Deserialize as _, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(
        bytes: &[u8; 32],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        super::hex_decode(&text).ok_or_else(|| D::Error::custom("expected 64 lowercase hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_strict() {
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert!(base64_decode("YQ").is_none(), "missing padding");
        assert!(base64_decode("YR==").is_none(), "non-zero pad bits");
        assert!(base64_decode("Y-==").is_none(), "URL alphabet");
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8=");
    }

    #[test]
    fn hex_is_lowercase_and_exact() {
        assert_eq!(hex_decode::<2>("abcd"), Some([0xab, 0xcd]));
        assert_eq!(hex_decode::<2>("ABCD"), None);
        assert_eq!(hex_decode::<2>("abc"), None);
        assert_eq!(hex_decode::<2>("abcdef"), None);
    }

    #[test]
    fn proofs_decode_only_as_32_byte_hashes() {
        #[derive(serde::Deserialize)]
        struct Proof(#[serde(with = "base64_digests")] Vec<[u8; 32]>);
        let good = format!("[\"{}\"]", base64_encode(&[7; 32]));
        assert_eq!(serde_json::from_str::<Proof>(&good).unwrap().0, [[7; 32]]);
        let short = format!("[\"{}\"]", base64_encode(&[7; 31]));
        assert!(serde_json::from_str::<Proof>(&short).is_err());
    }
}
