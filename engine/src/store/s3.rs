//! The AWS backend (`s3://EVOLUTION_BUCKET?agents=AGENTS_BUCKET&table=TABLE`): objects in
//! two S3 buckets, evolution state in a DynamoDB table. Endpoint, region and
//! credentials come from the standard AWS environment (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, …). Every call has a connect timeout, an
//! operation timeout and a bounded number of retries, so an unreachable endpoint or a
//! refused credential is a clear error, never a hang.

use super::{BlobStore, Bucket, StateItem, StoreSettings, Version, check_key};
use crate::error::{ErrorKind, Result};
use crate::id::AgentId;
use aws_sdk_dynamodb::client::Waiters;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

/// The S3 + DynamoDB store.
pub struct S3Store {
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
    ddb: aws_sdk_dynamodb::Client,
    evolution: String,
    agents: String,
    table: String,
    settings: StoreSettings,
    /// Keys or rows per page of a listing or query (the service's default when `None`).
    page_size: Option<i32>,
}

fn uri_err(uri: &str, reason: impl Into<String>) -> crate::Error {
    ErrorKind::StoreUri {
        uri: uri.to_string(),
        reason: reason.into(),
    }
    .into()
}

/// A failed call `what` (the SDK's error as its source).
pub(crate) fn remote(
    what: impl Into<String>,
    e: impl std::error::Error + Send + Sync + 'static,
) -> crate::Error {
    ErrorKind::Remote {
        what: what.into(),
        source: Box::new(e),
    }
    .into()
}

/// A table or bucket of the wrong shape.
fn shape(what: impl Into<String>, reason: impl Into<String>) -> crate::Error {
    ErrorKind::RemoteShape {
        what: what.into(),
        reason: reason.into(),
    }
    .into()
}

/// Whether a failed conditional write lost a race (its HTTP status is one of `lost`)
/// rather than failed.
fn lost_race<E>(e: &SdkError<E>, lost: &[u16]) -> bool {
    e.raw_response()
        .is_some_and(|r| lost.contains(&r.status().as_u16()))
}

/// Bucket and table names as AWS allows them (a subset: lowercase letters, digits,
/// dots, hyphens; 3–63 characters; table names also `_`, up to 255).
fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
}

fn valid_table(t: &str) -> bool {
    (3..=255).contains(&t.len())
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
}

/// A current-thread runtime and the SDK configuration from the standard AWS
/// environment, with a connect timeout, an operation timeout and a bounded number of
/// retries on every call. `what` names the store or queue in errors.
pub(crate) fn aws_sdk_config(
    what: &str,
) -> Result<(tokio::runtime::Runtime, aws_config::SdkConfig)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| remote("cannot start the I/O runtime", e))?;
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build();
    let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(3);
    let sdk = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(timeouts)
            .retry_config(retry)
            .load(),
    );
    if sdk.region().is_none() {
        return Err(uri_err(what, "no AWS region: set AWS_REGION"));
    }
    Ok((rt, sdk))
}

