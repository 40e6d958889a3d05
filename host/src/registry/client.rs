//! One registry endpoint: scheme detection (`https`, falling back to plain `http` only when TLS
//! verification is off), the auth challenge (Bearer tokens per scope, Basic, anonymous), and requests with
//! retries (exponential backoff on 5xx, 429 with `Retry-After`, connection errors).

use super::SystemContext;
use super::auth::{self, Credentials};
use super::body;
use super::tls;
use anyhow::{Context, Result, anyhow, bail};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse `Bearer realm="..",service="..",scope=".."` or `Basic realm=".."`.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some((k, after)) = s.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n)
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => out.push(c),
                }
            }
            (out, &q[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        params.insert(k, v);
        s = next.trim_start().trim_start_matches(',').trim_start();
    }
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.remove("realm")?,
            service: params.remove("service"),
            scope: params.remove("scope"),
        }),
        _ => None,
    }
}

/// One registry host as lade talks to it.
pub struct Registry {
    /// As written in references: `docker.io`, `127.0.0.1:5000`.
    pub host: String,
    /// Where the API lives (`registry-1.docker.io` for docker.io).
    api_host: String,
    http: reqwest::Client,
    /// TLS verification is off: plain http is allowed too.
    insecure: bool,
    scheme: tokio::sync::OnceCell<&'static str>,
    creds: Option<Credentials>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, String>>,
    pub retry_times: u32,
}

/// A request body that can be sent again on retry.
#[derive(Clone)]
pub enum Body {
    Empty,
    Bytes(bytes::Bytes),
}

fn transient_status(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS || matches!(s.as_u16(), 500 | 502 | 503 | 504)
}

/// The longest wait a `Retry-After` header can ask for.
const RETRY_AFTER_MAX: Duration = Duration::from_secs(60);

/// How long to wait before attempt `attempt + 1`: `Retry-After` when given (RFC 9110: seconds, or an
/// HTTP-date; capped at a minute), else 200ms doubling up to 10s.
fn backoff(attempt: u32, retry_after: Option<&HeaderValue>) -> Duration {
    backoff_at(attempt, retry_after, std::time::SystemTime::now())
}

/// [`backoff`] with the clock as a parameter; a date in the past means "now".
fn backoff_at(
    attempt: u32,
    retry_after: Option<&HeaderValue>,
    now: std::time::SystemTime,
) -> Duration {
    if let Some(v) = retry_after.and_then(|v| v.to_str().ok()).map(str::trim) {
        if let Ok(secs) = v.parse::<u64>() {
            return Duration::from_secs(secs).min(RETRY_AFTER_MAX);
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return at
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
                .min(RETRY_AFTER_MAX);
        }
    }
    Duration::from_millis((200u64 << attempt.min(6)).min(10_000))
}

