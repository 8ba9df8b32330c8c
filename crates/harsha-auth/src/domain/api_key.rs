//! API keys as values: the key a system presents (`hk_<id>.<secret>`: a
//! public lookup prefix and 256 secret bits), its SHA-256 digest (what is
//! stored; a fast hash suffices for a random 256-bit secret, and keeps a
//! check within microseconds), and network allow-lists (IPv4 and IPv6 CIDR
//! blocks; a bare address is a one-address block).

use std::net::IpAddr;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use harsha_types::ValueError;
use ipnet::IpNet;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every key starts with.
const KEY_MARK: &str = "hk_";
/// Characters of the lookup id after the mark.
const ID_LENGTH: usize = 12;
/// The alphabet of lookup ids: lower case and digits, easy to read aloud.
const ID_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// A newly made key: its public prefix and the whole key, to be shown once.
pub struct FreshKey {
    /// The lookup prefix (`hk_…`), safe to list and log.
    pub prefix: String,
    /// The whole key, `prefix.secret`.
    pub key: String,
    /// The digest stored in place of the secret.
    pub digest: String,
}

impl std::fmt::Debug for FreshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshKey")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl FreshKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut id_bytes = [0u8; ID_LENGTH];
        OsRng.fill_bytes(&mut id_bytes);
        let id: String = id_bytes
            .iter()
            .map(|b| char::from(ID_ALPHABET[usize::from(*b) % ID_ALPHABET.len()]))
            .collect();
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let prefix = format!("{KEY_MARK}{id}");
        Self {
            key: format!("{prefix}.{secret}"),
            digest: digest(&secret),
            prefix,
        }
    }
}

/// A key as presented, split into its prefix and secret. It never prints
/// the secret.
pub struct PresentedKey<'a> {
    /// The lookup prefix.
    pub prefix: &'a str,
    secret: &'a str,
}

impl std::fmt::Debug for PresentedKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PresentedKey({}.…)", self.prefix)
    }
}

impl<'a> PresentedKey<'a> {
    /// Splits a presented key; `None` if it cannot be one of ours.
    pub fn parse(value: &'a str) -> Option<Self> {
        let (prefix, secret) = value.trim().split_once('.')?;
        let id = prefix.strip_prefix(KEY_MARK)?;
        let well_formed = id.len() == ID_LENGTH
            && id.bytes().all(|b| ID_ALPHABET.contains(&b))
            && (40..=64).contains(&secret.len());
        well_formed.then_some(Self { prefix, secret })
    }

    /// Whether the secret matches a stored digest (in constant time).
    pub fn matches(&self, stored_digest: &str) -> bool {
        digest(self.secret)
            .as_bytes()
            .ct_eq(stored_digest.as_bytes())
            .into()
    }
}

fn digest(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(secret.as_bytes()))
}

/// Reads a CIDR block (`10.0.0.0/8`, `2001:db8::/32`) or a bare address
/// (a block of one), host bits cleared.
pub fn parse_network(entry: &str) -> Result<IpNet, ValueError> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map(|net| net.trunc())
        .map_err(|_| ValueError(format!("{entry:?} is not an IP address or CIDR block")))
}

/// Where a key may be used from: any address when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Vec<IpNet>);

impl AllowList {
    /// Parses CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) or bare addresses;
    /// the error names the entry's index.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, (usize, ValueError)> {
        entries
            .iter()
            .enumerate()
            .map(|(i, entry)| parse_network(entry.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether `address` may use the key. An IPv4 address seen as IPv6
    /// (`::ffff:a.b.c.d`) counts as the IPv4 address.
    pub fn allows(&self, address: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(address) = address else {
            return false;
        };
        let address = address.to_canonical();
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The blocks, as text.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// Whether it allows any address.
    pub fn is_open(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_back_and_match_only_their_digest() {
        let fresh = FreshKey::generate();
        assert!(fresh.key.starts_with(&format!("{}.", fresh.prefix)));
        let presented = PresentedKey::parse(&fresh.key).unwrap_or_else(|| unreachable!());
        assert_eq!(presented.prefix, fresh.prefix);
        assert!(presented.matches(&fresh.digest));
        assert!(!presented.matches(&FreshKey::generate().digest));
        assert!(!format!("{presented:?}").contains(presented.secret));
        assert!(!format!("{fresh:?}").contains(&fresh.digest));
        for bad in [
            "",
            "hk_short.secret",
            "nothing-here",
            &fresh.key.replace("hk_", "xx_"),
            &fresh.key[..20],
        ] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn allow_lists_cover_v4_v6_and_mapped_addresses() {
        let list = AllowList::parse(&["10.1.0.0/16", "2001:db8::/32", "192.168.1.7"])
            .unwrap_or_else(|_| unreachable!());
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(list.allows(ip("10.1.200.3")));
        assert!(!list.allows(ip("10.2.0.1")));
        assert!(list.allows(ip("2001:db8:1::9")));
        assert!(!list.allows(ip("2001:db9::1")));
        assert!(list.allows(ip("192.168.1.7")));
        assert!(!list.allows(ip("192.168.1.8")));
        assert!(list.allows(ip("::ffff:10.1.2.3")), "v4-mapped v6");
        assert!(!list.allows(None), "an unknown address is not allowed");
        assert!(AllowList::default().allows(None));
        assert_eq!(
            AllowList::parse(&["10.0.0.0/8", "10.0.0.300/8"]).map_err(|(i, _)| i),
            Err(1)
        );
        assert_eq!(
            AllowList::parse(&["10.9.9.9/8"]).map(|l| l.to_strings()),
            Ok(vec!["10.0.0.0/8".to_owned()])
        );
    }
}