impl S3Store {
    /// Opens the store of an `s3://` URI. Nothing is created: see [`S3Store::init`].
    pub fn open(uri: &str) -> Result<S3Store> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| uri_err(uri, "expected s3://"))?;
        let (evolution, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut agents = None;
        let mut table = None;
        let mut settings = StoreSettings::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("agents", v)) => agents = Some(v.to_string()),
                Some(("table", v)) => table = Some(v.to_string()),
                Some((k, v)) if settings.set(k, v).map_err(|e| uri_err(uri, e))? => {}
                _ => return Err(uri_err(uri, format!("unknown parameter {pair:?}"))),
            }
        }
        let agents = agents.ok_or_else(|| uri_err(uri, "missing agents=BUCKET"))?;
        let table = table.ok_or_else(|| uri_err(uri, "missing table=TABLE"))?;
        for b in [evolution, agents.as_str()] {
            if !valid_bucket(b) {
                return Err(uri_err(uri, format!("{b:?} is not a valid bucket name")));
            }
        }
        if !valid_table(&table) {
            return Err(uri_err(uri, format!("{table:?} is not a valid table name")));
        }
        let (rt, sdk) = aws_sdk_config(uri)?;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        Ok(S3Store {
            rt,
            s3,
            ddb,
            evolution: evolution.to_string(),
            agents,
            table,
            settings,
            page_size: None,
        })
    }

    fn block<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn bucket(&self, b: Bucket) -> &str {
        match b {
            Bucket::Evolution => &self.evolution,
            Bucket::Agents => &self.agents,
        }
    }

    /// Creates the buckets (versioning on the evolution bucket) and the state table
    /// with its GSI when they are missing; checks them when present.
    pub fn init(&self) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for (b, versioned) in [(&self.evolution, true), (&self.agents, false)] {
            match self.block(self.s3.head_bucket().bucket(b).send()) {
                Ok(_) => done.push(format!("bucket {b}: present")),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => {
                    // Outside us-east-1 S3 wants the region named as the bucket's
                    // location.
                    let mut req = self.s3.create_bucket().bucket(b);
                    if let Some(region) = self.s3.config().region().map(|r| r.as_ref())
                        && region != "us-east-1"
                    {
                        req = req.create_bucket_configuration(
                            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                                .location_constraint(
                                    aws_sdk_s3::types::BucketLocationConstraint::from(region),
                                )
                                .build(),
                        );
                    }
                    self.block(req.send())
                        .map_err(|e| remote(format!("create bucket {b}"), e))?;
                    done.push(format!("bucket {b}: created"));
                }
                Err(e) => return Err(remote(format!("bucket {b}"), e)),
            }
            if versioned {
                self.block(
                    self.s3
                        .put_bucket_versioning()
                        .bucket(b)
                        .versioning_configuration(
                            aws_sdk_s3::types::VersioningConfiguration::builder()
                                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                                .build(),
                        )
                        .send(),
                )
                .map_err(|e| remote(format!("versioning of {b}"), e))?;
            }
        }
        let t = &self.table;
        match self.block(self.ddb.describe_table().table_name(t).send()) {
            Ok(out) => {
                check_table(t, out.table())?;
                done.push(format!("table {t}: present"));
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                self.create_table()?;
                done.push(format!("table {t}: created"));
            }
            Err(e) => return Err(remote(format!("table {t}"), e)),
        }
        Ok(done)
    }

    /// Creates the state table and waits until it is active (real AWS reports
    /// CREATING first).
    fn create_table(&self) -> Result<()> {
        let t = &self.table;
        let attr = |n: &str, ty: ScalarAttributeType| {
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(ty)
                .build()
        };
        let key = |n: &str, ty: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(n)
                .key_type(ty)
                .build()
        };
        let build = || -> std::result::Result<_, aws_sdk_dynamodb::error::BuildError> {
            Ok((
                vec![
                    attr("evolution_id", ScalarAttributeType::S)?,
                    attr("generation", ScalarAttributeType::N)?,
                    attr("timestamp", ScalarAttributeType::S)?,
                ],
                vec![
                    key("evolution_id", KeyType::Hash)?,
                    key("generation", KeyType::Range)?,
                ],
                GlobalSecondaryIndex::builder()
                    .index_name("timestamp-index")
                    .key_schema(key("evolution_id", KeyType::Hash)?)
                    .key_schema(key("timestamp", KeyType::Range)?)
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                    )
                    .build()?,
            ))
        };
        let (attrs, keys, gsi) = build().map_err(|e| remote("table definition", e))?;
        self.block(
            self.ddb
                .create_table()
                .table_name(t)
                .set_attribute_definitions(Some(attrs))
                .set_key_schema(Some(keys))
                .global_secondary_indexes(gsi)
                .billing_mode(BillingMode::PayPerRequest)
                .send(),
        )
        .map_err(|e| remote(format!("create table {t}"), e))?;
        self.block(
            self.ddb
                .wait_until_table_exists()
                .table_name(t)
                .wait(Duration::from_secs(60)),
        )
        .map_err(|e| remote(format!("wait for table {t}"), e))?;
        Ok(())
    }

    /// `GetObject`: the bytes and the ETag, `None` when there is no such object.
    fn get_object(&self, bucket: Bucket, key: &str) -> Result<Option<(Vec<u8>, Option<String>)>> {
        check_key(key)?;
        let out = match self.block(
            self.s3
                .get_object()
                .bucket(self.bucket(bucket))
                .key(key)
                .send(),
        ) {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => return Err(remote(format!("get {key}"), e)),
        };
        let etag = out.e_tag().map(str::to_string);
        let bytes = self
            .block(out.body.collect())
            .map_err(|e| remote(format!("get {key}"), e))?;
        Ok(Some((bytes.into_bytes().to_vec(), etag)))
    }

    /// `PutObject`, with `If-None-Match: *` or `If-Match: <ETag>` when `condition` says;
    /// false when the condition failed (S3 answers one of `lost`).
    fn put_object(
        &self,
        bucket: Bucket,
        key: &str,
        bytes: &[u8],
        condition: Condition<'_>,
    ) -> Result<bool> {
        check_key(key)?;
        let req = self
            .s3
            .put_object()
            .bucket(self.bucket(bucket))
            .key(key)
            .body(ByteStream::from(bytes.to_vec()));
        let (req, lost): (_, &[u16]) = match condition {
            Condition::None => (req, &[]),
            Condition::Absent => (req.if_none_match("*"), &[412, 409]),
            Condition::At(v) => (req.if_match(&v.0), &[412, 409, 404]),
        };
        match self.block(req.send()) {
            Ok(_) => Ok(true),
            Err(e) if lost_race(&e, lost) => Ok(false),
            Err(e) => Err(remote(format!("put {key}"), e)),
        }
    }
}

