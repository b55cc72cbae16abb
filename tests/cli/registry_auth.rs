//! Reaching a registry that asks for trust or credentials: TLS with a private CA
//! (`--cert-dir`, `SSL_CERT_FILE`, `--insecure`), Basic auth (htpasswd) and the Bearer token
//! flow, with credentials from a docker config file, a credential helper and `strata login`.
//! Missing or wrong credentials fail clearly, and no secret ever shows in the output.

use std::path::{Path, PathBuf};

use base64::Engine;

use super::registry_util::{
    assert_fsck, docker_config, strata_built, tagged_digest, Auth, Registry, PASSWORD, USER,
};
use super::util::{run_with_input as run, s, tempdir, Run};

/// A small image at `dir/src:v1`.
fn image(dir: &Path) -> (PathBuf, String) {
    let layout = strata_built(dir, "src", "v1", &[&[("etc/motd", b"hello\n")]]);
    let digest = tagged_digest(&layout, "v1").unwrap();
    (layout, digest)
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Asserts that nothing secret is in `r`'s output: the password (and `others`), in clear or
/// as Basic credentials, nor a JWT (all start `eyJ`, base64 of `{"`).
fn assert_no_secret(r: &Run, others: &[&str]) {
    for secret in std::iter::once(PASSWORD).chain(others.iter().copied()) {
        for shown in [secret.to_owned(), b64(&format!("{USER}:{secret}"))] {
            assert!(
                !r.stderr.contains(&shown) && !r.stdout.contains(&shown),
                "a secret ({shown}) in the output:\n{}\n{}",
                r.stdout,
                r.stderr
            );
        }
    }
    assert!(
        !r.stderr.contains("eyJ") && !r.stdout.contains("eyJ"),
        "a token in the output:\n{}",
        r.stderr
    );
}

fn assert_exit(r: &Run, code: i32, what: &str) {
    assert_eq!(
        r.code, code,
        "{what}: expected exit {code}\nstdout: {}\nstderr: {}",
        r.stdout, r.stderr
    );
}

// TLS

#[test]
fn tls_with_a_private_ca_needs_it_trusted_or_insecure() {
    let Some(reg) = Registry::start(true, Auth::Anonymous) else {
        return;
    };
    let dir = tempdir();
    let (layout, digest) = image(dir.path());
    let src = format!("{}:v1", s(&layout));
    let ca = reg.ca.clone().unwrap();
    let name = reg.name("tls/img:v1");

    // Untrusted: a certificate error naming the URL, at once (nothing to retry), and no
    // fallback to plain HTTP.
    let started = std::time::Instant::now();
    let r = run(&["push", &src, &name], &[], "");
    assert_exit(&r, 1, "push to an untrusted registry");
    assert!(
        r.stderr.contains(&format!("https://{}/", reg.host)),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("certificate"), "{}", r.stderr);
    assert!(!r.stderr.contains("http://"), "{}", r.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a certificate error is retried: {:?}",
        started.elapsed()
    );
    let back = dir.path().join("back");
    let r = run(&["pull", &name, s(&back)], &[], "");
    assert_exit(&r, 1, "pull from an untrusted registry");
    assert!(r.stderr.contains("certificate"), "{}", r.stderr);
    assert!(!back.exists(), "a failed pull created {}", back.display());

    // The CA as a file, then as a directory of certificates (docker's certs.d layout).
    let r = run(&["push", "--cert-dir", s(&ca), &src, &name], &[], "");
    assert_exit(&r, 0, "push with --cert-dir");
    let ca_dir = ca.parent().unwrap();
    let r = run(&["pull", "--cert-dir", s(ca_dir), &name, s(&back)], &[], "");
    assert_exit(&r, 0, "pull with --cert-dir DIR");
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));
    assert_fsck(&back);

    // SSL_CERT_FILE, as curl and docker read it.
    let back2 = dir.path().join("back2");
    let r = run(
        &["pull", &name, s(&back2)],
        &[("SSL_CERT_FILE", s(&ca))],
        "",
    );
    assert_exit(&r, 0, "pull with SSL_CERT_FILE");

    // --insecure: no verification at all.
    let r = run(
        &["push", "--insecure", &src, &reg.name("tls/other:v1")],
        &[],
        "",
    );
    assert_exit(&r, 0, "push --insecure");
    let back3 = dir.path().join("back3");
    let r = run(
        &["pull", "--insecure", &reg.name("tls/other:v1"), s(&back3)],
        &[],
        "",
    );
    assert_exit(&r, 0, "pull --insecure");
    assert_eq!(
        tagged_digest(&back3, "v1").as_deref(),
        Some(digest.as_str())
    );
}

