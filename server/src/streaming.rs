//! HLS, DASH and GetClip over `kinescope-playback` (spec §5.3–5.5): the signed operations that
//! create sessions and clips, and the unsigned playback resources under `/hls/v1/` and
//! `/dash/v1/` that players fetch with the session's token (players cannot sign). This file
//! only maps HTTP to the player and back: caching headers (immutable fragments get a strong
//! ETag and `If-None-Match` answers 304; playlists and manifests are `no-cache`) and CORS, so a
//! page on another origin can play.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use kinescope_api::ErrorKind;
use kinescope_api::StreamRef;
use kinescope_api::streaming::{
    GetClipInput, GetDashStreamingSessionUrlInput, GetDashStreamingSessionUrlOutput,
    GetHlsStreamingSessionUrlInput, GetHlsStreamingSessionUrlOutput,
};
use kinescope_playback::{Protocol, Reply, Resource, ResourceQuery, SessionRequest};

use crate::error::KvsError;
use crate::http::KvsJson;
use crate::state::AppState;

/// Immutable fragments may be cached for a year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub async fn get_hls_streaming_session_url(
    State(app): State<Arc<AppState>>,
    KvsJson(input): KvsJson<GetHlsStreamingSessionUrlInput>,
) -> Result<Json<GetHlsStreamingSessionUrlOutput>, KvsError> {
    let r = StreamRef::from_fields(input.stream_name, input.stream_arn)?;
    let stream = app.catalog.stream(&r).await?;
    let req = SessionRequest {
        mode: input.playback_mode,
        selector: input.fragment_selector,
        container: input.container_format,
        discontinuity: input.discontinuity_mode,
        display_timestamp: input.display_fragment_timestamp,
        display_number: None,
        expires: input.expires,
        max_results: input.max_media_playlist_fragment_results,
    };
    let token = app
        .player
        .create_session(Protocol::Hls, &stream, &req)
        .await?;
    Ok(Json(GetHlsStreamingSessionUrlOutput {
        hls_streaming_session_url: format!(
            "{}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken={token}",
            app.endpoint
        ),
    }))
}

pub async fn get_dash_streaming_session_url(
    State(app): State<Arc<AppState>>,
    KvsJson(input): KvsJson<GetDashStreamingSessionUrlInput>,
) -> Result<Json<GetDashStreamingSessionUrlOutput>, KvsError> {
    let r = StreamRef::from_fields(input.stream_name, input.stream_arn)?;
    let stream = app.catalog.stream(&r).await?;
    let req = SessionRequest {
        mode: input.playback_mode,
        selector: input.fragment_selector,
        container: None,
        discontinuity: None,
        display_timestamp: input.display_fragment_timestamp,
        display_number: input.display_fragment_number,
        expires: input.expires,
        max_results: input.max_manifest_fragment_results,
    };
    let token = app
        .player
        .create_session(Protocol::Dash, &stream, &req)
        .await?;
    Ok(Json(GetDashStreamingSessionUrlOutput {
        dash_streaming_session_url: format!(
            "{}/dash/v1/getDASHManifest.mpd?SessionToken={token}",
            app.endpoint
        ),
    }))
}

pub async fn get_clip(
    State(app): State<Arc<AppState>>,
    KvsJson(input): KvsJson<GetClipInput>,
) -> Result<Response, KvsError> {
    let r = StreamRef::from_fields(input.stream_name.clone(), input.stream_arn.clone())?;
    let stream = app.catalog.stream(&r).await?;
    let body = kinescope_playback::get_clip(app.player.clone(), &stream, &input).await?;
    let mut resp = Body::from_stream(body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    Ok(resp)
}

pub async fn hls_resource(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, KvsError> {
    resource(&app, Protocol::Hls, &name, query, &headers).await
}

pub async fn dash_resource(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, KvsError> {
    resource(&app, Protocol::Dash, &name, query, &headers).await
}

/// CORS on every playback resource, errors included (hls.js and dash.js fetch with XHR from
/// the page's origin), and the answer to a preflight.
pub async fn cors(req: Request, next: Next) -> Response {
    let mut resp = if req.method() == axum::http::Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-amzn-ErrorType, x-amzn-RequestId, ETag, Content-Length"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

async fn resource(
    app: &AppState,
    protocol: Protocol,
    name: &str,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: &HeaderMap,
) -> Result<Response, KvsError> {
    let resource = Resource::from_name(protocol, name).ok_or_else(|| {
        KvsError::new(
            ErrorKind::ResourceNotFound,
            format!("no playback resource named {name}"),
        )
    })?;
    let Query(mut q) =
        query.map_err(|e| KvsError::new(ErrorKind::InvalidArgument, e.body_text()))?;
    let query = ResourceQuery {
        session_token: q.remove("SessionToken"),
        track_number: q.remove("TrackNumber"),
        fragment_number: q.remove("FragmentNumber"),
        sequence_number: q.remove("SequenceNumber"),
        time: q.remove("Time"),
        hls_msn: q.remove("_HLS_msn"),
    };
    let reply = app.player.serve(protocol, resource, &query).await?;
    Ok(respond(reply, headers))
}

fn respond(reply: Reply, request: &HeaderMap) -> Response {
    let Reply {
        content_type,
        body,
        etag,
    } = reply;
    let mut resp = match &etag {
        Some(tag) if if_none_match(request, tag) => StatusCode::NOT_MODIFIED.into_response(),
        _ => Body::new(Parts::new(body)).into_response(),
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    match etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
        Some(tag) => {
            h.insert(header::ETAG, tag);
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
        }
        None => {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
    }
    resp
}

/// `If-None-Match` names this entity tag (or `*`).
fn if_none_match(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// A response body of ready parts with an exact length: sent as they are (the stored frame
/// bytes of a segment are never gathered into one buffer), with a Content-Length.
struct Parts {
    parts: VecDeque<Bytes>,
    remaining: u64,
}

impl Parts {
    fn new(parts: Vec<Bytes>) -> Self {
        let remaining = parts.iter().map(|b| b.len() as u64).sum();
        Self {
            parts: parts.into_iter().filter(|b| !b.is_empty()).collect(),
            remaining,
        }
    }
}

impl http_body::Body for Parts {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = self.parts.pop_front();
        if let Some(b) = &next {
            self.remaining -= b.len() as u64;
        }
        Poll::Ready(next.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn parts_keep_their_bytes_and_length() {
        let a = Bytes::from_static(b"moof");
        let b = Bytes::from(vec![7u8; 1000]);
        let body = Parts::new(vec![a.clone(), Bytes::new(), b.clone()]);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(1004));
        let mut body = std::pin::pin!(body);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first.as_ptr(), a.as_ptr());
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(
            second.as_ptr(),
            b.as_ptr(),
            "the payload is the same Bytes, not a copy"
        );
        assert!(body.frame().await.is_none());
    }

    #[test]
    fn if_none_match_lists_and_wildcards() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"k1-m1-1\""),
        );
        assert!(if_none_match(&h, "\"k1-m1-1\""));
        assert!(!if_none_match(&h, "\"k1-m2-1\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&h, "\"anything\""));
        assert!(!if_none_match(&HeaderMap::new(), "\"k1\""));
    }
}
