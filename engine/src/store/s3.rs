//! The AWS backend (`s3://EVOLUTION_BUCKET?agents=AGENTS_BUCKET&table=TABLE`): objects in
//! two S3 buckets, evolution state in a DynamoDB table. Endpoint, region and
//! credentials come from the standard AWS environment (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, `AWS_ACCESS_KEY_ID`, …). Every call has a connect timeout, an
//! operation timeout and a bounded number of retries, so an unreachable endpoint or a
//! refused credential is a clear error, never a hang.

use super::{BlobStore, Bucket, StateItem, StoreSettings, Version, check_key};
use crate::error::{ErrorKind, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, ScalarAttributeType,
};
use aws_sdk_s3::primitives::ByteStream;
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
}

fn uri_err(uri: &str, reason: impl Into<String>) -> crate::Error {
    ErrorKind::StoreUri {
        uri: uri.to_string(),
        reason: reason.into(),
    }
    .into()
}

fn remote(what: &str, e: impl std::fmt::Display) -> crate::Error {
    ErrorKind::Remote(format!("{what}: {e}")).into()
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
            return Err(uri_err(uri, "no AWS region: set AWS_REGION"));
        }
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
            let exists = self.block(self.s3.head_bucket().bucket(b).send());
            match exists {
                Ok(_) => done.push(format!("bucket {b}: present")),
                Err(e) => {
                    let not_found = e.as_service_error().is_some_and(|s| s.is_not_found());
                    if !not_found {
                        return Err(remote(
                            &format!("bucket {b}"),
                            aws_sdk_s3::error::DisplayErrorContext(e),
                        ));
                    }
                    self.block(self.s3.create_bucket().bucket(b).send())
                        .map_err(|e| {
                            remote(
                                &format!("create bucket {b}"),
                                aws_sdk_s3::error::DisplayErrorContext(e),
                            )
                        })?;
                    done.push(format!("bucket {b}: created"));
                }
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
                .map_err(|e| {
                    remote(
                        &format!("versioning of {b}"),
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    )
                })?;
            }
        }
        let t = &self.table;
        match self.block(self.ddb.describe_table().table_name(t).send()) {
            Ok(out) => {
                let table = out.table();
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
                    return Err(remote(
                        &format!("table {t}"),
                        format!("key schema {keys:?} is not {want:?}"),
                    ));
                }
                let has_gsi = table
                    .map(|t| t.global_secondary_indexes())
                    .unwrap_or_default()
                    .iter()
                    .any(|g| g.index_name() == Some("timestamp-index"));
                if !has_gsi {
                    return Err(remote(&format!("table {t}"), "no GSI timestamp-index"));
                }
                done.push(format!("table {t}: present"));
            }
            Err(e) => {
                let missing = e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception());
                if !missing {
                    return Err(remote(
                        &format!("table {t}"),
                        aws_sdk_dynamodb::error::DisplayErrorContext(e),
                    ));
                }
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
                .map_err(|e| {
                    remote(
                        &format!("create table {t}"),
                        aws_sdk_dynamodb::error::DisplayErrorContext(e),
                    )
                })?;
                // Real AWS reports CREATING first: wait for ACTIVE.
                for _ in 0..120 {
                    let status = self
                        .block(self.ddb.describe_table().table_name(t).send())
                        .ok()
                        .and_then(|o| o.table().and_then(|t| t.table_status().cloned()));
                    if status == Some(aws_sdk_dynamodb::types::TableStatus::Active) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                done.push(format!("table {t}: created"));
            }
        }
        Ok(done)
    }
}

impl BlobStore for S3Store {
    fn put(&self, bucket: Bucket, key: &str, bytes: &[u8]) -> Result<()> {
        check_key(key)?;
        self.block(
            self.s3
                .put_object()
                .bucket(self.bucket(bucket))
                .key(key)
                .body(ByteStream::from(bytes.to_vec()))
                .send(),
        )
        .map(|_| ())
        .map_err(|e| {
            remote(
                &format!("put {key}"),
                aws_sdk_s3::error::DisplayErrorContext(e),
            )
        })
    }

