//! The audit log's signed tree heads (§6): c2sp.org/tlog-checkpoint notes, signed and verified as
//! c2sp.org/signed-note with the identity key (signature type 0x02, key ID `H2(SPKI DER)[:4]`).

use crate::Error;
use crate::commitment::Digest;
use crate::encoding::{base64_decode, base64_encode};
use crate::identity::{IdentityKey, IdentityPublicKey};

/// Starts every signature line: U+2014 EM DASH, then a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// signed-note asks verifiers to cap the signatures they read, and to accept at least 16.
const MAX_SIGNATURES: usize = 100;

/// A tree head: the log named `origin` had `size` leaves with this `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name, also the signing key's name.
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The RFC 9162 root hash of those leaves.
    pub root: Digest,
}

impl Checkpoint {
    /// The note text: `origin`, size and base64 root, each ending in a newline.
    pub(crate) fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            base64_encode(&self.root)
        )
    }

    /// The whole signed note, one signature line under the key name `origin`. `origin` must be
    /// valid (§2, [`crate::identity::validate_origin`]), or the note will not parse.
    pub fn sign(&self, key: &IdentityKey) -> String {
        let text = self.text();
        let mut signature = key.public().key_id().to_vec();
        signature.extend(key.sign(text.as_bytes()));
        format!(
            "{text}\n{SIGNATURE_PREFIX}{} {}\n",
            self.origin,
            base64_encode(&signature)
        )
    }
}

/// Parses a signed checkpoint of the log `origin` whose key is `key`. Signatures by other keys
/// (witness cosignatures, say) are ignored; at least one by `(origin, key ID)` must verify and
/// none may fail. Extension lines after the root are signed but otherwise ignored.
pub fn verify(note: &str, origin: &str, key: &IdentityPublicKey) -> Result<Checkpoint, Error> {
    // §6 bans control characters but newline; Unicode's Cc set (C0, DEL, C1) is a superset of
    // signed-note's C0-only rule, and nothing the log signs contains any of them.
    if note.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::Checkpoint("control character in the note"));
    }
    // The text ends at the last blank line; it keeps its final newline.
    let blank = note
        .rfind("\n\n")
        .ok_or(Error::Checkpoint("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..=blank], &note[blank + 2..]);
    let checkpoint = parse_text(text, origin)?;

    let lines = signatures
        .strip_suffix('\n')
        .filter(|lines| !lines.is_empty())
        .ok_or(Error::Checkpoint(
            "signatures must be lines ending in a newline",
        ))?
        .split('\n');
    let key_id = key.key_id();
    let mut verified = false;
    for (count, line) in lines.enumerate() {
        if count == MAX_SIGNATURES {
            return Err(Error::Checkpoint("too many signatures"));
        }
        let (name, signature) = parse_signature_line(line)?;
        if name == origin && signature[..4] == key_id {
            key.verify(text.as_bytes(), &signature[4..])?;
            verified = true;
        }
    }
    if !verified {
        return Err(Error::BadSignature);
    }
    Ok(checkpoint)
}

/// The three checkpoint lines and any non-empty extension lines.
fn parse_text(text: &str, origin: &str) -> Result<Checkpoint, Error> {
    let mut lines = text[..text.len() - 1].split('\n');
    let mut next = || {
        lines
            .next()
            .ok_or(Error::Checkpoint("fewer than three lines"))
    };
    let (origin_line, size, root) = (next()?, next()?, next()?);
    if lines.any(str::is_empty) {
        return Err(Error::Checkpoint("empty line in the note text"));
    }
    if origin_line != origin {
        return Err(Error::Checkpoint("origin does not match"));
    }
    let canonical = size == "0" || !size.starts_with('0');
    let size = Some(size)
        .filter(|size| canonical && !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|size| size.parse().ok())
        .ok_or(Error::Checkpoint("tree size is not a canonical u64"))?;
    let root = base64_decode(root)
        .and_then(|root| root.try_into().ok())
        .ok_or(Error::Checkpoint("root is not 32 bytes of base64"))?;
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
    })
}

