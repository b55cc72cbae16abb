use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use super::helper::Helper;
use super::keys::HUB_KEY;
use super::*;

const PASSWORD: &str = "s3cr3t-hunter2";

struct Fixture {
    dir: tempfile::TempDir,
    store: CredentialStore,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = CredentialStore {
            docker_config: Some(dir.path().join("docker/config.json")),
            auth_files: vec![dir.path().join("auth1.json"), dir.path().join("auth2.json")],
            helper_path: vec![dir.path().join("empty-bin"), dir.path().join("bin")],
        };
        fs::create_dir_all(dir.path().join("bin")).unwrap();
        Fixture { dir, store }
    }

    fn config(&self) -> PathBuf {
        self.store.docker_config.clone().unwrap()
    }

    fn auth_file(&self, n: usize) -> PathBuf {
        self.store.auth_files[n].clone()
    }

    /// A helper `docker-credential-<name>` that records each call's stdin in
    /// `<program>.<action>` and runs `body` (with the input in $input).
    fn helper(&self, name: &str, body: &str) -> PathBuf {
        let path = self
            .dir
            .path()
            .join("bin")
            .join(format!("docker-credential-{name}"));
        let script =
            format!("#!/bin/sh\ninput=$(cat)\nprintf '%s' \"$input\" > \"$0.$1\"\n{body}\n");
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// What the helper last got on stdin for `action`, None when it was not called for it.
    fn helper_input(&self, name: &str, action: &str) -> Option<String> {
        let path = self
            .dir
            .path()
            .join(format!("bin/docker-credential-{name}.{action}"));
        fs::read_to_string(path).ok()
    }
}

fn write_json(path: &Path, value: &Value) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn basic(user: &str, password: &str) -> Credential {
    Credential::Basic {
        username: user.to_string(),
        password: password.to_string(),
    }
}

/// A get helper answering `user`/`secret` whatever the server.
const ANSWER: &str = r#"[ "$1" = get ] && printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$input" "$USER_" "$SECRET_""#;

fn answering(user: &str, secret: &str) -> String {
    format!("USER_='{user}' SECRET_='{secret}'\n{ANSWER}")
}

const NOT_FOUND: &str = "echo 'credentials not found in native keychain'; exit 1";

fn assert_no_secret(e: &CredentialError, secret: &str) {
    let (display, debug) = (format!("{e}"), format!("{e:?}"));
    assert!(!display.contains(secret), "{display}");
    assert!(!debug.contains(secret), "{debug}");
}

#[test]
fn lookup_reads_the_auth_field_splitting_at_the_first_colon() {
    let f = Fixture::new();
    write_json(
        &f.config(),
        &json!({"auths": {"localhost:5000": {"auth": b64("user:pa:ss\0")}}}),
    );
    assert_eq!(
        f.store.lookup("localhost:5000").unwrap(),
        Some(basic("user", "pa:ss"))
    );
    assert_eq!(f.store.lookup("localhost:5001").unwrap(), None);
}

#[test]
fn lookup_reads_username_and_password_fields() {
    let f = Fixture::new();
    write_json(
        &f.config(),
        &json!({"auths": {"ghcr.io": {"username": "me", "password": PASSWORD}}}),
    );
    assert_eq!(
        f.store.lookup("ghcr.io").unwrap(),
        Some(basic("me", PASSWORD))
    );
}

#[test]
fn lookup_prefers_an_identity_token() {
    let f = Fixture::new();
    write_json(
        &f.config(),
        &json!({"auths": {"myacr.azurecr.io": {"auth": b64("00000000-0000-0000-0000-000000000000:"), "identitytoken": "refresh"}}}),
    );
    assert_eq!(
        f.store.lookup("myacr.azurecr.io").unwrap(),
        Some(Credential::IdentityToken("refresh".to_string()))
    );
}

