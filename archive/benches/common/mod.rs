//! What the catalog benchmarks share: a stream's record, a scratch PostgreSQL database, and a
//! bulk load (INSERT statements, one transaction per batch).

use kinescope_api::control::{StreamInfo, StreamStatus};
use kinescope_api::{StreamArn, StreamName, Timestamp, Version};
use sqlx::Executor;

/// A stream as a client would create it.
pub fn stream_info(name: &str, retention_hours: u32) -> StreamInfo {
    let name = StreamName::parse(name).unwrap();
    StreamInfo {
        device_name: None,
        stream_arn: StreamArn::new("us-west-2", "000000000000", &name, 1),
        stream_name: name,
        media_type: None,
        kms_key_id: None,
        version: Version::parse("v1").unwrap(),
        status: StreamStatus::Active,
        creation_time: Timestamp::from_millis(1),
        data_retention_in_hours: retention_hours,
    }
}

/// Runs each batch of statements in a transaction of its own.
pub async fn load<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, batches: Vec<Vec<String>>)
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    for batch in batches {
        let mut tx = pool.begin().await.unwrap();
        for sql in batch {
            (&mut *tx).execute(sqlx::AssertSqlSafe(sql)).await.unwrap();
        }
        tx.commit().await.unwrap();
    }
}

/// A fresh database on $KINESCOPE_TEST_POSTGRES (default the machine's
/// postgres://postgres@127.0.0.1:5432/test), dropped by [`ScratchPg::remove`].
pub struct ScratchPg {
    admin: sqlx::PgPool,
    name: String,
    pub url: String,
}

impl ScratchPg {
    pub async fn create() -> Self {
        let admin = std::env::var("KINESCOPE_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("kinescope_bench_{}", std::process::id());
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .expect("PostgreSQL reachable ($KINESCOPE_TEST_POSTGRES)");
        pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
        Self {
            admin: pool,
            name,
            url,
        }
    }

    pub async fn remove(self) {
        self.admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {} WITH (FORCE)",
                self.name
            )))
            .await
            .unwrap();
    }
}
