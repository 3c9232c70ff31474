//! Strict CBOR reading and deterministic CBOR writing over ciborium-ll headers.
//!
//! Hand-written rather than built on ciborium's `Value`, because `Value` silently accepts what
//! `docs/PROTOCOL.md` §4 requires us to refuse (duplicate keys, tags, indefinite lengths, unbounded
//! nesting). So [`Reader`] walks ciborium-ll [`Header`]s itself: it first checks that the whole
//! input is one well-formed item under those rules, then hands out typed values in wire order,
//! borrowed from the input. [`Writer`] emits RFC 8949 §4.2.1 core deterministic encoding.

use ciborium_ll::{Decoder, Encoder, Header};

/// The deepest nesting of arrays and maps accepted (§4); the top-level container is level 1.
pub(crate) const MAX_DEPTH: usize = 8;

/// Why input is not acceptable CBOR, or not of the type a caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ends inside an item.
    #[error("truncated CBOR")]
    Truncated,
    /// Not well-formed CBOR: a reserved or invalid header, or a stray break.
    #[error("malformed CBOR")]
    Malformed,
    /// A tag, which §4 refuses.
    #[error("tags are not allowed")]
    Tag,
    /// An indefinite-length item, which §4 refuses.
    #[error("indefinite-length items are not allowed")]
    Indefinite,
    /// Arrays and maps nested deeper than 8 levels.
    #[error("nesting deeper than 8")]
    TooDeep,
    /// A text string that is not UTF-8.
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// Bytes after the one top-level item.
    #[error("trailing bytes after the payload")]
    Trailing,
    /// Well-formed, but not the type the caller expected; the caller knows which field it was.
    #[error("unexpected CBOR type")]
    Type,
}

