//! The baselines of the benchmarks (`scripts/bench-control-plane`, `scripts/bench-ingest`): an
//! axum "hello" endpoint, and `/sink`, which reads a request body and discards it, on the same
//! HTTP stack as `kinescope serve` (axum on hyper-util's HTTP/1+2 server, plain HTTP,
//! multi-threaded tokio), without the listener's connection bookkeeping. Prints its address, then serves until killed.

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use futures::StreamExt;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/describeStream", post(|| async { "hello" }))
        .route(
            "/sink",
            post(|body: Body| async move {
                let mut stream = body.into_data_stream();
                let mut n = 0usize;
                while let Some(Ok(chunk)) = stream.next().await {
                    n += chunk.len();
                }
                n.to_string()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
