//! `POST /putMedia` (spec §3.1, §3.3): validates the request headers and the stream, answers
//! `200` at once with a chunked body, and hands the upload to `kinescope-ingest`, whose ACK lines
//! become the response body while the request body is still arriving. Errors before the 200
//! are KVS-shaped HTTP errors; after it, ERROR ACKs.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use kinescope_api::{ApiError, StreamName, StreamRef, Timestamp};
use kinescope_ingest::{SessionConfig, TimecodeType, Upload};
use kinescope_media::mkv::Limits;

use crate::error::KvsError;
use crate::state::AppState;
use kinescope_api::civil;

/// ACK lines buffered per upload before the upload waits for the client to read them.
const ACK_BUFFER: usize = 32;
/// Longest wait for the first body bytes before answering 200 anyway.
const FIRST_BYTE_WAIT: Duration = Duration::from_secs(2);

pub async fn put_media(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, KvsError> {
    let text = |name: &str| -> Result<Option<&str>, KvsError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    ApiError::invalid_argument(format!("header {name} is not ASCII")).into()
                })
            })
            .transpose()
    };
    let name = text("x-amzn-stream-name")?
        .map(StreamName::parse)
        .transpose()?;
    let stream_ref = StreamRef::from_fields(name, text("x-amzn-stream-arn")?.map(str::to_owned))?;
    let timecode_type = match text("x-amzn-fragment-timecode-type")? {
        Some(t) if t.eq_ignore_ascii_case("ABSOLUTE") => TimecodeType::Absolute,
        Some(t) if t.eq_ignore_ascii_case("RELATIVE") => TimecodeType::Relative,
        other => {
            return Err(ApiError::invalid_argument(format!(
                "x-amzn-fragment-timecode-type must be ABSOLUTE or RELATIVE, got {other:?}"
            ))
            .into());
        }
    };
    let start_timestamp = text("x-amzn-producer-start-timestamp")?
        .map(|v| {
            parse_start_timestamp(v).ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "x-amzn-producer-start-timestamp '{v}' is neither epoch seconds nor ISO-8601"
                ))
            })
        })
        .transpose()?;
    let stream = app.catalog.stream(&stream_ref).await?;

    let upload = Upload {
        archive: app.archive.clone(),
        clock: app.clock.clone(),
        stream,
        session: SessionConfig {
            timecode_type,
            start_timestamp,
            limits: Limits::default(),
            max_user_tags: 10,
            max_clock_ahead: app.max_producer_clock_ahead,
        },
        writers: app.writers.clone(),
        idle_ack_every: Duration::from_secs(3).min(app.ingest_idle_limit / 2),
        idle_limit: app.ingest_idle_limit,
        max_connection: Duration::from_secs(45 * 60),
        live_budget: app.live_budget.clone(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(ACK_BUFFER);
    // Waiting for the first body bytes before the 200 goes out makes hyper answer
    // `Expect: 100-continue` at once; once a final status is sent it no longer does, and
    // libcurl-based producers then wait a second (spec §0.7). A client that sends nothing gets
    // its 200 after FIRST_BYTE_WAIT and then the idle handling.
    let mut body = body.into_data_stream().peekable();
    let _ = tokio::time::timeout(FIRST_BYTE_WAIT, std::pin::Pin::new(&mut body).peek()).await;
    tokio::spawn(kinescope_ingest::upload(upload, body, tx));
    let acks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    let mut resp = (StatusCode::OK, Body::from_stream(acks)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// `1700000000.123` (any number of fraction digits, spec §0.6) or ISO-8601
/// `2017-11-28T06:55:08.513Z` (the Java SDK), a real calendar date.
fn parse_start_timestamp(v: &str) -> Option<Timestamp> {
    let v = v.trim();
    if v.contains('T') {
        return civil::parse_iso8601(v);
    }
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || secs.len() > 12 {
        return None;
    }
    Some(Timestamp::from_millis(
        secs.parse::<i64>().ok()? * 1000 + i64::from(civil::fraction_millis(frac)?),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_timestamps_in_every_form_producers_send() {
        let ms = |v| parse_start_timestamp(v).map(Timestamp::as_millis);
        assert_eq!(ms("1795770237.603"), Some(1_795_770_237_603));
        assert_eq!(
            ms("1795770237.5"),
            Some(1_795_770_237_500),
            "not zero-padded (spec §0.6)"
        );
        assert_eq!(ms("1795770237"), Some(1_795_770_237_000));
        assert_eq!(ms("1795770237.123456"), Some(1_795_770_237_123));
        assert_eq!(ms("2017-11-28T06:55:08.513Z"), Some(1_511_852_108_513));
        assert_eq!(ms("2017-11-28T06:55:08Z"), Some(1_511_852_108_000));
        for bad in [
            "",
            "abc",
            "-5",
            "1.2.3",
            "2017-13-28T06:55:08Z",
            "2020-02-31T00:00:00Z",
            "1e9",
        ] {
            assert_eq!(ms(bad), None, "{bad}");
        }
    }
}
