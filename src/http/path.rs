//! Path parameters.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use uuid::Uuid;

use super::error::AppError;

/// The `{id}` (or `{userId}`, `{loanId}`) of a path, as a UUID. Text that
/// is not a UUID names no record, so it is a 404 like any unknown id.
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::NotFound("Resource"))?;
        Uuid::parse_str(&raw)
            .map(PathId)
            .map_err(|_| AppError::NotFound("Resource"))
    }
}
