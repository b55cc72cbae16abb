//! A registry reached over HTTPS cannot send strata to plain HTTP: a document fetched by tag
//! is checked only against the digest the same answer gives, which anyone on a plain-HTTP
//! path could rewrite together with the document.

use std::path::Path;
use std::process::{Child, Command};

use super::registry_util::server_pki;
use super::util::{fails, peer, s, tempdir};

/// A registry stand-in that answers `/v2/` and redirects every other GET to `target`
/// (HTTPS when given a certificate and key); it writes its port to `port_file`.
const REDIRECTING_SERVER: &str = r#"
import http.server, os, ssl, sys
port_file, target, *tls = sys.argv[1:]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/v2/":
            self.send_response(200)
        else:
            self.send_response(302)
            self.send_header("Location", target + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_HEAD = do_GET
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
if tls:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls)
    server.socket = context.wrap_socket(server.socket, server_side=True)
with open(port_file + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(port_file + ".tmp", port_file)
server.serve_forever()
"#;

/// The redirecting server, stopped when dropped.
pub struct Redirector(Child);

impl Drop for Redirector {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a [`REDIRECTING_SERVER`] to `target`, over HTTPS with a test CA made under
/// `dir/pki` when `tls`; returns it and its port.
pub fn start_redirector(dir: &Path, target: &str, tls: bool) -> (Redirector, u16) {
    let port_file = dir.join("port");
    let mut command = Command::new("python3");
    command.args(["-c", REDIRECTING_SERVER, s(&port_file), target]);
    if tls {
        let pki = server_pki(dir);
        command.args([s(&pki.server_cert), s(&pki.server_key)]);
    }
    let server = Redirector(command.spawn().expect("starting python3"));
    for _ in 0..200 {
        if let Ok(port) = std::fs::read_to_string(&port_file) {
            return (server, port.trim().parse().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("the redirecting test server did not start");
}

#[test]
fn an_https_registry_cannot_redirect_to_plain_http() {
    if !peer("python3") || !peer("openssl") {
        return;
    }
    let dir = tempdir();
    // Where the downgrade would lead: it must never be reached. Connections there are
    // counted and closed at once, so that a strata that followed fails soon.
    let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("http://127.0.0.1:{}", plain.local_addr().unwrap().port());
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = reached.clone();
    std::thread::spawn(move || {
        for conn in plain.incoming() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(conn);
        }
    });
    let (_server, port) = start_redirector(dir.path(), &target, true);
    let out = dir.path().join("out");
    let err = fails(
        &[
            "pull",
            "--cert-dir",
            s(&dir.path().join("pki")),
            &format!("127.0.0.1:{port}/team/app:1"),
            s(&out),
        ],
        1,
    );
    assert!(err.contains("from HTTPS to plain HTTP"), "{err}");
    assert_eq!(
        reached.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "strata followed the redirect to plain HTTP"
    );
    assert!(!out.exists());
}
