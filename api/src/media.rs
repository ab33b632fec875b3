//! GetMedia's request shape (`spec/aws-models/kinesis-video-media.json`, spec §4).

use serde::Deserialize;

use crate::{FragmentNumber, StreamName, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartSelectorType {
    FragmentNumber,
    ServerTimestamp,
    ProducerTimestamp,
    Now,
    Earliest,
    ContinuationToken,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StartSelector {
    #[serde(rename = "StartSelectorType")]
    pub start_selector_type: StartSelectorType,
    #[serde(rename = "AfterFragmentNumber")]
    pub after_fragment_number: Option<FragmentNumber>,
    #[serde(rename = "StartTimestamp")]
    pub start_timestamp: Option<Timestamp>,
    /// The fragment number of the last fragment a reader received (Kinescope's tokens are
    /// fragment numbers).
    #[serde(rename = "ContinuationToken")]
    pub continuation_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GetMediaInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "StartSelector")]
    pub start_selector: StartSelector,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_boto3_sends() {
        let i: GetMediaInput = serde_json::from_str(
            r#"{"StreamName": "test-stream", "StartSelector": {"StartSelectorType": "NOW"}}"#,
        )
        .unwrap();
        assert_eq!(i.start_selector.start_selector_type, StartSelectorType::Now);
        let i: GetMediaInput = serde_json::from_str(r#"{"StreamName":"s","StartSelector":{"StartSelectorType":"CONTINUATION_TOKEN","ContinuationToken":"0123"}}"#).unwrap();
        assert_eq!(i.start_selector.continuation_token.as_deref(), Some("0123"));
        assert!(serde_json::from_str::<GetMediaInput>(r#"{"StreamName":"s"}"#).is_err());
    }
}
