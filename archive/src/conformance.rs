//! The catalog conformance suite: the behaviour every [`Catalog`] backend must show. Backends
//! call [`run`] on a fresh, empty catalog from their own tests.

use kinescope_api::control::{StorageTier, StreamInfo, StreamStatus};
use kinescope_api::{
    DeviceName, FragmentNumber, MediaType, StreamArn, StreamName, StreamRef, TagKey, TagValue,
    Tags, Timestamp, Version,
};

use kinescope_media::mkv::MetadataTag;

use crate::{Catalog, CatalogError, FragmentRow, LogBacklog, Relocation, StreamId, TimestampKind};

pub(crate) fn name(s: &str) -> StreamName {
    StreamName::parse(s).unwrap()
}

fn version(s: &str) -> Version {
    Version::parse(s).unwrap()
}

/// A stream's record as a client would create it (also used by other tests of this crate).
pub(crate) fn info(n: &str, created: i64) -> StreamInfo {
    let stream_name = name(n);
    StreamInfo {
        device_name: Some(DeviceName::parse("dev1").unwrap()),
        stream_arn: StreamArn::new("us-west-2", "000000000000", &stream_name, created),
        stream_name,
        media_type: Some(MediaType::parse("video/h264").unwrap()),
        kms_key_id: None,
        version: version("v1"),
        status: StreamStatus::Active,
        creation_time: Timestamp::from_millis(created),
        data_retention_in_hours: 2,
    }
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (TagKey::parse(k).unwrap(), TagValue::parse(v).unwrap()))
        .collect()
}

/// Runs every check against an empty catalog, leaving some streams behind.
pub async fn run(c: &dyn Catalog) {
    c.ping().await.unwrap();
    create_and_describe(c).await;
    list_with_prefix_and_paging(c).await;
    versions_guard_updates(c).await;
    retention_stays_in_range(c).await;
    tags_merge_and_stay_within_limit(c).await;
    delete_and_recreate(c).await;
    concurrent_updates_of_one_version_let_one_win(c).await;
    concurrent_tagging_stays_within_limit(c).await;
    fragments_are_recorded_in_number_order(c).await;
    fragments_move_from_the_log_to_objects(c).await;
    fragments_expire_oldest_first(c).await;
}