/// A cursor over one strictly well-formed CBOR item.
///
/// Non-shortest integer and length encodings are accepted: §4 does not forbid them, and the
/// committed bytes are whatever the client sent.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Checks that `input` is exactly one item with no tags, no indefinite lengths, only valid
    /// UTF-8 text and nesting of at most [`MAX_DEPTH`], then reads it from the start.
    ///
    /// Checking everything up front makes the structural errors independent of the order in
    /// which a caller happens to visit fields.
    pub(crate) fn new(input: &'a [u8]) -> Result<Self, Error> {
        let mut check = Reader { input, pos: 0 };
        check.skip(0)?;
        if check.pos != input.len() {
            return Err(Error::Trailing);
        }
        Ok(Reader { input, pos: 0 })
    }

    /// Fails unless the whole input has been read.
    pub(crate) fn end(&self) -> Result<(), Error> {
        if self.pos == self.input.len() {
            Ok(())
        } else {
            Err(Error::Trailing)
        }
    }

    /// Reads a map header; the caller then reads that many key/value pairs.
    pub(crate) fn map_len(&mut self) -> Result<usize, Error> {
        match self.header()? {
            Header::Map(Some(len)) => Ok(len),
            Header::Map(None) => Err(Error::Indefinite),
            _ => Err(Error::Type),
        }
    }

    /// Reads an array header; the caller then reads that many items.
    pub(crate) fn array_len(&mut self) -> Result<usize, Error> {
        match self.header()? {
            Header::Array(Some(len)) => Ok(len),
            Header::Array(None) => Err(Error::Indefinite),
            _ => Err(Error::Type),
        }
    }

    pub(crate) fn text(&mut self) -> Result<&'a str, Error> {
        match self.header()? {
            Header::Text(Some(len)) => {
                core::str::from_utf8(self.take(len)?).map_err(|_| Error::InvalidUtf8)
            }
            Header::Text(None) => Err(Error::Indefinite),
            _ => Err(Error::Type),
        }
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Error> {
        match self.header()? {
            Header::Bytes(Some(len)) => self.take(len),
            Header::Bytes(None) => Err(Error::Indefinite),
            _ => Err(Error::Type),
        }
    }

    pub(crate) fn uint(&mut self) -> Result<u64, Error> {
        match self.header()? {
            Header::Positive(n) => Ok(n),
            _ => Err(Error::Type),
        }
    }

    /// Reads an unsigned or negative integer that fits an `i64`.
    pub(crate) fn int(&mut self) -> Result<i64, Error> {
        match self.header()? {
            Header::Positive(n) => i64::try_from(n).map_err(|_| Error::Type),
            // A negative item carries -1 - value, which is the bitwise complement.
            Header::Negative(n) => i64::try_from(n).map(|n| !n).map_err(|_| Error::Type),
            _ => Err(Error::Type),
        }
    }

    /// Consumes a `null` if one comes next and says whether it did.
    pub(crate) fn null(&mut self) -> bool {
        // 0xf6 is the only well-formed encoding of null (RFC 8949 §3.3), so no header is needed.
        let next = self.input.get(self.pos) == Some(&0xf6);
        if next {
            self.pos += 1;
        }
        next
    }

    fn header(&mut self) -> Result<Header, Error> {
        let rest = self.input.get(self.pos..).unwrap_or_default();
        let mut decoder = Decoder::from(rest);
        let header = decoder.pull().map_err(|e| match e {
            ciborium_ll::Error::Io(_) => Error::Truncated,
            ciborium_ll::Error::Syntax(_) => Error::Malformed,
        })?;
        let size = decoder.offset();
        // RFC 8949 §3.3: a simple value below 32 in the two-byte form is not well-formed.
        if let Header::Simple(value) = header
            && value < 32
            && size == 2
        {
            return Err(Error::Malformed);
        }
        self.pos += size;
        Ok(header)
    }

    /// Slices the content of a bytes or text item out of the input. The length comes from the
    /// header, so it is checked against what is left before anything is sliced; nothing is ever
    /// allocated from a declared length (ciborium-ll's segment readers are not used at all).
    fn take(&mut self, len: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(len).ok_or(Error::Truncated)?;
        let content = self.input.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(content)
    }

    /// Skips one item, enforcing the strict rules; `depth` counts the enclosing containers.
    /// Every item costs at least one input byte, so huge declared counts end in `Truncated`.
    fn skip(&mut self, depth: usize) -> Result<(), Error> {
        let items = match self.header()? {
            Header::Tag(_) => return Err(Error::Tag),
            Header::Break => return Err(Error::Malformed),
            Header::Bytes(None) | Header::Text(None) | Header::Array(None) | Header::Map(None) => {
                return Err(Error::Indefinite);
            }
            Header::Bytes(Some(len)) => return self.take(len).map(drop),
            Header::Text(Some(len)) => {
                let text = self.take(len)?;
                return core::str::from_utf8(text)
                    .map(drop)
                    .map_err(|_| Error::InvalidUtf8);
            }
            Header::Positive(_) | Header::Negative(_) | Header::Float(_) | Header::Simple(_) => {
                return Ok(());
            }
            Header::Array(Some(len)) => (len, 1),
            Header::Map(Some(len)) => (len, 2),
        };
        if depth >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        let (len, per_entry) = items;
        for _ in 0..len {
            for _ in 0..per_entry {
                self.skip(depth + 1)?;
            }
        }
        Ok(())
    }
}

