//! The HTTP side of one registry: TLS, plain HTTP where allowed, authentication (anonymous,
//! Basic, the Bearer token flow), redirects that never carry credentials to another host, and
//! retries of what is worth retrying. Pull and push build their requests on [`Client::send`].
//!
//! One client serves one registry and may be shared by threads: ureq's agent keeps a pool of
//! connections, tokens are cached per scope for the client's life and fetched again when the
//! registry answers 401 to one.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine;
use ureq::http;

use super::challenge::{self, Challenge};
use super::credentials::Credential;
use super::error::{Error, Result};
use super::name::is_loopback_host;

/// The media types strata accepts for a manifest request, in the `Accept` header.
pub const MANIFEST_TYPES: &[&str] = &[
    crate::spec::media_type::MANIFEST,
    crate::spec::media_type::INDEX,
    crate::spec::media_type::DOCKER_MANIFEST,
    crate::spec::media_type::DOCKER_MANIFEST_LIST,
];

/// A log line callback (for `-v`); it never receives a secret.
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// How to reach a registry.
#[derive(Clone)]
pub struct ClientOptions {
    /// Speak plain HTTP (allowed without this only to loopback addresses, after HTTPS fails).
    pub plain_http: bool,
    /// Accept any TLS certificate. Leaks secrets to whoever is in the middle: only for tests.
    pub insecure: bool,
    /// Certificate authorities to trust besides the system's: PEM files, or directories
    /// whose `*.crt` and `*.pem` files are read (docker's `certs.d/HOST/` layout).
    pub ca_certs: Vec<PathBuf>,
    /// An HTTP proxy URL (`http://host:port`), or none.
    pub proxy: Option<String>,
    /// Hosts the proxy is not used for (`NO_PROXY`'s comma-separated syntax).
    pub no_proxy: Option<String>,
    /// The credential for this registry, if any.
    pub credential: Option<Arc<Credential>>,
    /// How many times a transient failure (429, 5xx, a dropped connection) is retried.
    pub retries: u32,
    /// The first retry's delay; each next one doubles it (a `Retry-After` is honoured up to
    /// 30 seconds).
    pub retry_delay: Duration,
    /// Sent as `User-Agent`.
    pub user_agent: String,
    /// Where `-v` lines go.
    pub log: Option<LogFn>,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            plain_http: false,
            insecure: false,
            ca_certs: Vec::new(),
            proxy: None,
            no_proxy: None,
            credential: None,
            retries: 5,
            retry_delay: Duration::from_millis(250),
            user_agent: concat!("strata/", env!("CARGO_PKG_VERSION")).to_owned(),
            log: None,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("plain_http", &self.plain_http)
            .field("insecure", &self.insecure)
            .field("ca_certs", &self.ca_certs)
            .field("proxy", &self.proxy.as_ref().map(|_| "<set>"))
            .field("credential", &self.credential.as_ref().map(|_| "<hidden>"))
            .field("retries", &self.retries)
            .finish()
    }
}

/// What a repository is accessed for: the token scope asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reading.
    Pull,
    /// Reading and writing.
    Push,
}

/// A request body that can be produced again (for a retry or after a 401).
pub enum Body<'a> {
    /// None.
    Empty,
    /// Bytes in memory, with their content type.
    Bytes(&'a [u8], &'a str),
    /// A stream of a known length, opened anew for every attempt.
    Stream {
        /// Its length (sent as Content-Length).
        length: u64,
        /// Opens it from the start.
        open: &'a (dyn Fn() -> std::io::Result<Box<dyn Read + 'a>> + Sync),
    },
}

/// One request: a method, a path under the registry (`/v2/...`) or an absolute URL the
/// registry gave (an upload location), and what it needs.
pub struct Call<'a> {
    /// The method.
    pub method: &'static str,
    /// A path starting with `/`, or an absolute URL.
    pub target: String,
    /// The repository whose token the request needs.
    pub repository: &'a str,
    /// Read or write access.
    pub access: Access,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body<'a>,
}

