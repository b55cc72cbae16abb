//! A hostile registry (or a man in the middle on plain HTTP): a scripted HTTP/1.1 server on
//! loopback answers strata's registry commands with what a registry must never send (endless
//! bodies, lies about sizes and digests, redirect games, credential traps), and each test
//! checks the promises: bounded memory and time, every byte verified, the layout unchanged by
//! a failed pull, no credential sent where it must not go, and none printed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use strata::spec::media_type;

use super::util::{layout_with_images, s, sha256, snapshot, strata, tempdir, Run};

/// One request as the server read it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body_len: u64,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What the server does with a request.
enum Reply {
    /// These bytes, then the connection closes.
    Raw(Vec<u8>),
    /// A response head, then body bytes forever (until strata hangs up).
    Endless(Vec<u8>),
    /// A chunked response head, then chunks forever.
    EndlessChunked(Vec<u8>),
    /// A response head, then one body byte per interval, forever.
    Drip(Vec<u8>, Duration),
}

/// A complete response with a Content-Length; the connection closes after it.
fn resp(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut out = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Reply::Raw(bytes)
}

/// A response head without a length: the body runs until the connection closes.
fn head(status: u16, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn not_found() -> Reply {
    resp(404, &[], br#"{"errors":[{"code":"NOT_FOUND"}]}"#)
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

/// A fixed answer, whatever the request.
type Answer = dyn Fn() -> Reply + Send + Sync;

/// A scripted server on a free loopback port; it records every request it reads.
struct Server {
    port: u16,
    log: Arc<Mutex<Vec<Req>>>,
}

impl Server {
    fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().expect("local addr").port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let server_log = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (handler, log) = (handler.clone(), server_log.clone());
                std::thread::spawn(move || serve_one(stream, &*handler, &log));
            }
        });
        Server { port, log }
    }

    /// `127.0.0.1:PORT`: how strata names this registry.
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().expect("log").clone()
    }

    fn count(&self, pred: impl Fn(&Req) -> bool) -> usize {
        self.requests().iter().filter(|r| pred(r)).count()
    }
}

fn serve_one(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Req>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    // strata probes HTTPS first on loopback: a TLS hello is not HTTP, hang up.
    match reader.fill_buf() {
        Ok(b) if !b.is_empty() && b[0].is_ascii_uppercase() => {}
        _ => return,
    }
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let length: u64 = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_len =
        std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink()).unwrap_or(0);
    let req = Req {
        method,
        target,
        headers,
        body_len,
    };
    log.lock().expect("log").push(req.clone());
    match handler(&req) {
        Reply::Raw(bytes) => {
            let _ = writer.write_all(&bytes);
        }
        Reply::Endless(h) => {
            if writer.write_all(&h).is_err() {
                return;
            }
            let chunk = vec![b'x'; 64 << 10];
            while writer.write_all(&chunk).is_ok() {}
        }
        Reply::EndlessChunked(h) => {
            if writer.write_all(&h).is_err() {
                return;
            }
            let mut chunk = b"10000\r\n".to_vec();
            chunk.extend_from_slice(&[b'{'; 0x10000]);
            chunk.extend_from_slice(b"\r\n");
            while writer.write_all(&chunk).is_ok() {}
        }
        Reply::Drip(h, every) => {
            if writer.write_all(&h).is_err() {
                return;
            }
            loop {
                std::thread::sleep(every);
                if writer.write_all(b"x").and_then(|_| writer.flush()).is_err() {
                    return;
                }
            }
        }
    }
    let _ = writer.flush();
    let _ = writer.shutdown(std::net::Shutdown::Write);
    // Let strata read the whole answer before the socket goes.
    let _ = std::io::copy(&mut reader, &mut std::io::sink());
}

/// Runs strata with `env`, under a 1 GiB address-space limit (so an unbounded read dies
/// instead of passing), killing it after `limit`: None when it had to be killed.
fn run_bounded(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Option<Run> {
    let dir = tempdir();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let reference = strata(args);
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg("--as=1073741824")
        .arg("--")
        .arg(reference.get_program())
        .args(reference.get_args())
        .env_clear();
    for (k, v) in reference.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    cmd.envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"));
    let mut child = cmd.spawn().expect("running strata under prlimit");
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("waiting for strata") {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    Some(Run {
        code: status
            .code()
            .unwrap_or_else(|| panic!("strata {args:?} died by a signal: {}", read(&err))),
        stdout: read(&out),
        stderr: read(&err),
    })
}

/// Runs strata, which must end within `secs` seconds.
fn within(secs: u64, args: &[&str], env: &[(&str, &str)]) -> Run {
    run_bounded(args, env, Duration::from_secs(secs))
        .unwrap_or_else(|| panic!("strata {args:?} still ran after {secs} s"))
}

/// strata must fail (exit 1), cleanly: no panic, an error naming something.
fn refused(run: &Run, what: &str) {
    assert_eq!(
        run.code, 1,
        "{what}: expected a refusal:\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        !run.stderr.contains("panicked"),
        "{what}: strata panicked: {}",
        run.stderr
    );
    assert!(
        run.stderr.contains("error"),
        "{what}: no error message: {}",
        run.stderr
    );
}

/// A small valid image as a registry would serve it: manifest, config, one layer.
#[derive(Clone)]
struct Img {
    manifest: Vec<u8>,
    config: Vec<u8>,
    layer: Vec<u8>,
}

impl Img {
    fn new(seed: &str) -> Img {
        let layer = super::util::tar_layer(seed);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [sha256(&layer).to_string()]},
        }))
        .expect("config");
        Img::with(config, layer)
    }

    fn with(config: Vec<u8>, layer: Vec<u8>) -> Img {
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::MANIFEST,
            "config": {"mediaType": media_type::CONFIG, "digest": sha256(&config).to_string(), "size": config.len()},
            "layers": [{"mediaType": media_type::LAYER_TAR, "digest": sha256(&layer).to_string(), "size": layer.len()}],
        }))
        .expect("manifest");
        Img {
            manifest,
            config,
            layer,
        }
    }

    /// A signature-like artifact whose subject is `subject`.
    fn referrer_of(subject: &Img, seed: &str) -> Img {
        let (config, layer) = (b"{}".to_vec(), seed.as_bytes().to_vec());
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::MANIFEST,
            "artifactType": "application/vnd.example.sig",
            "config": {"mediaType": media_type::EMPTY, "digest": sha256(&config).to_string(), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.example.payload", "digest": sha256(&layer).to_string(), "size": layer.len()}],
            "subject": {"mediaType": media_type::MANIFEST, "digest": subject.digest(), "size": subject.manifest.len()},
        }))
        .expect("manifest");
        Img {
            manifest,
            config,
            layer,
        }
    }

    fn digest(&self) -> String {
        sha256(&self.manifest).to_string()
    }

    fn layer_digest(&self) -> String {
        sha256(&self.layer).to_string()
    }

    /// Every blob and manifest by digest, and the manifest under `tag` too.
    fn docs(&self, tag: &str) -> HashMap<String, (Vec<u8>, &'static str)> {
        let mut m = HashMap::new();
        m.insert(
            tag.to_owned(),
            (self.manifest.clone(), media_type::MANIFEST),
        );
        m.insert(self.digest(), (self.manifest.clone(), media_type::MANIFEST));
        m.insert(
            sha256(&self.config).to_string(),
            (self.config.clone(), "application/octet-stream"),
        );
        m.insert(
            self.layer_digest(),
            (self.layer.clone(), "application/octet-stream"),
        );
        m
    }
}

