//! Request and response shapes of the stream control plane (`spec/aws-models/kinesisvideo.json`,
//! spec §2). Field names are the model's exact spelling; unknown fields are ignored, fields of the
//! wrong type or out of their pattern fail to parse (`InvalidArgumentException`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    ApiName, DeviceName, KmsKeyId, MediaType, StreamArn, StreamName, TagKey, TagValue, Tags,
    Timestamp, Version,
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

#[derive(Debug, Clone, Serialize)]
pub struct CreateStreamOutput {
    #[serde(rename = "StreamARN")]
    pub stream_arn: StreamArn,
}

/// The input of every operation that names one stream and nothing else
/// (DescribeStream, ListTagsForStream).
#[derive(Debug, Clone, Deserialize)]
pub struct StreamRefInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// ListTagsForStream only; all tags fit in one page (≤ 50).
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
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

#[derive(Debug, Clone, Deserialize)]
pub struct TagStreamInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "Tags")]
    pub tags: Tags,
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

#[derive(Debug, Clone, Deserialize)]
pub struct UntagResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(rename = "TagKeyList")]
    pub tag_key_list: Vec<TagKey>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListTagsForResourceInput {
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
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

#[derive(Debug, Clone, Serialize)]
pub struct GetDataEndpointOutput {
    #[serde(rename = "DataEndpoint")]
    pub data_endpoint: String,
}

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