impl Registry {
    /// A client for `host`. `conf_insecure`: registries.conf marks the host insecure. `repository` picks
    /// namespaced credentials from auth files.
    pub fn new(
        host: &str,
        repository: Option<&str>,
        ctx: &SystemContext,
        conf_insecure: bool,
    ) -> Result<Registry> {
        let verify = ctx.tls_verify.unwrap_or(!conf_insecure);
        let settings = tls::settings_for(host, verify, ctx.cert_dir.as_deref())?;
        let http = tls::client(&settings)?;
        let creds = match &ctx.creds {
            Some(c) => Some(Credentials::from_creds_flag(c)?),
            None => auth::lookup_for(host, repository, ctx)?,
        };
        let api_host = if host == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            host.to_string()
        };
        Ok(Registry {
            host: host.into(),
            api_host,
            http,
            insecure: !verify,
            scheme: tokio::sync::OnceCell::new(),
            creds,
            challenge: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            retry_times: if ctx.retry_times == 0 {
                3
            } else {
                ctx.retry_times
            },
        })
    }

    /// With explicit credentials (login checks them).
    pub fn with_credentials(mut self, c: Option<Credentials>) -> Registry {
        self.creds = c;
        self
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `scheme://api_host`, probing the registry once (`GET /v2/`).
    pub async fn base(&self) -> Result<String> {
        let scheme = self.scheme.get_or_try_init(|| self.probe()).await?;
        Ok(format!("{scheme}://{}", self.api_host))
    }

    async fn ping(&self, scheme: &str) -> Result<Response, reqwest::Error> {
        self.http
            .get(format!("{scheme}://{}/v2/", self.api_host))
            .send()
            .await
    }

    async fn probe(&self) -> Result<&'static str> {
        let mut attempt = 0;
        loop {
            let https = self.ping("https").await;
            let (scheme, res) = match https {
                Ok(r) => ("https", Ok(r)),
                Err(e) if self.insecure => match self.ping("http").await {
                    Ok(r) => ("http", Ok(r)),
                    Err(_) => ("https", Err(e)),
                },
                Err(e) => ("https", Err(e)),
            };
            match res {
                Ok(r) if transient_status(r.status()) && attempt < self.retry_times => {
                    tokio::time::sleep(backoff(attempt, r.headers().get("retry-after"))).await;
                }
                Ok(r) => {
                    self.note_challenge(r.headers());
                    return Ok(scheme);
                }
                Err(e)
                    if attempt < self.retry_times
                        && (e.is_connect() || e.is_timeout() || e.is_request())
                        && !is_tls_error(&e) =>
                {
                    tokio::time::sleep(backoff(attempt, None)).await;
                }
                Err(e) => {
                    let hint = if self.insecure {
                        String::new()
                    } else {
                        "; if it serves plain HTTP or a self-signed certificate, pass --tls-verify=false or mark it insecure in registries.conf".into()
                    };
                    return Err(anyhow!(
                        "cannot reach registry {} at https://{}/v2/: {}{hint}",
                        self.host,
                        self.api_host,
                        error_chain(&e)
                    ));
                }
            }
            attempt += 1;
        }
    }

    fn note_challenge(&self, h: &HeaderMap) {
        if let Some(c) = h
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
        {
            *self.challenge.lock().expect("lock") = Some(c);
        }
    }

    /// Get a Bearer token for `scopes` from the realm.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String> {
        let mut url = url::Url::parse(realm).with_context(|| {
            format!("registry {}: token realm `{realm}` is not a URL", self.host)
        })?;
        let req = match &self.creds {
            Some(Credentials::IdentityToken(t)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_string()),
                    ("refresh_token", t.clone()),
                    ("client_id", "lade".into()),
                ];
                if let Some(s) = service {
                    form.push(("service", s.into()));
                }
                if !scopes.is_empty() {
                    form.push(("scope", scopes.join(" ")));
                }
                self.http.post(url).form(&form)
            }
            other => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for s in scopes {
                        q.append_pair("scope", s);
                    }
                }
                let r = self.http.get(url);
                match other {
                    Some(Credentials::Basic { username, password }) => {
                        r.basic_auth(username, Some(password))
                    }
                    _ => r,
                }
            }
        };
        let mut attempt = 0;
        let resp = loop {
            match req
                .try_clone()
                .expect("token requests have no streaming body")
                .send()
                .await
            {
                Ok(r) if transient_status(r.status()) && attempt < self.retry_times => {
                    tokio::time::sleep(backoff(attempt, r.headers().get("retry-after"))).await;
                }
                Ok(r) => break r,
                Err(e) if attempt < self.retry_times && !is_tls_error(&e) => {
                    tokio::time::sleep(backoff(attempt, None)).await
                }
                Err(e) => bail!(
                    "registry {}: requesting a token from {realm}: {}",
                    self.host,
                    error_chain(&e)
                ),
            }
            attempt += 1;
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            bail!(
                "registry {}: the token server {realm} refused {} (HTTP {status}); check the user name and password (lade login, --creds)",
                self.host,
                if self.creds.is_some() {
                    "these credentials"
                } else {
                    "anonymous access"
                }
            );
        }
        if !status.is_success() {
            bail!(
                "registry {}: the token server {realm} answered HTTP {status}: {}",
                self.host,
                error_text(resp).await
            );
        }
        let body = body::read(resp, body::MAX_TOKEN, "token answer")
            .await
            .with_context(|| format!("registry {}: requesting a token", self.host))?;
        let v: serde_json::Value = serde_json::from_slice(&body).with_context(|| {
            format!(
                "registry {}: the token server {realm} sent no JSON",
                self.host
            )
        })?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .with_context(|| {
                format!(
                    "registry {}: the token server {realm} sent no token",
                    self.host
                )
            })
    }

    /// The Authorization header for a request needing `scopes`, fetching a token when needed.
    async fn authorization(&self, scopes: &[String], fresh: bool) -> Result<Option<HeaderValue>> {
        let challenge = self.challenge.lock().expect("lock").clone();
        match challenge {
            None => Ok(None),
            Some(Challenge::Basic) => match &self.creds {
                Some(Credentials::Basic { username, password }) => {
                    use base64::Engine as _;
                    let enc = base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"));
                    Ok(Some(HeaderValue::from_str(&format!("Basic {enc}"))?))
                }
                Some(Credentials::IdentityToken(_)) => bail!(
                    "registry {} asks for basic auth, but only an identity token is stored",
                    self.host
                ),
                None => Ok(None),
            },
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
            }) => {
                let mut scopes = scopes.to_vec();
                if let Some(s) = scope
                    && !scopes.contains(&s)
                {
                    scopes.push(s);
                }
                scopes.sort();
                let key = scopes.join(" ");
                if !fresh && let Some(t) = self.tokens.lock().expect("lock").get(&key) {
                    return Ok(Some(HeaderValue::from_str(&format!("Bearer {t}"))?));
                }
                let t = self
                    .fetch_token(&realm, service.as_deref(), &scopes)
                    .await?;
                self.tokens.lock().expect("lock").insert(key, t.clone());
                Ok(Some(HeaderValue::from_str(&format!("Bearer {t}"))?))
            }
        }
    }

    /// Send a replayable request with auth and retries. `what` names it in errors.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        scopes: &[String],
        headers: HeaderMap,
        body: Body,
        what: &str,
    ) -> Result<Response> {
        self.base().await?;
        let mut attempt = 0;
        let mut reauthed = false;
        loop {
            let mut req = self
                .http
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(a) = self.authorization(scopes, false).await? {
                req = req.header(AUTHORIZATION, a);
            }
            if let Body::Bytes(b) = &body {
                req = req.body(b.clone());
            }
            match req.send().await {
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !reauthed => {
                    reauthed = true;
                    let old = self.challenge.lock().expect("lock").clone();
                    self.note_challenge(r.headers());
                    let new = self.challenge.lock().expect("lock").clone();
                    if old == new && matches!(new, Some(Challenge::Basic) | None) {
                        return Ok(r);
                    }
                    // A new or scoped challenge: fetch a fresh token for it next round.
                    self.authorization(scopes, true).await?;
                }
                Ok(r) if transient_status(r.status()) && attempt < self.retry_times => {
                    tracing::warn!("{what}: HTTP {} from {}; retrying", r.status(), self.host);
                    tokio::time::sleep(backoff(attempt, r.headers().get("retry-after"))).await;
                    attempt += 1;
                }
                Ok(r) => return Ok(r),
                Err(e) if attempt < self.retry_times && !is_tls_error(&e) => {
                    tracing::warn!("{what}: {}; retrying", error_chain(&e));
                    tokio::time::sleep(backoff(attempt, None)).await;
                    attempt += 1;
                }
                Err(e) => bail!("{what}: {}", error_chain(&e)),
            }
        }
    }

    /// Send once with a streaming body (not replayable). Auth must already be settled for `scopes` by an
    /// earlier request in the same flow (the upload's POST).
    pub async fn send_stream(
        &self,
        method: Method,
        url: &str,
        scopes: &[String],
        headers: HeaderMap,
        body: reqwest::Body,
        what: &str,
    ) -> Result<Response> {
        let mut req = self.http.request(method, url).headers(headers).body(body);
        if let Some(a) = self.authorization(scopes, false).await? {
            req = req.header(AUTHORIZATION, a);
        }
        req.send()
            .await
            .map_err(|e| anyhow!("{what}: {}", error_chain(&e)))
    }

    /// Check that the credentials are accepted (for `lade login`): a Basic registry must answer `GET /v2/`
    /// with success, a Bearer one must hand out a token.
    pub async fn check_login(&self) -> Result<()> {
        let base = self.base().await?;
        let challenge = self.challenge.lock().expect("lock").clone();
        match challenge {
            Some(Challenge::Bearer { realm, service, .. }) => self
                .fetch_token(&realm, service.as_deref(), &[])
                .await
                .map(|_| ()),
            _ => {
                let url = format!("{base}/v2/");
                let r = self
                    .send(
                        Method::GET,
                        &url,
                        &[],
                        HeaderMap::new(),
                        Body::Empty,
                        &format!("logging in to {}", self.host),
                    )
                    .await?;
                match r.status() {
                    s if s.is_success() => Ok(()),
                    StatusCode::UNAUTHORIZED => bail!(
                        "logging in to {}: the registry rejected the user name or password",
                        self.host
                    ),
                    _ => Err(self.error(r, &format!("logging in to {}", self.host)).await),
                }
            }
        }
    }

    /// An error for an unexpected response, with the registry's own error message: an [`HttpError`] that
    /// callers branch on by status and error code.
    pub async fn error(&self, r: Response, what: &str) -> anyhow::Error {
        let status = r.status();
        let body = error_text(r).await;
        let errors = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                let errs = v.get("errors")?.as_array()?.clone();
                Some(
                    errs.iter()
                        .map(|e| {
                            (
                                e["code"].as_str().unwrap_or("?").to_string(),
                                e["message"].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect::<Vec<_>>(),
                )
            })
            .unwrap_or_default();
        let detail = if errors.is_empty() {
            body.chars().take(300).collect()
        } else {
            errors
                .iter()
                .map(|(c, m)| format!("{c}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let hint = match status {
            StatusCode::UNAUTHORIZED => format!(
                " (authentication required: run `lade login {}` or pass --creds)",
                self.host
            ),
            StatusCode::FORBIDDEN => " (the credentials lack permission for this)".to_string(),
            _ => String::new(),
        };
        anyhow::Error::new(HttpError {
            what: what.to_string(),
            host: self.host.clone(),
            status,
            codes: errors.into_iter().map(|(c, _)| c).collect(),
            hint,
            detail,
        })
    }
}

/// An error answer's body as text, read up to [`body::MAX_ERROR`]; past that, or when it cannot be read,
/// a sentence saying so (the status is what matters then).
async fn error_text(r: Response) -> String {
    match body::read(r, body::MAX_ERROR, "error answer").await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => format!("({e})"),
    }
}

/// A TLS failure (a bad or untrusted certificate, a server that does not speak TLS): retrying cannot help.
/// Told by type: a `rustls::Error` somewhere in the source chain, also inside an `io::Error` (whose
/// `source()` skips the error it wraps).
fn is_tls_error(e: &reqwest::Error) -> bool {
    chain_has_tls(e)
}

fn chain_has_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if c.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = c
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && chain_has_tls(inner)
        {
            return true;
        }
        cur = c.source();
    }
    false
}