/// Answers a registry's GETs and HEADs of `/v2/r/manifests/X` and `/v2/r/blobs/X` from `docs`.
fn serve_docs(docs: &HashMap<String, (Vec<u8>, &'static str)>, req: &Req) -> Reply {
    let path = req.path();
    if path == "/v2/" {
        return resp(200, &[], b"{}");
    }
    let key = path
        .strip_prefix("/v2/r/manifests/")
        .or_else(|| path.strip_prefix("/v2/r/blobs/"));
    match key.and_then(|k| docs.get(k)) {
        Some((bytes, ct)) => {
            let body: &[u8] = if req.method == "HEAD" { &[] } else { bytes };
            let len = bytes.len().to_string();
            let mut r = resp(200, &[("content-type", ct)], body);
            if req.method == "HEAD" {
                r = Reply::Raw(
                    format!("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: {ct}\r\ncontent-length: {len}\r\ndocker-content-digest: {}\r\n\r\n", sha256(bytes)).into_bytes(),
                );
            }
            r
        }
        None => not_found(),
    }
}

/// A layout holding one image, and its snapshot, for "left as it was" checks.
fn dest_layout(
    dir: &Path,
) -> (
    String,
    std::collections::BTreeMap<std::path::PathBuf, Option<Vec<u8>>>,
) {
    let (layout, _) = layout_with_images(dir, "dest", &["old"]);
    let root = layout.root().to_owned();
    (s(&root).to_owned(), snapshot(&root))
}

fn unchanged(
    layout: &str,
    before: &std::collections::BTreeMap<std::path::PathBuf, Option<Vec<u8>>>,
) {
    let mut after = snapshot(Path::new(layout));
    // The pull's scratch directory is gc's to sweep; everything else must be as it was.
    after.retain(|p, _| !p.starts_with(".strata-tmp"));
    let mut before = before.clone();
    before.retain(|p, _| !p.starts_with(".strata-tmp"));
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "the failed pull changed the layout's files"
    );
    assert!(
        before == after,
        "the failed pull changed the layout's bytes"
    );
}

/// A docker config directory holding a Basic credential for `registry`; returns the dir, the
/// password and the base64 of `user:password`.
fn docker_config(dir: &Path, registry: &str) -> (String, &'static str, String) {
    let password = "hunter2-S3CRET-pw";
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("alice:{password}"));
    let cfg = dir.join("docker");
    std::fs::create_dir_all(&cfg).expect("config dir");
    std::fs::write(
        cfg.join("config.json"),
        serde_json::to_vec(&serde_json::json!({"auths": {registry: {"auth": auth}}}))
            .expect("json"),
    )
    .expect("writing the docker config");
    (s(&cfg).to_owned(), password, auth)
}

fn no_secret(run: &Run, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a secret was printed:\nstdout: {}\nstderr: {}",
            run.stdout,
            run.stderr
        );
    }
}

/// A registry whose every API request needs `Bearer good-token`, sending clients to `realm`.
fn bearer_registry(realm: String, img: Img) -> Server {
    let docs = img.docs("t");
    Server::start(move |req| {
        if req.header("authorization") != Some("Bearer good-token") {
            let challenge = format!("Bearer realm=\"{realm}\",service=\"reg\"");
            return resp(401, &[("www-authenticate", &challenge)], b"{}");
        }
        serve_docs(&docs, req)
    })
}

fn token_server() -> Server {
    Server::start(|_| {
        resp(
            200,
            &[("content-type", "application/json")],
            br#"{"token":"good-token"}"#,
        )
    })
}

#[test]
fn credentials_never_go_in_clear_to_a_realm_that_only_looks_like_loopback() {
    let dir = tempdir();
    let tokens = token_server();
    // Reachable, but by strata's own rule not a loopback name: it stands for another machine.
    let elsewhere = format!("[::ffff:127.0.0.1]:{}", tokens.port);
    for realm in [
        format!("http://{elsewhere}/token"),
        // The userinfo makes the host look like 127.0.0.1 to a naive split at ':'.
        format!("http://127.0.0.1:1@{elsewhere}/token"),
        format!("http://localhost:80@{elsewhere}/token"),
    ] {
        let registry = bearer_registry(realm.clone(), Img::new("a"));
        let (cfg, password, auth) = docker_config(dir.path(), &registry.host());
        let dest = dir.path().join("d");
        let run = within(
            60,
            &["pull", &format!("{}/r:t", registry.host()), s(&dest), "-vv"],
            &[("DOCKER_CONFIG", &cfg)],
        );
        refused(&run, &realm);
        assert!(run.stderr.contains("plain HTTP"), "{realm}: {}", run.stderr);
        no_secret(&run, &[password, &auth]);
        assert_eq!(
            tokens.count(|r| r.header("authorization").is_some()),
            0,
            "{realm}: the credential went in clear to another host: {:?}",
            tokens.requests()
        );
    }
}

/// A tag-list page of `n` tags, `prefix`ed.
fn tag_page(prefix: &str, n: usize) -> Vec<u8> {
    let tags: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:07}")).collect();
    serde_json::to_vec(&serde_json::json!({"name": "r", "tags": tags})).expect("json")
}

