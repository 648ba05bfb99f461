//! Liveness and readiness probes.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    /// Always `ok`.
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "Alive", body = Liveness)))]
async fn live() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ok` or `unavailable`.
    pub status: &'static str,
    pub checks: ReadinessChecks,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessChecks {
    /// `ok`, or `failed` when the database does not answer.
    pub database: &'static str,
    /// Present when `REDIS_URL` is set: `ok` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<&'static str>,
}

/// Whether the service can serve traffic: the database (and Redis, when
/// configured) answers.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "A dependency is failing", body = Readiness)))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database =
        match tokio::time::timeout(std::time::Duration::from_secs(3), state.db.ping()).await {
            Ok(Ok(())) => "ok",
            Ok(Err(error)) => {
                tracing::warn!(error = %error, "readiness: database check failed");
                "failed"
            }
            Err(_) => {
                tracing::warn!("readiness: database check timed out");
                "failed"
            }
        };
    let redis = match &state.redis {
        Some(connection) => Some(if crate::redis::ping(connection).await {
            "ok"
        } else {
            tracing::warn!("readiness: redis check failed");
            "failed"
        }),
        None => None,
    };
    let healthy = database == "ok" && redis != Some("failed");
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if healthy { "ok" } else { "unavailable" },
        checks: ReadinessChecks { database, redis },
    };
    (status, Json(body))
}