    fn put_new(&self, bucket: Bucket, key: &str, bytes: &[u8]) -> Result<bool> {
        check_key(key)?;
        match self.block(
            self.s3
                .put_object()
                .bucket(self.bucket(bucket))
                .key(key)
                .if_none_match("*")
                .body(ByteStream::from(bytes.to_vec()))
                .send(),
        ) {
            Ok(_) => Ok(true),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if status == Some(412) || status == Some(409) {
                    Ok(false)
                } else {
                    Err(remote(
                        &format!("put {key}"),
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    ))
                }
            }
        }
    }

    fn get(&self, bucket: Bucket, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        match self.block(
            self.s3
                .get_object()
                .bucket(self.bucket(bucket))
                .key(key)
                .send(),
        ) {
            Ok(out) => {
                let bytes = self
                    .block(out.body.collect())
                    .map_err(|e| remote(&format!("get {key}"), e))?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) => {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    Ok(None)
                } else {
                    Err(remote(
                        &format!("get {key}"),
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    ))
                }
            }
        }
    }

    fn get_versioned(&self, bucket: Bucket, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        check_key(key)?;
        match self.block(
            self.s3
                .get_object()
                .bucket(self.bucket(bucket))
                .key(key)
                .send(),
        ) {
            Ok(out) => {
                let etag = out
                    .e_tag()
                    .map(str::to_string)
                    .ok_or_else(|| remote(&format!("get {key}"), "the answer has no ETag"))?;
                let bytes = self
                    .block(out.body.collect())
                    .map_err(|e| remote(&format!("get {key}"), e))?;
                Ok(Some((bytes.into_bytes().to_vec(), Version(etag))))
            }
            Err(e) => {
                if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    Ok(None)
                } else {
                    Err(remote(
                        &format!("get {key}"),
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    ))
                }
            }
        }
    }

    /// S3's conditional write: `PutObject` with `If-Match: <ETag>`. S3 answers 412 when
    /// the object changed, 409 when a concurrent conditional write to it is in flight,
    /// 404 when it was deleted: each is a lost race, not an error.
    fn put_if(&self, bucket: Bucket, key: &str, bytes: &[u8], version: &Version) -> Result<bool> {
        check_key(key)?;
        match self.block(
            self.s3
                .put_object()
                .bucket(self.bucket(bucket))
                .key(key)
                .if_match(&version.0)
                .body(ByteStream::from(bytes.to_vec()))
                .send(),
        ) {
            Ok(_) => Ok(true),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if matches!(status, Some(412 | 409 | 404)) {
                    Ok(false)
                } else {
                    Err(remote(
                        &format!("put {key}"),
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    ))
                }
            }
        }
    }

    fn list(&self, bucket: Bucket, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .block(
                    self.s3
                        .list_objects_v2()
                        .bucket(self.bucket(bucket))
                        .prefix(prefix)
                        .set_continuation_token(token.clone())
                        .send(),
                )
                .map_err(|e| {
                    remote(
                        &format!("list {prefix}"),
                        aws_sdk_s3::error::DisplayErrorContext(e),
                    )
                })?;
            for o in resp.contents() {
                if let Some(k) = o.key()
                    && check_key(k).is_ok()
                {
                    out.push(k.to_string());
                }
            }
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
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
        .map_err(|e| {
            remote(
                &format!("delete {key}"),
                aws_sdk_s3::error::DisplayErrorContext(e),
            )
        })
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
                AttributeValue::S(item.best_agent_id.clone()),
            )
            .condition_expression("attribute_not_exists(generation)");
        if !item.parent_ids.is_empty() {
            req = req.item("parent_ids", AttributeValue::Ss(item.parent_ids.clone()));
        }
        if !item.safety_flags.is_empty() {
            req = req.item(
                "safety_flags",
                AttributeValue::Ss(item.safety_flags.clone()),
            );
        }
        match self.block(req.send()) {
            Ok(_) => Ok(true),
            Err(e) => {
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception())
                {
                    Ok(false)
                } else {
                    Err(remote(
                        "put state",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e),
                    ))
                }
            }
        }
    }

    fn get_states(&self, evolution_id: &str) -> Result<Vec<StateItem>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let resp = self
                .block(
                    self.ddb
                        .query()
                        .table_name(&self.table)
                        .key_condition_expression("evolution_id = :e")
                        .expression_attribute_values(
                            ":e",
                            AttributeValue::S(evolution_id.to_string()),
                        )
                        .set_exclusive_start_key(start.clone())
                        .send(),
                )
                .map_err(|e| {
                    remote(
                        "query state",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e),
                    )
                })?;
            for it in resp.items() {
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
                out.push(StateItem {
                    evolution_id: s("evolution_id"),
                    generation: n("generation").unwrap_or(0.0) as u32,
                    timestamp: s("timestamp"),
                    agent_code: it
                        .get("agent_code")
                        .and_then(|v| v.as_b().ok())
                        .map(|b| b.as_ref().to_vec())
                        .unwrap_or_default(),
                    fitness_score: n("fitness_score").unwrap_or(f64::NAN),
                    best_agent_id: s("best_agent_id"),
                    parent_ids: ss("parent_ids"),
                    safety_flags: ss("safety_flags"),
                });
            }
            match resp.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
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
