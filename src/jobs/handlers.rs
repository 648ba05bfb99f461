//! `POST /admin/jobs/{name}/run`: run a job now (ADMIN).

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{JobName, JobOrigin, JobReport, Trigger};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::calendar::parse_date;
use crate::http::error::{AppError, AppResult};
use crate::http::json::{Field, OptionalJsonBody, Validator};
use crate::policy::{Permit, RunJobs};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(run_job))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RunJobRequest {
    /// The day to run the job for, not after today; default today (service
    /// time zone).
    #[serde(default)]
    #[schema(value_type = Option<chrono::NaiveDate>)]
    as_of: Field<String>,
}

/// Runs a job now, as of a given day (ADMIN). Safe to repeat: a second
/// run for the same day changes nothing.
#[utoipa::path(post, path = "/admin/jobs/{name}/run", tag = "jobs",
    security(("bearerAuth" = [])),
    params(("name" = String, Path, description = "payment-reminders, overdue-check or audit-archive")),
    request_body(content = Option<RunJobRequest>, description = "Optional as-of date"),
    responses((status = 200, description = "What the run did", body = JobReport)))]
async fn run_job(
    State(state): State<AppState>,
    permit: Permit<RunJobs>,
    meta: RequestMeta,
    Path(name): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<RunJobRequest>,
) -> AppResult<Json<JobReport>> {
    let job = JobName::parse(&name).ok_or(AppError::NotFound("Job"))?;
    let body = body.unwrap_or_default();
    let mut validator = Validator::new();
    let today = state.today();
    let as_of = validator.optional("asOf", body.as_of, |text| {
        let date = parse_date(&text).map_err(|error| error.to_string())?;
        super::check_as_of(date, today)
    });
    let as_of = validator.finish(|| as_of)?.unwrap_or(today);
    let origin = JobOrigin {
        actor_id: permit.actor().id,
        meta,
    };
    // The run goes on in its own task: a request that times out or is
    // abandoned does not cut the job off half-way.
    let run =
        tokio::spawn(
            async move { super::run(&state, job, as_of, Trigger::Api, Some(origin)).await },
        );
    let report = run
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::Internal)?;
    Ok(Json(report))
}