impl<'a> Call<'a> {
    /// A request without a body.
    pub fn new(method: &'static str, target: String, repository: &'a str, access: Access) -> Self {
        Call {
            method,
            target,
            repository,
            access,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: Body<'a>) -> Self {
        self.body = body;
        self
    }
}

/// A response: its status, headers and a streaming body.
pub type Response = http::Response<ureq::Body>;

/// One registry's HTTP client.
pub struct Client {
    agent: ureq::Agent,
    host: String,
    options: ClientOptions,
    scheme: OnceLock<&'static str>,
    /// The challenge the registry answered 401 with, once seen.
    challenge: Mutex<Option<Challenge>>,
    /// `Authorization` values by scope key.
    auth: Mutex<HashMap<String, String>>,
    /// Whether the registry has answered once: until it has, a refused connection or an
    /// unknown host fails at once (a registry that is down or misspelt stays so for the
    /// seconds of a retry); after, it is retried as a restart or a network blip.
    answered: std::sync::atomic::AtomicBool,
}

impl Client {
    /// A client for the registry API at `host` (`host[:port]`, as [`super::ImageName::api_host`]).
    pub fn new(host: &str, options: ClientOptions) -> Result<Client> {
        let tls = tls_config(&options)?;
        let proxy = match &options.proxy {
            Some(p) => {
                let mut b = ureq::Proxy::builder(ureq::ProxyProtocol::Http);
                let parsed = ureq::Proxy::new(p).map_err(|e| Error::Transport {
                    url: without_userinfo(p),
                    reason: format!("not a proxy URL: {e}"),
                })?;
                b = b.host(parsed.host()).port(parsed.port());
                if let Some(u) = parsed.username() {
                    b = b.username(u);
                }
                if let Some(pw) = parsed.password() {
                    b = b.password(pw);
                }
                if let Some(np) = &options.no_proxy {
                    b = b.no_proxy(np);
                }
                Some(b.build().map_err(|e| Error::Transport {
                    url: without_userinfo(p),
                    reason: e.to_string(),
                })?)
            }
            None => None,
        };
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .tls_config(tls)
            .proxy(proxy)
            .user_agent(options.user_agent.as_str())
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .max_idle_connections_per_host(16)
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            host: host.to_owned(),
            options,
            scheme: OnceLock::new(),
            challenge: Mutex::new(None),
            auth: Mutex::new(HashMap::new()),
            answered: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The registry's `host[:port]`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The retry count and first delay, for callers that retry a whole operation (a blob
    /// download that resumes).
    pub fn retry_policy(&self) -> (u32, Duration) {
        (self.options.retries, self.options.retry_delay)
    }

    /// Writes a `-v` line.
    pub fn log(&self, line: &str) {
        if let Some(log) = &self.options.log {
            log(line);
        }
    }

    /// `https://host` or `http://host`. A loopback registry is tried over HTTPS first and
    /// spoken to over plain HTTP when that fails to connect, as docker does for localhost.
    /// A certificate it presents but strata does not trust is no reason to drop TLS: the
    /// requests then fail over HTTPS, saying so.
    fn base(&self) -> String {
        let scheme = self.scheme.get_or_init(|| {
            if self.options.plain_http {
                return "http";
            }
            if !is_loopback_host(&self.host) {
                return "https";
            }
            let probe = format!("https://{}/v2/", self.host);
            match self.agent.get(&probe).call() {
                Ok(_) => "https",
                Err(e) if is_certificate_error(&e) => "https",
                Err(_) => "http",
            }
        });
        format!("{scheme}://{}", self.host)
    }

    /// The URL of a path under the registry.
    pub fn url(&self, target: &str) -> String {
        if target.starts_with("http://") || target.starts_with("https://") {
            target.to_owned()
        } else {
            format!("{}{target}", self.base())
        }
    }

    /// A URL as errors and `-v` lines show it: another origin's query is left out, since
    /// object storage signs its redirect URLs there (a signature is a credential).
    fn shown(&self, url: &str) -> String {
        if origin(url) == origin(&self.base()) {
            return url.to_owned();
        }
        match url.split_once('?') {
            Some((before, _)) => format!("{before}?..."),
            None => url.to_owned(),
        }
    }

    /// Sends a request: authenticates when the registry asks, follows redirects (credentials
    /// go only to the registry's own origin), retries transient failures. Returns whatever
    /// final status the registry gave; see [`Client::expect`].
    pub fn send(&self, call: &Call<'_>) -> Result<Response> {
        let mut url = self.url(&call.target);
        let scope = scope(call.repository, call.access);
        let (mut redirects, mut authenticated, mut attempt) = (0, false, 0u32);
        loop {
            let own_origin = origin(&url) == origin(&self.base());
            let auth = if own_origin {
                self.auth
                    .lock()
                    .map(|m| m.get(&scope).cloned())
                    .ok()
                    .flatten()
            } else {
                None
            };
            let result = self.run_once(call, &url, auth.as_deref());
            let response = match result {
                Ok(r) => r,
                Err(e) => {
                    let err = Error::Transport {
                        url: self.shown(&url),
                        reason: e.reason,
                    };
                    let retry =
                        e.transient && (!e.unreachable || self.answered.load(Ordering::Relaxed));
                    if retry && attempt < self.options.retries {
                        self.pause(attempt, None, &self.shown(&url), &err.to_string());
                        attempt += 1;
                        continue;
                    }
                    return Err(err);
                }
            };
            if own_origin {
                self.answered.store(true, Ordering::Relaxed);
            }
            let status = response.status().as_u16();
            if status == 401 && own_origin && !authenticated {
                authenticated = true;
                self.authenticate(&response, call.repository, call.access, &scope)?;
                continue;
            }
            if status == 401 {
                return Err(Error::Auth {
                    registry: self.host.clone(),
                    reason: format!(
                        "{} {url}: {}",
                        call.method,
                        if self.options.credential.is_some() {
                            "the credentials were refused"
                        } else {
                            "authentication required (strata login, or a docker config with credentials)"
                        }
                    ),
                });
            }
            if matches!(status, 301 | 302 | 303 | 307 | 308)
                && matches!(call.method, "GET" | "HEAD")
            {
                let Some(location) = header(&response, "location") else {
                    return Err(Error::Invalid {
                        what: self.shown(&url),
                        reason: format!("a {status} redirect without a Location"),
                    });
                };
                redirects += 1;
                if redirects > 10 {
                    return Err(Error::Invalid {
                        what: self.shown(&url),
                        reason: "more than 10 redirects".into(),
                    });
                }
                let next = resolve(&url, &location);
                // Not transient: a Location that is no URL fails now, naming where it came from.
                if !usable_url(&next) {
                    return Err(Error::Invalid {
                        what: url,
                        reason: format!("a {status} redirect to {location:?}, which is not a URL"),
                    });
                }
                // A document fetched by tag is checked only against what the same answer
                // says its digest is: over plain HTTP anyone on the path could swap both.
                // Without --plain-http, plain HTTP is for loopback, and only after HTTPS.
                if next.starts_with("http://")
                    && !self.options.plain_http
                    && (url.starts_with("https://") || !is_loopback_host(authority(&next)))
                {
                    let from = if url.starts_with("https://") {
                        "HTTPS"
                    } else {
                        "a loopback registry"
                    };
                    return Err(Error::Invalid {
                        what: self.shown(&url),
                        reason: format!(
                            "a {status} redirect from {from} to plain HTTP ({}), refused",
                            self.shown(&next)
                        ),
                    });
                }
                url = next;
                continue;
            }
            if matches!(status, 408 | 429 | 500 | 502 | 503 | 504) && attempt < self.options.retries
            {
                let wait =
                    header(&response, "retry-after").and_then(|v| v.trim().parse::<u64>().ok());
                self.pause(
                    attempt,
                    wait,
                    &self.shown(&url),
                    &format!("status {status}"),
                );
                attempt += 1;
                continue;
            }
            return Ok(response);
        }
    }

    /// Checks that the registry answers its API and takes the credentials (what `docker
    /// login` checks): `GET /v2/`, authenticated as the registry asks.
    pub fn ping(&self) -> Result<()> {
        self.expect(&Call::new("GET", "/v2/".into(), "", Access::Pull), &[200])
            .map(|_| ())
    }

    /// [`Client::send`], and an error unless the status is one of `ok`.
    pub fn expect(&self, call: &Call<'_>, ok: &[u16]) -> Result<Response> {
        let response = self.send(call)?;
        if ok.contains(&response.status().as_u16()) {
            Ok(response)
        } else {
            Err(status_error(call.method, &self.url(&call.target), response))
        }
    }

    fn pause(&self, attempt: u32, retry_after: Option<u64>, url: &str, why: &str) {
        let backoff = self.options.retry_delay.saturating_mul(1 << attempt.min(8));
        let wait = match retry_after {
            Some(s) => Duration::from_secs(s.min(30)),
            None => backoff,
        };
        self.log(&format!(
            "retrying {url} in {:.1} s ({why})",
            wait.as_secs_f64()
        ));
        std::thread::sleep(wait);
    }

    fn run_once(
        &self,
        call: &Call<'_>,
        url: &str,
        auth: Option<&str>,
    ) -> std::result::Result<Response, Failure> {
        let mut builder = http::Request::builder().method(call.method).uri(url);
        for (k, v) in &call.headers {
            builder = builder.header(*k, v.as_str());
        }
        if let Some(a) = auth {
            builder = builder.header("authorization", a);
        }
        let run = |r: http::Request<ureq::SendBody<'_>>| {
            self.agent.run(r).map_err(|e| Failure {
                transient: !is_certificate_error(&e),
                unreachable: is_unreachable(&e),
                reason: describe(e),
            })
        };
        match &call.body {
            Body::Empty => {
                let mut b = builder;
                if matches!(call.method, "PUT" | "POST" | "PATCH") {
                    b = b.header("content-length", "0");
                }
                run(b.body(ureq::SendBody::none()).map_err(|e| e.to_string())?)
            }
            Body::Bytes(bytes, content_type) => {
                let mut slice: &[u8] = bytes;
                let b = builder
                    .header("content-type", *content_type)
                    .header("content-length", bytes.len().to_string());
                run(b
                    .body(ureq::SendBody::from_reader(&mut slice))
                    .map_err(|e| e.to_string())?)
            }
            Body::Stream { length, open } => {
                let mut reader = open().map_err(|e| format!("reading the upload: {e}"))?;
                let b = builder
                    .header("content-type", "application/octet-stream")
                    .header("content-length", length.to_string());
                run(b
                    .body(ureq::SendBody::from_reader(&mut reader))
                    .map_err(|e| e.to_string())?)
            }
        }
    }