/// `— <name> <base64(key ID [4] ‖ signature)>`, returning the name and the decoded bytes.
fn parse_signature_line(line: &str) -> Result<(&str, Vec<u8>), Error> {
    const MALFORMED: Error = Error::Checkpoint("malformed signature line");
    let (name, signature) = line
        .strip_prefix(SIGNATURE_PREFIX)
        .and_then(|rest| rest.split_once(' '))
        .ok_or(MALFORMED)?;
    if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c == '+') {
        return Err(MALFORMED);
    }
    let signature = base64_decode(signature)
        .filter(|signature| signature.len() > 4)
        .ok_or(MALFORMED)?;
    Ok((name, signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::empty_root;

    fn key() -> IdentityKey {
        IdentityKey::from_secret_bytes(&[0x11; 32]).unwrap()
    }

    fn sample(size: u64) -> Checkpoint {
        Checkpoint {
            origin: key().public().default_origin(),
            size,
            root: [0xab; 32],
        }
    }

    /// Signs arbitrary text as the log would, for notes `Checkpoint` cannot produce.
    fn sign_text(text: &str, key: &IdentityKey, name: &str) -> String {
        let mut signature = key.public().key_id().to_vec();
        signature.extend(key.sign(text.as_bytes()));
        format!("{text}\n— {name} {}\n", base64_encode(&signature))
    }

    fn verifies(note: &str) -> bool {
        let public = key().public();
        verify(note, &public.default_origin(), &public).is_ok()
    }

    #[test]
    fn round_trips() {
        let public = key().public();
        for size in [0, 1, 9, 10, 1_000_000, u64::MAX] {
            let checkpoint = sample(size);
            let note = checkpoint.sign(&key());
            assert!(note.starts_with(&checkpoint.text()));
            assert_eq!(
                verify(&note, &checkpoint.origin, &public).unwrap(),
                checkpoint
            );
        }
    }

    /// The empty log's checkpoint, byte for byte where the backend signs with RFC 6979 nonces;
    /// a hedged signer's note (aws-lc) must be the same text with a signature that verifies.
    #[test]
    fn empty_tree_checkpoint_bytes_are_pinned() {
        let empty = Checkpoint {
            origin: "wasm-hypervisor/a52f21efa319493a".to_owned(),
            size: 0,
            root: empty_root(),
        };
        assert_eq!(empty.origin, key().public().default_origin());
        assert_eq!(hex::encode(key().public().key_id()), "76805a63");
        assert_eq!(
            empty.text(),
            "wasm-hypervisor/a52f21efa319493a\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        );
        let note = empty.sign(&key());
        if <crate::crypto::Active as crate::crypto::Backend>::DETERMINISTIC_SIGNATURES {
            assert_eq!(note, EMPTY_NOTE);
        } else {
            let signature_line = |note: &str| note.rsplit_once(' ').unwrap().0.to_owned();
            assert_eq!(signature_line(&note), signature_line(EMPTY_NOTE));
            assert_eq!(
                verify(&note, &empty.origin, &key().public()).unwrap(),
                empty
            );
        }
        assert_eq!(
            verify(EMPTY_NOTE, &empty.origin, &key().public()).unwrap(),
            empty
        );
    }

    /// Checked independently: `openssl dgst -sha256 -verify` accepts the signature over the text
    /// with the key's SPKI, and `H2(SPKI DER)[:4]` is `76805a63`.
    const EMPTY_NOTE: &str = "wasm-hypervisor/a52f21efa319493a\n0\n\
        47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n\
        \u{2014} wasm-hypervisor/a52f21efa319493a doBaYzBFAiEA3GZfhAO0JCP79oobat86Kn5ianNsu9tTP4X4t\
        WjCGEkCIChMqtaLwmCYuH9rkorGoD4RgXIjMICDsuk5dQBWey0m\n";

    fn error(note: &str) -> Error {
        let public = key().public();
        verify(note, &public.default_origin(), &public).unwrap_err()
    }

    #[test]
    fn every_tamper_fails() {
        let checkpoint = sample(42);
        let note = checkpoint.sign(&key());
        assert!(verifies(&note));
        let text = checkpoint.text();
        let signature_line = &note[text.len() + 1..];

        // Well-formed but no longer signed: the signature covers size and root, and the line
        // must carry our name.
        for note in [
            note.replacen("\n42\n", "\n43\n", 1),
            note.replacen("q6ur", "q6us", 1),
            format!("{text}\n{}", signature_line.replacen("wasm-", "wasn-", 1)),
        ] {
            assert!(matches!(error(&note), Error::BadSignature), "{note:?}");
        }
        // Each byte of the key ID, then of the DER signature.
        let encoded = signature_line.rsplit(' ').next().unwrap().trim_end();
        let bytes = base64_decode(encoded).unwrap();
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            let note = note.replacen(encoded, &base64_encode(&bad), 1);
            assert!(matches!(error(&note), Error::BadSignature), "byte {at}");
        }

        for note in [
            note.replacen("wasm-hypervisor/", "wasm-hypervisos/", 1),
            note.replacen("wasm-hypervisor/", "wasm-hypervisor/x", 1),
            note.replacen('\n', "\t\n", 1),
            note.replacen("\n42", "\n4\u{7f}2", 1),
            note.replacen("\n42", "\n4\u{85}2", 1),
            note.replace('\n', "\r\n"),
            note.replacen("\n\n", "\r\n\n", 1),
            format!("{note}\r"),
            note.replacen("\n\n", "\n", 1),
            text.clone(),
            format!("{text}\n"),
            format!("{text}\n{signature_line}\n"),
            note.trim_end().to_owned(),
            note.replacen("— ", "-- ", 1),
            note.replacen("— ", "—  ", 1),
        ] {
            assert!(matches!(error(&note), Error::Checkpoint(_)), "{note:?}");
        }
    }

    #[test]
    fn malformed_text_is_rejected() {
        let origin = key().public().default_origin();
        let root = base64_encode(&[0xab; 32]);
        for (text, why) in [
            (format!("{origin}\n042\n{root}\n"), "leading zero"),
            (format!("{origin}\n00\n{root}\n"), "leading zero"),
            (format!("{origin}\n+42\n{root}\n"), "sign"),
            (format!("{origin}\n4a\n{root}\n"), "non-digit"),
            (format!("{origin}\n\n{root}\n"), "empty size"),
            (
                format!("{origin}\n18446744073709551616\n{root}\n"),
                "overflow",
            ),
            (
                format!("{origin}\n1\n{}\n", base64_encode(&[1; 31])),
                "31-byte root",
            ),
            (
                format!("{origin}\n1\n{}\n", base64_encode(&[1; 33])),
                "33-byte root",
            ),
            (
                format!("{origin}\n1\n{}\n", root.trim_end_matches('=')),
                "no padding",
            ),
            (
                format!(
                    "{origin}\n1\n{}\n",
                    base64_encode(&[0xff; 32]).replace('/', "_")
                ),
                "URL alphabet",
            ),
            (format!("{origin}\n1\n"), "two lines"),
            (format!("{origin}\n1\n{root}\n\nextension\n"), "empty line"),
            (format!("other\n1\n{root}\n"), "origin"),
        ] {
            let note = sign_text(&text, &key(), &origin);
            assert!(!verifies(&note), "{why}");
        }
        let ok = sign_text(
            &format!("{origin}\n18446744073709551615\n{root}\n"),
            &key(),
            &origin,
        );
        assert!(verifies(&ok));
    }

    #[test]
    fn extension_lines_are_signed_and_ignored() {
        let checkpoint = sample(7);
        let text = format!("{}ext one\next two\n", checkpoint.text());
        let note = sign_text(&text, &key(), &checkpoint.origin);
        assert_eq!(
            verify(&note, &checkpoint.origin, &key().public()).unwrap(),
            checkpoint
        );
        assert!(!verifies(&note.replacen("ext two", "ext 2", 1)));
    }

    #[test]
    fn other_signatures_are_ignored_but_ours_must_verify() {
        let checkpoint = sample(5);
        let note = checkpoint.sign(&key());
        let text = checkpoint.text();
        let ours = &note[text.len() + 1..];
        let witness = IdentityKey::from_secret_bytes(&[0x22; 32]).unwrap();
        let cosignature = &sign_text(&text, &witness, "witness.example/w1")[text.len() + 1..];
        // Our name with the witness's key ID, and the witness's name with ours: both unknown keys.
        let borrowed_name = &sign_text(&text, &witness, &checkpoint.origin)[text.len() + 1..];
        let borrowed_id = ours.replacen(&checkpoint.origin, "witness.example/w1", 1);

        for signatures in [
            format!("{ours}{cosignature}"),
            format!("{cosignature}{ours}"),
            format!("{borrowed_name}{borrowed_id}{ours}{ours}"),
        ] {
            assert!(verifies(&format!("{text}\n{signatures}")), "{signatures}");
        }
        for signatures in [
            cosignature.to_owned(),
            format!("{borrowed_name}{borrowed_id}"),
            format!(
                "{cosignature}{}",
                cosignature.replacen("witness.example/w1", "x+y", 1)
            ),
        ] {
            assert!(!verifies(&format!("{text}\n{signatures}")), "{signatures}");
        }

        // A signature under our name and key ID that fails spoils the note, even beside a good one.
        let other_text = sample(6).text();
        let forged = &sign_text(&other_text, &key(), &checkpoint.origin)[other_text.len() + 1..];
        let note = format!("{text}\n{ours}{forged}");
        assert!(matches!(
            verify(&note, &checkpoint.origin, &key().public()),
            Err(Error::BadSignature)
        ));
        assert!(matches!(
            verify(
                &format!("{text}\n{cosignature}"),
                &checkpoint.origin,
                &key().public()
            ),
            Err(Error::BadSignature)
        ));

        let many = format!("{text}\n{}", ours.repeat(MAX_SIGNATURES + 1));
        assert!(!verifies(&many));
        assert!(verifies(&format!(
            "{text}\n{}",
            cosignature.repeat(15) + ours
        )));
    }
}
