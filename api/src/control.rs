//! Request and response shapes of the stream control plane (`spec/aws-models/kinesisvideo.json`,
//! spec §2). Field names are the model's exact spelling; unknown fields are ignored. Each input
//! declares the model's constraints ([`Input::SHAPE`]), which requests are checked against
//! before they parse.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::validation::{
    Input, Member, Pattern, RESOURCE_ARN, STREAM_NAME, Shape, Str, TAG_KEY, TAG_KEY_LIST,
    TAG_VALUE, TAGS, VERSION,
};
use crate::{
    ApiName, DeviceName, ErrorKind, KmsKeyId, MediaType, StreamArn, StreamName, TagKey, TagValue,
    Tags, Timestamp, Version,
};

/// Stream status; Kinescope streams are `ACTIVE` from creation until deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Creating,
    Active,
    Updating,
    Deleting,
}

impl StreamStatus {
    /// The wire name, as stored by catalogs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "CREATING",
            Self::Active => "ACTIVE",
            Self::Updating => "UPDATING",
            Self::Deleting => "DELETING",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Creating, Self::Active, Self::Updating, Self::Deleting]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamInfo {
    #[serde(rename = "DeviceName", skip_serializing_if = "Option::is_none")]
    pub device_name: Option<DeviceName>,
    #[serde(rename = "StreamName")]
    pub stream_name: StreamName,
    #[serde(rename = "StreamARN")]
    pub stream_arn: StreamArn,
    #[serde(rename = "MediaType", skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    #[serde(rename = "KmsKeyId", skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<KmsKeyId>,
    #[serde(rename = "Version")]
    pub version: Version,
    #[serde(rename = "Status")]
    pub status: StreamStatus,
    #[serde(rename = "CreationTime")]
    pub creation_time: Timestamp,
    #[serde(rename = "DataRetentionInHours")]
    pub data_retention_in_hours: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StorageTier {
    Hot,
    Warm,
}

impl StorageTier {
    /// The wire name, as stored by catalogs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hot => "HOT",
            Self::Warm => "WARM",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Hot, Self::Warm]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamStorageConfiguration {
    #[serde(rename = "DefaultStorageTier")]
    pub default_storage_tier: StorageTier,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreateStreamInput {
    #[serde(rename = "DeviceName")]
    pub device_name: Option<DeviceName>,
    #[serde(rename = "StreamName")]
    pub stream_name: StreamName,
    #[serde(rename = "MediaType")]
    pub media_type: Option<MediaType>,
    #[serde(rename = "KmsKeyId")]
    pub kms_key_id: Option<KmsKeyId>,
    #[serde(rename = "DataRetentionInHours")]
    pub data_retention_in_hours: Option<u32>,
    #[serde(rename = "Tags")]
    pub tags: Option<Tags>,
    #[serde(rename = "StreamStorageConfiguration")]
    pub stream_storage_configuration: Option<StreamStorageConfiguration>,
}

impl Input for CreateStreamInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("DeviceName", &DEVICE_NAME),
        Member::required("StreamName", &STREAM_NAME),
        Member::optional("MediaType", &MEDIA_TYPE),
        Member::optional("KmsKeyId", &KMS_KEY_ID),
        Member::optional(
            "DataRetentionInHours",
            &Shape::Integer {
                min: Some(0),
                max: None,
            },
        ),
        Member::optional("Tags", &TAGS),
        Member::optional(
            "StreamStorageConfiguration",
            &Shape::Structure(&[Member::required(
                "DefaultStorageTier",
                &Shape::Enum(&["HOT", "WARM"]),
            )]),
        ),
    ]);
}

#[derive(Debug, Clone, Serialize)]
pub struct CreateStreamOutput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: StreamArn,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DescribeStreamInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
}

impl Input for DescribeStreamInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamName", &STREAM_NAME),
        Member::optional("StreamARN", &RESOURCE_ARN),
    ]);
}