    /// Answers a 401: Basic with the credential, or a token from the Bearer challenge's realm.
    fn authenticate(
        &self,
        response: &Response,
        repository: &str,
        access: Access,
        scope_key: &str,
    ) -> Result<()> {
        let challenges: Vec<Challenge> = response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(challenge::parse)
            .collect();
        let value = if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            if let Ok(mut c) = self.challenge.lock() {
                *c = Some(bearer.clone());
            }
            format!("Bearer {}", self.fetch_token(bearer, repository, access)?)
        } else if challenges.iter().any(|c| c.scheme == "basic") {
            match self.options.credential.as_deref() {
                Some(Credential::Basic { username, password }) => basic(username, password),
                Some(Credential::IdentityToken(_)) => {
                    return Err(self.auth_error("the registry asks for Basic authentication, but the stored credential is an identity token"))
                }
                None => return Err(self.auth_error("authentication required (strata login, or a docker config with credentials)")),
            }
        } else {
            return Err(
                self.auth_error("the registry answered 401 without a challenge strata can answer")
            );
        };
        if let Ok(mut m) = self.auth.lock() {
            m.insert(scope_key.to_owned(), value);
        }
        Ok(())
    }

    fn auth_error(&self, reason: &str) -> Error {
        Error::Auth {
            registry: self.host.clone(),
            reason: reason.to_owned(),
        }
    }

