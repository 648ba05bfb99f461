//! Query strings and cursor pagination.
//!
//! Lists are keyset-paginated: the cursor is an opaque encoding of the sort
//! key of the last item returned, so each page is one indexed range scan
//! however deep the client pages, and rows inserted meanwhile never shift
//! a page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::json::Validator;
pub use super::query::QueryParams;

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

/// `?limit=&cursor=` of a list request.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Items per page, 1–100 (default 20).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub limit: Option<PageLimit>,
    /// The `nextCursor` of the previous page.
    #[param(value_type = Option<String>)]
    pub cursor: Option<Cursor>,
}

/// Items per page: 1 to 100, never clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PageLimit(pub u64);

impl TryFrom<String> for PageLimit {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match text.parse::<u64>() {
            Ok(limit) if (1..=MAX_PAGE_SIZE).contains(&limit) => Ok(PageLimit(limit)),
            _ => Err("must be an integer from 1 to 100"),
        }
    }
}

/// A cursor this service issued: the sort key of the last item of a page
/// (an empty one means the first page).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Cursor(pub Option<Vec<String>>);

impl TryFrom<String> for Cursor {
    type Error = &'static str;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.is_empty() {
            return Ok(Cursor(None));
        }
        decode_cursor(&text)
            .map(|parts| Cursor(Some(parts)))
            .ok_or(NOT_OUR_CURSOR)
    }
}

const NOT_OUR_CURSOR: &str = "is not a cursor this service issued";

/// A validated page request; `after` holds the decoded cursor parts.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: u64,
    pub after: Option<Vec<String>>,
}

impl PageRequest {
    /// Reads `limit` and `cursor`, recording field errors in `validator`.
    pub fn from_query(query: &QueryParams, validator: &mut Validator) -> PageRequest {
        let params: PageParams = query.parse_into(validator);
        PageRequest {
            limit: params.limit.map_or(DEFAULT_PAGE_SIZE, |limit| limit.0),
            after: params.cursor.and_then(|cursor| cursor.0),
        }
    }

    /// The single cursor part of an id-ordered list, as a UUID.
    pub fn after_id(&self, validator: &mut Validator) -> Option<uuid::Uuid> {
        let parts = self.after.as_ref()?;
        match parts.as_slice() {
            [id] => match uuid::Uuid::parse_str(id) {
                Ok(id) => Some(id),
                Err(_) => {
                    validator.error("cursor", NOT_OUR_CURSOR);
                    None
                }
            },
            _ => {
                validator.error("cursor", NOT_OUR_CURSOR);
                None
            }
        }
    }

    /// How many rows to fetch: one more than a page, to learn whether
    /// another page follows.
    pub fn fetch_limit(&self) -> u64 {
        self.limit + 1
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `?cursor=` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows; `cursor_of` gives the
    /// cursor parts of the last row kept.
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        request: &PageRequest,
        cursor_of: impl Fn(&R) -> Vec<String>,
        view: impl FnMut(R) -> T,
    ) -> Page<T> {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if has_more {
            rows.last().map(|row| encode_cursor(&cursor_of(row)))
        } else {
            None
        };
        Page {
            items: rows.into_iter().map(view).collect(),
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

const CURSOR_SEPARATOR: char = '|';

pub fn encode_cursor(parts: &[String]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join(&CURSOR_SEPARATOR.to_string()))
}

pub fn decode_cursor(cursor: &str) -> Option<Vec<String>> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    Some(
        text.split(CURSOR_SEPARATOR)
            .map(ToOwned::to_owned)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let parts = vec!["2026-01-31".to_owned(), "abc".to_owned()];
        assert_eq!(decode_cursor(&encode_cursor(&parts)), Some(parts));
        assert_eq!(decode_cursor("%%%"), None);
    }

    #[test]
    fn limits_outside_the_range_are_errors_not_clamped() {
        for limit in ["0", "101", "-1", "ten", "1.5"] {
            let mut validator = Validator::new();
            let query = QueryParams::parse(Some(&format!("limit={limit}")));
            PageRequest::from_query(&query, &mut validator);
            assert!(validator.has_errors(), "{limit}");
        }
        let mut validator = Validator::new();
        let page = PageRequest::from_query(&QueryParams::parse(Some("limit=100")), &mut validator);
        assert!(!validator.has_errors());
        assert_eq!(page.limit, 100);
    }

    #[test]
    fn pages_know_whether_more_follow() {
        let request = PageRequest {
            limit: 2,
            after: None,
        };
        let page = Page::from_rows(vec![1, 2, 3], &request, |n| vec![n.to_string()], |n| n * 10);
        assert_eq!(page.items, vec![10, 20]);
        assert_eq!(
            page.next_cursor.as_deref().and_then(decode_cursor),
            Some(vec!["2".to_owned()])
        );
        let last = Page::from_rows(vec![1, 2], &request, |n| vec![n.to_string()], |n| n);
        assert_eq!(last.next_cursor, None);
    }
}
