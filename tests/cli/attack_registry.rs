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