// Credentials

/// Without credentials, with wrong ones, with right ones from a docker config file: the
/// registry's auth, Basic or token, is what differs.
fn credentials_from_docker_config(auth: Auth) {
    let Some(reg) = Registry::start(false, auth) else {
        return;
    };
    let dir = tempdir();
    let (layout, digest) = image(dir.path());
    let src = format!("{}:v1", s(&layout));
    let name = reg.name("auth/img:v1");
    let empty = dir.path().join("no-config");
    std::fs::create_dir_all(&empty).unwrap();

    let r = run(&["push", &src, &name], &[("DOCKER_CONFIG", s(&empty))], "");
    assert_exit(&r, 1, "push without credentials");
    assert!(r.stderr.contains(&reg.host), "{}", r.stderr);
    assert!(r.stderr.contains("login"), "{}", r.stderr);
    assert_no_secret(&r, &[]);

    let wrong = "Wr0ng-Secret-xyz";
    let wrong_dir = dir.path().join("wrong");
    let wrong_config = docker_config(&wrong_dir, &reg.host, USER, wrong);
    let r = run(
        &["push", "-vv", &src, &name],
        &[("DOCKER_CONFIG", s(&wrong_config))],
        "",
    );
    assert_exit(&r, 1, "push with wrong credentials");
    assert!(r.stderr.contains(&reg.host), "{}", r.stderr);
    assert!(r.stderr.contains("refused"), "{}", r.stderr);
    assert_no_secret(&r, &[wrong]);

    let right = docker_config(dir.path(), &reg.host, USER, PASSWORD);
    let env = [("DOCKER_CONFIG", s(&right))];
    let r = run(&["push", "-vv", &src, &name], &env, "");
    assert_exit(&r, 0, "push with credentials");
    assert_no_secret(&r, &[]);
    let back = dir.path().join("back");
    let r = run(&["pull", "-vv", &name, s(&back)], &env, "");
    assert_exit(&r, 0, "pull with credentials");
    assert_no_secret(&r, &[]);
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));
    assert_fsck(&back);

    // Anonymous pulls are refused too.
    let r = run(
        &["pull", &name, s(&dir.path().join("anon"))],
        &[("DOCKER_CONFIG", s(&empty))],
        "",
    );
    assert_exit(&r, 1, "pull without credentials");

    if let Some(issuer) = &reg.issuer {
        use std::sync::atomic::Ordering;
        assert!(issuer.issued.load(Ordering::SeqCst) >= 2, "no token issued");
        assert!(
            issuer.refused.load(Ordering::SeqCst) >= 1,
            "nothing refused"
        );
    }
}

#[test]
fn basic_auth_credentials_from_a_docker_config() {
    credentials_from_docker_config(Auth::Basic);
}

#[test]
fn token_auth_credentials_from_a_docker_config() {
    credentials_from_docker_config(Auth::Token);
}

