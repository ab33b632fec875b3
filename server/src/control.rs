//! The stream control plane (spec §2, `spec/aws-models/kinesisvideo.json`): CreateStream,
//! DescribeStream, ListStreams, UpdateStream, DeleteStream, UpdateDataRetention, the stream and
//! resource tagging operations and GetDataEndpoint. The model's constraints are checked as the
//! input parses ([`KvsJson`]); handlers check what the model does not say, then make one
//! catalog call.

use axum::Json;
use axum::extract::State;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kinescope_api::control::{
    ComparisonOperator, CreateStreamInput, CreateStreamOutput, DeleteStreamInput,
    DescribeStreamInput, DescribeStreamOutput, Empty, GetDataEndpointInput, GetDataEndpointOutput,
    ListStreamsInput, ListStreamsOutput, ListTagsForResourceInput, ListTagsForStreamInput,
    ListTagsOutput, RetentionOperation, StorageTier, StreamInfo, StreamStatus, TagResourceInput,
    TagStreamInput, UntagResourceInput, UntagStreamInput, UpdateDataRetentionInput,
    UpdateStreamInput,
};
use kinescope_api::{ApiError, ErrorKind, KmsKeyId, StreamArn, StreamRef, Tags};
use kinescope_archive::MAX_RETENTION_HOURS;

use crate::error::KvsError;
use crate::http::KvsJson;
use crate::secrets::new_version;
use crate::state::AppState;

type Result<T> = std::result::Result<Json<T>, KvsError>;
type S = State<std::sync::Arc<AppState>>;

const DEFAULT_LIST_STREAMS: u32 = 10_000;

pub async fn create_stream(
    State(app): S,
    KvsJson(input): KvsJson<CreateStreamInput>,
) -> Result<CreateStreamOutput> {
    let retention = input.data_retention_in_hours.unwrap_or(0);
    if i64::from(retention) > MAX_RETENTION_HOURS {
        return Err(ApiError::invalid_argument(format!(
            "DataRetentionInHours must be 0 to {MAX_RETENTION_HOURS}, got {retention}"
        ))
        .into());
    }
    let tags = input.tags.unwrap_or_default();
    let created = app.clock.now();
    let arn = StreamArn::new(
        &app.region,
        &app.account_id,
        &input.stream_name,
        created.as_millis(),
    );
    // Like KVS, a stream created without a key reports the AWS-managed key alias.
    let kms_key_id = input.kms_key_id.unwrap_or_else(|| {
        KmsKeyId::parse(&format!(
            "arn:aws:kms:{}:{}:alias/aws/kinesisvideo",
            app.region, app.account_id
        ))
        .expect("valid key id")
    });
    let info = StreamInfo {
        device_name: input.device_name,
        stream_name: input.stream_name,
        stream_arn: arn.clone(),
        media_type: input.media_type,
        kms_key_id: Some(kms_key_id),
        version: new_version(),
        status: StreamStatus::Active,
        creation_time: created,
        data_retention_in_hours: retention,
    };
    let tier = input
        .stream_storage_configuration
        .map_or(StorageTier::Hot, |c| c.default_storage_tier);
    app.catalog.create_stream(&info, tier, &tags).await?;
    tracing::info!(stream = %info.stream_name, retention, "stream created");
    Ok(Json(CreateStreamOutput { stream_arn: arn }))
}

pub async fn describe_stream(
    State(app): S,
    KvsJson(input): KvsJson<DescribeStreamInput>,
) -> Result<DescribeStreamOutput> {
    let r = StreamRef::from_fields(input.stream_name, input.stream_arn)?;
    let stream = app.catalog.stream(&r).await?;
    Ok(Json(DescribeStreamOutput {
        stream_info: stream.info,
    }))
}

pub async fn list_streams(
    State(app): S,
    KvsJson(input): KvsJson<ListStreamsInput>,
) -> Result<ListStreamsOutput> {
    let limit = input.max_results.unwrap_or(DEFAULT_LIST_STREAMS);
    let after = input
        .next_token
        .filter(|t| !t.is_empty())
        .map(|t| decode_token(&t))
        .transpose()?;
    let prefix = match input.stream_name_condition {
        Some(c) => {
            if c.comparison_value.is_some()
                && c.comparison_operator != Some(ComparisonOperator::BeginsWith)
            {
                return Err(
                    ApiError::invalid_argument("ComparisonOperator must be BEGINS_WITH").into(),
                );
            }
            c.comparison_value
        }
        None => None,
    };
    // One extra row tells whether another page follows.
    let mut rows = app
        .catalog
        .list_streams(
            prefix.as_ref().map(|p| p.as_str()),
            after.as_deref(),
            limit + 1,
        )
        .await?;
    let next_token = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| BASE64.encode(r.info.stream_name.as_str()))
    } else {
        None
    };
    Ok(Json(ListStreamsOutput {
        stream_info_list: rows.into_iter().map(|r| r.info).collect(),
        next_token,
    }))
}

pub async fn delete_stream(
    State(app): S,
    KvsJson(input): KvsJson<DeleteStreamInput>,
) -> Result<Empty> {
    let arn = StreamArn::parse(&input.stream_arn)?;
    app.archive
        .delete_stream(&arn, input.current_version.as_ref())
        .await?;
    tracing::info!(stream = %arn.stream_name(), "stream deleted");
    Ok(Json(Empty {}))
}

