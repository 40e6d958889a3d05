//! Distribution-spec v1.1 operations on one repository: manifests (get/head/put/delete by tag or digest),
//! blobs (HEAD, resumable streaming GET, cross-repository mount, monolithic and chunked uploads), tags
//! with `Link` pagination, and referrers (the API, else the `sha256-<hex>` fallback tag).

use super::body::{self, BodyError};
use super::client::{Body, HttpError, Registry};
use crate::oci::document::{self, Desc, Index};
use crate::oci::verify::{Hasher, check_bytes, sha256_digest};
use crate::oci::{BlobProgress, BlobStream, Descriptor, Digest, media};
use anyhow::{Context, Result, bail};
use futures::StreamExt;
use reqwest::header::{
    ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION, RANGE,
};
use reqwest::{Method, StatusCode};
use std::sync::Arc;

/// Manifest media types lade accepts, for every manifest request.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.artifact.manifest.v1+json;q=0.5";
/// Manifests larger than this are refused (the spec's suggested limit).
pub const MANIFEST_MAX: usize = body::MAX_MANIFEST;
/// Blobs larger than this are uploaded in chunks (of [`CHUNK`] bytes).
pub const CHUNKED_THRESHOLD: u64 = 256 << 20;
pub const CHUNK: usize = 32 << 20;
/// How often a manifest refused with `MANIFEST_BLOB_UNKNOWN` is sent again (see [`Repo::put_manifest`]).
const BLOB_UNKNOWN_RETRIES: u32 = 2;

/// `(threshold, chunk size)` for uploads: `$LADE_UPLOAD_CHUNK_SIZE` (bytes) sets both, for registries or
/// proxies that limit request sizes; else [`CHUNKED_THRESHOLD`] and [`CHUNK`].
fn chunking() -> (u64, usize) {
    match std::env::var("LADE_UPLOAD_CHUNK_SIZE")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(n) if n > 0 => (n as u64, n),
        _ => (CHUNKED_THRESHOLD, CHUNK),
    }
}

/// A repository on a registry.
#[derive(Clone)]
pub struct Repo {
    pub registry: Arc<Registry>,
    /// Path inside the registry: `library/alpine`.
    pub name: String,
    /// Whether this handle will push (asks for `pull,push` tokens).
    pub push: bool,
}

/// A manifest as the registry returned it.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

fn headers(pairs: &[(reqwest::header::HeaderName, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            k.clone(),
            HeaderValue::from_str(v).expect("static header values are valid"),
        );
    }
    h
}

fn content_type(h: &HeaderMap) -> Option<String> {
    h.get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
}

impl Repo {
    pub fn new(registry: Arc<Registry>, name: &str, push: bool) -> Repo {
        Repo {
            registry,
            name: name.to_string(),
            push,
        }
    }

    fn scopes(&self) -> Vec<String> {
        vec![format!(
            "repository:{}:{}",
            self.name,
            if self.push { "pull,push" } else { "pull" }
        )]
    }

    /// `registry/name` for messages.
    pub fn display(&self) -> String {
        format!("{}/{}", self.registry.host, self.name)
    }

    async fn url(&self, tail: &str) -> Result<String> {
        Ok(format!(
            "{}/v2/{}/{tail}",
            self.registry.base().await?,
            self.name
        ))
    }

    /// Resolve a `Location` header against the registry's base URL.
    async fn location(&self, r: &reqwest::Response, what: &str) -> Result<url::Url> {
        let loc = r
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .with_context(|| {
                format!(
                    "{what}: registry {} sent no Location header",
                    self.registry.host
                )
            })?;
        let base = url::Url::parse(&self.registry.base().await?)?;
        base.join(loc)
            .with_context(|| format!("{what}: Location `{loc}` is not a URL"))
    }