/// `strata login` checks the password against the registry, stores it as docker does, and
/// later commands find it there.
fn login_then_push_and_pull(auth: Auth) {
    let Some(reg) = Registry::start(false, auth) else {
        return;
    };
    let dir = tempdir();
    let (layout, digest) = image(dir.path());
    let config = dir.path().join("docker");
    let env = [("DOCKER_CONFIG", s(&config))];

    let wrong = "not-the-Password-42";
    let r = run(
        &["login", &reg.host, "-u", USER, "--password-stdin"],
        &env,
        &format!("{wrong}\n"),
    );
    assert_exit(&r, 1, "login with a wrong password");
    assert_no_secret(&r, &[wrong]);
    assert!(
        !config.join("config.json").exists(),
        "a refused login stored something"
    );

    // -q: the status line is not a result; stdout stays empty (it said "logged in").
    let r = run(
        &["-q", "login", &reg.host, "-u", USER, "--password-stdin"],
        &env,
        &format!("{PASSWORD}\n"),
    );
    assert_exit(&r, 0, "login");
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""), "login -q");
    assert_no_secret(&r, &[]);
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(config.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        stored["auths"][&reg.host]["auth"],
        b64(&format!("{USER}:{PASSWORD}")).as_str(),
        "{stored}"
    );

    let name = reg.name("login/img:v1");
    let r = run(&["push", &format!("{}:v1", s(&layout)), &name], &env, "");
    assert_exit(&r, 0, "push after login");
    let back = dir.path().join("back");
    let r = run(&["pull", &name, s(&back)], &env, "");
    assert_exit(&r, 0, "pull after login");
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));

    let r = run(&["logout", &reg.host], &env, "");
    assert_exit(&r, 0, "logout");
    assert_eq!(r.stdout, "", "logout's status line goes to stderr");
    assert!(r.stderr.contains("logged out of"), "{}", r.stderr);
    let r = run(&["pull", &name, s(&dir.path().join("after"))], &env, "");
    assert_exit(&r, 1, "pull after logout");
}

#[test]
fn basic_auth_login_stores_what_push_and_pull_use() {
    login_then_push_and_pull(Auth::Basic);
}

#[test]
fn token_auth_login_stores_what_push_and_pull_use() {
    login_then_push_and_pull(Auth::Token);
}

#[test]
fn credentials_from_a_credential_helper() {
    let Some(reg) = Registry::start(false, Auth::Basic) else {
        return;
    };
    let dir = tempdir();
    let (layout, digest) = image(dir.path());
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-stratatest");
    // Answers `get` for the test registry only, as docker's helpers do.
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread url\n[ \"$url\" = \"{host}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$url\"\n",
            host = reg.host
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let config = dir.path().join("docker");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.json"), r#"{"credsStore":"stratatest"}"#).unwrap();
    let path = format!("{}:{}", s(&bin), std::env::var("PATH").unwrap_or_default());
    let env = [("DOCKER_CONFIG", s(&config)), ("PATH", path.as_str())];
    let name = reg.name("helper/img:v1");
    let r = run(
        &["push", "-vv", &format!("{}:v1", s(&layout)), &name],
        &env,
        "",
    );
    assert_exit(&r, 0, "push with a credential helper");
    assert_no_secret(&r, &[]);
    let back = dir.path().join("back");
    let r = run(&["pull", &name, s(&back)], &env, "");
    assert_exit(&r, 0, "pull with a credential helper");
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));
}

// Proxies