async fn fragments_expire_oldest_first(c: &dyn Catalog) {
    let mut ids = Vec::new();
    for n in ["expire-a", "expire-b"] {
        let s = c
            .create_stream(&info(n, 1), StorageTier::Hot, &Tags::new())
            .await
            .unwrap();
        ids.push((s.id, c.add_track_header(s.id, b"h").await.unwrap()));
    }
    let row = |n: u64, (stream, header_id): (StreamId, i64), key: &str| FragmentRow {
        stream,
        number: FragmentNumber::parse(&format!("{:020}", 8_000_000 + n)).unwrap(),
        producer_timestamp: Timestamp::from_millis(1000 * n as i64),
        server_timestamp: Timestamp::from_millis(1000 * n as i64),
        duration_ms: 1000,
        size: 5,
        object_key: key.into(),
        offset: 0,
        length: 5,
        header_id,
        metadata: Vec::new(),
    };
    for n in 1..=5 {
        let key = if n <= 3 { "obj/a" } else { "obj/b" };
        c.add_fragment(&row(n, ids[0], key)).await.unwrap();
    }
    c.add_fragment(&row(6, ids[1], "obj/c")).await.unwrap();
    let before = Timestamp::from_millis(3500);
    assert_eq!(
        c.expire_fragments(ids[0].0, before, 2).await.unwrap(),
        ["obj/a", "obj/a"],
        "oldest first, at most the limit"
    );
    assert_eq!(
        c.fragments_after(ids[0].0, None, 10, false)
            .await
            .unwrap()
            .len(),
        3
    );
    let keys = ["obj/a", "obj/b", "obj/c", "obj/none"].map(String::from);
    let mut used = c.keys_in_use(&keys).await.unwrap();
    used.sort();
    assert_eq!(used, ["obj/a", "obj/b", "obj/c"]);
    assert_eq!(
        c.expire_fragments(ids[0].0, before, 10).await.unwrap(),
        ["obj/a"]
    );
    assert!(
        c.expire_fragments(ids[0].0, before, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let mut used = c.keys_in_use(&keys).await.unwrap();
    used.sort();
    assert_eq!(
        used,
        ["obj/b", "obj/c"],
        "obj/a is free; the other stream untouched"
    );
    let many: Vec<String> = (0..1200).map(|i| format!("obj/{i}")).chain(keys).collect();
    assert_eq!(c.keys_in_use(&many).await.unwrap().len(), 2, "in batches");

    // A storage budget: the oldest fragments of any stream go first. (Last in the suite: it
    // empties the catalog of fragments.)
    let total = c.stored_bytes().await.unwrap();
    assert!(total >= 15, "{total}");
    let gone = c.expire_oldest(2).await.unwrap();
    assert_eq!(gone.len(), 2);
    let freed: u64 = gone.iter().map(|(_, n)| n).sum();
    assert_eq!(c.stored_bytes().await.unwrap(), total - freed);
    c.add_fragment(&row(10_000_000, ids[1], "obj/newest"))
        .await
        .unwrap();
    // One at a time, the newest goes last.
    loop {
        let gone = c.expire_oldest(1).await.unwrap();
        assert_eq!(gone.len(), 1);
        if gone[0].0 == "obj/newest" {
            break;
        }
    }
    assert_eq!(c.stored_bytes().await.unwrap(), 0);
    assert!(c.expire_oldest(10).await.unwrap().is_empty());
}

async fn fragments_move_from_the_log_to_objects(c: &dyn Catalog) {
    let mut streams = Vec::new();
    for n in ["pack-a", "pack-b"] {
        let s = c
            .create_stream(&info(n, 1), StorageTier::Hot, &Tags::new())
            .await
            .unwrap();
        streams.push((s.id, c.add_track_header(s.id, b"h").await.unwrap()));
    }
    let row = |n: u64, (stream, header_id): (StreamId, i64), key: &str| FragmentRow {
        stream,
        number: FragmentNumber::parse(&format!("{:020}", 9_000_000 + n)).unwrap(),
        producer_timestamp: Timestamp::from_millis(n as i64),
        server_timestamp: Timestamp::from_millis(n as i64),
        duration_ms: 1,
        size: 5,
        object_key: key.into(),
        offset: 100 * n,
        length: 5,
        header_id,
        metadata: Vec::new(),
    };
    let (a, b) = (streams[0], streams[1]);
    // Interleaved in the log, as concurrent uploads are; one fragment already in an object.
    let rows = [
        row(1, a, "log/00000000000000000001"),
        row(2, b, "log/00000000000000000001"),
        row(3, a, "log/00000000000000000002"),
        row(4, b, "log/00000000000000000002"),
        row(5, a, "streams/x/0-0"),
    ];
    for r in &rows {
        c.add_fragment(r).await.unwrap();
    }
    assert_eq!(
        c.fragments_in_log(a.0, 100).await.unwrap(),
        vec![rows[0].clone(), rows[2].clone()],
        "by number; not the packed one"
    );
    assert_eq!(
        c.fragments_in_log(b.0, 100).await.unwrap(),
        vec![rows[1].clone(), rows[3].clone()]
    );
    assert_eq!(c.fragments_in_log(a.0, 1).await.unwrap().len(), 1);
    let backlog: Vec<_> = c
        .log_backlog()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.stream == a.0 || l.stream == b.0)
        .collect();
    let sum = |rs: [&FragmentRow; 2]| LogBacklog {
        stream: rs[0].stream,
        duration_ms: rs.iter().map(|r| r.duration_ms).sum(),
        bytes: rs.iter().map(|r| r.length).sum(),
        newest: rs.iter().map(|r| r.server_timestamp).max().unwrap(),
    };
    assert_eq!(
        backlog,
        [sum([&rows[0], &rows[2]]), sum([&rows[1], &rows[3]])],
        "per stream, the packed fragment left out"
    );
    let mut keys = c.log_keys_in_use().await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        ["log/00000000000000000001", "log/00000000000000000002"]
    );
    // Stream a's fragments move into one object; a move whose old place is stale is skipped.
    let moved = c
        .relocate_fragments(&[
            Relocation {
                number: rows[0].number.clone(),
                from_key: rows[0].object_key.clone(),
                to_key: "streams/a/1-3".into(),
                to_offset: 0,
            },
            Relocation {
                number: rows[2].number.clone(),
                from_key: rows[2].object_key.clone(),
                to_key: "streams/a/1-3".into(),
                to_offset: 5,
            },
            Relocation {
                number: rows[1].number.clone(),
                from_key: "log/00000000000000000009".into(),
                to_key: "streams/b/2-2".into(),
                to_offset: 0,
            },
        ])
        .await
        .unwrap();
    assert_eq!(moved, 2);
    let now = c
        .fragments_by_number(a.0, &[rows[0].number.clone(), rows[2].number.clone()])
        .await
        .unwrap();
    assert!(
        now.iter().all(|r| r.object_key == "streams/a/1-3"),
        "{now:?}"
    );
    assert_eq!(now.len(), 2);
    assert!(now.iter().any(|r| r.offset == 5 && r.length == 5));
    assert!(c.fragments_in_log(a.0, 100).await.unwrap().is_empty());
    assert_eq!(
        c.fragments_in_log(b.0, 100).await.unwrap(),
        vec![rows[1].clone(), rows[3].clone()]
    );
    // Removing a deleted stream frees its part of the log.
    let arn = c
        .stream(&StreamRef::Name(name("pack-b")))
        .await
        .unwrap()
        .info
        .stream_arn;
    c.delete_stream(&arn, None).await.unwrap();
    c.remove_stream(b.0).await.unwrap();
    assert!(c.log_keys_in_use().await.unwrap().is_empty());
}

