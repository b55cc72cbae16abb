//! A redirect's signed URL is a credential too: errors and `-v` lines leave out another
//! origin's query (where object storage puts its signature).

use super::registry_util::{free_port, strata_built, Action, Fault, FaultProxy, Registry};
use super::util::{run, s, tempdir};

#[test]
fn a_signed_redirect_url_is_never_printed() {
    let Some(reg) = Registry::plain() else { return };
    let dir = tempdir();
    let layout = strata_built(dir.path(), "src", "v1", &[&[("a", b"a\n")]]);
    let front = FaultProxy::start(&reg.host);
    let r = run(&[
        "push",
        &format!("{}:v1", s(&layout)),
        &front.name("signed/img:v1"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Object storage that is down: every attempt fails and is retried, logged with -v.
    let secret = "X-Amz-Signature=TOPSECRET0123";
    front.add(Fault::blob_get(
        u32::MAX,
        Action::Redirect(format!("127.0.0.1:{}?{secret}", free_port())),
    ));
    let r = run(&[
        "pull",
        "-vv",
        &front.name("signed/img:v1"),
        s(&dir.path().join("dst")),
    ]);
    assert_eq!(r.code, 1, "the pull should fail: {}", r.stderr);
    assert!(
        r.stderr.contains("retrying"),
        "no retry was logged: {}",
        r.stderr
    );
    for out in [&r.stdout, &r.stderr] {
        assert!(
            !out.contains("TOPSECRET"),
            "the signature was printed:\n{out}"
        );
    }
    assert!(
        r.stderr.contains("?..."),
        "the redirect target is not shown at all: {}",
        r.stderr
    );
}