pub async fn update_stream(
    State(app): S,
    KvsJson(input): KvsJson<UpdateStreamInput>,
) -> Result<Empty> {
    let r = StreamRef::from_fields(input.stream_name, input.stream_arn)?;
    app.catalog
        .update_stream(
            &r,
            &input.current_version,
            &new_version(),
            input.device_name.as_ref(),
            input.media_type.as_ref(),
        )
        .await?;
    Ok(Json(Empty {}))
}

pub async fn update_data_retention(
    State(app): S,
    KvsJson(input): KvsJson<UpdateDataRetentionInput>,
) -> Result<Empty> {
    let r = StreamRef::from_fields(input.stream_name, input.stream_arn)?;
    let change = i64::from(input.data_retention_change_in_hours);
    let delta = match input.operation {
        RetentionOperation::IncreaseDataRetention => change,
        RetentionOperation::DecreaseDataRetention => -change,
    };
    app.catalog
        .change_retention(&r, &input.current_version, &new_version(), delta)
        .await?;
    Ok(Json(Empty {}))
}

pub async fn tag_stream(State(app): S, KvsJson(input): KvsJson<TagStreamInput>) -> Result<Empty> {
    let r = tagged_stream(input.stream_name, input.stream_arn)?;
    app.catalog.tag_stream(&r, &input.tags).await?;
    Ok(Json(Empty {}))
}

pub async fn untag_stream(
    State(app): S,
    KvsJson(input): KvsJson<UntagStreamInput>,
) -> Result<Empty> {
    let r = tagged_stream(input.stream_name, input.stream_arn)?;
    app.catalog.untag_stream(&r, &input.tag_key_list).await?;
    Ok(Json(Empty {}))
}

pub async fn list_tags_for_stream(
    State(app): S,
    KvsJson(input): KvsJson<ListTagsForStreamInput>,
) -> Result<ListTagsOutput> {
    let r = tagged_stream(input.stream_name, input.stream_arn)?;
    Ok(Json(ListTagsOutput {
        tags: app.catalog.stream_tags(&r).await?,
    }))
}

pub async fn tag_resource(
    State(app): S,
    KvsJson(input): KvsJson<TagResourceInput>,
) -> Result<Empty> {
    let r = resource(&input.resource_arn)?;
    let tags: Tags = input.tags.into_iter().map(|t| (t.key, t.value)).collect();
    app.catalog.tag_stream(&r, &tags).await?;
    Ok(Json(Empty {}))
}

pub async fn untag_resource(
    State(app): S,
    KvsJson(input): KvsJson<UntagResourceInput>,
) -> Result<Empty> {
    let r = resource(&input.resource_arn)?;
    app.catalog.untag_stream(&r, &input.tag_key_list).await?;
    Ok(Json(Empty {}))
}

pub async fn list_tags_for_resource(
    State(app): S,
    KvsJson(input): KvsJson<ListTagsForResourceInput>,
) -> Result<ListTagsOutput> {
    let r = resource(&input.resource_arn)?;
    Ok(Json(ListTagsOutput {
        tags: app.catalog.stream_tags(&r).await?,
    }))
}

pub async fn get_data_endpoint(
    State(app): S,
    KvsJson(input): KvsJson<GetDataEndpointInput>,
) -> Result<GetDataEndpointOutput> {
    let r = StreamRef::from_fields(input.stream_name, input.stream_arn)?;
    app.catalog.stream(&r).await?;
    // Every API group is served on this one listener, whatever the APIName.
    let _ = input.api_name;
    Ok(Json(GetDataEndpointOutput {
        data_endpoint: app.endpoint.clone(),
    }))
}

/// The stream of the tagging operations: a malformed ARN is `InvalidResourceFormatException`
/// there, as the model says.
fn tagged_stream(
    name: Option<kinescope_api::StreamName>,
    arn: Option<String>,
) -> std::result::Result<StreamRef, KvsError> {
    StreamRef::from_fields(name, arn.clone()).map_err(|e| match arn {
        Some(a) if StreamArn::parse(&a).is_err() => {
            KvsError::new(ErrorKind::InvalidResourceFormat, e.message)
        }
        _ => e.into(),
    })
}

/// The resource of the generic tagging operations. Kinescope's only resources are streams;
/// any other well-formed Kinesis Video ARN (e.g. a signaling channel) does not exist here.
fn resource(arn: &str) -> std::result::Result<StreamRef, KvsError> {
    match StreamArn::parse(arn) {
        Ok(a) => Ok(StreamRef::Arn(a)),
        Err(_) if arn.starts_with("arn:") && arn.contains(":kinesisvideo:") => Err(KvsError::new(
            ErrorKind::ResourceNotFound,
            format!("resource {arn} not found; Kinescope serves streams only"),
        )),
        Err(e) => Err(e.into()),
    }
}

fn decode_token(token: &str) -> std::result::Result<String, KvsError> {
    BASE64
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::invalid_argument("NextToken is not one this server issued").into())
}