#[derive(Debug, Clone, Serialize)]
pub struct DescribeStreamOutput {
    #[serde(rename = "StreamInfo")]
    pub stream_info: StreamInfo,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamNameCondition {
    #[serde(rename = "ComparisonOperator")]
    pub comparison_operator: Option<ComparisonOperator>,
    #[serde(rename = "ComparisonValue")]
    pub comparison_value: Option<StreamName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ComparisonOperator {
    #[serde(rename = "BEGINS_WITH")]
    BeginsWith,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListStreamsInput {
    #[serde(rename = "MaxResults")]
    pub max_results: Option<u32>,
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
    #[serde(rename = "StreamNameCondition")]
    pub stream_name_condition: Option<StreamNameCondition>,
}

impl Input for ListStreamsInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional(
            "MaxResults",
            &Shape::Integer {
                min: Some(1),
                max: Some(10_000),
            },
        ),
        Member::optional("NextToken", &NEXT_TOKEN),
        Member::optional(
            "StreamNameCondition",
            &Shape::Structure(&[
                Member::optional("ComparisonOperator", &Shape::Enum(&["BEGINS_WITH"])),
                Member::optional("ComparisonValue", &STREAM_NAME),
            ]),
        ),
    ]);
}

#[derive(Debug, Clone, Serialize)]
pub struct ListStreamsOutput {
    #[serde(rename = "StreamInfoList")]
    pub stream_info_list: Vec<StreamInfo>,
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeleteStreamInput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    #[serde(rename = "CurrentVersion")]
    pub current_version: Option<Version>,
}

impl Input for DeleteStreamInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::required("StreamARN", &RESOURCE_ARN),
        Member::optional("CurrentVersion", &VERSION),
    ]);
}

#[derive(Debug, Clone, Deserialize)]
pub struct UpdateStreamInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "CurrentVersion")]
    pub current_version: Version,
    #[serde(rename = "DeviceName")]
    pub device_name: Option<DeviceName>,
    #[serde(rename = "MediaType")]
    pub media_type: Option<MediaType>,
}

impl Input for UpdateStreamInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamName", &STREAM_NAME),
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::required("CurrentVersion", &VERSION),
        Member::optional("DeviceName", &DEVICE_NAME),
        Member::optional("MediaType", &MEDIA_TYPE),
    ]);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetentionOperation {
    IncreaseDataRetention,
    DecreaseDataRetention,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UpdateDataRetentionInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "CurrentVersion")]
    pub current_version: Version,
    #[serde(rename = "Operation")]
    pub operation: RetentionOperation,
    #[serde(rename = "DataRetentionChangeInHours")]
    pub data_retention_change_in_hours: u32,
}

impl Input for UpdateDataRetentionInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamName", &STREAM_NAME),
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::required("CurrentVersion", &VERSION),
        Member::required(
            "Operation",
            &Shape::Enum(&["INCREASE_DATA_RETENTION", "DECREASE_DATA_RETENTION"]),
        ),
        Member::required(
            "DataRetentionChangeInHours",
            &Shape::Integer {
                min: Some(1),
                max: None,
            },
        ),
    ]);
}

#[derive(Debug, Clone, Deserialize)]
pub struct TagStreamInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "Tags")]
    pub tags: Tags,
}

impl Input for TagStreamInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::optional("StreamName", &STREAM_NAME),
        Member::required("Tags", &TAGS),
    ]);

    fn violation_kind(path: &str) -> ErrorKind {
        arn_format(path)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct UntagStreamInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "TagKeyList")]
    pub tag_key_list: Vec<TagKey>,
}

impl Input for UntagStreamInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::optional("StreamName", &STREAM_NAME),
        Member::required("TagKeyList", &TAG_KEY_LIST),
    ]);

    fn violation_kind(path: &str) -> ErrorKind {
        arn_format(path)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListTagsForStreamInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// All tags fit in one page (≤ 50).
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
}

impl Input for ListTagsForStreamInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("NextToken", &NEXT_TOKEN),
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::optional("StreamName", &STREAM_NAME),
    ]);

    fn violation_kind(path: &str) -> ErrorKind {
        arn_format(path)
    }
}

/// The stream tagging operations answer a malformed `StreamARN` with
/// `InvalidResourceFormatException`, as their model says.
fn arn_format(path: &str) -> ErrorKind {
    if path == "streamARN" {
        ErrorKind::InvalidResourceFormat
    } else {
        ErrorKind::InvalidArgument
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ListTagsOutput {
    #[serde(rename = "Tags")]
    pub tags: BTreeMap<TagKey, TagValue>,
}

/// One `{Key, Value}` of the generic tagging operations (TagResource).
#[derive(Debug, Clone, Deserialize)]
pub struct Tag {
    #[serde(rename = "Key")]
    pub key: TagKey,
    #[serde(rename = "Value")]
    pub value: TagValue,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TagResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(rename = "Tags")]
    pub tags: Vec<Tag>,
}

impl Input for TagResourceInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::required("ResourceARN", &RESOURCE_ARN),
        Member::required(
            "Tags",
            &Shape::List {
                member: &Shape::Structure(&[
                    Member::required("Key", &TAG_KEY),
                    Member::required("Value", &TAG_VALUE),
                ]),
                min: 1,
                max: 50,
            },
        ),
    ]);
}