    /// Fetch a manifest by tag or digest; a digest reference is verified.
    pub async fn get_manifest(&self, reference: &str) -> Result<Option<Manifest>> {
        let what = format!("fetching manifest {}:{reference}", self.display());
        let url = self.url(&format!("manifests/{reference}")).await?;
        // A body cut short (EOF, reset) is fetched again, like any transient failure.
        let mut attempt = 0;
        let (ct, header_digest, bytes) = loop {
            let Some(r) = self
                .fetch(
                    Method::GET,
                    &url,
                    headers(&[(ACCEPT, MANIFEST_ACCEPT)]),
                    &what,
                )
                .await?
            else {
                return Ok(None);
            };
            let ct = content_type(r.headers());
            let header_digest = r
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            match body::read(r, MANIFEST_MAX, "manifest").await {
                Ok(b) => break (ct, header_digest, b),
                Err(BodyError::Read(e)) if attempt < self.registry.retry_times => {
                    tracing::warn!("{what}: {}; retrying", super::client::error_chain(&e));
                    attempt += 1;
                }
                Err(e) => bail!("{what}: {e}"),
            }
        };
        let digest = if let Ok(d) = reference.parse::<Digest>()
            && reference.contains(':')
        {
            check_bytes(&bytes, &d, None).with_context(|| {
                format!("{what}: the registry sent a manifest that does not match the digest")
            })?;
            d
        } else {
            let d = sha256_digest(&bytes);
            if let Some(h) = header_digest
                .as_deref()
                .and_then(|h| h.parse::<Digest>().ok())
                && h.algorithm() == d.algorithm()
                && h != d
            {
                bail!("{what}: the registry says the manifest is {h}, but its bytes hash to {d}");
            }
            d
        };
        let sniffed = media::sniff(&bytes);
        let media_type = match ct {
            Some(ct)
                if media::is_index(&ct)
                    || media::is_manifest(&ct)
                    || ct.starts_with("application/vnd.oci.") =>
            {
                ct
            }
            _ => sniffed,
        };
        Ok(Some(Manifest {
            bytes,
            media_type,
            digest,
        }))
    }