async fn create_and_describe(c: &dyn Catalog) {
    let s = info("alpha", 1000);
    c.create_stream(&s, StorageTier::Hot, &tags(&[("k", "v")]))
        .await
        .unwrap();
    let by_name = c.stream(&StreamRef::Name(name("alpha"))).await.unwrap();
    assert_eq!(by_name.info, s);
    assert_eq!(by_name.storage_tier, StorageTier::Hot);
    let by_arn = c
        .stream(&StreamRef::Arn(s.stream_arn.clone()))
        .await
        .unwrap();
    assert_eq!(by_arn, by_name);
    let err = c
        .create_stream(&info("alpha", 2000), StorageTier::Hot, &Tags::new())
        .await;
    assert!(matches!(err, Err(CatalogError::StreamExists(_))), "{err:?}");
    let missing = c.stream(&StreamRef::Name(name("nope"))).await;
    assert!(
        matches!(missing, Err(CatalogError::StreamNotFound(_))),
        "{missing:?}"
    );
    // An ARN with the right name but another creation time is another stream.
    let stale = StreamArn::new("us-west-2", "000000000000", &name("alpha"), 999);
    assert!(matches!(
        c.stream(&StreamRef::Arn(stale)).await,
        Err(CatalogError::StreamNotFound(_))
    ));
    assert_eq!(
        c.stream_tags(&StreamRef::Name(name("alpha")))
            .await
            .unwrap(),
        tags(&[("k", "v")])
    );
}

