//! Media reads: `POST /getMedia` (spec §4), `POST /listFragments` and
//! `POST /getMediaForFragmentList` (spec §5.1–5.2), over `kinescope-playback`. Media responses
//! stream fragment by fragment from the store; nothing is buffered whole.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kinescope_api::archived::{
    GetMediaForFragmentListInput, ListFragmentsInput, ListFragmentsOutput,
};
use kinescope_api::media::{GetMediaInput, StartSelectorType};
use kinescope_api::{ApiError, FragmentNumber, StreamRef};
use kinescope_archive::TimestampKind;
use kinescope_playback::{MediaRead, Start};

use crate::error::KvsError;
use crate::http::KvsJson;
use crate::state::AppState;

pub async fn list_fragments(
    State(app): State<Arc<AppState>>,
    KvsJson(input): KvsJson<ListFragmentsInput>,
) -> Result<Json<ListFragmentsOutput>, KvsError> {
    let r = StreamRef::from_fields(input.stream_name.clone(), input.stream_arn.clone())?;
    let stream = app.catalog.stream(&r).await?;
    Ok(Json(
        kinescope_playback::list_fragments(&app.archive, &stream, input).await?,
    ))
}

pub async fn get_media_for_fragment_list(
    State(app): State<Arc<AppState>>,
    KvsJson(input): KvsJson<GetMediaForFragmentListInput>,
) -> Result<Response, KvsError> {
    let r = StreamRef::from_fields(input.stream_name, input.stream_arn)?;
    let stream = app.catalog.stream(&r).await?;
    let rows =
        kinescope_playback::resolve_fragments(&app.archive, &stream, &input.fragments).await?;
    let body = Body::from_stream(kinescope_playback::fragment_documents(
        app.archive.clone(),
        rows,
    ));
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("video/webm"));
    Ok(resp)
}

pub async fn get_media(
    State(app): State<Arc<AppState>>,
    KvsJson(input): KvsJson<GetMediaInput>,
) -> Result<Response, KvsError> {
    let r = StreamRef::from_fields(input.stream_name, input.stream_arn)?;
    let sel = input.start_selector;
    let missing = |field: &str| {
        ApiError::invalid_argument(format!(
            "StartSelector needs {field} for this StartSelectorType"
        ))
    };
    let start = match sel.start_selector_type {
        StartSelectorType::Earliest => Start::Earliest,
        StartSelectorType::Now => Start::Now,
        StartSelectorType::FragmentNumber => Start::After(
            sel.after_fragment_number
                .ok_or_else(|| missing("AfterFragmentNumber"))?,
        ),
        StartSelectorType::ContinuationToken => {
            let token = sel
                .continuation_token
                .ok_or_else(|| missing("ContinuationToken"))?;
            Start::After(FragmentNumber::parse(&token).map_err(|_| {
                ApiError::invalid_argument(format!(
                    "ContinuationToken '{token}' is not one this server issued"
                ))
            })?)
        }
        StartSelectorType::ServerTimestamp => Start::At(
            TimestampKind::Server,
            sel.start_timestamp
                .ok_or_else(|| missing("StartTimestamp"))?,
        ),
        StartSelectorType::ProducerTimestamp => Start::At(
            TimestampKind::Producer,
            sel.start_timestamp
                .ok_or_else(|| missing("StartTimestamp"))?,
        ),
    };
    let stream = app.catalog.stream(&r).await?;
    let read = MediaRead {
        archive: app.archive.clone(),
        clock: app.clock.clone(),
        stream,
        start,
        idle: app.getmedia_idle,
    };
    let body = Body::from_stream(futures::StreamExt::map(
        kinescope_playback::get_media(read),
        Ok::<_, std::convert::Infallible>,
    ));
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("video/webm"));
    Ok(resp)
}