    /// A bodiless request: the response when it succeeds, None on 404, the registry's error otherwise.
    async fn fetch(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        what: &str,
    ) -> Result<Option<reqwest::Response>> {
        let r = self
            .registry
            .send(method, url, &self.scopes(), headers, Body::Empty, what)
            .await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(self.registry.error(r, what).await);
        }
        Ok(Some(r))
    }

    /// HEAD a manifest: its digest when present.
    pub async fn head_manifest(&self, reference: &str) -> Result<Option<Digest>> {
        let what = format!("checking manifest {}:{reference}", self.display());
        let url = self.url(&format!("manifests/{reference}")).await?;
        let Some(r) = self
            .fetch(
                Method::HEAD,
                &url,
                headers(&[(ACCEPT, MANIFEST_ACCEPT)]),
                &what,
            )
            .await?
        else {
            return Ok(None);
        };
        match r
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|d| d.parse().ok())
        {
            Some(d) => Ok(Some(d)),
            None => Ok(self.get_manifest(reference).await?.map(|m| m.digest)),
        }
    }

    /// Put a manifest under a tag or its digest. Returns whether the registry handled its `subject`
    /// (the `OCI-Subject` header of distribution-spec 1.1).
    pub async fn put_manifest(
        &self,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<bool> {
        let what = format!("pushing manifest {}:{reference}", self.display());
        let url = self.url(&format!("manifests/{reference}")).await?;
        let mut attempt = 0;
        loop {
            let body = Body::Bytes(bytes::Bytes::copy_from_slice(bytes));
            let r = self
                .registry
                .send(
                    Method::PUT,
                    &url,
                    &self.scopes(),
                    headers(&[(CONTENT_TYPE, media_type)]),
                    body,
                    &what,
                )
                .await?;
            if r.status().is_success() {
                return Ok(r.headers().contains_key("oci-subject"));
            }
            let e = self.registry.error(r, &what).await;
            // The blobs were all there a moment ago; another client writing one of them into this
            // repository can make docker-registry 2.8 misread it (its link file is rewritten in place).
            // That passes; a blob really missing fails again.
            let blob_unknown = HttpError::find(&e).is_some_and(|h| {
                h.status == StatusCode::BAD_REQUEST && h.has_code("MANIFEST_BLOB_UNKNOWN")
            });
            if blob_unknown && attempt < BLOB_UNKNOWN_RETRIES {
                attempt += 1;
                tracing::warn!("{e:#}; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
                continue;
            }
            return Err(e);
        }
    }

    /// Delete a manifest by digest (a tag is resolved first).
    pub async fn delete_manifest(&self, reference: &str) -> Result<Digest> {
        let digest = match reference.parse::<Digest>() {
            Ok(d) if reference.contains(':') => d,
            _ => self
                .head_manifest(reference)
                .await?
                .with_context(|| format!("{}:{reference} does not exist", self.display()))?,
        };
        let what = format!("deleting manifest {}@{digest}", self.display());
        let url = self.url(&format!("manifests/{digest}")).await?;
        let r = self
            .registry
            .send(
                Method::DELETE,
                &url,
                &self.scopes_delete(),
                HeaderMap::new(),
                Body::Empty,
                &what,
            )
            .await?;
        match r.status() {
            s if s.is_success() => Ok(digest),
            StatusCode::NOT_FOUND => bail!("{what}: it does not exist"),
            StatusCode::METHOD_NOT_ALLOWED => bail!(
                "{what}: the registry does not allow deletes (docker-registry needs storage.delete.enabled: true)"
            ),
            _ => Err(self.registry.error(r, &what).await),
        }
    }

    fn scopes_delete(&self) -> Vec<String> {
        vec![format!("repository:{}:delete,pull,push", self.name)]
    }

    /// Whether a blob exists (HEAD).
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let what = format!("checking blob {digest} in {}", self.display());
        let url = self.url(&format!("blobs/{digest}")).await?;
        let r = self
            .registry
            .send(
                Method::HEAD,
                &url,
                &self.scopes(),
                HeaderMap::new(),
                Body::Empty,
                &what,
            )
            .await?;
        match r.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.registry.error(r, &what).await),
        }
    }

    /// Download a blob as a stream. A connection that breaks mid-body is resumed with a `Range` request
    /// (up to the retry limit). The caller verifies the digest (the copy engine's `DigestingReader`).
    pub async fn get_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let digest = desc.digest().clone();
        let what = format!("fetching blob {digest} from {}", self.display());
        let url = self.url(&format!("blobs/{digest}")).await?;
        let first = self.open_blob(&url, 0, &what).await?;
        let size = Some(desc.size()).filter(|s| *s > 0);
        let state = BlobState {
            repo: self.clone(),
            url,
            what,
            offset: 0,
            size,
            body: Some(first),
            resumes: 0,
        };
        let stream = futures::stream::unfold(state, |mut st| async move {
            loop {
                let body = match st.body.as_mut() {
                    Some(b) => b,
                    None => return None,
                };
                match body.next().await {
                    Some(Ok(chunk)) => {
                        st.offset += chunk.len() as u64;
                        return Some((Ok(chunk), st));
                    }
                    None if st.size.is_none_or(|s| st.offset >= s) => return None,
                    end => {
                        // Broken or short: resume from the offset.
                        let cause = match end {
                            Some(Err(e)) => super::client::error_chain(&e),
                            _ => "the connection closed early".into(),
                        };
                        if st.resumes >= st.repo.registry.retry_times {
                            st.body = None;
                            let msg = format!(
                                "{}: {cause} after {} bytes (gave up after {} resumes)",
                                st.what, st.offset, st.resumes
                            );
                            return Some((
                                Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg)),
                                st,
                            ));
                        }
                        st.resumes += 1;
                        tracing::warn!("{}: {cause} after {} bytes; resuming", st.what, st.offset);
                        match st.repo.open_blob(&st.url, st.offset, &st.what).await {
                            Ok(b) => st.body = Some(b),
                            Err(e) => {
                                st.body = None;
                                return Some((Err(std::io::Error::other(format!("{e:#}"))), st));
                            }
                        }
                    }
                }
            }
        });
        Ok(Box::new(tokio_util::io::StreamReader::new(stream.boxed())))
    }

    /// GET a blob from `offset` (a `Range` request when > 0; a server ignoring it is handled by skipping).
    async fn open_blob(&self, url: &str, offset: u64, what: &str) -> Result<BodyStream> {
        let mut h = HeaderMap::new();
        if offset > 0 {
            h.insert(RANGE, HeaderValue::from_str(&format!("bytes={offset}-"))?);
        }
        let r = self
            .registry
            .send(Method::GET, url, &self.scopes(), h, Body::Empty, what)
            .await?;
        match r.status() {
            StatusCode::NOT_FOUND => bail!("{what}: the blob does not exist"),
            StatusCode::PARTIAL_CONTENT if offset > 0 => Ok(r.bytes_stream().boxed()),
            StatusCode::OK => {
                let s = r.bytes_stream();
                if offset == 0 {
                    return Ok(s.boxed());
                }
                // No range support: skip what we already have.
                let mut skip = offset;
                Ok(s.filter_map(move |c| {
                    let out = match c {
                        Ok(mut b) if skip > 0 => {
                            let n = skip.min(b.len() as u64);
                            skip -= n;
                            let rest = b.split_off(n as usize);
                            (!rest.is_empty()).then_some(Ok(rest))
                        }
                        other => Some(other),
                    };
                    futures::future::ready(out)
                })
                .boxed())
            }
            _ => Err(self.registry.error(r, what).await),
        }
    }

    /// Cross-repository mount of `digest` from repository `from` (same registry). Ok(true) when mounted.
    pub async fn mount_blob(&self, digest: &Digest, from: &str) -> Result<bool> {
        let what = format!("mounting blob {digest} from {from} into {}", self.display());
        let url = self
            .url(&format!("blobs/uploads/?mount={digest}&from={from}"))
            .await?;
        let mut scopes = self.scopes();
        scopes.push(format!("repository:{from}:pull"));
        let r = self
            .registry
            .send(
                Method::POST,
                &url,
                &scopes,
                HeaderMap::new(),
                Body::Empty,
                &what,
            )
            .await?;
        match r.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The registry started a plain upload instead: cancel it.
                if let Ok(loc) = self.location(&r, &what).await {
                    let _ = self
                        .registry
                        .send(
                            Method::DELETE,
                            loc.as_str(),
                            &self.scopes(),
                            HeaderMap::new(),
                            Body::Empty,
                            &what,
                        )
                        .await;
                }
                Ok(false)
            }
            StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Ok(false),
            _ => Err(self.registry.error(r, &what).await),
        }
    }

    async fn start_upload(&self, what: &str) -> Result<url::Url> {
        let url = self.url("blobs/uploads/").await?;
        let r = self
            .registry
            .send(
                Method::POST,
                &url,
                &self.scopes(),
                headers(&[(CONTENT_LENGTH, "0")]),
                Body::Empty,
                what,
            )
            .await?;
        if r.status() != StatusCode::ACCEPTED {
            return Err(self.registry.error(r, what).await);
        }
        self.location(&r, what).await
    }

    fn with_digest(mut loc: url::Url, digest: &Digest) -> url::Url {
        loc.query_pairs_mut().append_pair("digest", digest.as_ref());
        loc
    }

    /// Upload a blob: POST for a session, then one streaming PUT (monolithic), or PATCH chunks then PUT
    /// for blobs above [`CHUNKED_THRESHOLD`] or of unknown size. The registry checks the digest before the
    /// blob becomes visible; a stream that fails midway aborts the upload.
    pub async fn put_blob(&self, desc: &Descriptor, data: BlobStream) -> Result<()> {
        let digest = desc.digest().clone();
        let size = Some(desc.size()).filter(|s| *s > 0);
        let what = format!("uploading blob {digest} to {}", self.display());
        let loc = self.start_upload(&what).await?;
        match size {
            Some(s) if s <= chunking().0 => self.put_monolithic(loc, &digest, s, data, &what).await,
            _ => self.put_chunked(loc, &digest, data, &what).await,
        }
    }

    /// Upload a blob as it is being written to a file, following `from` (see [`BlobProgress`]): each
    /// stretch of up to 8 MiB is mapped from the file and PATCHed once written, and the upload is completed
    /// with the digest `End` names; the registry hashes what it got and refuses a digest it does not
    /// match, so bytes sent wrong never become a visible blob (and are not hashed here a second time). A
    /// channel closed before `End` leaves the upload unfinished. Returns the digest uploaded.
    pub async fn put_blob_as_written(
        &self,
        from: &mut tokio::sync::mpsc::UnboundedReceiver<BlobProgress>,
    ) -> Result<Digest> {
        const STRETCH: u64 = 8 << 20;
        let what = format!("uploading a blob to {} as it is written", self.display());
        let mut loc = self.start_upload(&what).await?;
        let (mut file, mut written, mut sent) = (None, 0u64, 0u64);
        let digest = loop {
            let end = match from.recv().await {
                Some(BlobProgress::Started(f)) => {
                    file = Some(f);
                    None
                }
                Some(BlobProgress::Written(n)) => {
                    written = n;
                    None
                }
                Some(BlobProgress::End(n, d)) => {
                    written = n;
                    Some(d)
                }
                None => bail!("{what}: the blob was abandoned before its end"),
            };
            while written - sent >= STRETCH || (end.is_some() && written > sent) {
                let Some(f) = file.clone() else {
                    bail!("{what}: told of bytes written before the file");
                };
                let len = (written - sent).min(STRETCH) as usize;
                let at = sent;
                let chunk = tokio::task::spawn_blocking(move || map_written(&f, at, len))
                    .await
                    .context("reading the blob being written")?
                    .with_context(|| format!("{what}: reading the blob being written"))?;
                loc = self.patch_chunk(loc, sent, chunk, &what).await?;
                sent += len as u64;
            }
            if let Some(d) = end {
                break d;
            }
        };
        self.complete_upload(loc, &digest, &what).await?;
        Ok(digest)
    }

    /// PATCH `chunk` at `offset` of the upload at `loc`; returns where the upload goes on.
    async fn patch_chunk(
        &self,
        loc: url::Url,
        offset: u64,
        chunk: bytes::Bytes,
        what: &str,
    ) -> Result<url::Url> {
        let n = chunk.len() as u64;
        let range = format!("{offset}-{}", offset + n - 1);
        let h = headers(&[
            (CONTENT_TYPE, "application/octet-stream"),
            (CONTENT_LENGTH, &n.to_string()),
            (reqwest::header::CONTENT_RANGE, &range),
        ]);
        let r = self
            .registry
            .send(
                Method::PATCH,
                loc.as_str(),
                &self.scopes(),
                h,
                Body::Bytes(chunk),
                what,
            )
            .await?;
        if r.status() != StatusCode::ACCEPTED {
            return Err(self.registry.error(r, what).await);
        }
        self.location(&r, what).await
    }

    /// The closing PUT of a chunked upload: the registry checks `digest` and makes the blob visible.
    async fn complete_upload(&self, loc: url::Url, digest: &Digest, what: &str) -> Result<()> {
        let url = Self::with_digest(loc, digest);
        let r = self
            .registry
            .send(
                Method::PUT,
                url.as_str(),
                &self.scopes(),
                headers(&[(CONTENT_LENGTH, "0")]),
                Body::Empty,
                what,
            )
            .await?;
        if r.status() != StatusCode::CREATED {
            return Err(self.registry.error(r, what).await);
        }
        Ok(())
    }

    async fn put_monolithic(
        &self,
        loc: url::Url,
        digest: &Digest,
        size: u64,
        data: BlobStream,
        what: &str,
    ) -> Result<()> {
        let url = Self::with_digest(loc, digest);
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            data,
            256 << 10,
        ));
        let h = headers(&[
            (CONTENT_TYPE, "application/octet-stream"),
            (CONTENT_LENGTH, &size.to_string()),
        ]);
        let r = self
            .registry
            .send_stream(Method::PUT, url.as_str(), &self.scopes(), h, body, what)
            .await?;
        if r.status() != StatusCode::CREATED {
            return Err(self.registry.error(r, what).await);
        }
        Ok(())
    }

    async fn put_chunked(
        &self,
        mut loc: url::Url,
        digest: &Digest,
        mut data: BlobStream,
        what: &str,
    ) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let mut offset = 0u64;
        let chunk = chunking().1;
        let mut buf = Vec::with_capacity(chunk);
        let mut hasher = Hasher::for_digest(digest)?;
        loop {
            buf.clear();
            let n = (&mut data)
                .take(chunk as u64)
                .read_to_end(&mut buf)
                .await
                .with_context(|| format!("{what}: reading the source"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf);
            loc = self
                .patch_chunk(loc, offset, bytes::Bytes::copy_from_slice(&buf), what)
                .await?;
            offset += n as u64;
        }
        let got = hasher.finish();
        if &got != digest {
            bail!("{what}: the data hashes to {got}, not {digest}; the upload was not completed");
        }
        self.complete_upload(loc, digest, what).await
    }

    /// Every tag, following `Link: <...>; rel="next"` pages.
    pub async fn tags(&self) -> Result<Vec<String>> {
        let what = format!("listing tags of {}", self.display());
        let mut url = self.url("tags/list").await?;
        let mut out = vec![];
        for _ in 0..10_000 {
            let Some(r) = self
                .fetch(Method::GET, &url, HeaderMap::new(), &what)
                .await?
            else {
                bail!("{what}: the repository does not exist");
            };
            let next = r
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let page = body::read(r, body::MAX_TAG_LIST, "tag list")
                .await
                .with_context(|| what.clone())?;
            let v: serde_json::Value = serde_json::from_slice(&page)
                .with_context(|| format!("{what}: the answer is not JSON"))?;
            if let Some(tags) = v.get("tags").and_then(|t| t.as_array()) {
                out.extend(tags.iter().filter_map(|t| t.as_str().map(str::to_string)));
            }
            match next {
                Some(n) => {
                    url = url::Url::parse(&self.registry.base().await?)?
                        .join(&n)?
                        .to_string()
                }
                None => return Ok(out),
            }
        }
        bail!("{what}: more than 10000 pages; giving up")
    }

    /// Referrers of `subject`: the referrers API, or the `sha256-<hex>` fallback tag's index.
    /// Returns the index bytes' descriptors.
    pub async fn referrers(&self, subject: &Digest) -> Result<Vec<Descriptor>> {
        let what = format!("listing referrers of {subject} in {}", self.display());
        let url = self.url(&format!("referrers/{subject}")).await?;
        let r = self
            .registry
            .send(
                Method::GET,
                &url,
                &self.scopes(),
                headers(&[(ACCEPT, media::OCI_INDEX)]),
                Body::Empty,
                &what,
            )
            .await?;
        let index: Index = if r.status().is_success()
            && content_type(r.headers()).as_deref() == Some(media::OCI_INDEX)
        {
            let index = body::read(r, body::MAX_MANIFEST, "referrers index")
                .await
                .with_context(|| what.clone())?;
            document::parse(&index)
                .with_context(|| format!("{what}: the answer is not a valid index"))?
        } else if matches!(
            r.status(),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST
        ) || r.status().is_success()
        {
            match self.get_manifest(&fallback_tag(subject)).await? {
                Some(m) => document::parse(&m.bytes)
                    .with_context(|| format!("{what}: the fallback tag is not a valid index"))?,
                None => return Ok(vec![]),
            }
        } else {
            return Err(self.registry.error(r, &what).await);
        };
        (index.manifests.iter())
            .map(|m| {
                m.spec()
                    .with_context(|| format!("{what}: an entry is not a descriptor"))
            })
            .collect()
    }

    /// Record `referrer` in the fallback tag index of `subject` (for registries without the API).
    pub async fn add_fallback_referrer(
        &self,
        subject: &Digest,
        referrer: Descriptor,
    ) -> Result<()> {
        let tag = fallback_tag(subject);
        // A fallback tag that is not an index is replaced by one.
        let mut index = match self.get_manifest(&tag).await? {
            Some(m) => document::parse::<Index>(&m.bytes).ok(),
            None => None,
        }
        .unwrap_or_else(|| Index::empty(Some(media::OCI_INDEX)));
        if (index.manifests.iter()).any(|m| m.digest == referrer.digest().as_ref()) {
            return Ok(());
        }
        index.manifests.push(Desc::from_spec(&referrer)?);
        let bytes = document::to_vec(&index)?;
        self.put_manifest(&tag, &bytes, media::OCI_INDEX)
            .await
            .map(|_| ())
    }
}

