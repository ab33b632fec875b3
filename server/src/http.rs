//! The HTTP surface: one router for every API path (spec §1.1: `POST /<operation>` with a JSON
//! body), the HLS/DASH playback resources (`GET /hls/v1/…`, `/dash/v1/…`, spec §5.3–5.4,
//! authorized by their session token), plus `/healthz`, `/readyz` and `/metrics`. Layers,
//! outermost first: request id, metrics and tracing for every request; SigV4 authentication and
//! a body bound for API paths; CORS for playback resources.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use kinescope_api::validation::{self, Input};
use kinescope_api::{ApiError, ErrorKind};
use tracing::Instrument;

use crate::auth::{self, Payload, Request as SignedRequest};
use crate::error::KvsError;
use crate::limits::{BodyReservation, Limits};
use crate::secrets::request_id;
use crate::state::AppState;
use crate::{archived, control, putmedia, streaming};

/// Largest JSON request body; the largest real input (GetMediaForFragmentList with 1000
/// fragment numbers) is far below it.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// Operations of the KVS models that Kinescope does not serve yet, by path. Each answers
/// `NotImplementedException` (HTTP 501), listed in the README's feature table.
const NOT_YET: &[&str] = &[
    "/getImages",
    "/createSignalingChannel",
    "/deleteSignalingChannel",
    "/describeSignalingChannel",
    "/getSignalingChannelEndpoint",
    "/listSignalingChannels",
    "/updateSignalingChannel",
    "/describeImageGenerationConfiguration",
    "/updateImageGenerationConfiguration",
    "/describeNotificationConfiguration",
    "/updateNotificationConfiguration",
    "/describeMediaStorageConfiguration",
    "/updateMediaStorageConfiguration",
    "/describeMappedResourceConfiguration",
    "/describeStreamStorageConfiguration",
    "/updateStreamStorageConfiguration",
    "/startEdgeConfigurationUpdate",
    "/describeEdgeConfiguration",
    "/deleteEdgeConfiguration",
    "/listEdgeAgentConfigurations",
];

/// The whole router.
pub fn router(state: Arc<AppState>) -> Router {
    let mut api = Router::new()
        .route("/createStream", op(post(control::create_stream)))
        .route("/describeStream", op(post(control::describe_stream)))
        .route("/listStreams", op(post(control::list_streams)))
        .route("/deleteStream", op(post(control::delete_stream)))
        .route("/updateStream", op(post(control::update_stream)))
        .route(
            "/updateDataRetention",
            op(post(control::update_data_retention)),
        )
        .route("/tagStream", op(post(control::tag_stream)))
        .route("/untagStream", op(post(control::untag_stream)))
        .route(
            "/listTagsForStream",
            op(post(control::list_tags_for_stream)),
        )
        .route("/TagResource", op(post(control::tag_resource)))
        .route("/UntagResource", op(post(control::untag_resource)))
        .route(
            "/ListTagsForResource",
            op(post(control::list_tags_for_resource)),
        )
        .route("/getDataEndpoint", op(post(control::get_data_endpoint)))
        .route("/putMedia", op(post(putmedia::put_media)))
        .route("/getMedia", op(post(archived::get_media)))
        .route("/listFragments", op(post(archived::list_fragments)))
        .route(
            "/getMediaForFragmentList",
            op(post(archived::get_media_for_fragment_list)),
        )
        .route(
            "/getHLSStreamingSessionURL",
            op(post(streaming::get_hls_streaming_session_url)),
        )
        .route(
            "/getDASHStreamingSessionURL",
            op(post(streaming::get_dash_streaming_session_url)),
        )
        .route("/getClip", op(post(streaming::get_clip)));
    for &path in NOT_YET {
        api = api.route(path, op(post(move || not_yet(path))));
    }
    // Players cannot sign: the playback resources carry a session token instead.
    let playback = Router::new()
        .route("/hls/v1/{name}", get(streaming::hls_resource))
        .route("/dash/v1/{name}", get(streaming::dash_resource))
        .layer(middleware::from_fn(streaming::cors));
    api.route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(playback)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(unknown_operation)
        .layer(middleware::from_fn(observe))
        .with_state(state)
}

/// The JSON body of an API call, checked against its model's constraints and parsed by
/// [`kinescope_api::validation::parse`]: KVS's error types and wording.
#[derive(Debug)]
pub struct KvsJson<T>(pub T);

impl<T: Input, S: Send + Sync> FromRequest<S> for KvsJson<T> {
    type Rejection = KvsError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| KvsError::new(ErrorKind::InvalidArgument, e.body_text()))?;
        Ok(Self(validation::parse(&bytes)?))
    }
}

fn op(route: MethodRouter<Arc<AppState>>) -> MethodRouter<Arc<AppState>> {
    route.fallback(|method: Method| async move {
        KvsError::new(
            ErrorKind::MethodNotAllowed,
            format!("{method} is not allowed here; KVS operations are POST"),
        )
    })
}

