//! The PROXY protocol on connections from trusted proxies: which peers are trusted
//! (`--trusted-proxies`), and the version 2 header such a peer must send first, which says
//! whom the connection is relayed for. Only version 2, the binary header of HAProxy's
//! `send-proxy-v2` and `check-send-proxy`, is read; a version 1 (text) header is refused like
//! any other bytes that are not a version 2 header.
//!
//! The header is parsed here rather than with the `ppp` crate: ppp's latest release (2.3.0)
//! would bring a second major version of `thiserror` into the build, and this needs little
//! of it: the 16-byte fixed part, then the address block, of which only the source address
//! is used. The block's TLVs are skipped without being kept, so a header costs no memory
//! beyond one address block whatever its length, and nothing past its last byte is read: what
//! follows reaches HTTP (or TLS) untouched.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::str::FromStr;

use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// The peers whose connections begin with a PROXY protocol v2 header saying whom they relay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Whether no peer is trusted, so that no header is ever read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `peer` is a trusted proxy; an IPv4-mapped IPv6 peer is its IPv4 address.
    pub(crate) fn trust(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.0.iter().any(|prefix| prefix.contains(&peer))
    }
}

/// Comma-separated IP addresses and CIDR prefixes (`10.0.0.0/8`); empty: none.
impl FromStr for TrustedProxies {
    type Err = InvalidProxyAddress;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map(|prefix| prefix.trunc())
                    .map_err(|_| InvalidProxyAddress(entry.to_owned()))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut separator = "";
        for prefix in &self.0 {
            write!(f, "{separator}{prefix}")?;
            separator = ",";
        }
        Ok(())
    }
}

/// An entry of `--trusted-proxies` that is neither an IP address nor a prefix.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IP address or an address prefix like 10.0.0.0/8")]
pub struct InvalidProxyAddress(String);

/// Why a trusted proxy's connection was closed before HTTP.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyHeaderError {
    #[error("the connection ended or failed within its PROXY header: {0}")]
    Io(#[from] io::Error),
    #[error("no PROXY protocol v2 header within the header timeout")]
    TimedOut,
    #[error("the connection does not begin with a PROXY protocol v2 signature")]
    Signature,
    #[error("PROXY protocol version {0} (only 2 is read)")]
    Version(u8),
    #[error("unknown PROXY command {0:#x}")]
    Command(u8),
    #[error("unknown PROXY address family and protocol {0:#04x}")]
    Family(u8),
    #[error("a PROXY address block of {length} bytes cannot hold its {needed}-byte addresses")]
    ShortAddresses { length: usize, needed: usize },
}

/// The first bytes of every version 2 header.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The signature, the version and command, the family and protocol, and the block's length.
const FIXED_PART_BYTES: usize = 16;

/// The largest address block without TLVs: two AF_UNIX paths.
const MAX_ADDRESSES_BYTES: usize = 216;

/// What a header's fixed part says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FixedPart {
    /// `None` for LOCAL (the proxy speaking for itself, e.g. a health check) and for a relayed
    /// connection of an address family that has no IP address.
    relayed: Option<IpFamily>,
    /// Bytes of the address block that follows: the addresses, then any TLVs.
    length: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    /// Source and destination addresses, then source and destination ports.
    fn addresses_bytes(self) -> usize {
        match self {
            Self::V4 => 12,
            Self::V6 => 36,
        }
    }
}

fn fixed_part(bytes: &[u8; FIXED_PART_BYTES]) -> Result<FixedPart, ProxyHeaderError> {
    let [signature @ .., version_command, family, high, low] = *bytes;
    if signature != SIGNATURE {
        return Err(ProxyHeaderError::Signature);
    }
    if version_command >> 4 != 2 {
        return Err(ProxyHeaderError::Version(version_command >> 4));
    }
    let length = usize::from(u16::from_be_bytes([high, low]));
    let (relayed, addresses_bytes) = match version_command & 0x0f {
        // The receiver uses the connection's own endpoints and ignores the block, whatever
        // its family says.
        0x0 => (None, 0),
        0x1 => match family {
            0x00 => (None, 0),
            0x11 | 0x12 => (Some(IpFamily::V4), IpFamily::V4.addresses_bytes()),
            0x21 | 0x22 => (Some(IpFamily::V6), IpFamily::V6.addresses_bytes()),
            0x31 | 0x32 => (None, MAX_ADDRESSES_BYTES),
            other => return Err(ProxyHeaderError::Family(other)),
        },
        other => return Err(ProxyHeaderError::Command(other)),
    };
    if length < addresses_bytes {
        return Err(ProxyHeaderError::ShortAddresses {
            length,
            needed: addresses_bytes,
        });
    }
    Ok(FixedPart { relayed, length })
}