    /// The token flow: GET the realm with the service and scope (Basic credentials if any),
    /// or POST a refresh token (an identity token) as OAuth2 asks.
    fn fetch_token(
        &self,
        challenge: &Challenge,
        repository: &str,
        access: Access,
    ) -> Result<String> {
        let Some(realm) = challenge.params.get("realm") else {
            return Err(self.auth_error("the Bearer challenge names no realm"));
        };
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(
                self.auth_error(&format!("the token realm {realm:?} is not an http(s) URL"))
            );
        }
        // Credentials travel in the clear over http: only to a loopback realm, or when plain
        // HTTP was asked for.
        let realm_host = authority(realm);
        let cleartext_ok = realm.starts_with("https://")
            || self.options.plain_http
            || is_loopback_host(realm_host);
        let mut scopes = vec![scope(repository, access)];
        // The challenge lists what the request needs space-separated (a mount needs pull on
        // the repository mounted from too); the token request takes one scope per parameter.
        if let Some(listed) = challenge.params.get("scope") {
            for s in listed.split(' ') {
                if !scopes.iter().any(|k| k == s) {
                    scopes.push(s.to_owned());
                }
            }
        }
        scopes.retain(|s| !s.is_empty());
        let service = challenge.params.get("service").cloned();
        let mut query = Vec::new();
        if let Some(s) = &service {
            query.push(format!("service={}", encode(s)));
        }
        for s in &scopes {
            query.push(format!("scope={}", encode(s)));
        }
        let credential = self.options.credential.as_deref();
        if credential.is_some() && !cleartext_ok {
            return Err(self.auth_error(&format!(
                "the token realm {realm} is plain HTTP: credentials are not sent there unless plain HTTP is allowed for this registry"
            )));
        }
        let request = match credential {
            Some(Credential::IdentityToken(token)) => {
                let mut form = query.clone();
                form.push("grant_type=refresh_token".into());
                form.push("client_id=strata".into());
                form.push(format!("refresh_token={}", encode(token)));
                let body = form.join("&");
                http::Request::builder()
                    .method("POST")
                    .uri(realm.as_str())
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.into_bytes())
            }
            other => {
                let sep = if realm.contains('?') { '&' } else { '?' };
                let url = format!("{realm}{sep}{}", query.join("&"));
                let mut b = http::Request::builder().method("GET").uri(url);
                if let Some(Credential::Basic { username, password }) = other {
                    b = b.header("authorization", basic(username, password));
                }
                b.body(Vec::new())
            }
        }
        .map_err(|e| self.auth_error(&format!("the token realm {realm:?}: {e}")))?;
        // Kept in parts: each attempt sends a copy.
        let (parts, body) = request.into_parts();
        let mut attempt = 0;
        let mut response = loop {
            match self
                .agent
                .run(http::Request::from_parts(parts.clone(), body.clone()))
            {
                Ok(r)
                    if matches!(r.status().as_u16(), 429 | 500 | 502 | 503 | 504)
                        && attempt < self.options.retries =>
                {
                    self.pause(
                        attempt,
                        None,
                        realm,
                        &format!("status {}", r.status().as_u16()),
                    );
                    attempt += 1;
                }
                Ok(r) => break r,
                Err(e) if attempt < self.options.retries => {
                    self.pause(attempt, None, realm, &describe(e));
                    attempt += 1;
                }
                Err(e) => {
                    return Err(Error::Transport {
                        url: realm.clone(),
                        reason: describe(e),
                    })
                }
            }
        };
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(self.auth_error(&format!(
                "the token service {realm} refused {}",
                if credential.is_some() {
                    "the credentials"
                } else {
                    "anonymous access (strata login first)"
                }
            )));
        }
        if !(200..300).contains(&status) {
            return Err(self.auth_error(&format!("the token service {realm} answered {status}")));
        }
        let bytes = read_body(&mut response, 1 << 20, realm)?;
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let parsed: TokenResponse = serde_json::from_slice(&bytes).map_err(|_| {
            self.auth_error(&format!("the token service {realm} sent no JSON token"))
        })?;
        parsed
            .token
            .filter(|t| !t.is_empty())
            .or(parsed.access_token)
            .ok_or_else(|| self.auth_error(&format!("the token service {realm} sent no token")))
    }
}