#[test]
fn lookup_finds_docker_hub_under_any_of_its_key_forms() {
    for key in [
        HUB_KEY,
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        "https://index.docker.io/v2/",
    ] {
        let f = Fixture::new();
        write_json(
            &f.config(),
            &json!({"auths": {key: {"auth": b64("hubuser:pw")}}}),
        );
        for registry in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert_eq!(
                f.store.lookup(registry).unwrap(),
                Some(basic("hubuser", "pw")),
                "key {key}, registry {registry}"
            );
        }
        assert_eq!(f.store.lookup("quay.io").unwrap(), None);
    }
}

#[test]
fn lookup_matches_host_port_keys_with_schemes_and_api_paths() {
    for key in [
        "https://localhost:5000",
        "http://localhost:5000",
        "https://localhost:5000/v1/",
        "https://localhost:5000/v2/",
    ] {
        let f = Fixture::new();
        write_json(&f.config(), &json!({"auths": {key: {"auth": b64("u:p")}}}));
        assert_eq!(
            f.store.lookup("localhost:5000").unwrap(),
            Some(basic("u", "p")),
            "{key}"
        );
        assert_eq!(f.store.lookup("localhost").unwrap(), None, "{key}");
    }
    // The registry's own key wins over another spelling, whatever their order.
    let f = Fixture::new();
    write_json(
        &f.config(),
        &json!({"auths": {"http://localhost:5000": {"auth": b64("old:p")}, "localhost:5000": {"auth": b64("new:p")}}}),
    );
    assert_eq!(
        f.store.lookup("localhost:5000").unwrap(),
        Some(basic("new", "p"))
    );
}

#[test]
fn auth_files_come_before_the_docker_config_in_order() {
    let f = Fixture::new();
    write_json(
        &f.config(),
        &json!({"auths": {"quay.io": {"auth": b64("docker:p")}, "ghcr.io": {"auth": b64("docker:p")}}}),
    );
    write_json(
        &f.auth_file(1),
        &json!({"auths": {"quay.io": {"auth": b64("second:p")}, "gcr.io": {"auth": b64("second:p")}}}),
    );
    write_json(
        &f.auth_file(0),
        &json!({"auths": {"quay.io": {"auth": b64("first:p")}}}),
    );
    assert_eq!(
        f.store.lookup("quay.io").unwrap(),
        Some(basic("first", "p"))
    );
    assert_eq!(
        f.store.lookup("gcr.io").unwrap(),
        Some(basic("second", "p"))
    );
    assert_eq!(
        f.store.lookup("ghcr.io").unwrap(),
        Some(basic("docker", "p"))
    );
    assert_eq!(f.store.lookup("docker.io").unwrap(), None);
}

#[test]
fn repository_keys_match_their_namespace_longest_first() {
    let f = Fixture::new();
    write_json(
        &f.auth_file(0),
        &json!({"auths": {
            "quay.io/org": {"auth": b64("org:p")},
            "quay.io/org/app": {"auth": b64("app:p")},
            "quay.io/only": {"auth": b64("only:p")},
        }}),
    );
    write_json(
        &f.config(),
        &json!({"auths": {"quay.io": {"auth": b64("registry:p")}}}),
    );
    let repo = |r| f.store.lookup_repository("quay.io", r).unwrap();
    assert_eq!(repo("org/app"), Some(basic("app", "p")));
    assert_eq!(repo("org/app/sub"), Some(basic("app", "p")));
    assert_eq!(repo("org/other"), Some(basic("org", "p")));
    assert_eq!(repo("orgx/app"), Some(basic("registry", "p")));
    // A namespace key never stands for the whole registry.
    assert_eq!(
        f.store.lookup("quay.io").unwrap(),
        Some(basic("registry", "p"))
    );
    fs::remove_file(f.config()).unwrap();
    assert_eq!(f.store.lookup("quay.io").unwrap(), None);
}

