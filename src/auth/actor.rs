//! Who is making a request: the [`Actor`] behind a bearer token. The
//! extractor that finds it is in `crate::http::extract`.

use uuid::Uuid;

use crate::enums::Role;

/// An authenticated user. Taking it as a handler argument makes the route
/// require a valid access token; list it before any body extractor so a
/// missing token is a 401 before the body is even read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    pub id: Uuid,
    pub role: Role,
}

impl crate::cache::Cacheable for Actor {
    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn decode(text: &str) -> Option<Actor> {
        serde_json::from_str(text).ok()
    }
}