async fn list_with_prefix_and_paging(c: &dyn Catalog) {
    for n in ["cam_b", "cam.a", "cam-c", "camX", "other"] {
        c.create_stream(&info(n, 5000), StorageTier::Warm, &Tags::new())
            .await
            .unwrap();
    }
    let names = |v: Vec<crate::StreamRecord>| {
        v.into_iter()
            .map(|r| r.info.stream_name.to_string())
            .collect::<Vec<_>>()
    };
    let all = names(c.list_streams(None, None, 100).await.unwrap());
    assert_eq!(all, ["alpha", "cam-c", "cam.a", "camX", "cam_b", "other"]);
    // `_` and `.` are literal characters in a prefix, not wildcards.
    assert_eq!(
        names(c.list_streams(Some("cam_"), None, 100).await.unwrap()),
        ["cam_b"]
    );
    assert_eq!(
        names(c.list_streams(Some("cam"), None, 2).await.unwrap()),
        ["cam-c", "cam.a"]
    );
    assert_eq!(
        names(
            c.list_streams(Some("cam"), Some("cam.a"), 10)
                .await
                .unwrap()
        ),
        ["camX", "cam_b"]
    );
    assert!(
        c.list_streams(Some("zzz"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn versions_guard_updates(c: &dyn Catalog) {
    let r = StreamRef::Name(name("alpha"));
    let dev = DeviceName::parse("dev2").unwrap();
    c.update_stream(&r, &version("v1"), &version("v2"), Some(&dev), None)
        .await
        .unwrap();
    let s = c.stream(&r).await.unwrap().info;
    assert_eq!(s.version, version("v2"));
    assert_eq!(s.device_name, Some(dev));
    assert_eq!(s.media_type, Some(MediaType::parse("video/h264").unwrap()));
    let stale = c
        .update_stream(&r, &version("v1"), &version("v3"), None, None)
        .await;
    assert!(
        matches!(stale, Err(CatalogError::VersionMismatch { .. })),
        "{stale:?}"
    );
    let missing = c
        .update_stream(
            &StreamRef::Name(name("nope")),
            &version("v1"),
            &version("v3"),
            None,
            None,
        )
        .await;
    assert!(
        matches!(missing, Err(CatalogError::StreamNotFound(_))),
        "{missing:?}"
    );
}

async fn retention_stays_in_range(c: &dyn Catalog) {
    let r = StreamRef::Name(name("alpha"));
    c.change_retention(&r, &version("v2"), &version("v3"), 10)
        .await
        .unwrap();
    assert_eq!(c.stream(&r).await.unwrap().info.data_retention_in_hours, 12);
    let below = c
        .change_retention(&r, &version("v3"), &version("v4"), -13)
        .await;
    assert!(
        matches!(
            below,
            Err(CatalogError::RetentionOutOfRange { hours: -1, .. })
        ),
        "{below:?}"
    );
    let above = c
        .change_retention(&r, &version("v3"), &version("v4"), 87_589)
        .await;
    assert!(
        matches!(above, Err(CatalogError::RetentionOutOfRange { .. })),
        "{above:?}"
    );
    let stale = c
        .change_retention(&r, &version("v2"), &version("v4"), 1)
        .await;
    assert!(
        matches!(stale, Err(CatalogError::VersionMismatch { .. })),
        "{stale:?}"
    );
    c.change_retention(&r, &version("v3"), &version("v4"), -12)
        .await
        .unwrap();
    let s = c.stream(&r).await.unwrap().info;
    assert_eq!((s.data_retention_in_hours, s.version), (0, version("v4")));
}

async fn tags_merge_and_stay_within_limit(c: &dyn Catalog) {
    let r = StreamRef::Name(name("cam_b"));
    c.tag_stream(&r, &tags(&[("a", "1"), ("b", "2")]))
        .await
        .unwrap();
    c.tag_stream(&r, &tags(&[("b", "3")])).await.unwrap();
    assert_eq!(
        c.stream_tags(&r).await.unwrap(),
        tags(&[("a", "1"), ("b", "3")])
    );
    let keys: Vec<String> = (0..49).map(|i| format!("k{i}")).collect();
    let many: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "x")).collect();
    let err = c.tag_stream(&r, &tags(&many)).await;
    assert!(
        matches!(err, Err(CatalogError::TooManyTags { count: 51, .. })),
        "{err:?}"
    );
    // The refused call changed nothing.
    assert_eq!(c.stream_tags(&r).await.unwrap().len(), 2);
    c.tag_stream(&r, &tags(&many[..48])).await.unwrap();
    assert_eq!(c.stream_tags(&r).await.unwrap().len(), 50);
    c.untag_stream(
        &r,
        &[
            TagKey::parse("a").unwrap(),
            TagKey::parse("absent").unwrap(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(c.stream_tags(&r).await.unwrap().len(), 49);
    let missing = c
        .tag_stream(&StreamRef::Name(name("nope")), &tags(&[("a", "1")]))
        .await;
    assert!(
        matches!(missing, Err(CatalogError::StreamNotFound(_))),
        "{missing:?}"
    );
}

async fn delete_and_recreate(c: &dyn Catalog) {
    let r = StreamRef::Name(name("cam_b"));
    let arn = c.stream(&r).await.unwrap().info.stream_arn;
    let stale = c.delete_stream(&arn, Some(&version("nope"))).await;
    assert!(
        matches!(stale, Err(CatalogError::VersionMismatch { .. })),
        "{stale:?}"
    );
    c.delete_stream(&arn, Some(&version("v1"))).await.unwrap();
    assert!(matches!(
        c.stream(&r).await,
        Err(CatalogError::StreamNotFound(_))
    ));
    assert!(matches!(
        c.delete_stream(&arn, None).await,
        Err(CatalogError::StreamNotFound(_))
    ));
    // The name is free again; the new stream starts without the old one's tags.
    c.create_stream(&info("cam_b", 9000), StorageTier::Hot, &Tags::new())
        .await
        .unwrap();
    assert!(c.stream_tags(&r).await.unwrap().is_empty());
    assert!(matches!(
        c.stream(&StreamRef::Arn(arn)).await,
        Err(CatalogError::StreamNotFound(_))
    ));
}

async fn concurrent_updates_of_one_version_let_one_win(c: &dyn Catalog) {
    c.create_stream(&info("race", 1), StorageTier::Hot, &Tags::new())
        .await
        .unwrap();
    let r = StreamRef::Name(name("race"));
    let v1 = version("v1");
    // 20 UpdateStream calls and one UpdateDataRetention, all with CurrentVersion v1.
    let targets: Vec<Version> = (0..21).map(|i| version(&format!("n{i}"))).collect();
    let calls = targets.iter().enumerate().map(|(i, to)| {
        let (r, v1) = (&r, &v1);
        Box::pin(async move {
            if i == 20 {
                c.change_retention(r, v1, to, 1).await
            } else {
                c.update_stream(r, v1, to, None, None).await
            }
        }) as std::pin::Pin<Box<dyn Future<Output = Result<(), CatalogError>> + Send + '_>>
    });
    let results = futures::future::join_all(calls).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for loser in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(loser, CatalogError::VersionMismatch { .. }),
            "{loser:?}"
        );
    }
    let now = c.stream(&r).await.unwrap().info.version;
    let winner = results.iter().position(Result::is_ok).unwrap();
    assert_eq!(now, targets[winner]);
}

async fn concurrent_tagging_stays_within_limit(c: &dyn Catalog) {
    c.create_stream(&info("tagrace", 1), StorageTier::Hot, &Tags::new())
        .await
        .unwrap();
    let r = StreamRef::Name(name("tagrace"));
    // Ten calls of 10 new keys each: only five fit under the limit of 50.
    let sets: Vec<Tags> = (0..10)
        .map(|i| {
            let keys: Vec<String> = (0..10).map(|j| format!("k{i}-{j}")).collect();
            let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "x")).collect();
            tags(&pairs)
        })
        .collect();
    let results = futures::future::join_all(sets.iter().map(|t| c.tag_stream(&r, t))).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 5, "{results:?}");
    for loser in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(loser, CatalogError::TooManyTags { .. }),
            "{loser:?}"
        );
    }
    assert_eq!(c.stream_tags(&r).await.unwrap().len(), 50);
}

