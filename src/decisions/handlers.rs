//! HTTP handlers for `/decisions`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::service::{self, Confirmed, DecisionFilter};
use super::views::{DecisionView, Outcome};
use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::auth::actor::Actor;
use crate::enums::{DecisionAction, DecisionStatus};
use crate::http::error::AppResult;
use crate::http::json::{JsonBody, ReasonBody, Validator};
use crate::http::pagination::{Page, PageParams, PageRequest, QueryParams};
use crate::http::path::PathId;
use crate::http::query::Id;
use crate::loans::views::LoanView;
use crate::payments::views::PaymentView;
use crate::policy::{ConfirmDecisions, Permit, ReadDecisions};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_decisions))
        .routes(routes!(get_decision))
        .routes(routes!(confirm))
        .routes(routes!(reject))
}

/// A request the four-eyes rule may cover answers `200` with what it did,
/// or `202` with the decision that now waits for a second person.
impl<T: serde::Serialize> IntoResponse for Outcome<T> {
    fn into_response(self) -> Response {
        match self {
            Outcome::Done(done) => Json(done).into_response(),
            Outcome::AwaitingDecision(decision) => {
                (axum::http::StatusCode::ACCEPTED, Json(decision)).into_response()
            }
        }
    }
}

/// Filters of the decision list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
struct DecisionQuery {
    status: Option<DecisionStatus>,
    action: Option<DecisionAction>,
    #[param(value_type = Option<uuid::Uuid>)]
    loan_id: Option<Id>,
}

/// Decisions, newest first (ADMIN, MANAGER).
#[utoipa::path(get, path = "/decisions", tag = "decisions",
    security(("bearerAuth" = [])),
    params(DecisionQuery, PageParams),
    responses((status = 200, description = "A page of decisions", body = Page<DecisionView>)))]
async fn list_decisions(
    State(state): State<AppState>,
    permit: Permit<ReadDecisions>,
    query: QueryParams,
) -> AppResult<Json<Page<DecisionView>>> {
    let mut validator = Validator::new();
    let page = PageRequest::from_query(&query, &mut validator);
    let after = page.after_id(&mut validator);
    let filters: DecisionQuery = query.parse_into(&mut validator);
    validator.finish(|| Some(()))?;
    let filter = DecisionFilter {
        status: filters.status,
        action: filters.action,
        loan_id: filters.loan_id.map(|id| id.0),
    };
    let connection = state.list_reader(permit.actor().id).await;
    Ok(Json(service::list(connection, filter, &page, after).await?))
}

/// One decision (ADMIN, MANAGER).
#[utoipa::path(get, path = "/decisions/{id}", tag = "decisions",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "Decision id")),
    responses((status = 200, description = "The decision", body = DecisionView)))]
async fn get_decision(
    State(state): State<AppState>,
    _permit: Permit<ReadDecisions>,
    PathId(id): PathId,
) -> AppResult<Json<DecisionView>> {
    Ok(Json(service::get(&state.db.write, id).await?))
}

/// What a confirmation answers: the loan (an approval or a write-off) or
/// the payment (a reversal).
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(untagged)]
enum ConfirmedView {
    Loan(Box<LoanView>),
    Payment(Box<PaymentView>),
}

/// Confirms a pending decision (another ADMIN than the requester): the
/// request runs now, as this ADMIN, with every check again. If it would
/// fail now, the answer is that failure and the decision stays pending.
#[utoipa::path(post, path = "/decisions/{id}/confirm", tag = "decisions",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "Decision id")),
    responses(
        (status = 200, description = "What the request answers: the loan (approval, write-off) or the payment (reversal)", body = ConfirmedView),
        (status = 403, description = "Not an ADMIN, or the requester", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending, or the request is refused now", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn confirm(
    State(state): State<AppState>,
    permit: Permit<ConfirmDecisions>,
    meta: RequestMeta,
    PathId(id): PathId,
) -> AppResult<Response> {
    Ok(match service::confirm(&state, permit, &meta, id).await? {
        Confirmed::Loan(loan) => Json(ConfirmedView::Loan(loan)).into_response(),
        Confirmed::Payment(payment) => Json(ConfirmedView::Payment(payment)).into_response(),
    })
}

/// Rejects a pending decision (ADMIN, MANAGER, or the requester, who thus
/// withdraws it). It stays on record as `REJECTED`.
#[utoipa::path(post, path = "/decisions/{id}/reject", tag = "decisions", operation_id = "reject_decision",
    security(("bearerAuth" = [])),
    params(("id" = uuid::Uuid, Path, description = "Decision id")),
    request_body(content = ReasonBody, description = "Why the request is rejected (or withdrawn)"),
    responses(
        (status = 200, description = "The decision, rejected", body = DecisionView),
        (status = 409, description = "Not pending", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn reject(
    State(state): State<AppState>,
    actor: Actor,
    meta: RequestMeta,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ReasonBody>,
) -> AppResult<Json<DecisionView>> {
    let reason = body.parse()?;
    Ok(Json(
        service::reject(&state, actor, &meta, id, reason.as_str()).await?,
    ))
}