/// Builds RFC 8949 §4.2.1 core deterministic encoding: shortest-form heads (ciborium-ll's
/// `Encoder` always picks them), definite lengths, and map entries sorted by their encoded keys.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    out: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.out
    }

    pub(crate) fn uint(&mut self, value: u64) {
        self.head(Header::Positive(value));
    }

    pub(crate) fn int(&mut self, value: i64) {
        match u64::try_from(value) {
            Ok(value) => self.head(Header::Positive(value)),
            // -1 - value is the bitwise complement, which is non-negative here.
            Err(_) => self.head(Header::Negative(!value as u64)),
        }
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        self.head(Header::Bytes(Some(value.len())));
        self.out.extend_from_slice(value);
    }

    pub(crate) fn text(&mut self, value: &str) {
        self.head(Header::Text(Some(value.len())));
        self.out.extend_from_slice(value.as_bytes());
    }

    pub(crate) fn null(&mut self) {
        self.head(Header::Simple(ciborium_ll::simple::NULL));
    }

    /// Writes an array header; the caller then writes exactly `len` items.
    pub(crate) fn array(&mut self, len: usize) {
        self.head(Header::Array(Some(len)));
    }

    /// Writes a map whose entries `build` adds in any order; they come out sorted.
    pub(crate) fn map(&mut self, build: impl FnOnce(&mut MapWriter)) {
        let mut map = MapWriter::default();
        build(&mut map);
        // Bytewise order of the encoded keys (RFC 8949 §4.2.1): for text keys, shorter first.
        map.entries.sort_by(|a, b| a.0.cmp(&b.0));
        self.head(Header::Map(Some(map.entries.len())));
        for (key, value) in map.entries {
            self.out.extend_from_slice(&key);
            self.out.extend_from_slice(&value);
        }
    }

    fn head(&mut self, header: Header) {
        // Which ciborium-io `Write` impls exist depends on features other crates may enable, but
        // a byte slice is a writer under all of them; a head is at most 9 bytes, so this fits.
        const MAX_HEAD: usize = 9;
        let mut buf = [0u8; MAX_HEAD];
        let mut rest = &mut buf[..];
        let written = Encoder::from(&mut rest).push(header).is_ok();
        debug_assert!(written, "a CBOR head fits in 9 bytes");
        let len = MAX_HEAD - rest.len();
        self.out.extend_from_slice(&buf[..len]);
    }
}