/// The source the block's addresses give: the client's address and port.
fn source(family: IpFamily, addresses: &[u8]) -> SocketAddr {
    let port = |at: usize| u16::from_be_bytes([addresses[at], addresses[at + 1]]);
    match family {
        IpFamily::V4 => {
            let mut ip = [0; 4];
            ip.copy_from_slice(&addresses[..4]);
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port(8)))
        }
        IpFamily::V6 => {
            let mut ip = [0; 16];
            ip.copy_from_slice(&addresses[..16]);
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port(32), 0, 0))
        }
    }
}

/// Reads a PROXY protocol v2 header from `io`, exactly its bytes and no more, and returns the
/// client it relays for; `None`: the proxy speaks for itself (LOCAL, or a family without an
/// IP address). Unbounded in time: the caller bounds it.
pub(crate) async fn read_header<R>(io: &mut R) -> Result<Option<SocketAddr>, ProxyHeaderError>
where
    R: AsyncRead + Unpin,
{
    let mut fixed = [0; FIXED_PART_BYTES];
    // A peer that is not speaking the protocol shows it within the signature: no need to wait
    // for sixteen bytes it may never send.
    io.read_exact(&mut fixed[..1]).await?;
    if fixed[0] != SIGNATURE[0] {
        return Err(ProxyHeaderError::Signature);
    }
    io.read_exact(&mut fixed[1..]).await?;
    let FixedPart { relayed, length } = fixed_part(&fixed)?;
    let mut block = [0; MAX_ADDRESSES_BYTES];
    let addresses = &mut block[..length.min(MAX_ADDRESSES_BYTES)];
    io.read_exact(addresses).await?;
    let client = relayed.map(|family| source(family, addresses));
    let mut tlvs = length - addresses.len();
    while tlvs > 0 {
        let skipped = io.read(&mut block[..tlvs.min(MAX_ADDRESSES_BYTES)]).await?;
        if skipped == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        tlvs -= skipped;
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt as _;

    use super::*;

    /// A header of `version_command` and `family` whose block is `block`.
    fn header(version_command: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut header = SIGNATURE.to_vec();
        header.extend([version_command, family]);
        header.extend(u16::try_from(block.len()).unwrap().to_be_bytes());
        header.extend(block);
        header
    }

    const IPV4_BLOCK: [u8; 12] = [192, 0, 2, 7, 127, 0, 0, 1, 0xd4, 0x31, 0x1f, 0x90];

    /// Reads a header from `input`; what is left unread is returned too.
    fn read(input: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, &[u8]) {
        let mut rest = input;
        let outcome = read_header(&mut rest)
            .now_or_never()
            .expect("a slice never makes a read wait");
        (outcome, rest)
    }

    #[test]
    fn a_relayed_ipv4_or_ipv6_client_is_the_source_and_the_rest_is_left_unread() {
        let mut input = header(0x21, 0x11, &IPV4_BLOCK);
        input.extend(b"GET / HTTP/1.1\r\n");
        let (client, rest) = read(&input);
        assert_eq!(client.unwrap(), Some("192.0.2.7:54321".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");

        let mut block = Vec::new();
        block.extend("2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        block.extend(Ipv6Addr::LOCALHOST.octets());
        block.extend([0, 80, 0, 81]);
        let input = header(0x21, 0x22, &block);
        let (client, rest) = read(&input);
        assert_eq!(client.unwrap(), Some("[2001:db8::7]:80".parse().unwrap()));
        assert!(rest.is_empty());
    }

    #[test]
    fn tlvs_are_skipped_to_the_headers_last_byte() {
        let mut block = IPV4_BLOCK.to_vec();
        // PP2_TYPE_AUTHORITY, then a NOOP as long as the rest, past one address block.
        block.extend([0x02, 0, 11]);
        block.extend(b"example.org");
        block.extend([0x04, 0x01, 0x2c]);
        block.extend([0; 300]);
        let mut input = header(0x21, 0x11, &block);
        input.extend(b"\x16\x03\x01");
        let (client, rest) = read(&input);
        assert_eq!(client.unwrap(), Some("192.0.2.7:54321".parse().unwrap()));
        assert_eq!(
            rest, b"\x16\x03\x01",
            "the TLS record after it is untouched"
        );
    }

    #[test]
    fn local_and_families_without_an_ip_address_leave_the_proxys_own() {
        for (version_command, family, block) in [
            (0x20, 0x00, &[][..]),
            // LOCAL ignores the block, whatever it says.
            (0x20, 0x11, &IPV4_BLOCK[..]),
            (0x20, 0x77, &[1, 2, 3][..]),
            (0x21, 0x00, &[][..]),
            (0x21, 0x31, &[0; 216][..]),
        ] {
            let mut input = header(version_command, family, block);
            input.push(b'G');
            let (client, rest) = read(&input);
            assert_eq!(client.unwrap(), None, "{version_command:#x} {family:#x}");
            assert_eq!(rest, b"G");
        }
    }

    #[test]
    fn what_is_not_a_version_2_header_is_refused() {
        let mut wrong_signature = header(0x21, 0x11, &IPV4_BLOCK);
        wrong_signature[11] = b'X';
        let cases = [
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "signature"),
            (
                b"PROXY TCP4 192.0.2.7 127.0.0.1 54321 8080\r\n".to_vec(),
                "signature",
            ),
            (wrong_signature, "signature"),
            (header(0x11, 0x11, &IPV4_BLOCK), "version 1"),
            (header(0x31, 0x11, &IPV4_BLOCK), "version 3"),
            (header(0x22, 0x11, &IPV4_BLOCK), "command"),
            (header(0x21, 0x10, &IPV4_BLOCK), "family"),
            (header(0x21, 0x41, &IPV4_BLOCK), "family"),
            (header(0x21, 0x11, &IPV4_BLOCK[..11]), "cannot hold"),
            (header(0x21, 0x21, &IPV4_BLOCK), "cannot hold"),
            (header(0x21, 0x31, &[0; 215]), "cannot hold"),
        ];
        for (input, expected) in cases {
            let error = read(&input).0.unwrap_err().to_string();
            assert!(error.contains(expected), "{error} for {input:?}");
        }
    }

    #[test]
    fn a_truncated_header_is_refused() {
        let mut with_tlv = IPV4_BLOCK.to_vec();
        with_tlv.extend([0x04, 0, 5, 0, 0, 0, 0, 0]);
        for whole in [
            header(0x21, 0x11, &IPV4_BLOCK),
            header(0x21, 0x11, &with_tlv),
        ] {
            for cut in 1..whole.len() {
                let error = read(&whole[..cut]).0.unwrap_err();
                assert!(
                    matches!(&error, ProxyHeaderError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof),
                    "{error} at {cut}"
                );
            }
        }
    }

    #[test]
    fn the_longest_block_is_read_in_bounded_memory() {
        let mut block = IPV4_BLOCK.to_vec();
        block.extend([0x04, 0xff, 0xf0]);
        block.resize(usize::from(u16::MAX), 0);
        let mut input = header(0x21, 0x11, &block);
        input.push(b'G');
        let (client, rest) = read(&input);
        assert_eq!(client.unwrap(), Some("192.0.2.7:54321".parse().unwrap()));
        assert_eq!(rest, b"G");
    }

    #[test]
    fn trusted_proxies_are_addresses_and_prefixes() {
        let trusted: TrustedProxies = " 127.0.0.10, 10.1.2.3/8,2001:db8::/32 ,".parse().unwrap();
        assert_eq!(
            trusted.to_string(),
            "127.0.0.10/32,10.0.0.0/8,2001:db8::/32"
        );
        for (peer, expected) in [
            ("127.0.0.10", true),
            ("::ffff:127.0.0.10", true),
            ("127.0.0.1", false),
            ("10.200.0.1", true),
            ("11.0.0.1", false),
            ("2001:db8:ffff::1", true),
            ("2001:db9::1", false),
        ] {
            assert_eq!(trusted.trust(peer.parse().unwrap()), expected, "{peer}");
        }
        assert!("".parse::<TrustedProxies>().unwrap().is_empty());
        let none = TrustedProxies::default();
        assert!(!none.trust("127.0.0.1".parse().unwrap()));
        for invalid in ["localhost", "10.0.0.0/33", "10.0.0.1:80", "10.0.0.0/8/8"] {
            let error = invalid.parse::<TrustedProxies>().unwrap_err().to_string();
            assert!(error.contains(invalid), "{error}");
        }
    }
}