#[test]
fn a_tag_list_whose_next_page_is_itself_is_refused_not_read_forever() {
    let page = tag_page("same", 100_000);
    let registry = Server::start(move |req| {
        if req.path() == "/v2/r/tags/list" {
            return resp(
                200,
                &[
                    ("content-type", "application/json"),
                    ("link", r#"</v2/r/tags/list?n=1000>; rel="next""#),
                ],
                &page,
            );
        }
        resp(200, &[], b"{}")
    });
    let run = within(
        120,
        &[
            "ls",
            &format!("docker://{}/r", registry.host()),
            "--plain-http",
        ],
        &[],
    );
    refused(&run, "a Link loop");
    assert!(
        run.stderr.contains("tags/list"),
        "the error names the tag list: {}",
        run.stderr
    );
    assert!(
        registry.count(|r| r.path() == "/v2/r/tags/list") <= 3,
        "the loop was followed {} times",
        registry.count(|r| r.path() == "/v2/r/tags/list")
    );
}

#[test]
fn a_tag_list_that_pages_forever_stops_at_a_bound() {
    let registry = Server::start(move |req| {
        if req.path() == "/v2/r/tags/list" {
            let n = req
                .target
                .rsplit("last=")
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            let link = format!("</v2/r/tags/list?n=1000&last={n}>; rel=\"next\"");
            return resp(
                200,
                &[("content-type", "application/json"), ("link", &link)],
                &tag_page(&n.to_string(), 100_000),
            );
        }
        resp(200, &[], b"{}")
    });
    let run = within(
        300,
        &[
            "ls",
            &format!("docker://{}/r", registry.host()),
            "--plain-http",
        ],
        &[],
    );
    refused(&run, "endless tag pages");
    assert!(run.stderr.contains("tags"), "{}", run.stderr);
}

#[test]
fn layer_sizes_near_i64_max_do_not_overflow() {
    let dir = tempdir();
    let (dest, before) = dest_layout(dir.path());
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let layers: Vec<serde_json::Value> = (0..3u8)
        .map(|i| serde_json::json!({"mediaType": media_type::LAYER_TAR, "digest": sha256(&[i]).to_string(), "size": i64::MAX}))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media_type::MANIFEST,
        "config": {"mediaType": media_type::CONFIG, "digest": sha256(&config).to_string(), "size": config.len()},
        "layers": layers,
    }))
    .expect("json");
    let mut docs = HashMap::new();
    docs.insert("t".to_owned(), (manifest, media_type::MANIFEST));
    docs.insert(
        sha256(&config).to_string(),
        (config, "application/octet-stream"),
    );
    let registry = Server::start(move |req| serve_docs(&docs, req));
    let run = within(
        120,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            &format!("{dest}:new"),
            "--plain-http",
        ],
        &[],
    );
    refused(&run, "sizes of i64::MAX");
    unchanged(&dest, &before);
}

/// A chunked body that never ends.
fn endless_chunked(status: u16, headers: &[(&str, &str)]) -> Reply {
    Reply::EndlessChunked(head(
        status,
        &[headers, &[("transfer-encoding", "chunked")]].concat(),
    ))
}