#[test]
fn an_https_proxy_from_the_environment_carries_the_requests_unless_no_proxy() {
    let Some(reg) = Registry::start(true, Auth::Anonymous) else {
        return;
    };
    let proxy = super::registry_util::FaultProxy::start(&reg.host);
    let dir = tempdir();
    let (layout, digest) = image(dir.path());
    let ca = reg.ca.clone().unwrap();
    let name = reg.name("proxied/img:v1");
    let secret = "Pr0xy-Secret-77";
    let with_proxy = format!("http://puser:{secret}@{}", proxy.host);
    let env = [("HTTPS_PROXY", with_proxy.as_str())];
    let r = run(
        &[
            "push",
            "-vv",
            "--cert-dir",
            s(&ca),
            &format!("{}:v1", s(&layout)),
            &name,
        ],
        &env,
        "",
    );
    assert_exit(&r, 0, "push through a proxy");
    assert_no_secret(&r, &[secret]);
    let connects = |p: &super::registry_util::FaultProxy| {
        p.seen()
            .iter()
            .filter(|l| l.starts_with(&format!("CONNECT {}", reg.host)))
            .count()
    };
    let through = connects(&proxy);
    assert!(through > 0, "{:#?}", proxy.seen());
    assert!(
        proxy
            .seen()
            .iter()
            .all(|l| l.ends_with("[proxy-authorization]")),
        "the proxy's credentials were sent: {:#?}",
        proxy.seen()
    );
    let back = dir.path().join("back");
    let r = run(&["pull", "--cert-dir", s(&ca), &name, s(&back)], &env, "");
    assert_exit(&r, 0, "pull through a proxy");
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));
    assert!(connects(&proxy) > through);

    let before = connects(&proxy);
    let r = run(
        &[
            "pull",
            "--cert-dir",
            s(&ca),
            &name,
            s(&dir.path().join("direct")),
        ],
        &[
            ("HTTPS_PROXY", with_proxy.as_str()),
            ("NO_PROXY", "127.0.0.1"),
        ],
        "",
    );
    assert_exit(&r, 0, "pull with NO_PROXY");
    assert_eq!(connects(&proxy), before, "NO_PROXY was not honoured");

    // A proxy that is not there: an error, without the proxy's password.
    let dead = format!(
        "http://puser:{secret}@127.0.0.1:{}",
        super::registry_util::free_port()
    );
    let r = run(
        &[
            "pull",
            "-vv",
            "--cert-dir",
            s(&ca),
            &name,
            s(&dir.path().join("dead")),
        ],
        &[("HTTPS_PROXY", dead.as_str())],
        "",
    );
    assert_exit(&r, 1, "pull through a dead proxy");
    assert_no_secret(&r, &[secret]);
}

// Tokens

#[test]
fn tokens_are_cached_refreshed_on_401_and_cover_cross_repository_mounts() {
    use std::sync::atomic::Ordering;
    let Some(reg) = Registry::start(false, Auth::Token) else {
        return;
    };
    let issuer = reg.issuer.as_ref().unwrap();
    let proxy = super::registry_util::FaultProxy::start(&reg.host);
    let dir = tempdir();
    let layout = strata_built(
        dir.path(),
        "src",
        "v1",
        &[&[("a", b"a\n")], &[("b", b"b\n")], &[("c", b"c\n")]],
    );
    let digest = tagged_digest(&layout, "v1").unwrap();
    let src = format!("{}:v1", s(&layout));
    let config = docker_config(dir.path(), &proxy.host, USER, PASSWORD);
    let env = [("DOCKER_CONFIG", s(&config))];

    // Cached for the run: far fewer tokens than requests.
    let r = run(&["push", &src, &proxy.name("tok/a:v1")], &env, "");
    assert_exit(&r, 0, "push");
    let issued = issuer.issued.load(Ordering::SeqCst);
    let requests = proxy.seen().len();
    assert!(
        issued >= 1 && issued * 2 < requests,
        "{issued} tokens for {requests} requests"
    );

    // Mounting from tok/a into tok/b needs pull on tok/a too: the registry's challenge says
    // so, and the token asked for covers both.
    let pushed = super::util::run_with_env(
        &[
            "push",
            "--json",
            "--mount-from",
            "tok/a",
            &src,
            &proxy.name("tok/b:v1"),
        ],
        &env,
    );
    assert_exit(&pushed, 0, "push --mount-from");
    let pushed: serde_json::Value = serde_json::from_str(&pushed.stdout).unwrap();
    assert_eq!(
        pushed["blobsMounted"], 4,
        "config and three layers: {pushed}"
    );

    // A token the registry stops taking mid-pull: a new one is fetched and the pull goes on.
    let before = issuer.issued.load(Ordering::SeqCst);
    proxy.add(super::registry_util::Fault::blob_get(
        1,
        super::registry_util::Action::Challenge(format!(
            "Bearer realm=\"{}\",service=\"{}\",scope=\"repository:tok/b:pull\",error=\"invalid_token\"",
            issuer.realm,
            super::registry_util::TokenIssuer::SERVICE
        )),
    ));
    let back = dir.path().join("back");
    let r = run(
        &["pull", "--jobs", "1", &proxy.name("tok/b:v1"), s(&back)],
        &env,
        "",
    );
    assert_exit(&r, 0, "pull with a token refused once");
    assert_eq!(proxy.faults_applied(), 1);
    assert!(
        issuer.issued.load(Ordering::SeqCst) >= before + 2,
        "no new token after the 401"
    );
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));
    assert_fsck(&back);
}

