//! An S3-compatible object store target (AWS S3, MinIO, Ceph RGW, ...), through Apache
//! Arrow's `object_store` crate: request signing, retries and multipart uploads are its.
//!
//! This file is the only user of the cargo feature `s3` and of its async stack: a
//! current-thread tokio runtime lives inside [`S3Target`] and each call is one `block_on`,
//! so nothing async leaks into the rest of airlock (docs/PUBLISH.md "S3").
//!
//! Each object carries its SHA-256 as user metadata (`x-amz-meta-sha256`), so a publish
//! interrupted before it wrote its state object finds, on the next run, which objects
//! already hold the right content. The library reads no environment: the caller passes
//! the configuration (the CLI collects the `AWS_*` variables, as
//! `AmazonS3Builder::from_env` would).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
};

use super::error::PublishError;
use super::target::{is_safe_key, Body, Target};
use crate::io::digest::Digest;

/// The user-metadata key that holds an object's SHA-256 (`x-amz-meta-sha256`).
const SHA256_METADATA: &str = "sha256";

/// Objects up to this size are sent in one request; larger ones in parts of this size.
const PART_SIZE: usize = 8 << 20;

/// Where and how to reach the store.
#[derive(Clone, Debug, Default)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (no leading or trailing `/`; empty for the bucket root).
    pub prefix: String,
    /// `object_store` configuration pairs, by their `AWS_*` names (`AWS_ENDPOINT_URL`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`, ...);
    /// names it does not know are ignored, as `AmazonS3Builder::from_env` ignores them.
    pub settings: Vec<(String, String)>,
}

/// A bucket (and prefix) in an S3-compatible store.
pub struct S3Target {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    bucket: String,
    prefix: String,
}

impl S3Target {
    /// A target from `config`; nothing is sent until the first call.
    pub fn new(config: &S3Config) -> Result<S3Target, PublishError> {
        let describe = format!("s3://{}/{}", config.bucket, config.prefix);
        let fail = |reason: String| PublishError::Target {
            target: describe.clone(),
            operation: "connect",
            key: String::new(),
            reason,
        };
        let mut builder = AmazonS3Builder::new();
        for (name, value) in &config.settings {
            if let Ok(key) = AmazonS3ConfigKey::from_str(&name.to_ascii_lowercase()) {
                builder = builder.with_config(key, value);
            }
        }
        let store = builder.with_bucket_name(&config.bucket).build().map_err(|e| fail(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the I/O runtime: {e}")))?;
        Ok(S3Target { store: Arc::new(store), runtime, bucket: config.bucket.clone(), prefix: config.prefix.clone() })
    }

    fn path(&self, key: &str, operation: &'static str) -> Result<ObjectPath, PublishError> {
        if !is_safe_key(key) {
            return Err(self.error(operation, key, "not a relative key inside the target".to_owned()));
        }
        let full = if self.prefix.is_empty() { key.to_owned() } else { format!("{}/{key}", self.prefix) };
        ObjectPath::parse(&full)
            .map_err(|e| self.error(operation, key, format!("not a key the object store accepts: {e}")))
    }

    fn error(&self, operation: &'static str, key: &str, reason: String) -> PublishError {
        PublishError::Target { target: self.describe(), operation, key: key.to_owned(), reason }
    }

    fn attributes(sha256: Digest) -> Attributes {
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::Metadata(SHA256_METADATA.into()), AttributeValue::from(sha256.to_hex()));
        attributes
    }

    /// Sends a mirror file: one request when it fits one part, else a multipart upload,
    /// completed only once the whole file is checked (aborted otherwise).
    fn put_file(&self, key: &str, path: &ObjectPath, file: &super::target::MirrorFile) -> Result<(), PublishError> {
        let mut reader = file.open()?;
        let mut first = vec![0u8; PART_SIZE];
        let n = reader.fill(&mut first)?;
        first.truncate(n);
        let attributes = S3Target::attributes(file.sha256);
        if n < PART_SIZE {
            reader.finish()?;
            let options = PutOptions { attributes, ..Default::default() };
            let put = self.store.put_opts(path, PutPayload::from(first), options);
            return self.runtime.block_on(put).map(drop).map_err(|e| self.error("put", key, e.to_string()));
        }
        let options = PutMultipartOptions { attributes, ..Default::default() };
        let mut upload = self
            .runtime
            .block_on(self.store.put_multipart_opts(path, options))
            .map_err(|e| self.error("put", key, e.to_string()))?;
        let mut part = first;
        while !part.is_empty() {
            if let Err(e) = self.runtime.block_on(upload.put_part(PutPayload::from(part))) {
                let _ = self.runtime.block_on(upload.abort());
                return Err(self.error("put", key, e.to_string()));
            }
            let mut next = vec![0u8; PART_SIZE];
            let n = match reader.fill(&mut next) {
                Ok(n) => n,
                Err(e) => {
                    let _ = self.runtime.block_on(upload.abort());
                    return Err(e);
                }
            };
            next.truncate(n);
            part = next;
        }
        if let Err(e) = reader.finish() {
            let _ = self.runtime.block_on(upload.abort());
            return Err(e);
        }
        self.runtime.block_on(upload.complete()).map(drop).map_err(|e| self.error("put", key, e.to_string()))
    }
}

impl Target for S3Target {
    fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn list(&mut self) -> Result<BTreeMap<String, u64>, PublishError> {
        let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
        let listing = self.store.list(prefix.as_ref()).try_collect::<Vec<_>>();
        let metas = self.runtime.block_on(listing).map_err(|e| self.error("list", "", e.to_string()))?;
        let strip = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(strip.as_str()).map(|k| (k.to_owned(), m.size)))
            .collect())
    }

    fn digest(&mut self, key: &str) -> Result<Option<Digest>, PublishError> {
        let path = self.path(key, "get")?;
        let head = self.store.get_opts(&path, GetOptions { head: true, ..Default::default() });
        match self.runtime.block_on(head) {
            Ok(result) => Ok(result
                .attributes
                .get(&Attribute::Metadata(SHA256_METADATA.into()))
                .and_then(|v| Digest::from_hex(v.as_ref()))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("get", key, e.to_string())),
        }
    }

    fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, PublishError> {
        let path = self.path(key, "get")?;
        let store = Arc::clone(&self.store);
        let fetch = async move { store.get(&path).await?.bytes().await };
        match self.runtime.block_on(fetch) {
            Ok(bytes) => Ok(Some(bytes.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("get", key, e.to_string())),
        }
    }

    fn put(&mut self, key: &str, body: Body<'_>) -> Result<(), PublishError> {
        let path = self.path(key, "put")?;
        match body {
            Body::Bytes { bytes, sha256 } => {
                let options = PutOptions { attributes: S3Target::attributes(sha256), ..Default::default() };
                let put = self.store.put_opts(&path, PutPayload::from(bytes.to_vec()), options);
                self.runtime.block_on(put).map(drop).map_err(|e| self.error("put", key, e.to_string()))
            }
            Body::File(file) => self.put_file(key, &path, file),
        }
    }

    fn delete(&mut self, key: &str) -> Result<(), PublishError> {
        let path = self.path(key, "delete")?;
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", key, e.to_string())),
        }
    }
}