#[test]
fn an_empty_entry_falls_through_to_creds_store() {
    let f = Fixture::new();
    f.helper("store", &answering("helper-user", PASSWORD));
    write_json(&f.config(), &json!({"auths": {"ghcr.io": {}}}));
    assert_eq!(f.store.lookup("ghcr.io").unwrap(), None);
    write_json(
        &f.config(),
        &json!({"auths": {"ghcr.io": {}}, "credsStore": "store"}),
    );
    assert_eq!(
        f.store.lookup("ghcr.io").unwrap(),
        Some(basic("helper-user", PASSWORD))
    );
    assert_eq!(f.helper_input("store", "get").as_deref(), Some("ghcr.io"));
    // Docker hub's server URL, as docker hands it to helpers.
    f.store.lookup("docker.io").unwrap();
    assert_eq!(f.helper_input("store", "get").as_deref(), Some(HUB_KEY));
}

#[test]
fn cred_helpers_win_over_creds_store_and_the_auths_entry() {
    let f = Fixture::new();
    f.helper("general", &answering("general", "p1"));
    f.helper("gcloud", &answering("oauth2accesstoken", "p2"));
    write_json(
        &f.config(),
        &json!({
            "auths": {"gcr.io": {"auth": b64("file:p")}},
            "credsStore": "general",
            "credHelpers": {"gcr.io": "gcloud"},
        }),
    );
    assert_eq!(
        f.store.lookup("gcr.io").unwrap(),
        Some(basic("oauth2accesstoken", "p2"))
    );
    assert_eq!(
        f.store.lookup("ghcr.io").unwrap(),
        Some(basic("general", "p1"))
    );
    assert_eq!(f.helper_input("gcloud", "get").as_deref(), Some("gcr.io"));
}

#[test]
fn a_helper_token_answer_is_an_identity_token() {
    let f = Fixture::new();
    f.helper("acr", &answering("<token>", "refresh-token"));
    write_json(
        &f.config(),
        &json!({"credHelpers": {"x.azurecr.io": "acr"}}),
    );
    assert_eq!(
        f.store.lookup("x.azurecr.io").unwrap(),
        Some(Credential::IdentityToken("refresh-token".to_string()))
    );
}

#[test]
fn a_helper_that_has_nothing_means_no_credential() {
    let f = Fixture::new();
    f.helper("empty", NOT_FOUND);
    write_json(&f.config(), &json!({"credsStore": "empty"}));
    assert_eq!(f.store.lookup("ghcr.io").unwrap(), None);
    // Nothing in a helper named by an auth file: the next file is asked.
    write_json(
        &f.auth_file(0),
        &json!({"credHelpers": {"ghcr.io": "empty"}}),
    );
    write_json(
        &f.config(),
        &json!({"auths": {"ghcr.io": {"auth": b64("u:p")}}}),
    );
    assert_eq!(f.store.lookup("ghcr.io").unwrap(), Some(basic("u", "p")));
}