#[test]
fn credentials_from_a_containers_auth_file_come_first() {
    let Some(reg) = Registry::start(false, Auth::Basic) else {
        return;
    };
    let dir = tempdir();
    let (layout, digest) = image(dir.path());
    // containers' auth.json has docker's shape; REGISTRY_AUTH_FILE names it, and it wins
    // over a docker config holding a wrong password.
    let auth_dir = docker_config(&dir.path().join("containers"), &reg.host, USER, PASSWORD);
    let auth_file = auth_dir.join("config.json");
    let wrong = docker_config(
        &dir.path().join("docker"),
        &reg.host,
        USER,
        "stale-password",
    );
    let env = [
        ("REGISTRY_AUTH_FILE", s(&auth_file)),
        ("DOCKER_CONFIG", s(&wrong)),
    ];
    let name = reg.name("authfile/img:v1");
    let r = run(&["push", &format!("{}:v1", s(&layout)), &name], &env, "");
    assert_exit(&r, 0, "push with REGISTRY_AUTH_FILE");
    let back = dir.path().join("back");
    let r = run(&["pull", &name, s(&back)], &env, "");
    assert_exit(&r, 0, "pull with REGISTRY_AUTH_FILE");
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));
    let r = run(
        &["pull", &name, s(&dir.path().join("stale"))],
        &[("DOCKER_CONFIG", s(&wrong))],
        "",
    );
    assert_exit(&r, 1, "pull with the stale docker config alone");
    assert_no_secret(&r, &["stale-password"]);
}

#[test]
fn a_public_repository_is_pulled_anonymously_and_pushed_with_credentials() {
    let Some(reg) = Registry::start(false, Auth::TokenPublic) else {
        return;
    };
    let dir = tempdir();
    let (layout, digest) = image(dir.path());
    let src = format!("{}:v1", s(&layout));
    let name = reg.name("public/img:v1");
    let empty = dir.path().join("no-config");
    std::fs::create_dir_all(&empty).unwrap();
    let anonymous = [("DOCKER_CONFIG", s(&empty))];

    // An anonymous token may pull, not push.
    let r = run(&["push", &src, &name], &anonymous, "");
    assert_exit(&r, 1, "anonymous push");
    assert!(r.stderr.contains("login"), "{}", r.stderr);

    let config = docker_config(dir.path(), &reg.host, USER, PASSWORD);
    let r = run(&["push", &src, &name], &[("DOCKER_CONFIG", s(&config))], "");
    assert_exit(&r, 0, "push with credentials");

    let back = dir.path().join("back");
    let r = run(&["pull", &name, s(&back)], &anonymous, "");
    assert_exit(&r, 0, "anonymous pull");
    assert_eq!(tagged_digest(&back, "v1").as_deref(), Some(digest.as_str()));
    assert_fsck(&back);
}
