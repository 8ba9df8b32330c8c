//! Opaque page tokens for keyset pagination: a store serialises the sort
//! key of the last row it returned, and reads it back from the next request.
//! Tokens are base64url-encoded JSON; clients must treat them as opaque.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

/// The page size when a request asks for none.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page a request may ask for.
pub const MAX_PAGE_SIZE: u32 = 500;

/// A page token or size that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    /// The token was not issued by this service, or was altered.
    #[error("page_token is not a token this service issued")]
    BadToken,
    /// The size is out of range.
    #[error("page_size must be between 0 and {MAX_PAGE_SIZE}, not {0}")]
    BadSize(i32),
}

impl PageError {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            Self::BadToken => "page_token",
            Self::BadSize(_) => "page_size",
        }
    }
}

/// Checks a requested page size; 0 means [`DEFAULT_PAGE_SIZE`].
pub fn page_size(requested: i32) -> Result<u32, PageError> {
    match u32::try_from(requested) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) if size <= MAX_PAGE_SIZE => Ok(size),
        _ => Err(PageError::BadSize(requested)),
    }
}

/// Encodes the sort key of the last row of a page.
pub fn encode_token<K: Serialize>(key: &K) -> String {
    // Serialising plain keys (strings, dates) cannot fail.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

/// Decodes a token; an empty token means the first page.
pub fn decode_token<K: DeserializeOwned>(token: &str) -> Result<Option<K>, PageError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| PageError::BadToken)?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|_| PageError::BadToken)
}

/// One page of results and the token for the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// The token for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `size + 1` rows fetched: the extra row, if
    /// present, only says there is a next page, whose token is made from
    /// the last row kept.
    pub fn from_rows<K: Serialize>(mut rows: Vec<T>, size: u32, key: impl Fn(&T) -> K) -> Self {
        let size = size as usize;
        let next_token = if rows.len() > size {
            rows.truncate(size);
            rows.last().map(|last| encode_token(&key(last)))
        } else {
            None
        };
        Self {
            items: rows,
            next_token,
        }
    }

    /// Converts every row.
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_, _>>()?,
            next_token: self.next_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let token = encode_token(&("2026-11-26", "A-1"));
        assert_eq!(
            decode_token::<(String, String)>(&token),
            Ok(Some(("2026-11-26".into(), "A-1".into())))
        );
        assert_eq!(decode_token::<(String, String)>(""), Ok(None));
        assert_eq!(
            decode_token::<(String, String)>("not a token!"),
            Err(PageError::BadToken)
        );
        assert_eq!(
            decode_token::<(String, String)>(&encode_token(&42)),
            Err(PageError::BadToken)
        );
    }

    #[test]
    fn sizes_default_and_are_bounded() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(500), Ok(500));
        assert_eq!(page_size(501), Err(PageError::BadSize(501)));
        assert_eq!(page_size(-1), Err(PageError::BadSize(-1)));
    }

    #[test]
    fn an_extra_row_makes_a_next_token() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(page.next_token, Some(encode_token(&2)));
        assert_eq!(Page::from_rows(vec![1, 2], 2, |n| *n).next_token, None);
    }
}