type BodyStream = futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>;

struct BlobState {
    repo: Repo,
    url: String,
    what: String,
    offset: u64,
    size: Option<u64>,
    body: Option<BodyStream>,
    resumes: u32,
}

/// The referrers fallback tag of a digest: `sha256-<hex>`.
pub fn fallback_tag(d: &Digest) -> String {
    format!("{}-{}", d.algorithm(), d.digest())
}

/// The `next` target of a `Link` header.
fn next_link(h: &str) -> Option<String> {
    h.split(',')
        .find(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
        .and_then(|part| {
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            Some(part[start..end].to_string())
        })
}

/// `len` bytes at `at` of a blob file being written, mapped rather than read: they go from the page cache to
/// the socket with no copy in between (and no buffer to zero), which matters while the build uses every core.
fn map_written(file: &std::fs::File, at: u64, len: usize) -> std::io::Result<bytes::Bytes> {
    // SAFETY: the caller maps only bytes a `BlobProgress` writer (`layer::write_diff`, into a temp file of
    // this process's own) has reported written; such a file is only ever appended to, never truncated or
    // rewritten, so the mapped bytes stay valid and unchanged while the upload holds them.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(at)
            .len(len)
            .populate()
            .map(file)?
    };
    Ok(bytes::Bytes::from_owner(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_tags() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?n=2&last=b")
        );
        assert_eq!(next_link(r#"<x>; rel="prev""#), None);
        let d: Digest = format!("sha256:{}", "c".repeat(64)).parse().unwrap();
        assert_eq!(fallback_tag(&d), format!("sha256-{}", "c".repeat(64)));
    }
}
