//! `GET /openapi.json` and the offline API reference at `/docs`.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::app::AppState;

const INDEX_HTML: &str = include_str!("../../assets/swagger-ui/index.html");
const INIT_JS: &str = include_str!("../../assets/swagger-ui/init.js");
const BUNDLE_JS: &str = include_str!("../../assets/swagger-ui/swagger-ui-bundle.js");
const STYLESHEET: &str = include_str!("../../assets/swagger-ui/swagger-ui.css");

/// Routes serving the (pre-rendered) OpenAPI document and the docs UI.
pub fn router(openapi_json: Arc<String>) -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let document = Arc::clone(&openapi_json);
                async move { asset("application/json", document.as_str().to_owned()) }
            }),
        )
        .route(
            "/docs",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/docs/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/docs/init.js",
            get(|| async { asset("text/javascript; charset=utf-8", INIT_JS) }),
        )
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| async { asset("text/javascript; charset=utf-8", BUNDLE_JS) }),
        )
        .route(
            "/docs/swagger-ui.css",
            get(|| async { asset("text/css; charset=utf-8", STYLESHEET) }),
        )
}

fn asset(content_type: &'static str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