async fn not_yet(path: &'static str) -> KvsError {
    let name = operation_name(path);
    KvsError::new(
        ErrorKind::NotImplemented,
        format!(
            "{name} is not implemented by this Kinescope version yet (see the README feature table)"
        ),
    )
}

async fn unknown_operation(method: Method, uri: axum::http::Uri) -> KvsError {
    KvsError::new(
        ErrorKind::UnknownOperation,
        format!("no operation at {method} {}", uri.path()),
    )
}

async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    if app.shutting_down.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match app.catalog.ping().await {
        Ok(()) => "ready\n".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "catalog unavailable\n").into_response()
        }
    }
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    let body = app.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The operation of a KVS path: `/createStream` is `CreateStream` (spec §1.1); the playback
/// resources are `HlsPlayback` and `DashPlayback`.
fn operation_name(path: &str) -> String {
    match path {
        "/hls/v1/{name}" => return "HlsPlayback".to_owned(),
        "/dash/v1/{name}" => return "DashPlayback".to_owned(),
        _ => {}
    }
    let name = path.trim_start_matches('/');
    let mut chars = name.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_ascii_uppercase().to_string() + chars.as_str()
    })
}

/// Authenticates an API request: first what needs no body (so a stranger's body is never
/// read), then the body is read within the server-wide budget and the read timeout, and the
/// signature is checked over it (spec §0.16). Streaming PutMedia is checked on its headers
/// alone (spec §1.2) and its body is passed on unread.
async fn authenticate(
    State(app): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Result<Response, KvsError> {
    let (parts, body) = req.into_parts();
    let refused = |e: ApiError| {
        tracing::warn!(error = %e.kind.name(), message = %e.message, "request refused");
        KvsError::from(e)
    };
    let preflight = app
        .auth
        .preflight(&parts.headers, app.clock.now())
        .map_err(refused)?;
    let streaming = parts.uri.path() == "/putMedia";
    let (body, bytes, reservation) = if streaming {
        (body, None, None)
    } else {
        let (bytes, reservation) = read_body(&app.limits, &parts.headers, body).await?;
        (Body::from(bytes.clone()), Some(bytes), Some(reservation))
    };
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        authority: parts.uri.authority().map(|a| a.as_str()),
        payload: bytes.as_deref().map_or(Payload::Streaming, Payload::Body),
    };
    auth::verify(preflight, &signed).map_err(refused)?;
    let response = next.run(Request::from_parts(parts, body)).await;
    // The body counted against the budget until its handler was done with it.
    drop(reservation);
    Ok(response)
}

/// Reads a JSON body: at most [`MAX_JSON_BODY`], within the server's body budget (over it:
/// `ClientLimitExceededException`, not a queue) and the read timeout.
async fn read_body(
    limits: &Limits,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> Result<(Bytes, BodyReservation), KvsError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_JSON_BODY as u64) {
        return Err(too_large());
    }
    let size = declared.map_or(MAX_JSON_BODY, |n| n as usize);
    let reservation = limits.reserve_body(size).ok_or_else(|| {
        metrics::counter!("kinescope_http_body_budget_refusals_total").increment(1);
        KvsError::new(
            ErrorKind::ClientLimitExceeded,
            "Too many request bodies are being received right now; retry with backoff.",
        )
    })?;
    let read = tokio::time::timeout(limits.read_timeout, axum::body::to_bytes(body, size));
    let bytes = read
        .await
        .map_err(|_| {
            KvsError::new(
                ErrorKind::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    limits.read_timeout.as_secs()
                ),
            )
        })?
        .map_err(|e| {
            let limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if limit {
                too_large()
            } else {
                KvsError::new(
                    ErrorKind::InvalidArgument,
                    "could not read the request body",
                )
            }
        })?;
    Ok((bytes, reservation))
}

fn too_large() -> KvsError {
    KvsError::new(
        ErrorKind::RequestEntityTooLarge,
        format!("request body exceeds {MAX_JSON_BODY} bytes"),
    )
}

/// Request id, access log, and Prometheus metrics by operation and status.
async fn observe(req: Request, next: Next) -> Response {
    // Routed paths only: an unknown path must not become a label of its own.
    let operation = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unknown".to_owned(), |m| operation_name(m.as_str()));
    let id = request_id();
    let span = tracing::info_span!("request", op = operation, id = %id);
    let start = Instant::now();
    let mut resp = next.run(req).instrument(span.clone()).await;
    let elapsed = start.elapsed();
    let status = resp.status().as_u16();
    span.in_scope(|| tracing::debug!(status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "done"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    let status_label = status.to_string();
    metrics::counter!("kinescope_http_requests_total", "operation" => operation.clone(), "status" => status_label.clone())
        .increment(1);
    metrics::histogram!("kinescope_http_request_duration_seconds", "operation" => operation, "status" => status_label)
        .record(elapsed.as_secs_f64());
    resp
}
