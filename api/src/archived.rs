//! Request and response shapes of the archived-media APIs that read fragments
//! (`spec/aws-models/kinesis-video-archived-media.json`, spec §5.1–5.2).

use serde::{Deserialize, Serialize};

use crate::{FragmentNumber, StreamName, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum FragmentSelectorType {
    #[serde(rename = "PRODUCER_TIMESTAMP")]
    ProducerTimestamp,
    #[serde(rename = "SERVER_TIMESTAMP")]
    ServerTimestamp,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TimestampRange {
    #[serde(rename = "StartTimestamp")]
    pub start_timestamp: Timestamp,
    #[serde(rename = "EndTimestamp")]
    pub end_timestamp: Timestamp,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FragmentSelector {
    #[serde(rename = "FragmentSelectorType")]
    pub fragment_selector_type: FragmentSelectorType,
    #[serde(rename = "TimestampRange")]
    pub timestamp_range: TimestampRange,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListFragmentsInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "MaxResults")]
    pub max_results: Option<u32>,
    #[serde(rename = "NextToken")]
    pub next_token: Option<String>,
    #[serde(rename = "FragmentSelector")]
    pub fragment_selector: Option<FragmentSelector>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fragment {
    #[serde(rename = "FragmentNumber")]
    pub fragment_number: FragmentNumber,
    #[serde(rename = "FragmentSizeInBytes")]
    pub fragment_size_in_bytes: u64,
    #[serde(rename = "ProducerTimestamp")]
    pub producer_timestamp: Timestamp,
    #[serde(rename = "ServerTimestamp")]
    pub server_timestamp: Timestamp,
    #[serde(rename = "FragmentLengthInMilliseconds")]
    pub fragment_length_in_milliseconds: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListFragmentsOutput {
    #[serde(rename = "Fragments")]
    pub fragments: Vec<Fragment>,
    #[serde(rename = "NextToken", skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GetMediaForFragmentListInput {
    #[serde(rename = "StreamName")]
    pub stream_name: Option<StreamName>,
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    #[serde(rename = "Fragments")]
    pub fragments: Vec<FragmentNumber>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_fragments_shapes() {
        let input: ListFragmentsInput = serde_json::from_str(
            r#"{"StreamName":"s","MaxResults":10,"FragmentSelector":{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":1.5,"EndTimestamp":2}}}"#,
        )
        .unwrap();
        let sel = input.fragment_selector.unwrap();
        assert_eq!(
            sel.fragment_selector_type,
            FragmentSelectorType::ServerTimestamp
        );
        assert_eq!(sel.timestamp_range.start_timestamp.as_millis(), 1500);
        let out = ListFragmentsOutput {
            fragments: vec![Fragment {
                fragment_number: FragmentNumber::parse("0001").unwrap(),
                fragment_size_in_bytes: 5,
                producer_timestamp: Timestamp::from_millis(1_511_852_108_513),
                server_timestamp: Timestamp::from_millis(1_511_852_109_126),
                fragment_length_in_milliseconds: 2000,
            }],
            next_token: None,
        };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"Fragments":[{"FragmentNumber":"0001","FragmentSizeInBytes":5,"ProducerTimestamp":1511852108.513,"ServerTimestamp":1511852109.126,"FragmentLengthInMilliseconds":2000}]}"#
        );
    }
}
