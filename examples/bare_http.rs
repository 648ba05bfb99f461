//! The HTTP-stack limit for the load benchmark: a bare axum endpoint on the
//! same runtime, with no middleware, no authentication, no database and no
//! cache. It answers a GET of any path with the bytes of `BODY_FILE` (the
//! benchmark passes a real `GET /loans/{id}` response, so both send the
//! same payload), or a small JSON object without one. `PORT` (default 18999).

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "18999".to_owned());
    let body = match std::env::var("BODY_FILE") {
        Ok(path) => Bytes::from(std::fs::read(path)?),
        Err(_) => Bytes::from_static(br#"{"status":"ok"}"#),
    };
    // Every path answers, so the benchmark can send this endpoint exactly
    // the requests (same paths, same headers) it sends the service.
    let app = Router::new().fallback(get(move || {
        let body = body.clone();
        async move { ([("content-type", "application/json")], body) }
    }));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    axum::serve(listener, app).await
}