#[derive(Debug, Clone, Deserialize)]
pub struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(rename = "TagKeyList")]
    pub tag_key_list: Vec<TagKey>,
}

impl Input for UntagResourceInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::required("ResourceARN", &RESOURCE_ARN),
        Member::required("TagKeyList", &TAG_KEY_LIST),
    ]);
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
}

impl Input for ListTagsForResourceInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("NextToken", &NEXT_TOKEN),
        Member::required("ResourceARN", &RESOURCE_ARN),
    ]);
}

#[derive(Debug, Clone, Deserialize)]
pub struct GetDataEndpointInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "APIName")]
    pub api_name: ApiName,
}

impl Input for GetDataEndpointInput {
    const SHAPE: Shape = Shape::Structure(&[
        Member::optional("StreamName", &STREAM_NAME),
        Member::optional("StreamARN", &RESOURCE_ARN),
        Member::required(
            "APIName",
            &Shape::Enum(&[
                "PUT_MEDIA",
                "GET_MEDIA",
                "LIST_FRAGMENTS",
                "GET_MEDIA_FOR_FRAGMENT_LIST",
                "GET_HLS_STREAMING_SESSION_URL",
                "GET_DASH_STREAMING_SESSION_URL",
                "GET_CLIP",
                "GET_IMAGES",
            ]),
        ),
    ]);
}

#[derive(Debug, Clone, Serialize)]
pub struct GetDataEndpointOutput {
    #[serde(rename = "DataEndpoint")]
    pub data_endpoint: String,
}

const DEVICE_NAME: Shape = Shape::String(Str {
    min: 1,
    max: 128,
    pattern: Some(Pattern {
        text: "[a-zA-Z0-9_.-]+",
        matches: crate::names::is_name,
    }),
});

const MEDIA_TYPE: Shape = Shape::String(Str {
    min: 1,
    max: 128,
    pattern: Some(Pattern {
        text: "[\\w\\-\\.\\+]+/[\\w\\-\\.\\+]+(,[\\w\\-\\.\\+]+/[\\w\\-\\.\\+]+)*",
        matches: crate::names::is_media_type,
    }),
});

const KMS_KEY_ID: Shape = Shape::String(Str {
    min: 1,
    max: 2048,
    pattern: Some(Pattern {
        text: ".+",
        matches: |s| !s.is_empty() && !s.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']),
    }),
});

/// The control plane's `NextToken`.
const NEXT_TOKEN: Shape = Shape::String(Str {
    min: 0,
    max: 1024,
    pattern: Some(Pattern {
        text: "[a-zA-Z0-9+/=]*",
        matches: |s| {
            s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        },
    }),
});