async fn fragments_are_recorded_in_number_order(c: &dyn Catalog) {
    let s = c
        .create_stream(&info("frag", 1), StorageTier::Hot, &Tags::new())
        .await
        .unwrap();
    let other = c
        .create_stream(&info("frag2", 1), StorageTier::Hot, &Tags::new())
        .await
        .unwrap();
    assert_ne!(s.id, other.id);
    assert_eq!(
        c.stream(&StreamRef::Name(name("frag"))).await.unwrap().id,
        s.id
    );
    let header = c.add_track_header(s.id, b"\x1a\x45\xdf\xa3").await.unwrap();
    let row = |n: u64, stream| FragmentRow {
        stream,
        number: FragmentNumber::parse(&format!("{n:020}")).unwrap(),
        producer_timestamp: Timestamp::from_millis(1000 * n as i64),
        server_timestamp: Timestamp::from_millis(2000 * n as i64),
        duration_ms: 1000,
        size: 10 * n,
        object_key: format!("{}/{n}", stream.0),
        offset: 0,
        length: 10 * n,
        header_id: header,
        // The second fragment carries producer metadata, which every query returns with it.
        metadata: if n == 2 {
            vec![
                MetadataTag {
                    name: "TEST_KEY_1".into(),
                    value: "TEST_VALUE_1".into(),
                },
                MetadataTag {
                    name: "Ümlaut \"quoted\"".into(),
                    value: String::new(),
                },
            ]
        } else {
            Vec::new()
        },
    };
    for n in [3, 1, 2] {
        c.add_fragment(&row(n, s.id)).await.unwrap();
    }
    let listed = c
        .fragments_after(s.id, None, u32::MAX, false)
        .await
        .unwrap();
    assert_eq!(listed, vec![row(1, s.id), row(2, s.id), row(3, s.id)]);
    // A live window: the newest in range, oldest first; and positions within a session.
    let (t, ms) = (TimestampKind::Server, Timestamp::from_millis);
    assert_eq!(
        c.latest_fragments(s.id, t, ms(0), ms(i64::MAX), 2)
            .await
            .unwrap(),
        vec![row(2, s.id), row(3, s.id)]
    );
    assert_eq!(
        c.latest_fragments(s.id, TimestampKind::Producer, ms(1000), ms(2000), 5)
            .await
            .unwrap(),
        vec![row(1, s.id), row(2, s.id)]
    );
    let r3 = row(3, s.id);
    assert_eq!(
        c.count_fragments(s.id, t, ms(2000), (r3.server_timestamp, &r3.number))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        c.count_fragments(s.id, t, ms(4000), (r3.server_timestamp, &r3.number))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        c.count_fragments(other.id, t, ms(0), (r3.server_timestamp, &r3.number))
            .await
            .unwrap(),
        0
    );
    assert!(
        c.fragments_after(other.id, None, u32::MAX, false)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        c.latest_producer_timestamp(s.id).await.unwrap(),
        Some(Timestamp::from_millis(3000))
    );
    assert_eq!(c.latest_producer_timestamp(other.id).await.unwrap(), None);
    // Range queries: inclusive bounds, timestamp order, a cursor that excludes what came before.
    let t = Timestamp::from_millis;
    let by_producer = c
        .list_fragments(s.id, TimestampKind::Producer, t(1000), t(2000), None, 10)
        .await
        .unwrap();
    assert_eq!(by_producer, vec![row(1, s.id), row(2, s.id)]);
    let by_server = c
        .list_fragments(s.id, TimestampKind::Server, t(0), t(10_000), None, 2)
        .await
        .unwrap();
    assert_eq!(by_server, vec![row(1, s.id), row(2, s.id)]);
    let cursor = Some((t(4000), row(2, s.id).number));
    let next = c
        .list_fragments(s.id, TimestampKind::Server, t(0), t(10_000), cursor, 2)
        .await
        .unwrap();
    assert_eq!(next, vec![row(3, s.id)]);
    assert!(
        c.list_fragments(other.id, TimestampKind::Server, t(0), t(10_000), None, 2)
            .await
            .unwrap()
            .is_empty()
    );
    let wanted = [
        row(3, s.id).number,
        FragmentNumber::parse("999").unwrap(),
        row(1, s.id).number,
    ];
    let mut found = c.fragments_by_number(s.id, &wanted).await.unwrap();
    found.sort_by(|a, b| a.number.cmp(&b.number));
    assert_eq!(found, vec![row(1, s.id), row(3, s.id)]);
    assert!(
        c.fragments_by_number(other.id, &wanted)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        c.track_header(s.id, header).await.unwrap().as_deref(),
        Some(&b"\x1a\x45\xdf\xa3"[..])
    );
    assert_eq!(c.track_header(other.id, header).await.unwrap(), None);
    let n = |k: u64| row(k, s.id).number;
    assert_eq!(
        c.fragments_after(s.id, None, 10, false).await.unwrap(),
        vec![row(1, s.id), row(2, s.id), row(3, s.id)]
    );
    assert_eq!(
        c.fragments_after(s.id, Some(&n(1)), 1, false)
            .await
            .unwrap(),
        vec![row(2, s.id)]
    );
    assert_eq!(
        c.fragments_after(s.id, None, 1, true).await.unwrap(),
        vec![row(3, s.id)]
    );
    assert_eq!(
        c.fragments_after(s.id, Some(&n(3)), 5, true).await.unwrap(),
        vec![row(2, s.id), row(1, s.id)]
    );
    assert!(
        c.fragments_after(s.id, Some(&n(3)), 5, false)
            .await
            .unwrap()
            .is_empty()
    );
    // Numbers are unique across streams.
    assert!(matches!(
        c.add_fragment(&row(2, other.id)).await,
        Err(CatalogError::Database(_))
    ));
    assert_eq!(
        c.last_fragment_number().await.unwrap().unwrap().as_str(),
        format!("{:020}", 3)
    );
    // Rows committed together fail alone: a duplicate among concurrent rows is the only one
    // refused.
    let batch = [10, 11, 3, 12].map(|k| row(k, s.id));
    let outcomes = futures::future::join_all(batch.iter().map(|f| c.add_fragment(f))).await;
    assert!(
        matches!(
            &outcomes[..],
            [Ok(()), Ok(()), Err(CatalogError::Database(_)), Ok(())]
        ),
        "{outcomes:?}"
    );
    assert_eq!(
        c.fragments_after(s.id, Some(&n(3)), 10, false)
            .await
            .unwrap(),
        vec![row(10, s.id), row(11, s.id), row(12, s.id)]
    );
    // A deleted stream takes no new fragments at once; it is listed as deleted until it is
    // removed, which takes what is left of its fragments with it.
    let all = |id| c.fragments_after(id, None, u32::MAX, false);
    let before = all(s.id).await.unwrap();
    c.delete_stream(&s.info.stream_arn, None).await.unwrap();
    let late = c.add_fragment(&row(13, s.id)).await;
    assert!(
        matches!(late, Err(CatalogError::StreamNotFound(_))),
        "{late:?}"
    );
    assert!(c.deleted_streams().await.unwrap().contains(&s.id));
    assert_eq!(all(s.id).await.unwrap(), before);
    c.remove_stream(s.id).await.unwrap();
    assert!(!c.deleted_streams().await.unwrap().contains(&s.id));
    assert!(all(s.id).await.unwrap().is_empty());
    // Only a deleted stream is removed.
    c.remove_stream(other.id).await.unwrap();
    assert!(
        c.stream(&StreamRef::Arn(other.info.stream_arn.clone()))
            .await
            .is_ok()
    );
}