/// The token scope of a repository access.
fn scope(repository: &str, access: Access) -> String {
    if repository.is_empty() {
        return String::new();
    }
    match access {
        Access::Pull => format!("repository:{repository}:pull"),
        Access::Push => format!("repository:{repository}:pull,push"),
    }
}

fn basic(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// A header's value as text.
pub fn header(response: &Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A response's whole body, refused past `limit` bytes (documents are small; a registry
/// sending more is not sending a document).
pub fn read_body(response: &mut Response, limit: u64, url: &str) -> Result<Vec<u8>> {
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| Error::Transport {
            url: url.to_owned(),
            reason: describe(e),
        })
}

/// The error for an unexpected status, with the registry's own message when it sent one.
pub fn status_error(method: &str, url: &str, mut response: Response) -> Error {
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorItem {
        code: Option<String>,
        message: Option<String>,
    }
    let message = serde_json::from_slice::<Errors>(&body)
        .map(|e| {
            e.errors
                .iter()
                .map(|i| match (&i.code, &i.message) {
                    (Some(c), Some(m)) => format!("{c}: {m}"),
                    (Some(c), None) => c.clone(),
                    (None, Some(m)) => m.clone(),
                    (None, None) => String::new(),
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let message = crate::words::printable(&message, 1024);
    Error::Status {
        method: method.to_owned(),
        url: url.to_owned(),
        status,
        message,
    }
}

/// Why a request got no response, and whether trying again can help.
struct Failure {
    reason: String,
    transient: bool,
    /// Not a connection lost or stalled once made (see [`is_unreachable`]): the host is
    /// unknown, refused it, or failed it the same way every time.
    unreachable: bool,
}

impl From<String> for Failure {
    fn from(reason: String) -> Failure {
        Failure {
            reason,
            transient: true,
            unreachable: false,
        }
    }
}

/// True unless the failure is one of a connection that was made and then lost or stalled:
/// a name that does not resolve (std reports it with no kind of its own), a refused
/// connection, a bad URL.
fn is_unreachable(e: &ureq::Error) -> bool {
    use std::io::ErrorKind as Kind;
    match e {
        ureq::Error::Timeout(_) | ureq::Error::BodyStalled | ureq::Error::Protocol(_) => false,
        ureq::Error::Io(io) => !matches!(
            io.kind(),
            Kind::ConnectionReset
                | Kind::ConnectionAborted
                | Kind::BrokenPipe
                | Kind::UnexpectedEof
                | Kind::TimedOut
                | Kind::Interrupted
                | Kind::WouldBlock
        ),
        _ => true,
    }
}

/// True when TLS failed on the peer's certificate (untrusted, expired, for another name):
/// the same on every try.
fn is_certificate_error(e: &ureq::Error) -> bool {
    let tls = match e {
        ureq::Error::Rustls(r) => Some(r),
        ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
        _ => None,
    };
    matches!(
        tls,
        Some(rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented)
    )
}

fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

/// True for a URL with a host and, if any, a port that is a number a port can be (the
/// parser leaves a bad port out, and the connection would go to the default one).
fn usable_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(authority) = uri.authority() else {
        return false;
    };
    let after_host = authority.as_str().rsplit(['@', ']']).next().unwrap_or("");
    let port_ok = match after_host.rsplit_once(':') {
        Some((_, port)) => port.parse::<u16>().is_ok(),
        None => true,
    };
    !authority.host().is_empty() && port_ok
}

/// A proxy URL fit to print: its `user:password@` is a secret. Everything up to the last
/// `@` goes (a password may hold an unencoded `/`; a proxy URL has no path worth keeping).
fn without_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    match url[start..].rfind('@') {
        Some(at) => format!("{}***@{}", &url[..start], &url[start + at + 1..]),
        None => url.to_owned(),
    }
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> &str {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    &url[..end]
}

/// The `host[:port]` of a URL. Userinfo is dropped: `http://127.0.0.1:1@elsewhere/` goes to
/// `elsewhere`, and must not pass for loopback.
fn authority(url: &str) -> &str {
    let o = origin(url);
    let a = o.find("://").map_or(o, |i| &o[i + 3..]);
    a.rsplit('@').next().unwrap_or(a)
}

/// A Location (or Link) header resolved against the URL it came from.
pub(crate) fn resolve(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        let scheme = base.split("://").next().unwrap_or("https");
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{}{location}", origin(base))
    } else {
        let path_end = base.find(['?', '#']).unwrap_or(base.len());
        let dir_end = base[..path_end].rfind('/').map_or(path_end, |i| i + 1);
        format!("{}{location}", &base[..dir_end])
    }
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Appends `key=value` to a URL's query.
pub fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", encode(value))
}

/// TLS: the system's roots plus the given CAs, verification off only when asked.
fn tls_config(options: &ClientOptions) -> Result<ureq::tls::TlsConfig> {
    let mut roots: Vec<ureq::tls::Certificate<'static>> = rustls_native_certs::load_native_certs()
        .certs
        .iter()
        .map(|der| ureq::tls::Certificate::from_der(der.as_ref()).to_owned())
        .collect();
    for path in &options.ca_certs {
        roots.extend(read_ca(path)?);
    }
    // ring's provider is deprecated by rustls only for lacking post-quantum key exchange;
    // aws-lc-rs has it but needs a C toolchain build of a large library and would push the
    // binary past its size limit. Registries negotiate classical key exchange fine.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    Ok(ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&roots))
        .disable_verification(options.insecure)
        .unversioned_rustls_crypto_provider(Arc::new(provider))
        .build())
}

/// The certificates of a PEM file, or of a directory's `*.crt`/`*.pem` files.
fn read_ca(path: &std::path::Path) -> Result<Vec<ureq::tls::Certificate<'static>>> {
    let io = |e: std::io::Error| {
        Error::Layout(crate::Error::Io {
            path: path.to_owned(),
            source: e,
        })
    };
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "crt" || x == "pem"))
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_owned()]
    };
    let mut certs = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).map_err(|e| {
            Error::Layout(crate::Error::Io {
                path: file.clone(),
                source: e,
            })
        })?;
        let before = certs.len();
        for item in ureq::tls::parse_pem(&bytes) {
            if let Ok(ureq::tls::PemItem::Certificate(c)) = item {
                certs.push(c);
            }
        }
        if certs.len() == before {
            return Err(Error::Invalid {
                what: file.display().to_string(),
                reason: "holds no PEM certificate".into(),
            });
        }
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(origin("https://a:5000/v2/x?y"), "https://a:5000");
        assert_eq!(authority("http://a:5000/v2/x"), "a:5000");
        assert_eq!(authority("http://127.0.0.1:1@b:80/t"), "b:80");
        assert_eq!(without_userinfo("http://u:p@[zz:1/x"), "http://***@[zz:1/x");
        assert_eq!(without_userinfo("u:p@h:1"), "***@h:1");
        assert_eq!(without_userinfo("http://u:p/w@h:1"), "http://***@h:1");
        assert_eq!(without_userinfo("http://h:1"), "http://h:1");
        assert_eq!(
            resolve("https://a/v2/r/blobs/x", "https://s3/b?sig=1"),
            "https://s3/b?sig=1"
        );
        assert_eq!(
            resolve("https://a/v2/r/blobs/x", "/v2/up/1"),
            "https://a/v2/up/1"
        );
        assert_eq!(
            resolve("https://a/v2/r/blobs/x?q", "y"),
            "https://a/v2/r/blobs/y"
        );
        assert_eq!(resolve("http://a/v2/", "//b/c"), "http://b/c");
        assert!(usable_url("http://[::1]:5000/x") && usable_url("https://a/b?c"));
        assert!(
            !usable_url("http://a:99999/x")
                && !usable_url("http://[zz/")
                && !usable_url("https://")
        );
        assert_eq!(
            with_query("http://a/u?s=1", "digest", "sha256:ab"),
            "http://a/u?s=1&digest=sha256%3Aab"
        );
        assert_eq!(
            encode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