fn pull_args<'a>(registry: &'a str, dest: &'a str) -> Vec<String> {
    vec![
        "pull".into(),
        format!("{registry}/r:t"),
        format!("{dest}:new"),
        "--plain-http".into(),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Pulls from a registry answering with `handler` where it wants, `img` elsewhere; the pull
/// must fail within a minute and leave the layout as it was. Returns the run.
fn pull_refused(
    what: &str,
    img: &Img,
    handler: impl Fn(&Req) -> Option<Reply> + Send + Sync + 'static,
) -> (Run, Server) {
    let dir = tempdir();
    let (dest, before) = dest_layout(dir.path());
    let docs = img.docs("t");
    let registry = Server::start(move |req| handler(req).unwrap_or_else(|| serve_docs(&docs, req)));
    let run = within(90, &strs(&pull_args(&registry.host(), &dest)), &[]);
    refused(&run, what);
    unchanged(&dest, &before);
    (run, registry)
}

#[test]
fn endless_documents_are_cut_at_their_limits() {
    let img = Img::new("a");
    // A manifest that never ends, close-delimited and chunked.
    let (run, _) = pull_refused("an endless manifest", &img, |req| {
        (req.path() == "/v2/r/manifests/t")
            .then(|| Reply::Endless(head(200, &[("content-type", media_type::MANIFEST)])))
    });
    assert!(run.stderr.contains("/v2/r/manifests/t"), "{}", run.stderr);
    let (run, _) = pull_refused("an endless chunked manifest", &img, |req| {
        (req.path() == "/v2/r/manifests/t")
            .then(|| endless_chunked(200, &[("content-type", media_type::MANIFEST)]))
    });
    assert!(run.stderr.contains("/v2/r/manifests/t"), "{}", run.stderr);
    // A config (read into memory) and a layer that never end.
    let config = sha256(&img.config).to_string();
    let (run, _) = pull_refused("an endless config", &img, move |req| {
        req.path()
            .ends_with(&config)
            .then(|| Reply::Endless(head(200, &[])))
    });
    assert!(run.stderr.contains("more bytes"), "{}", run.stderr);
    let layer = img.layer_digest();
    let (run, _) = pull_refused("an endless layer", &img, move |req| {
        req.path()
            .ends_with(&layer)
            .then(|| Reply::Endless(head(200, &[])))
    });
    assert!(run.stderr.contains("more bytes"), "{}", run.stderr);
}

#[test]
fn a_blob_longer_than_its_descriptor_is_refused() {
    let img = Img::new("a");
    let (layer, digest) = (img.layer.clone(), img.layer_digest());
    let (run, _) = pull_refused("a long layer", &img, move |req| {
        req.path().ends_with(&digest).then(|| {
            let mut body = layer.clone();
            body.extend_from_slice(b"trailing junk");
            resp(200, &[], &body)
        })
    });
    assert!(run.stderr.contains("more bytes"), "{}", run.stderr);
}

#[test]
fn a_content_length_that_lies_short_is_resumed_and_verified() {
    let dir = tempdir();
    let img = Img::new("a");
    let docs = img.docs("t");
    let (layer, digest) = (img.layer.clone(), img.layer_digest());
    let registry = Server::start(move |req| {
        if !req.path().ends_with(&digest) {
            return serve_docs(&docs, req);
        }
        match req
            .header("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
        {
            // The first answer promises the whole blob and hangs up halfway.
            None => {
                let mut bytes = head(200, &[("content-length", &layer.len().to_string())]);
                bytes.extend_from_slice(&layer[..layer.len() / 2]);
                Reply::Raw(bytes)
            }
            Some(from) => {
                let from: usize = from.parse().expect("a range start");
                let range = format!("bytes {from}-{}/{}", layer.len() - 1, layer.len());
                resp(206, &[("content-range", &range)], &layer[from..])
            }
        }
    });
    let dest = dir.path().join("d");
    let run = within(
        60,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            s(&dest),
            "--plain-http",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        registry.count(|r| r.header("range").is_some()) >= 1,
        "no Range request was made"
    );
    assert!(super::util::stored_blobs(&dest).contains(&img.layer_digest()));
}

#[test]
fn documents_and_digests_that_lie_are_refused() {
    let img = Img::new("a");
    let other = Img::new("b");
    // A tag whose Docker-Content-Digest is not its bytes' digest.
    let m = img.manifest.clone();
    let lie = other.digest();
    let (run, _) = pull_refused("a lying Docker-Content-Digest", &img, move |req| {
        (req.path() == "/v2/r/manifests/t").then(|| {
            resp(
                200,
                &[
                    ("content-type", media_type::MANIFEST),
                    ("docker-content-digest", &lie),
                ],
                &m,
            )
        })
    });
    assert!(run.stderr.contains("registry says"), "{}", run.stderr);
    // A pull by digest answered with another manifest.
    let dir = tempdir();
    let (dest, before) = dest_layout(dir.path());
    let om = other.manifest.clone();
    let registry = Server::start(move |req| {
        if req.path().starts_with("/v2/r/manifests/") {
            return resp(200, &[("content-type", media_type::MANIFEST)], &om);
        }
        not_found()
    });
    let run = within(
        60,
        &[
            "pull",
            &format!("{}/r@{}", registry.host(), img.digest()),
            &format!("{dest}:x"),
            "--plain-http",
        ],
        &[],
    );
    refused(&run, "another manifest for a digest");
    assert!(run.stderr.contains(&img.digest()), "{}", run.stderr);
    unchanged(&dest, &before);
    // A layer whose bytes are not its digest's (same length).
    let digest = img.layer_digest();
    let len = img.layer.len();
    let (run, _) = pull_refused("a corrupt layer", &img, move |req| {
        req.path()
            .ends_with(&digest)
            .then(|| resp(200, &[], &vec![b'z'; len]))
    });
    assert!(run.stderr.contains(&img.layer_digest()), "{}", run.stderr);
}

#[test]
fn redirect_games_are_bounded_and_never_carry_credentials() {
    let dir = tempdir();
    let img = Img::new("a");
    // Object storage on another origin records what it was sent.
    let store_layer = img.layer.clone();
    let storage = Server::start(move |_| resp(200, &[], &store_layer));
    let storage_host = storage.host();
    let layer_digest = img.layer_digest();
    let docs = img.docs("t");
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let registry = Server::start(move |req| {
        if req.header("authorization").is_none() {
            return resp(401, &[("www-authenticate", "Basic realm=\"r\"")], b"{}");
        }
        let path = req.path();
        if path.ends_with(&layer_digest) {
            // Absolute for the first fetch, scheme-relative for the others.
            let loc = if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                format!("http://{storage_host}/blob?sig=1")
            } else {
                format!("//{storage_host}/blob")
            };
            return resp(307, &[("location", &loc)], b"");
        }
        if path == "/v2/r/loop" {
            return resp(302, &[("location", "/v2/r/loop")], b"");
        }
        serve_docs(&docs, req)
    });
    let (cfg, password, auth) = docker_config(dir.path(), &registry.host());
    for round in ["d1", "d2"] {
        let dest = dir.path().join(round);
        let run = within(
            60,
            &[
                "pull",
                &format!("{}/r:t", registry.host()),
                s(&dest),
                "--plain-http",
                "-vv",
            ],
            &[("DOCKER_CONFIG", &cfg)],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        no_secret(&run, &[password, &auth]);
    }
    assert_eq!(storage.count(|_| true), 2, "both redirects were followed");
    assert_eq!(
        storage.count(|r| r.header("authorization").is_some()),
        0,
        "credentials followed the redirect to another host: {:?}",
        storage.requests()
    );
    assert!(registry.count(|r| r.header("authorization").is_some()) >= 1);
}

#[test]
fn redirect_loops_and_garbage_locations_fail_cleanly() {
    let img = Img::new("a");
    let digest = img.layer_digest();
    let (run, registry) = pull_refused("a redirect loop", &img, move |req| {
        req.path()
            .ends_with(&digest)
            .then(|| resp(302, &[("location", req.path())], b""))
    });
    assert!(run.stderr.contains("redirects"), "{}", run.stderr);
    assert!(
        registry.count(|_| true) < 40,
        "{} requests",
        registry.count(|_| true)
    );
    for garbage in [
        "http://[zz/",
        "http://127.0.0.1:99999/x",
        "ht!tp:/\\x",
        "",
        "https://",
    ] {
        let digest = img.layer_digest();
        let (run, _) = pull_refused(garbage, &img, move |req| {
            req.path()
                .ends_with(&digest)
                .then(|| resp(302, &[("location", garbage)], b""))
        });
        assert!(
            run.stderr.contains(&img.layer_digest()),
            "{garbage}: the error names the blob: {}",
            run.stderr
        );
    }
}

/// A registry that has nothing, takes every manifest, and answers upload requests with
/// `upload` (POST, PATCH and PUT of `/v2/r/blobs/uploads/...`).
fn push_registry(upload: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Server {
    Server::start(move |req| {
        let path = req.path();
        if req.header("authorization").is_none() {
            return resp(401, &[("www-authenticate", "Basic realm=\"r\"")], b"{}");
        }
        if path.starts_with("/v2/r/blobs/uploads/") {
            return upload(req);
        }
        match req.method.as_str() {
            "PUT" if path.starts_with("/v2/r/manifests/") => resp(201, &[], b""),
            _ => not_found(),
        }
    })
}

/// Pushes a one-layer image with a credential for the registry, `-vv`; the credential must
/// never be printed.
fn push_to(registry: &Server, dir: &Path) -> Run {
    let (src, _) = layout_with_images(dir, "src", &["v1"]);
    let (cfg, password, auth) = docker_config(dir, &registry.host());
    let run = within(
        90,
        &[
            "push",
            &format!("{}:v1", s(src.root())),
            &format!("{}/r:t", registry.host()),
            "--plain-http",
            "-vv",
        ],
        &[("DOCKER_CONFIG", &cfg)],
    );
    no_secret(&run, &[password, &auth]);
    run
}

#[test]
fn an_upload_without_a_location_is_refused() {
    let dir = tempdir();
    let registry = push_registry(|_| resp(202, &[], b""));
    let run = push_to(&registry, dir.path());
    refused(&run, "no Location");
    assert!(run.stderr.contains("without a Location"), "{}", run.stderr);
    assert_eq!(
        registry.count(|r| r.path().starts_with("/v2/r/manifests/") && r.method == "PUT"),
        0,
        "a manifest went before its blobs"
    );
}

#[test]
fn an_upload_sent_to_another_host_gets_the_bytes_but_not_the_credentials() {
    let dir = tempdir();
    // The distribution spec lets the Location be any absolute URL (an opaque upload URL):
    // the blob goes there, the registry's credential does not.
    let storage = Server::start(|req| match req.method.as_str() {
        "PUT" => resp(201, &[], b""),
        _ => resp(202, &[("location", "/upload/1")], b""),
    });
    let target = format!("http://{}/upload/1?state=x", storage.host());
    let registry = push_registry(move |_| resp(202, &[("location", &target)], b""));
    let run = push_to(&registry, dir.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
    let puts = storage.requests();
    assert!(
        puts.iter().any(|r| r.method == "PUT" && r.body_len > 0),
        "no blob reached the upload URL: {puts:?}"
    );
    assert!(
        puts.iter().all(|r| r.header("authorization").is_none()),
        "credentials went to the upload host: {puts:?}"
    );
}

#[test]
fn an_upload_that_never_completes_is_refused() {
    let dir = tempdir();
    // Every upload request is "accepted" and nothing is ever created.
    let registry = push_registry(|_| resp(202, &[("location", "/v2/r/blobs/uploads/1")], b""));
    let run = push_to(&registry, dir.path());
    refused(&run, "202 forever");
    assert!(
        registry.count(|_| true) < 50,
        "{} requests",
        registry.count(|_| true)
    );
}

/// Pulls from `registry` with a stored credential and `-vv`; the run must fail cleanly,
/// print no secret, and `extra` secrets (tokens) neither.
fn pull_with_credential(registry: &Server, dir: &Path, extra: &[&str]) -> Run {
    let (cfg, password, auth) = docker_config(dir, &registry.host());
    let dest = dir.join("d");
    let run = within(
        90,
        &["pull", &format!("{}/r:t", registry.host()), s(&dest), "-vv"],
        &[("DOCKER_CONFIG", &cfg)],
    );
    no_secret(&run, &[&[password, auth.as_str()], extra].concat());
    assert!(
        !dest.join("index.json").exists()
            || !std::fs::read_to_string(dest.join("index.json"))
                .unwrap_or_default()
                .contains("\"t\"")
    );
    run
}

#[test]
fn hostile_challenges_and_token_services_fail_cleanly_without_leaking() {
    let dir = tempdir();
    let huge = format!(
        "Bearer realm=\"http://127.0.0.1:1/t\",scope=\"{}\"",
        "a".repeat(200_000)
    );
    for (what, challenge) in [
        (
            "a file realm",
            "Bearer realm=\"file:///etc/passwd\",service=\"x\"".to_owned(),
        ),
        ("no realm", "Bearer service=\"x\"".to_owned()),
        ("an unknown scheme", "Negotiate abc".to_owned()),
        ("a huge challenge", huge),
        ("garbage", "\"=,,=\"\"".to_owned()),
    ] {
        let registry =
            Server::start(move |_| resp(401, &[("www-authenticate", &challenge)], b"{}"));
        let run = pull_with_credential(&registry, dir.path(), &[]);
        refused(&run, what);
        assert!(run.stderr.contains("127.0.0.1"), "{what}: {}", run.stderr);
        assert!(
            registry.count(|_| true) < 20,
            "{what}: {} requests",
            registry.count(|_| true)
        );
    }
    // Token services answering what no token service should.
    let token_secret = "tok-SECRET-0123456789";
    let bad_tokens: Vec<(&str, Box<Answer>)> = vec![
        (
            "not JSON",
            Box::new(|| resp(200, &[], b"<html>hello</html>")),
        ),
        (
            "an empty token",
            Box::new(|| resp(200, &[], br#"{"token":""}"#)),
        ),
        (
            "an empty access token",
            Box::new(|| resp(200, &[], br#"{"token":"","access_token":""}"#)),
        ),
        (
            "a null token",
            Box::new(|| resp(200, &[], br#"{"token":null}"#)),
        ),
        (
            "an endless body",
            Box::new(|| Reply::Endless(head(200, &[("content-type", "application/json")]))),
        ),
        (
            "a token breaking the header",
            Box::new(move || {
                resp(
                    200,
                    &[],
                    format!("{{\"token\":\"{token_secret}\\r\\nX-Evil: 1\"}}").as_bytes(),
                )
            }),
        ),
        (
            "a token refused forever",
            Box::new(move || {
                resp(
                    200,
                    &[],
                    format!("{{\"token\":\"{token_secret}\"}}").as_bytes(),
                )
            }),
        ),
    ];
    for (what, reply) in bad_tokens {
        let tokens = Server::start(move |_| reply());
        let realm = format!("http://{}/token", tokens.host());
        let registry = Server::start(move |req| {
            if req.path() == "/v2/" && req.header("authorization").is_none() {
                return resp(200, &[], b"{}");
            }
            let challenge = format!("Bearer realm=\"{realm}\",service=\"reg\"");
            resp(401, &[("www-authenticate", &challenge)], b"{}")
        });
        let run = pull_with_credential(&registry, dir.path(), &[token_secret]);
        refused(&run, what);
        assert!(
            registry.count(|_| true) < 20,
            "{what}: {} registry requests",
            registry.count(|_| true)
        );
        assert!(
            tokens.count(|_| true) < 20,
            "{what}: {} token requests",
            tokens.count(|_| true)
        );
        assert!(
            registry.count(|r| r.headers.iter().any(|(k, _)| k == "x-evil")) == 0,
            "{what}: the token injected a header"
        );
    }
}

#[test]
fn basic_401_forever_ends() {
    let dir = tempdir();
    let registry =
        Server::start(|_| resp(401, &[("www-authenticate", "Basic realm=\"r\"")], b"{}"));
    let run = pull_with_credential(&registry, dir.path(), &[]);
    refused(&run, "401 forever");
    assert!(run.stderr.contains("refused"), "{}", run.stderr);
    assert!(
        registry.count(|_| true) < 10,
        "{} requests",
        registry.count(|_| true)
    );
}

#[test]
fn a_proxy_url_with_a_password_is_never_printed() {
    let dir = tempdir();
    let registry = Server::start(|_| resp(500, &[], b""));
    for proxy in [
        "http://alice:PROXY-pw-SECRET@proxy.invalid:99999",
        "http://alice:PROXY-pw-SECRET@127.0.0.1:1",
        "ftp://alice:PROXY-pw-SECRET@h:1",
        "http://alice:PROXY-pw-SECRET@[zz:1",
    ] {
        let run = within(
            120,
            &[
                "pull",
                &format!("{}/r:t", registry.host()),
                s(&dir.path().join("d")),
                "-vv",
            ],
            &[("HTTPS_PROXY", proxy), ("HTTP_PROXY", proxy)],
        );
        refused(&run, proxy);
        no_secret(&run, &["PROXY-pw-SECRET"]);
    }
}

fn index_of(children: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": media_type::INDEX, "manifests": children}))
        .expect("json")
}

fn child(media: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media, "digest": sha256(bytes).to_string(), "size": bytes.len(),
        "platform": {"architecture": "amd64", "os": "linux"}})
}

/// Serves `img` and `extra` documents (by digest) with `top` at tag `t`.
fn index_registry(img: &Img, top: Vec<u8>, extra: Vec<Vec<u8>>) -> Server {
    let mut docs = img.docs("x");
    for d in extra {
        docs.insert(sha256(&d).to_string(), (d, media_type::INDEX));
    }
    docs.insert(sha256(&top).to_string(), (top.clone(), media_type::INDEX));
    docs.insert("t".into(), (top, media_type::INDEX));
    Server::start(move |req| serve_docs(&docs, req))
}

/// Indexes nested `depth` deep over `img`: the top one and the others.
fn nested(img: &Img, depth: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut below = (media_type::MANIFEST, img.manifest.clone());
    let mut chain = Vec::new();
    for _ in 0..depth {
        let doc = index_of(&[child(below.0, &below.1)]);
        chain.push(doc.clone());
        below = (media_type::INDEX, doc);
    }
    let top = chain.pop().expect("a chain");
    (top, chain)
}

#[test]
fn indexes_nested_thousands_deep_are_refused_quickly() {
    let dir = tempdir();
    let img = Img::new("a");
    // Each level costs a request and a walk of everything above it: 3000 levels took hours.
    let (top, chain) = nested(&img, 3000);
    let registry = index_registry(&img, top, chain);
    let (dest, before) = dest_layout(dir.path());
    let run = within(
        60,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            &format!("{dest}:new"),
            "--plain-http",
            "--all-platforms",
        ],
        &[],
    );
    refused(&run, "3000 nested indexes");
    assert!(run.stderr.contains("nested"), "{}", run.stderr);
    unchanged(&dest, &before);
    // A few levels are fine.
    let (top, chain) = nested(&img, 3);
    let registry = index_registry(&img, top, chain);
    let run = within(
        60,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            s(&dir.path().join("ok")),
            "--plain-http",
            "--all-platforms",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn hostile_index_children_are_fetched_once_or_refused() {
    let dir = tempdir();
    let img = Img::new("a");
    // The same child listed 20,000 times: one fetch.
    let many: Vec<serde_json::Value> = (0..20_000)
        .map(|_| child(media_type::MANIFEST, &img.manifest))
        .collect();
    let registry = index_registry(&img, index_of(&many), vec![]);
    let run = within(
        120,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            s(&dir.path().join("many")),
            "--plain-http",
            "--all-platforms",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        registry.count(|r| r.path().contains(&img.digest())) <= 2,
        "{} fetches of one child",
        registry.count(|r| r.path().contains(&img.digest()))
    );
    // Sizes that are no sizes, and a digest of another algorithm that the bytes do not match.
    let good = child(media_type::MANIFEST, &img.manifest);
    let mut negative = good.clone();
    negative["size"] = serde_json::json!(-1);
    let mut huge = good.clone();
    huge["size"] = serde_json::json!(1u64 << 63);
    let mut wrong_size = good.clone();
    wrong_size["size"] = serde_json::json!(img.manifest.len() + 1);
    let mut sha512 = good.clone();
    sha512["digest"] = serde_json::json!(format!("sha512:{}", "ab".repeat(64)));
    let mut unknown = good.clone();
    unknown["digest"] = serde_json::json!(format!("md5:{}", "ab".repeat(16)));
    for (what, c) in [
        ("size -1", negative),
        ("size 2^63", huge),
        ("a size off by one", wrong_size),
        ("a sha512 digest of other bytes", sha512),
        ("an md5 digest", unknown),
    ] {
        let top = index_of(&[c]);
        let registry = index_registry(&img, top, vec![]);
        let (dest, before) = dest_layout(&dir.path().join(what.replace(' ', "_")));
        let run = within(
            60,
            &[
                "pull",
                &format!("{}/r:t", registry.host()),
                &format!("{dest}:new"),
                "--plain-http",
                "--all-platforms",
            ],
            &[],
        );
        refused(&run, what);
        unchanged(&dest, &before);
    }
}

#[test]
fn inspect_of_a_manifest_with_a_10_gib_config_fetches_no_blob() {
    let img = Img::new("a");
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).expect("json");
    manifest["config"]["size"] = serde_json::json!(10u64 << 30);
    let bytes = serde_json::to_vec(&manifest).expect("json");
    let mut docs = HashMap::new();
    docs.insert("t".to_owned(), (bytes, media_type::MANIFEST));
    let registry = Server::start(move |req| match req.path() {
        p if p.starts_with("/v2/r/blobs/") => Reply::Endless(head(200, &[])),
        _ => serve_docs(&docs, req),
    });
    let run = within(
        60,
        &[
            "inspect",
            &format!("docker://{}/r:t", registry.host()),
            "--plain-http",
        ],
        &[],
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert_eq!(
        registry.count(|r| r.path().starts_with("/v2/r/blobs/")),
        0,
        "inspect fetched a blob: {}",
        run.stderr
    );
}

#[test]
fn hostile_referrers_cannot_tag_or_corrupt_the_layout() {
    let dir = tempdir();
    let img = Img::new("a");
    // A referrer listed with a ref.name annotation: it must not become a tag.
    let sig = Img::referrer_of(&img, "sig");
    let mut entry = child(media_type::MANIFEST, &sig.manifest);
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    let mut docs = img.docs("t");
    docs.extend(sig.docs("sig"));
    let referrers = index_of(&[entry]);
    let registry = Server::start(move |req| {
        if req.path().starts_with("/v2/r/referrers/") {
            return resp(200, &[("content-type", media_type::INDEX)], &referrers);
        }
        serve_docs(&docs, req)
    });
    let dest = dir.path().join("d");
    let run = within(
        60,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            s(&dest),
            "--plain-http",
            "--referrers",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        super::util::stored_blobs(&dest).contains(&sig.digest()),
        "the referrer was not pulled"
    );
    let index = std::fs::read_to_string(dest.join("index.json")).expect("index.json");
    assert!(
        !index.contains("\"latest\""),
        "a referrer listing made a tag: {index}"
    );
    // A referrer whose manifest is served with other bytes: refused, layout unchanged.
    let liar = Img::new("liar");
    let liar_digest = liar.digest();
    let referrers = index_of(&[child(media_type::MANIFEST, &liar.manifest)]);
    let mut docs = img.docs("t");
    docs.insert(
        liar_digest.clone(),
        (Img::new("other").manifest, media_type::MANIFEST),
    );
    let registry = Server::start(move |req| {
        if req.path().starts_with("/v2/r/referrers/") {
            return resp(200, &[("content-type", media_type::INDEX)], &referrers);
        }
        serve_docs(&docs, req)
    });
    let (dest, before) = dest_layout(&dir.path().join("x"));
    let run = within(
        60,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            &format!("{dest}:new"),
            "--plain-http",
            "--referrers",
        ],
        &[],
    );
    refused(&run, "a lying referrer");
    assert!(run.stderr.contains(&liar_digest), "{}", run.stderr);
    unchanged(&dest, &before);
    // A referrers index that never ends.
    let docs = img.docs("t");
    let registry = Server::start(move |req| {
        if req.path().starts_with("/v2/r/referrers/") {
            return endless_chunked(200, &[("content-type", media_type::INDEX)]);
        }
        serve_docs(&docs, req)
    });
    let (dest, before) = dest_layout(&dir.path().join("y"));
    let run = within(
        60,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            &format!("{dest}:new"),
            "--plain-http",
            "--referrers",
        ],
        &[],
    );
    refused(&run, "an endless referrers index");
    unchanged(&dest, &before);
}

#[test]
fn tag_list_links_resolve_as_urls_and_carry_no_credentials_elsewhere() {
    let dir = tempdir();
    let elsewhere = Server::start(|_| {
        resp(
            200,
            &[("content-type", "application/json")],
            br#"{"name":"r","tags":["far"]}"#,
        )
    });
    let far = format!("http://{}/v2/r/tags/list?last=b", elsewhere.host());
    let registry = Server::start(move |req| {
        if req.header("authorization").is_none() {
            return resp(401, &[("www-authenticate", "Basic realm=\"r\"")], b"{}");
        }
        let json = [("content-type", "application/json")];
        match req.target.as_str() {
            // A reference relative to the page's URL, as RFC 8288 allows.
            "/v2/r/tags/list?n=1000" => resp(
                200,
                &[json[0], ("link", "<list?last=a>; rel=\"next\"")],
                br#"{"name":"r","tags":["a"]}"#,
            ),
            "/v2/r/tags/list?last=a" => resp(
                200,
                &[json[0], ("link", &format!("<{far}>; rel=\"next\""))],
                br#"{"name":"r","tags":["b"]}"#,
            ),
            _ => not_found(),
        }
    });
    let (cfg, password, auth) = docker_config(dir.path(), &registry.host());
    let run = within(
        60,
        &[
            "ls",
            &format!("docker://{}/r", registry.host()),
            "--plain-http",
            "-vv",
        ],
        &[("DOCKER_CONFIG", &cfg)],
    );
    no_secret(&run, &[password, &auth]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.split_whitespace().collect::<Vec<_>>(),
        ["a", "b", "far"],
        "{}",
        run.stdout
    );
    assert_eq!(
        elsewhere.count(|r| r.header("authorization").is_some()),
        0,
        "credentials followed the Link"
    );
}

#[test]
fn a_slow_loris_registry_is_waited_for_and_an_interrupt_leaves_the_layout_as_it_was() {
    let dir = tempdir();
    let img = Img::new("a");
    let (docs, layer) = (img.docs("t"), img.layer_digest());
    // A byte a second never trips the 120 s read timeout; there is no overall deadline (as
    // with docker and skopeo: a large layer on a slow link may take hours). The user's
    // interrupt is the bound, and must cost nothing.
    let registry = Server::start(move |req| {
        if req.path().ends_with(&layer) {
            return Reply::Drip(
                head(200, &[("content-length", "2048")]),
                Duration::from_secs(1),
            );
        }
        serve_docs(&docs, req)
    });
    let (dest, before) = dest_layout(dir.path());
    let mut child = strata(&[
        "pull",
        &format!("{}/r:t", registry.host()),
        &format!("{dest}:new"),
        "--plain-http",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("running strata");
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        child.try_wait().expect("waiting").is_none(),
        "strata gave up on a slow registry within 4 s"
    );
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill")
        .success());
    let start = Instant::now();
    while child.try_wait().expect("waiting").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "strata did not stop on SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unchanged(&dest, &before);
}

#[test]
fn a_document_served_under_another_media_type_leaves_no_layout_fsck_rejects() {
    let dir = tempdir();
    let img = Img::new("a");
    let index = index_of(&[child(media_type::MANIFEST, &img.manifest)]);
    let with_type = |bytes: &[u8], ct: &str| -> String {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).expect("json");
        v.as_object_mut().expect("object").remove("mediaType");
        let _ = ct;
        String::from_utf8(serde_json::to_vec(&v).expect("json")).expect("utf-8")
    };
    for (i, (what, bytes, ct, all)) in [
        (
            "a manifest served as an index",
            img.manifest.clone(),
            media_type::INDEX,
            true,
        ),
        (
            "a manifest served as an index",
            img.manifest.clone(),
            media_type::INDEX,
            false,
        ),
        (
            "an index served as a manifest",
            index.clone(),
            media_type::MANIFEST,
            true,
        ),
        (
            "a bare manifest served as an index",
            with_type(&img.manifest, "").into_bytes(),
            media_type::INDEX,
            false,
        ),
        (
            "a bare index served as a manifest",
            with_type(&index, "").into_bytes(),
            media_type::MANIFEST,
            true,
        ),
        (
            "a manifest served as text",
            img.manifest.clone(),
            "text/plain",
            false,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let mut docs = img.docs("x");
        docs.insert("t".into(), (bytes.clone(), ct));
        docs.insert(sha256(&bytes).to_string(), (bytes, ct));
        let registry = Server::start(move |req| serve_docs(&docs, req));
        let dest = dir.path().join(format!("d{i}"));
        let mut args = vec![
            "pull".to_owned(),
            format!("{}/r:t", registry.host()),
            s(&dest).to_owned(),
            "--plain-http".into(),
        ];
        if all {
            args.push("--all-platforms".into());
        }
        let run = within(60, &strs(&args), &[]);
        assert!(!run.stderr.contains("panicked"), "{what}: {}", run.stderr);
        if run.code == 0 {
            let fsck = within(60, &["fsck", s(&dest)], &[]);
            assert_eq!(fsck.code, 0, "{what} (all platforms: {all}): the pull succeeded, but fsck rejects the layout:\n{}\n{}", fsck.stdout, fsck.stderr);
        } else {
            refused(&run, what);
        }
    }
}

#[test]
fn an_upload_status_claiming_impossible_ranges_is_refused() {
    for range in ["0-18446744073709551615", "0-5000000000", "bytes=0-x"] {
        let dir = tempdir();
        let layout = strata::Layout::init(dir.path().join("src")).expect("init");
        let big: Vec<u8> = (0..3u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
        let config =
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
                .to_vec();
        let img = Img::with(config, big);
        for b in [&img.layer, &img.config, &img.manifest] {
            layout.put_blob(b).expect("blob");
        }
        let desc = strata::spec::Descriptor::new(
            media_type::MANIFEST,
            &sha256(&img.manifest),
            img.manifest.len() as u64,
        );
        super::util::add_entry(&layout, &desc, Some("v1"));
        let registry = push_registry(move |req| match req.method.as_str() {
            "PATCH" => resp(416, &[("location", "/v2/r/blobs/uploads/1")], b""),
            "GET" => resp(
                204,
                &[("location", "/v2/r/blobs/uploads/1"), ("range", range)],
                b"",
            ),
            "PUT" => resp(201, &[], b""),
            _ => resp(202, &[("location", "/v2/r/blobs/uploads/1")], b""),
        });
        let (cfg, _, _) = docker_config(dir.path(), &registry.host());
        let run = within(
            90,
            &[
                "push",
                &format!("{}:v1", s(layout.root())),
                &format!("{}/r:t", registry.host()),
                "--plain-http",
                "--chunk-mib",
                "1",
            ],
            &[("DOCKER_CONFIG", &cfg)],
        );
        refused(&run, range);
        assert_eq!(
            registry.count(|r| r.method == "PUT" && r.path().starts_with("/v2/r/manifests/")),
            0,
            "{range}: a manifest was pushed"
        );
    }
}

#[test]
fn malformed_http_framing_fails_cleanly() {
    let img = Img::new("a");
    let m = String::from_utf8(img.manifest.clone()).expect("utf-8");
    let ct = media_type::MANIFEST;
    let answers: Vec<(&str, String)> = vec![
        ("a chunk size past u64", format!("HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ntransfer-encoding: chunked\r\n\r\nfffffffffffffffffffffff\r\n{m}\r\n0\r\n\r\n")),
        ("a negative Content-Length", format!("HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ncontent-length: -1\r\n\r\n{m}")),
        ("a Content-Length past u64", format!("HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ncontent-length: 18446744073709551616\r\n\r\n{m}")),
        ("a huge Content-Length", format!("HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ncontent-length: 18446744073709551615\r\n\r\n{m}")),
        ("two Content-Lengths", format!("HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ncontent-length: 5\r\ncontent-length: {}\r\n\r\n{m}", m.len())),
        ("a status line of garbage", format!("HTTP/1.1 2x0 OK\r\n\r\n{m}")),
        ("a 1xx forever", "HTTP/1.1 100 Continue\r\n\r\n".repeat(10_000)),
        ("no header end", format!("HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\n{}", "x: y\r\n".repeat(100_000))),
        ("a NUL in a header", format!("HTTP/1.1 200 OK\r\ncontent-type: {ct}\r\ndocker-content-digest: a\0b\r\ncontent-length: {}\r\n\r\n{m}", m.len())),
    ];
    for (what, answer) in answers {
        let raw = answer.into_bytes();
        let (run, _) = pull_refused(what, &img, move |req| {
            (req.path() == "/v2/r/manifests/t").then(|| Reply::Raw(raw.clone()))
        });
        assert!(run.stderr.contains("127.0.0.1"), "{what}: {}", run.stderr);
    }
}

#[test]
fn terminal_escapes_from_the_registry_never_reach_the_terminal() {
    let registry = Server::start(|req| {
        if req.path() == "/v2/r/tags/list" {
            return resp(200, &[("content-type", "application/json")], b"{\"name\":\"r\",\"tags\":[\"ok\",\"\\u001b]0;pwned\\u0007\\u001b[2J\",\"line\\nstrata: pulled\"]}");
        }
        let body =
            b"{\"errors\":[{\"code\":\"DENIED\",\"message\":\"\\u001b[2Jno\\r\\nstrata: done\"}]}";
        resp(403, &[("content-type", "application/json")], body)
    });
    let ls = within(
        60,
        &[
            "ls",
            &format!("docker://{}/r", registry.host()),
            "--plain-http",
        ],
        &[],
    );
    let dir = tempdir();
    let pull = within(
        60,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            s(&dir.path().join("d")),
            "--plain-http",
        ],
        &[],
    );
    refused(&pull, "a 403 with escapes");
    for run in [&ls, &pull] {
        for out in [&run.stdout, &run.stderr] {
            assert!(
                !out.contains('\u{1b}') && !out.contains('\r'),
                "a registry's control characters were printed: {out:?}"
            );
            assert!(
                !out.lines()
                    .any(|l| l.starts_with("strata: pulled") || l.starts_with("strata: done")),
                "a registry forged an output line: {out:?}"
            );
        }
    }
    assert!(
        ls.code == 1 || ls.stdout.lines().all(|l| l == "ok"),
        "{:?}",
        ls.stdout
    );
}

#[test]
fn an_index_whose_platforms_hold_escapes_cannot_reach_the_terminal_and_a_failed_pull_leaves_no_layout(
) {
    let img = Img::new("a");
    let mut c = child(media_type::MANIFEST, &img.manifest);
    c["platform"] = serde_json::json!({"architecture": "\u{1b}[2J", "os": "plan9\nstrata: pulled"});
    let registry = index_registry(&img, index_of(&[c]), vec![]);
    let dir = tempdir();
    let dest = dir.path().join("new/lay");
    let run = within(
        60,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            s(&dest),
            "--plain-http",
        ],
        &[],
    );
    refused(&run, "no platform for this machine");
    assert!(
        !run.stderr.contains('\u{1b}')
            && !run.stderr.lines().any(|l| l.starts_with("strata: pulled")),
        "{:?}",
        run.stderr
    );
    assert!(
        !dir.path().join("new").exists(),
        "the failed pull left the layout it created"
    );
}

#[test]
fn a_relative_upload_location_resolves_against_the_request() {
    let dir = tempdir();
    // RFC 7231 (which the distribution spec cites for Location): relative to the request URL.
    let registry = push_registry(|req| match req.method.as_str() {
        "POST" => resp(202, &[("location", "session-1?_state=x")], b""),
        "PUT" if req.path() == "/v2/r/blobs/uploads/session-1" => resp(201, &[], b""),
        _ => not_found(),
    });
    let run = push_to(&registry, dir.path());
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn listed_referrers_whose_subject_is_not_the_image_are_skipped() {
    let img = Img::new("a");
    let other = Img::new("unrelated");
    let of_other = Img::referrer_of(&other, "sig of another");
    let real = Img::referrer_of(&img, "real sig");
    let listed = [&img, &other, &of_other, &real].map(|i| child(media_type::MANIFEST, &i.manifest));
    let mut docs = img.docs("t");
    for (i, d) in [&other, &of_other, &real].iter().enumerate() {
        docs.extend(d.docs(&format!("x{i}")));
    }
    let referrers = index_of(&listed);
    let registry = Server::start(move |req| {
        if req.path().starts_with("/v2/r/referrers/") {
            return resp(200, &[("content-type", media_type::INDEX)], &referrers);
        }
        serve_docs(&docs, req)
    });
    let dir = tempdir();
    let dest = dir.path().join("d");
    let run = within(
        60,
        &[
            "pull",
            &format!("{}/r:t", registry.host()),
            s(&dest),
            "--plain-http",
            "--referrers",
            "--json",
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(
        report["referrers"],
        serde_json::json!([real.digest()]),
        "{}",
        run.stdout
    );
    let stored = super::util::stored_blobs(&dest);
    assert!(
        !stored.contains(&sha256(&other.layer).to_string())
            && !stored.contains(&of_other.layer_digest()),
        "an unrelated image's blobs were pulled"
    );
    let fsck = within(60, &["fsck", s(&dest)], &[]);
    assert_eq!(fsck.code, 0, "{}{}", fsck.stdout, fsck.stderr);
}