/// The empty output `{}` of the mutating operations.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_stream_parses_what_boto3_sends() {
        let body = br#"{"StreamName": "test-stream", "DataRetentionInHours": 2, "MediaType": "video/h264", "Tags": {"a": "b"}, "Extra": [1]}"#;
        let input: CreateStreamInput = serde_json::from_slice(body).unwrap();
        assert_eq!(input.stream_name.as_str(), "test-stream");
        assert_eq!(input.data_retention_in_hours, Some(2));
        assert_eq!(input.tags.unwrap().len(), 1);
    }

    #[test]
    fn wrong_types_and_patterns_are_refused() {
        for body in [
            r#"{"StreamName": 5}"#,
            r#"{"StreamName": "a b"}"#,
            r#"{"StreamName": "s", "DataRetentionInHours": "2"}"#,
            r#"{"StreamName": "s", "DataRetentionInHours": -1}"#,
            r#"{"StreamName": "s", "DataRetentionInHours": 1.5}"#,
            r#"{"StreamName": "s", "Tags": ["a"]}"#,
            r#"{}"#,
        ] {
            assert!(
                serde_json::from_str::<CreateStreamInput>(body).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn violations_in_kvs_words() {
        use crate::ErrorKind;
        use crate::validation::parse;
        let e = parse::<DeleteStreamInput>(b"{}").unwrap_err();
        assert_eq!(
            e.message,
            "1 validation error detected: Value null at 'streamARN' failed to satisfy constraint: \
             Member must not be null"
        );
        let long = "a".repeat(257);
        let e = parse::<CreateStreamInput>(
            format!(r#"{{"StreamName": "{long}", "DataRetentionInHours": -1}}"#).as_bytes(),
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            format!(
                "2 validation errors detected: Value '{long}' at 'streamName' failed to satisfy \
                 constraint: Member must have length less than or equal to 256; Value '-1' at \
                 'dataRetentionInHours' failed to satisfy constraint: Member must have value \
                 greater than or equal to 0"
            )
        );
        let e = parse::<GetDataEndpointInput>(br#"{"StreamName": "s", "APIName": "NOPE"}"#)
            .unwrap_err();
        assert!(
            e.message.ends_with(
                "at 'aPIName' failed to satisfy constraint: Member must satisfy enum value set: \
                 [PUT_MEDIA, GET_MEDIA, LIST_FRAGMENTS, GET_MEDIA_FOR_FRAGMENT_LIST, \
                 GET_HLS_STREAMING_SESSION_URL, GET_DASH_STREAMING_SESSION_URL, GET_CLIP, GET_IMAGES]"
            ),
            "{}",
            e.message
        );
        let e = parse::<TagResourceInput>(
            br#"{"ResourceARN": "arn:aws:kinesisvideo:r:1:stream/s/1", "Tags": [{"Key": "k"}]}"#,
        )
        .unwrap_err();
        assert!(
            e.message
                .contains("Value null at 'tags.1.member.value' failed to satisfy constraint"),
            "{}",
            e.message
        );
        // A malformed ARN is InvalidResourceFormatException on the stream tagging operations.
        let bad_arn = br#"{"StreamARN": "arn:aws:kinesisvideo:us-west-2:1:stream/x"}"#;
        let e = parse::<ListTagsForStreamInput>(bad_arn).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidResourceFormat);
        let e = parse::<DescribeStreamInput>(bad_arn).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        // Every enum value of the model parses.
        for op in ["INCREASE_DATA_RETENTION", "DECREASE_DATA_RETENTION"] {
            let body = format!(
                r#"{{"StreamName":"s","CurrentVersion":"v1","Operation":"{op}","DataRetentionChangeInHours":1}}"#
            );
            assert!(parse::<UpdateDataRetentionInput>(body.as_bytes()).is_ok());
        }
        for tier in ["HOT", "WARM"] {
            let body = format!(
                r#"{{"StreamName":"s","StreamStorageConfiguration":{{"DefaultStorageTier":"{tier}"}}}}"#
            );
            assert!(parse::<CreateStreamInput>(body.as_bytes()).is_ok());
        }
    }

    #[test]
    fn stream_info_uses_model_names() {
        let name = StreamName::parse("s").unwrap();
        let info = StreamInfo {
            device_name: None,
            stream_arn: StreamArn::new("us-west-2", "000000000000", &name, 1000),
            stream_name: name,
            media_type: Some(MediaType::parse("video/h264").unwrap()),
            kms_key_id: None,
            version: Version::parse("abc").unwrap(),
            status: StreamStatus::Active,
            creation_time: Timestamp::from_millis(1_700_000_000_500),
            data_retention_in_hours: 2,
        };
        let v = serde_json::to_value(&info).unwrap();
        assert_eq!(
            v["StreamARN"],
            "arn:aws:kinesisvideo:us-west-2:000000000000:stream/s/1000"
        );
        assert_eq!(v["Status"], "ACTIVE");
        assert_eq!(v["CreationTime"], 1_700_000_000.5);
        assert_eq!(v["DataRetentionInHours"], 2);
        assert!(v.get("DeviceName").is_none());
    }

    #[test]
    fn enum_names_match_serde() {
        for s in [
            StreamStatus::Creating,
            StreamStatus::Active,
            StreamStatus::Updating,
            StreamStatus::Deleting,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(StreamStatus::parse(s.as_str()), Some(s));
        }
        for t in [StorageTier::Hot, StorageTier::Warm] {
            assert_eq!(serde_json::to_value(t).unwrap(), t.as_str());
            assert_eq!(StorageTier::parse(t.as_str()), Some(t));
        }
    }
}
