//! The baseline of the control-plane benchmark (`scripts/bench-control-plane`): an axum "hello"
//! endpoint on the same HTTP stack as `kinescope serve` (axum on hyper via axum-server, plain
//! HTTP, multi-threaded tokio). Prints its address, then serves until killed.

use axum::Router;
use axum::routing::{get, post};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = Router::new()
        .route("/hello", get(|| async { "hello" }))
        .route("/describeStream", post(|| async { "hello" }));
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("http://{}", listener.local_addr()?);
    axum_server::from_tcp(listener)?
        .serve(app.into_make_service())
        .await
}