#[test]
fn a_missing_helper_is_an_error_naming_it() {
    let f = Fixture::new();
    write_json(&f.config(), &json!({"credsStore": "desktop"}));
    let e = f.store.lookup("ghcr.io").unwrap_err();
    assert!(matches!(e, CredentialError::HelperNotFound { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("docker-credential-desktop"), "{msg}");
    assert!(msg.contains(&f.config().display().to_string()), "{msg}");
    // A helper name cannot reach outside the helper directories.
    write_json(&f.config(), &json!({"credsStore": "../../bin/sh"}));
    let e = f.store.lookup("ghcr.io").unwrap_err();
    assert!(matches!(e, CredentialError::BadConfig { .. }), "{e:?}");
}

#[test]
fn a_helper_that_hangs_is_killed_at_the_timeout() {
    let f = Fixture::new();
    // `sleep` as a child, not exec'd: it holds the pipes too, and must die with the helper.
    let program = f.helper("hang", "sleep 30 & echo $! > \"$0.pid\"; wait; echo late");
    let helper = Helper::with_timeout(program.clone(), Duration::from_millis(300));
    let start = Instant::now();
    let e = helper.get("ghcr.io").unwrap_err();
    assert!(
        matches!(e, CredentialError::HelperTimeout { action: "get", .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("docker-credential-hang"), "{e}");
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    let pid = fs::read_to_string(program.with_extension("pid")).unwrap();
    let pid = pid.trim();
    assert!(gone(pid), "the helper's child {pid} outlived it");

    // A helper that exits but leaves a child holding its stdout is not waited for either.
    let program = f.helper("linger", "sleep 30 & echo $! > \"$0.pid\"; exit 0");
    let helper = Helper::with_timeout(program.clone(), Duration::from_millis(300));
    let e = helper.erase("ghcr.io").unwrap_err();
    assert!(
        matches!(
            e,
            CredentialError::HelperTimeout {
                action: "erase",
                ..
            }
        ),
        "{e:?}"
    );
    let pid = fs::read_to_string(program.with_extension("pid")).unwrap();
    let pid = pid.trim();
    assert!(gone(pid), "the helper's child {pid} outlived it");
}

/// Whether process `pid` has ended (within 5 s): absent, or a zombie not yet reaped.
fn gone(pid: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit(')')
                    .next()
                    .unwrap()
                    .trim_start()
                    .starts_with('Z') =>
            {
                return true
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    false
}

#[test]
fn helper_failures_show_stderr_but_never_stdout() {
    let f = Fixture::new();
    f.helper(
        "broken",
        &format!("echo 'leaked {PASSWORD}'; echo 'keychain locked' >&2; exit 3"),
    );
    write_json(&f.config(), &json!({"credsStore": "broken"}));
    let e = f.store.lookup("ghcr.io").unwrap_err();
    assert!(matches!(e, CredentialError::HelperFailed { .. }), "{e:?}");
    assert!(e.to_string().contains("keychain locked"), "{e}");
    assert!(
        e.to_string().contains("docker-credential-broken get"),
        "{e}"
    );
    assert_no_secret(&e, PASSWORD);
    // An answer that is not the protocol's JSON is not shown either.
    f.helper(
        "broken",
        &format!("echo '{{\"Username\": 1, \"Secret\": \"{PASSWORD}\"}}'"),
    );
    let e = f.store.lookup("ghcr.io").unwrap_err();
    assert!(matches!(e, CredentialError::HelperOutput { .. }), "{e:?}");
    assert_no_secret(&e, PASSWORD);
}

#[test]
fn malformed_files_are_errors_naming_the_file_without_content() {
    let f = Fixture::new();
    fs::create_dir_all(f.config().parent().unwrap()).unwrap();
    fs::write(
        f.config(),
        format!("{{\"auths\": {{\"x\": {{\"password\": \"{PASSWORD}\" oops"),
    )
    .unwrap();
    let e = f.store.lookup("x").unwrap_err();
    assert!(matches!(e, CredentialError::BadJson { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&f.config().display().to_string()),
        "{e}"
    );
    assert_no_secret(&e, PASSWORD);
    // Nor is a malformed file overwritten by a login.
    let before = fs::read(f.config()).unwrap();
    assert!(f.store.login("x", &basic("u", "p")).is_err());
    assert_eq!(fs::read(f.config()).unwrap(), before);

    // Not base64 (the secret itself, '-' is outside the alphabet), or no colon.
    for auth in [PASSWORD.to_string(), b64(PASSWORD)] {
        write_json(&f.config(), &json!({"auths": {"ghcr.io": {"auth": auth}}}));
        let e = f.store.lookup("ghcr.io").unwrap_err();
        assert!(matches!(e, CredentialError::BadConfig { .. }), "{e:?}");
        assert!(e.to_string().contains("ghcr.io"), "{e}");
        assert_no_secret(&e, PASSWORD);
        assert_no_secret(&e, "hunter2");
    }
    // An empty file is an empty config, as docker reads it.
    fs::write(f.config(), "").unwrap();
    assert_eq!(f.store.lookup("ghcr.io").unwrap(), None);
}

#[test]
fn login_keeps_every_other_key_and_entry() {
    let f = Fixture::new();
    let original = json!({
        "auths": {
            "other.io:443": {"auth": b64("other:pw"), "email": "o@example.com"},
            "https://localhost:5000": {"auth": b64("stale:old")},
            "localhost:5000": {"auth": b64("old:old"), "email": "me@example.com", "x-extra": [1, 2]},
            "localhost:5000/ns": {"auth": b64("ns:pw")},
        },
        "psFormat": "table {{.ID}}",
        "proxies": {"default": {"httpProxy": "http://proxy:3128"}},
        "plugins": {"x": {"y": "z"}},
        "currentContext": "remote",
    });
    write_json(&f.config(), &original);
    f.store
        .login("localhost:5000", &basic("new", PASSWORD))
        .unwrap();

    let after = read_json(&f.config());
    let mut expected = original.clone();
    let auths = expected["auths"].as_object_mut().unwrap();
    auths.remove("https://localhost:5000");
    auths["localhost:5000"]["auth"] = json!(b64(&format!("new:{PASSWORD}")));
    assert_eq!(after, expected);
    assert_eq!(
        f.store.lookup("localhost:5000").unwrap(),
        Some(basic("new", PASSWORD))
    );
}

#[test]
fn login_creates_the_file_0600_in_a_directory_0700() {
    let f = Fixture::new();
    f.store
        .login("docker.io", &basic("hubuser", PASSWORD))
        .unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&f.config()), 0o600);
    assert_eq!(mode(f.config().parent().unwrap()), 0o700);
    assert_eq!(
        read_json(&f.config()),
        json!({"auths": {HUB_KEY: {"auth": b64(&format!("hubuser:{PASSWORD}"))}}})
    );
    // An identity token is stored as docker stores one.
    f.store
        .login("quay.io", &Credential::IdentityToken("tok".to_string()))
        .unwrap();
    assert_eq!(
        read_json(&f.config())["auths"]["quay.io"],
        json!({"identitytoken": "tok"})
    );
    assert_eq!(
        f.store.lookup("quay.io").unwrap(),
        Some(Credential::IdentityToken("tok".to_string()))
    );
    // A user's own mode is kept, and no temp file is left behind.
    fs::set_permissions(f.config(), fs::Permissions::from_mode(0o640)).unwrap();
    f.store.login("quay.io", &basic("u", "p")).unwrap();
    assert_eq!(mode(&f.config()), 0o640);
    assert_eq!(
        fs::read_dir(f.config().parent().unwrap()).unwrap().count(),
        1
    );
}

#[test]
fn login_writes_through_a_symlinked_config() {
    let f = Fixture::new();
    let real = f.dir.path().join("dotfiles/docker.json");
    write_json(&real, &json!({"auths": {}}));
    fs::create_dir_all(f.config().parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&real, f.config()).unwrap();
    f.store.login("ghcr.io", &basic("u", "p")).unwrap();
    assert!(fs::symlink_metadata(f.config())
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        read_json(&real)["auths"]["ghcr.io"]["auth"],
        json!(b64("u:p"))
    );
    // A dangling link: the config is created where it points.
    fs::remove_file(&real).unwrap();
    f.store.login("ghcr.io", &basic("u", "p2")).unwrap();
    assert!(fs::symlink_metadata(f.config())
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        read_json(&real)["auths"]["ghcr.io"]["auth"],
        json!(b64("u:p2"))
    );
}

#[test]
fn login_through_creds_store_hands_the_helper_the_secret() {
    let f = Fixture::new();
    f.helper("pass", "");
    write_json(
        &f.config(),
        &json!({"credsStore": "pass", "auths": {"ghcr.io": {"auth": b64("stale:old"), "email": "e"}}}),
    );
    f.store.login("ghcr.io", &basic("me", PASSWORD)).unwrap();
    let sent: Value = serde_json::from_str(&f.helper_input("pass", "store").unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"ServerURL": "ghcr.io", "Username": "me", "Secret": PASSWORD})
    );
    // The file keeps an empty entry, as docker leaves it, and no secret.
    assert_eq!(
        read_json(&f.config())["auths"],
        json!({"ghcr.io": {"email": "e"}})
    );
    assert!(!fs::read_to_string(f.config()).unwrap().contains(PASSWORD));

    f.store
        .login("docker.io", &Credential::IdentityToken("tok".to_string()))
        .unwrap();
    let sent: Value = serde_json::from_str(&f.helper_input("pass", "store").unwrap()).unwrap();
    assert_eq!(
        sent,
        json!({"ServerURL": HUB_KEY, "Username": "<token>", "Secret": "tok"})
    );
}

#[test]
fn login_refuses_what_it_cannot_store() {
    let f = Fixture::new();
    for (registry, credential) in [
        ("ghcr.io", basic("", "p")),
        ("ghcr.io", basic("a:b", "p")),
        ("ghcr.io", Credential::IdentityToken(String::new())),
        ("", basic("u", "p")),
    ] {
        assert!(
            f.store.login(registry, &credential).is_err(),
            "{credential:?}"
        );
    }
    assert!(!f.config().exists());
    let none = CredentialStore::default();
    assert!(matches!(
        none.login("ghcr.io", &basic("u", "p")),
        Err(CredentialError::NoConfigFile)
    ));
}

#[test]
fn logout_removes_every_spelling_of_the_registry_entry() {
    let f = Fixture::new();
    // No file: nothing to remove, and nothing created.
    assert!(!f.store.logout("ghcr.io").unwrap());
    assert!(!f.config().exists());
    write_json(
        &f.config(),
        &json!({"auths": {
            "ghcr.io": {"auth": b64("u:p")},
            "https://ghcr.io/v2/": {"auth": b64("u:p")},
            "ghcr.io/org": {"auth": b64("ns:p")},
            "quay.io": {"auth": b64("q:p")},
        }, "psFormat": "x"}),
    );
    assert!(f.store.logout("ghcr.io").unwrap());
    assert_eq!(
        read_json(&f.config()),
        json!({"auths": {"ghcr.io/org": {"auth": b64("ns:p")}, "quay.io": {"auth": b64("q:p")}}, "psFormat": "x"})
    );
    assert_eq!(f.store.lookup("ghcr.io").unwrap(), None);
    assert!(!f.store.logout("ghcr.io").unwrap());
}

#[test]
fn logout_through_a_helper_erases_there() {
    let f = Fixture::new();
    f.helper("pass", "");
    write_json(
        &f.config(),
        &json!({"credsStore": "pass", "auths": {HUB_KEY: {}}}),
    );
    assert!(f.store.logout("docker.io").unwrap());
    assert_eq!(f.helper_input("pass", "erase").as_deref(), Some(HUB_KEY));
    assert_eq!(
        read_json(&f.config()),
        json!({"credsStore": "pass", "auths": {}})
    );
    // A helper that held nothing beside an empty entry: there was none; the entry goes.
    f.helper("pass", NOT_FOUND);
    write_json(
        &f.config(),
        &json!({"credsStore": "pass", "auths": {"docker.io": {}}}),
    );
    assert!(!f.store.logout("docker.io").unwrap());
    assert_eq!(
        read_json(&f.config()),
        json!({"credsStore": "pass", "auths": {}})
    );
    assert!(!f.store.logout("docker.io").unwrap());
}

#[test]
fn debug_output_hides_secrets() {
    let c = basic("u", PASSWORD);
    assert_eq!(
        format!("{c:?}"),
        "Basic { username: \"u\", password: <hidden> }"
    );
    let t = Credential::IdentityToken(PASSWORD.to_string());
    assert_eq!(format!("{t:?}"), "IdentityToken(<hidden>)");
    assert!(!format!("{:?}", Some(vec![c, t])).contains(PASSWORD));
}