/// The entries of a map being written by [`Writer::map`].
#[derive(Debug, Default)]
pub(crate) struct MapWriter {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

impl MapWriter {
    /// Adds `key` with the single item `value` writes. Keys must be distinct.
    pub(crate) fn entry(&mut self, key: &str, value: impl FnOnce(&mut Writer)) {
        let mut k = Writer::new();
        k.text(key);
        let mut v = Writer::new();
        value(&mut v);
        self.entries.push((k.out, v.out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    fn check(s: &str) -> Result<(), Error> {
        Reader::new(&h(s)).map(drop)
    }

    #[test]
    fn structural_rules() {
        assert_eq!(check("c0 00"), Err(Error::Tag));
        assert_eq!(check("82 00 d8 20 00"), Err(Error::Tag));
        assert_eq!(check("5f 41 00 ff"), Err(Error::Indefinite));
        assert_eq!(check("7f ff"), Err(Error::Indefinite));
        assert_eq!(check("9f ff"), Err(Error::Indefinite));
        assert_eq!(check("bf ff"), Err(Error::Indefinite));
        assert_eq!(check("62 c3 28"), Err(Error::InvalidUtf8));
        assert_eq!(check("00 00"), Err(Error::Trailing));
        assert_eq!(check(""), Err(Error::Truncated));
        assert_eq!(check("19 01"), Err(Error::Truncated));
        assert_eq!(check("43 00 00"), Err(Error::Truncated));
        assert_eq!(check("82 00"), Err(Error::Truncated));
        assert_eq!(check("a1 00"), Err(Error::Truncated));
        assert_eq!(check("1c"), Err(Error::Malformed));
        assert_eq!(check("ff"), Err(Error::Malformed));
        assert_eq!(check("f8 16"), Err(Error::Malformed));
    }

    #[test]
    fn depth_limit_is_eight_containers() {
        let nested = |levels: usize| h(&format!("{}80", "81".repeat(levels - 1)));
        assert!(Reader::new(&nested(8)).is_ok());
        assert_eq!(Reader::new(&nested(9)).unwrap_err(), Error::TooDeep);
        assert_eq!(
            Reader::new(&h("a1 00 a1 00 a1 00 a1 00 a1 00 a1 00 a1 00 a1 00 a0")).unwrap_err(),
            Error::TooDeep
        );
    }

    #[test]
    fn huge_declared_lengths_fail_cleanly() {
        // Each of these declares close to 2^64 bytes or items in a handful of input bytes.
        assert_eq!(check("5b ffffffffffffffff 00"), Err(Error::Truncated));
        assert_eq!(check("7b ffffffffffffffff 00"), Err(Error::Truncated));
        assert_eq!(check("9b ffffffffffffffff 00"), Err(Error::Truncated));
        assert_eq!(check("bb ffffffffffffffff 00 00"), Err(Error::Truncated));
        assert_eq!(check("5b 7fffffffffffffff"), Err(Error::Truncated));
    }

    #[test]
    fn non_shortest_forms_are_read() {
        let input = h("83 1b 0000000000000001 78 01 61 59 0001 ff");
        let mut r = Reader::new(&input).unwrap();
        assert_eq!(r.array_len(), Ok(3));
        assert_eq!(r.uint(), Ok(1));
        assert_eq!(r.text(), Ok("a"));
        assert_eq!(r.bytes(), Ok(&[0xff][..]));
        assert_eq!(r.end(), Ok(()));
    }

    #[test]
    fn typed_reads() {
        let input = h("86 20 3b 7fffffffffffffff 3b 8000000000000000 f6 f5 61 61");
        let mut r = Reader::new(&input).unwrap();
        assert_eq!(r.array_len(), Ok(6));
        assert_eq!(r.int(), Ok(-1));
        assert_eq!(r.int(), Ok(i64::MIN));
        assert_eq!(r.int(), Err(Error::Type));
        assert!(r.null());
        assert!(!r.null());
        assert_eq!(r.uint(), Err(Error::Type));
        assert!(!r.null());
        assert_eq!(r.bytes(), Err(Error::Type));
    }

    fn written(f: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut w = Writer::new();
        f(&mut w);
        w.finish()
    }

    #[test]
    fn writer_uses_shortest_forms() {
        let cases: [(u64, &str); 9] = [
            (0, "00"),
            (23, "17"),
            (24, "1818"),
            (255, "18ff"),
            (256, "190100"),
            (65535, "19ffff"),
            (65536, "1a00010000"),
            (u32::MAX as u64 + 1, "1b0000000100000000"),
            (u64::MAX, "1bffffffffffffffff"),
        ];
        for (value, expected) in cases {
            assert_eq!(written(|w| w.uint(value)), h(expected), "{value}");
        }
        let cases: [(i64, &str); 5] = [
            (-1, "20"),
            (-24, "37"),
            (-25, "3818"),
            (i64::MIN, "3b7fffffffffffffff"),
            (i64::MAX, "1b7fffffffffffffff"),
        ];
        for (value, expected) in cases {
            assert_eq!(written(|w| w.int(value)), h(expected), "{value}");
        }
        assert_eq!(
            written(|w| w.bytes(&[0; 24])),
            h(&format!("5818{}", "00".repeat(24)))
        );
        assert_eq!(written(|w| w.text("a")), h("6161"));
        assert_eq!(written(|w| w.null()), h("f6"));
        assert_eq!(written(|w| w.array(2)), h("82"));
    }

    #[test]
    fn map_entries_sorted_by_encoded_key() {
        let bytes = written(|w| {
            w.map(|m| {
                m.entry("bb", |w| w.uint(1));
                m.entry("b", |w| w.uint(2));
                m.entry("ab", |w| w.uint(3));
                m.entry("a", |w| w.uint(4));
            })
        });
        assert_eq!(bytes, h("a4 6161 04 6162 02 626162 03 626262 01"));
    }
}