/// The condition of a write.
enum Condition<'a> {
    /// Write whatever is there.
    None,
    /// Only if there is no object.
    Absent,
    /// Only if the object is at this version.
    At(&'a Version),
}

/// Checks the state table's key schema and GSI against the layout's.
fn check_table(t: &str, table: Option<&aws_sdk_dynamodb::types::TableDescription>) -> Result<()> {
    let keys: Vec<(String, String)> = table
        .map(|t| t.key_schema())
        .unwrap_or_default()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_string(),
                k.key_type().as_str().to_string(),
            )
        })
        .collect();
    let want = [
        ("evolution_id".to_string(), "HASH".to_string()),
        ("generation".to_string(), "RANGE".to_string()),
    ];
    if keys != want {
        return Err(shape(
            format!("table {t}"),
            format!("key schema {keys:?} is not {want:?}"),
        ));
    }
    let has_gsi = table
        .map(|t| t.global_secondary_indexes())
        .unwrap_or_default()
        .iter()
        .any(|g| g.index_name() == Some("timestamp-index"));
    if !has_gsi {
        return Err(shape(format!("table {t}"), "no GSI timestamp-index"));
    }
    Ok(())
}

/// A state row from its DynamoDB attributes; ids and flags parsed here, where they
/// enter the engine.
fn state_item(table: &str, it: &HashMap<String, AttributeValue>) -> Result<StateItem> {
    let s = |k: &str| {
        it.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let n = |k: &str| {
        it.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let ss = |k: &str| {
        it.get(k)
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default()
    };
    let evolution_id = s("evolution_id");
    let generation = n("generation").unwrap_or(0.0) as u32;
    let row = || format!("table {table}: row {evolution_id}/{generation}");
    let id = |v: &str| {
        v.parse::<AgentId>()
            .map_err(|source| ErrorKind::StoredId { key: row(), source })
    };
    Ok(StateItem {
        best_agent_id: id(&s("best_agent_id"))?,
        parent_ids: ss("parent_ids")
            .iter()
            .map(|p| id(p))
            .collect::<std::result::Result<_, _>>()?,
        safety_flags: ss("safety_flags")
            .iter()
            .map(|f| {
                f.parse()
                    .map_err(|source| ErrorKind::StoredWord { key: row(), source })
            })
            .collect::<std::result::Result<_, _>>()?,
        timestamp: s("timestamp"),
        agent_code: it
            .get("agent_code")
            .and_then(|v| v.as_b().ok())
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default(),
        fitness_score: n("fitness_score").unwrap_or(f64::NAN),
        evolution_id,
        generation,
    })
}

impl BlobStore for S3Store {
    fn put(&self, bucket: Bucket, key: &str, bytes: &[u8]) -> Result<()> {
        self.put_object(bucket, key, bytes, Condition::None)
            .map(|_| ())
    }

    fn put_new(&self, bucket: Bucket, key: &str, bytes: &[u8]) -> Result<bool> {
        self.put_object(bucket, key, bytes, Condition::Absent)
    }

    fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_object(bucket, key)?.map(|(b, _)| b))
    }

    fn get_versioned(&self, bucket: Bucket, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        match self.get_object(bucket, key)? {
            None => Ok(None),
            Some((bytes, Some(etag))) => Ok(Some((bytes, Version(etag)))),
            Some((_, None)) => Err(shape(format!("get {key}"), "the answer has no ETag")),
        }
    }

    /// S3's conditional write: `PutObject` with `If-Match: <ETag>`. S3 answers 412 when
    /// the object changed, 409 when a concurrent conditional write to it is in flight,
    /// 404 when it was deleted: each is a lost race, not an error.
    fn put_if(&self, bucket: Bucket, key: &str, bytes: &[u8], version: &Version) -> Result<bool> {
        self.put_object(bucket, key, bytes, Condition::At(version))
    }

    fn list(&self, bucket: Bucket, prefix: &str) -> Result<Vec<String>> {
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(self.bucket(bucket))
            .prefix(prefix)
            .set_max_keys(self.page_size)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = self.block(pages.next()) {
            let page = page.map_err(|e| remote(format!("list {prefix}"), e))?;
            out.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| check_key(k).is_ok())
                    .map(str::to_string),
            );
        }
        out.sort();
        Ok(out)
    }

    fn delete(&self, bucket: Bucket, key: &str) -> Result<()> {
        check_key(key)?;
        self.block(
            self.s3
                .delete_object()
                .bucket(self.bucket(bucket))
                .key(key)
                .send(),
        )
        .map(|_| ())
        .map_err(|e| remote(format!("delete {key}"), e))
    }

    fn put_state(&self, item: &StateItem) -> Result<bool> {
        let mut req = self
            .ddb
            .put_item()
            .table_name(&self.table)
            .item("evolution_id", AttributeValue::S(item.evolution_id.clone()))
            .item("generation", AttributeValue::N(item.generation.to_string()))
            .item("timestamp", AttributeValue::S(item.timestamp.clone()))
            .item(
                "agent_code",
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
                    item.agent_code.clone(),
                )),
            )
            .item(
                "fitness_score",
                AttributeValue::N(format!("{}", item.fitness_score)),
            )
            .item(
                "best_agent_id",
                AttributeValue::S(item.best_agent_id.to_string()),
            )
            .condition_expression("attribute_not_exists(generation)");
        // DynamoDB refuses empty string sets: an empty list is no attribute.
        if !item.parent_ids.is_empty() {
            req = req.item(
                "parent_ids",
                AttributeValue::Ss(item.parent_ids.iter().map(AgentId::to_string).collect()),
            );
        }
        if !item.safety_flags.is_empty() {
            req = req.item(
                "safety_flags",
                AttributeValue::Ss(item.safety_flags.iter().map(|f| f.to_string()).collect()),
            );
        }
        match self.block(req.send()) {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(remote("put state", e)),
        }
    }

    fn delete_state(&self, evolution_id: &str, generation: u32) -> Result<()> {
        self.block(
            self.ddb
                .delete_item()
                .table_name(&self.table)
                .key("evolution_id", AttributeValue::S(evolution_id.to_string()))
                .key("generation", AttributeValue::N(generation.to_string()))
                .send(),
        )
        .map_err(|e| remote("delete state", e))?;
        Ok(())
    }

    fn get_states(&self, evolution_id: &str) -> Result<Vec<StateItem>> {
        let mut items = self
            .ddb
            .query()
            .table_name(&self.table)
            .key_condition_expression("evolution_id = :e")
            .expression_attribute_values(":e", AttributeValue::S(evolution_id.to_string()))
            .set_limit(self.page_size)
            .into_paginator()
            .items()
            .send();
        let mut out = Vec::new();
        while let Some(it) = self.block(items.next()) {
            let it = it.map_err(|e| remote("query state", e))?;
            out.push(state_item(&self.table, &it)?);
        }
        out.sort_by_key(|i| i.generation);
        Ok(out)
    }

    fn describe(&self) -> String {
        format!(
            "s3://{}?agents={}&table={}",
            self.evolution, self.agents, self.table
        )
    }

    fn settings(&self) -> &StoreSettings {
        &self.settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(uri: &str) -> String {
        match S3Store::open(uri) {
            Err(e) => match e.kind() {
                ErrorKind::StoreUri { reason, .. } => reason.clone(),
                other => panic!("{uri}: {other:?}"),
            },
            Ok(_) => panic!("{uri}: opened"),
        }
    }

    #[test]
    fn uris_are_checked_before_any_call() {
        let long = "b".repeat(64);
        for (uri, why) in [
            ("s3:/evo", "expected s3://"),
            ("s3://evo-b?table=t-1", "missing agents=BUCKET"),
            ("s3://evo-b?agents=ag-b", "missing table=TABLE"),
            (
                "s3://evo-b?agents=ag-b&table=tab&colour=red",
                "unknown parameter",
            ),
            (
                "s3://evo-b?agents=ag-b&table=tab&agents",
                "unknown parameter",
            ),
            (
                "s3://Evo-b?agents=ag-b&table=tab",
                "not a valid bucket name",
            ),
            ("s3://ev?agents=ag-b&table=tab", "not a valid bucket name"),
            (
                &format!("s3://{long}?agents=ag-b&table=tab"),
                "not a valid bucket name",
            ),
            (
                "s3://evo-b?agents=ag_b&table=tab",
                "not a valid bucket name",
            ),
            ("s3://evo-b?agents=ag-b&table=t", "not a valid table name"),
            (
                "s3://evo-b?agents=ag-b&table=t%20b",
                "not a valid table name",
            ),
            (
                "s3://evo-b?agents=ag-b&table=tab&trap_history=x",
                "not a whole number",
            ),
        ] {
            let reason = refused(uri);
            assert!(reason.contains(why), "{uri}: {reason}");
        }
        assert!(valid_bucket(&"b".repeat(63)) && valid_bucket("a.b-c"));
        assert!(valid_table(&"t".repeat(255)) && !valid_table(&"t".repeat(256)));
    }

    /// A store on the loopback server of scripts/test.sh, with fresh names.
    fn server_store(tag: &str) -> S3Store {
        assert!(
            std::env::var("AWS_ENDPOINT_URL").is_ok(),
            "AWS_ENDPOINT_URL is not set: run the tests through scripts/test.sh, which \
             starts an S3 and DynamoDB server on loopback"
        );
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let t = format!("{tag}-{}-{n}", std::process::id());
        let s = S3Store::open(&format!(
            "s3://evo-{t}?agents=agents-{t}&table=state-{t}&trap_history=5"
        ))
        .expect("open");
        assert_eq!(s.settings().trap_history, 5);
        s.init().expect("init");
        s
    }

    #[test]
    fn listings_and_queries_follow_every_page() {
        let mut s = server_store("pages");
        s.page_size = Some(2);
        let keys: Vec<String> = (0..5)
            .map(|i| format!("checkpoints/e/{i:06}.json"))
            .collect();
        for k in keys.iter().rev() {
            s.put(Bucket::Evolution, k, b"x").expect("put");
        }
        assert_eq!(
            s.list(Bucket::Evolution, "checkpoints/").expect("list"),
            keys
        );
        assert_eq!(
            s.list(Bucket::Evolution, "checkpoints/e/000003")
                .expect("list")
                .len(),
            1
        );
        assert!(s.list(Bucket::Agents, "").expect("list").is_empty());
        for g in 0..5 {
            let item = StateItem {
                evolution_id: "evo-p".into(),
                generation: g,
                timestamp: format!("2026-01-01T00:00:0{g}.000Z"),
                agent_code: vec![g as u8],
                best_agent_id: AgentId::of(&[g as u8]),
                fitness_score: f64::from(g),
                parent_ids: vec![],
                safety_flags: vec![crate::words::SafetyFlag::SizeBloat],
            };
            assert!(s.put_state(&item).expect("state"));
        }
        let rows = s.get_states("evo-p").expect("states");
        assert_eq!(
            rows.iter().map(|r| r.generation).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(rows[4].safety_flags, [crate::words::SafetyFlag::SizeBloat]);
        // a second init finds everything present
        let again = s.init().expect("init again");
        assert!(again.iter().all(|l| l.ends_with("present")), "{again:?}");
    }

    #[test]
    fn a_state_row_with_a_bad_id_is_corrupt() {
        let mut row = HashMap::new();
        row.insert(
            "evolution_id".to_string(),
            AttributeValue::S("evo-r".into()),
        );
        row.insert("generation".to_string(), AttributeValue::N("3".into()));
        row.insert(
            "best_agent_id".to_string(),
            AttributeValue::S("sha256:nope".into()),
        );
        let e = state_item("tab", &row).expect_err("bad id");
        assert!(matches!(e.kind(), ErrorKind::StoredId { .. }), "{e}");
        assert!(e.to_string().contains("evo-r/3"), "{e}");
        row.insert(
            "best_agent_id".to_string(),
            AttributeValue::S(AgentId::of(b"m").to_string()),
        );
        row.insert(
            "safety_flags".to_string(),
            AttributeValue::Ss(vec!["on_fire".into()]),
        );
        let e = state_item("tab", &row).expect_err("bad flag");
        assert!(matches!(e.kind(), ErrorKind::StoredWord { .. }), "{e}");
    }
}
