//! Archived-media reads (spec §5.1–5.2): `POST /listFragments` and
//! `POST /getMediaForFragmentList`, over `kinescope-playback`. The media response streams
//! fragment by fragment from the store; nothing is buffered whole.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use kinescope_api::StreamRef;
use kinescope_api::archived::{
    GetMediaForFragmentListInput, ListFragmentsInput, ListFragmentsOutput,
};

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