/// The error with its sources, which is where reqwest keeps the useful part.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that wraps another, as hyper and reqwest do.
    #[derive(Debug)]
    struct Wrap(Box<dyn std::error::Error + Send + Sync>);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request")
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(self.0.as_ref())
        }
    }

    #[test]
    fn tls_errors_are_told_by_type_not_text() {
        let cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, cert);
        assert!(chain_has_tls(&Wrap(Box::new(io))));
        let plain = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(chain_has_tls(&Wrap(Box::new(plain))));
        // A refused connection is worth retrying, whatever its text says.
        let refused = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "tls proxy: certificate store refused the connection",
        );
        assert!(!chain_has_tls(&Wrap(Box::new(refused))));
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(
            backoff(0, Some(&HeaderValue::from_static("2"))),
            Duration::from_secs(2)
        );
        assert_eq!(backoff(2, None), Duration::from_millis(800));
        assert_eq!(backoff(30, None), Duration::from_secs(10));
    }

    #[test]
    fn retry_after_seconds_and_http_dates() {
        use std::time::{SystemTime, UNIX_EPOCH};
        let h = HeaderValue::from_static;
        // Wed, 21 Oct 2026 07:28:00 GMT
        let date = UNIX_EPOCH + Duration::from_secs(1_792_567_680);
        let at = |secs_before: u64| date - Duration::from_secs(secs_before);
        let v = h("Wed, 21 Oct 2026 07:28:00 GMT");
        assert_eq!(backoff_at(0, Some(&v), at(7)), Duration::from_secs(7));
        // Capped like the seconds form; a past date retries at once.
        assert_eq!(backoff_at(0, Some(&v), at(3600)), RETRY_AFTER_MAX);
        assert_eq!(backoff_at(0, Some(&h("3600")), date), RETRY_AFTER_MAX);
        assert_eq!(
            backoff_at(0, Some(&v), date + Duration::from_secs(5)),
            Duration::ZERO
        );
        // The obsolete RFC 850 and asctime forms are HTTP-dates too.
        for old in [
            "Wednesday, 21-Oct-26 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2026",
        ] {
            assert_eq!(
                backoff_at(0, Some(&h(old)), at(4)),
                Duration::from_secs(4),
                "{old}"
            );
        }
        // Garbage falls back to the exponential backoff.
        for bad in ["soon", "-1", "Wed, 32 Oct 2026 07:28:00 GMT", ""] {
            assert_eq!(
                backoff_at(1, Some(&h(bad)), SystemTime::now()),
                Duration::from_millis(400),
                "{bad}"
            );
        }
    }
}

/// A registry answered with an unexpected HTTP status. Code that must tell cases apart (authentication,
/// a missing blob, not found) asks this, never the message text: see [`HttpError::find`].
#[derive(Debug, thiserror::Error)]
#[error("{what}: registry {host} answered HTTP {status}{hint}: {detail}")]
pub struct HttpError {
    what: String,
    host: String,
    pub status: StatusCode,
    /// The distribution-spec error codes of the body (`MANIFEST_BLOB_UNKNOWN`, `DENIED`, ...).
    pub codes: Vec<String>,
    hint: String,
    detail: String,
}

impl HttpError {
    /// The registry error anywhere in `e`'s chain of causes.
    pub fn find(e: &anyhow::Error) -> Option<&HttpError> {
        e.chain().find_map(|c| c.downcast_ref::<HttpError>())
    }
    /// 401 or 403: credentials missing, wrong or not enough.
    pub fn is_auth(&self) -> bool {
        matches!(
            self.status,
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
        )
    }
    /// The body carries this distribution-spec error code.
    pub fn has_code(&self, code: &str) -> bool {
        self.codes.iter().any(|c| c == code)
    }
}
