//! The runtime-spec `config.json` of a bundle, made from an image config by the rules of the
//! image-spec's `conversion.md` and, where those leave a choice, the way `umoci unpack` (0.4.7)
//! does it: the same default process, mounts, namespaces and masked paths, `Config.Volumes`
//! as tmpfs mounts, the user resolved in the rootfs's `/etc/passwd` and `/etc/group`, and
//! `ToRootless` for a rootless unpack.
//!
//! Deliberate differences from umoci 0.4.7 (each is also noted where it is made):
//! - `Config.Labels` override the implicit `org.opencontainers.image.*` annotations, as
//!   conversion.md requires (umoci 0.4.7 lets the image fields win; fixed in umoci 0.6.0).
//! - `HOME` from `/etc/passwd` is only added when `Config.Env` does not set it (umoci 0.4.7
//!   overwrites it; fixed upstream in #652).
//! - Annotations are only written for fields the image has: umoci writes `author`,
//!   `stopSignal` and `exposedPorts` as empty strings and a missing `created` as
//!   `0001-01-01T00:00:00Z`. `created` is copied verbatim (umoci re-formats it). `variant`,
//!   `os.version` and `os.features` (comma-joined) are added, which umoci 0.4.7 omits.
//! - `ociVersion` is `1.0.2` (umoci 0.4.7 writes `1.0.0`; nothing here is newer than 1.0.0),
//!   and the hostname is `strata` (umoci: `umoci-default`).
//! - Volume mounts are sorted by destination (umoci's order follows Go map iteration).
//! - Rootless mode drops mounts at `/sys` and below it; umoci drops every destination that
//!   merely starts with the string `/sys`, so a volume `/sysroot` would vanish too.
//!
//! The differences in resolving the user are listed in `bundle::user`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::bundle::idmap::{IdMap, IdMapping};
use crate::bundle::user::{resolve_in_dbs, resolve_in_rootfs, ResolvedUser};
use crate::error::Error;
use crate::spec::{ContainerConfig, ImageConfig};

/// Options for the runtime config.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Make the config usable by an unprivileged runtime (umoci's `ToRootless`): a user
    /// namespace, no network namespace, `/sys` bind-mounted, no cgroup resources, no
    /// supplementary groups. Without explicit maps, container root maps to the current
    /// effective uid and gid.
    pub rootless: bool,
    /// User id mappings for a user namespace (none: no user namespace unless rootless).
    pub uid_map: IdMap,
    /// Group id mappings for a user namespace.
    pub gid_map: IdMap,
}

impl RuntimeOptions {
    /// Refuses id maps whose ranges overlap (see [`IdMap::check`]).
    fn check(&self) -> crate::Result<()> {
        self.uid_map.check()?;
        self.gid_map.check()
    }
}

/// The runtime-spec version written as `ociVersion`.
const OCI_VERSION: &str = "1.0.2";
/// The container's hostname.
const HOSTNAME: &str = "strata";
/// `PATH` when the image does not set one (umoci's and runc's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The default capability set (umoci's, which is runc's `spec` default).
const CAPABILITIES: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The runtime config for an image without unpacking it (`umoci raw runtime-config`):
/// users are resolved against `rootfs` when given, else against the image's own
/// `/etc/passwd` and `/etc/group`, read from its layers.
pub fn runtime_config_of_image(
    layout: &crate::Layout,
    manifest: &crate::spec::Manifest,
    rootfs: Option<&Path>,
    options: &RuntimeOptions,
) -> crate::Result<Value> {
    options.check()?;
    let (_, image) = layout.read_config(&manifest.config)?;
    if let Some(rootfs) = rootfs {
        return runtime_config(&image, rootfs, options);
    }
    linux_only(&image)?;
    // Read into memory: the library makes no scratch files (nor reads TMPDIR) for this.
    let tree = crate::image::tree::Tree::of(layout, manifest)?;
    let mut dbs = [None, None];
    for (name, db) in ["passwd", "group"].into_iter().zip(&mut dbs) {
        let in_image = Path::new("/etc").join(name);
        let is_file = tree
            .resolve(&in_image)?
            .and_then(|p| tree.nodes.get(&p).map(|n| n.kind))
            == Some(crate::image::tree::Kind::File);
        if is_file {
            let mut bytes = Vec::new();
            tree.cat(layout, &in_image, &mut bytes)?;
            *db = Some(bytes);
        }
    }
    let [passwd, group] = &dbs;
    let user = resolve_in_dbs(user_spec(&image), passwd.as_deref(), group.as_deref())?;
    config_for_user(&image, user, options)
}

/// Builds the runtime-spec config.json for an image config, resolving the user against the
/// rootfs's /etc/passwd and /etc/group.
///
/// `rootfs` is the unpacked root filesystem; `root.path` is always `rootfs`, the bundle
/// layout strata writes. Files are looked up inside it as if it were `/`, so symlinks in the
/// image cannot make strata read host files. Fails with [`Error::Invalid`] for a non-Linux
/// image, a malformed `Config.Env` entry, or a user or group that does not resolve.
pub fn runtime_config(
    image: &ImageConfig,
    rootfs: impl AsRef<Path>,
    options: &RuntimeOptions,
) -> crate::Result<Value> {
    let rootfs = rootfs.as_ref();
    options.check()?;
    linux_only(image)?;
    let user = resolve_in_rootfs(rootfs, user_spec(image))?;
    config_for_user(image, user, options)
}

fn linux_only(image: &ImageConfig) -> crate::Result<()> {
    if image.os != "linux" {
        return Err(Error::Invalid {
            what: "image config".into(),
            reason: format!(
                "os is {:?}: only linux images can be converted to a runtime config",
                image.os
            ),
        });
    }
    Ok(())
}

/// The config's `User`, empty when it has none.
fn user_spec(image: &ImageConfig) -> &str {
    image
        .config
        .as_ref()
        .and_then(|c| c.user.as_deref())
        .unwrap_or("")
}

/// The runtime config for `image` running as `user`.
fn config_for_user(
    image: &ImageConfig,
    user: ResolvedUser,
    options: &RuntimeOptions,
) -> crate::Result<Value> {
    let empty = ContainerConfig::default();
    let config = image.config.as_ref().unwrap_or(&empty);

    // process.env: umoci's defaults, then Config.Env (a name set twice keeps its first
    // position and its last value), then HOME from passwd when the image does not set it.
    let mut env = vec![format!("PATH={DEFAULT_PATH}"), "TERM=xterm".to_owned()];
    for entry in config.env.iter().flatten() {
        match entry.split_once('=') {
            Some((name, _)) if !name.is_empty() => set_env(&mut env, name, entry),
            _ => {
                return Err(Error::Invalid {
                    what: "image config Env".into(),
                    reason: format!("{entry:?} is not NAME=value"),
                })
            }
        }
    }
    if let Some(home) = &user.home {
        if !env.iter().any(|e| env_name(e) == "HOME") {
            env.push(format!("HOME={home}"));
        }
    }

    // process.args: Entrypoint then Cmd; umoci's default shell when both are empty.
    let mut args: Vec<String> = config
        .entrypoint
        .iter()
        .flatten()
        .chain(config.cmd.iter().flatten())
        .cloned()
        .collect();
    if args.is_empty() {
        args.push("sh".into());
    }

    let cwd = match config.working_dir.as_deref() {
        Some(dir) if !dir.is_empty() => dir,
        _ => "/",
    };

    let mut process_user = json!({ "uid": user.uid, "gid": user.gid });
    // ToRootless drops supplementary groups: setgroups is denied in an unprivileged userns.
    if !options.rootless && !user.additional_gids.is_empty() {
        process_user["additionalGids"] = json!(user.additional_gids);
    }

    let process = json!({
        "terminal": true,
        "user": process_user,
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": CAPABILITIES,
            "effective": CAPABILITIES,
            "inheritable": CAPABILITIES,
            "permitted": CAPABILITIES,
            "ambient": CAPABILITIES,
        },
        "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
        "noNewPrivileges": true,
    });

    let mounts = mounts(config, options.rootless);
    let annotations = annotations(image, config);
    let linux = linux(options);

    Ok(json!({
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": { "path": "rootfs" },
        "hostname": HOSTNAME,
        "mounts": mounts,
        "annotations": annotations,
        "linux": linux,
    }))
}

/// The name part of a `NAME=value` entry.
fn env_name(entry: &str) -> &str {
    entry.split_once('=').map_or(entry, |(name, _)| name)
}

/// Replaces the entry for `name` in place, or appends `entry`.
fn set_env(env: &mut Vec<String>, name: &str, entry: &str) {
    match env.iter_mut().find(|e| env_name(e) == name) {
        Some(slot) => *slot = entry.to_owned(),
        None => env.push(entry.to_owned()),
    }
}

/// One mount, in the runtime-spec shape.
fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Value {
    let mut m = json!({ "destination": destination, "type": kind, "source": source });
    if !options.is_empty() {
        m["options"] = json!(options);
    }
    m
}

/// umoci's default mounts, the volumes as tmpfs, and the rootless changes.
fn mounts(config: &ContainerConfig, rootless: bool) -> Vec<Value> {
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &[]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        ),
    ];
    // Volumes are masked with an empty tmpfs, as umoci does (conversion.md: their content
    // must not end up in the container's rootfs). BTreeMap order: sorted by destination.
    for volume in config.volumes.iter().flat_map(|v| v.keys()) {
        mounts.push(mount(
            volume,
            "tmpfs",
            "none",
            &["rw", "nosuid", "nodev", "noexec", "relatime"],
        ));
    }
    if rootless {
        // umoci's ToRootless: no sysfs or cgroup mounts (an unprivileged user namespace
        // without its own network namespace cannot mount sysfs), no uid=/gid= options (the
        // ids may be unmapped), then /sys and the host's resolv.conf as read-only binds.
        // Deliberately a path prefix test, where umoci tests the string prefix "/sys".
        mounts.retain(|m| {
            let dest = m["destination"].as_str().unwrap_or_default();
            !(dest == "/sys" || dest.starts_with("/sys/"))
        });
        for m in &mut mounts {
            if let Some(Value::Array(opts)) = m.get_mut("options") {
                opts.retain(|o| {
                    let o = o.as_str().unwrap_or_default();
                    !o.starts_with("gid=") && !o.starts_with("uid=")
                });
            }
        }
        mounts.push(mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        ));
        // umoci 0.4.7 writes just "rbind","ro"; later umoci adds the host mount's locked
        // flags (nosuid, nodev, ...) because older runc cannot remount without them. Kept
        // as 0.4.7 so the output does not depend on the host.
        mounts.push(mount(
            "/etc/resolv.conf",
            "bind",
            "/etc/resolv.conf",
            &["rbind", "ro"],
        ));
    }
    mounts
}

/// The implicit annotations from the image config, overridden by `Config.Labels`.
fn annotations(image: &ImageConfig, config: &ContainerConfig) -> BTreeMap<String, String> {
    const PREFIX: &str = "org.opencontainers.image.";
    let mut out = BTreeMap::new();
    let mut set = |key: &str, value: &str| {
        out.insert(format!("{PREFIX}{key}"), value.to_owned());
    };
    set("os", &image.os);
    set("architecture", &image.architecture);
    if let Some(v) = &image.variant {
        set("variant", v);
    }
    if let Some(Value::String(v)) = image.extra.get("os.version") {
        set("os.version", v);
    }
    if let Some(Value::Array(features)) = image.extra.get("os.features") {
        let features: Vec<&str> = features.iter().filter_map(Value::as_str).collect();
        set("os.features", &features.join(","));
    }
    if let Some(v) = &image.author {
        set("author", v);
    }
    if let Some(v) = &image.created {
        set("created", v);
    }
    if let Some(v) = &config.stop_signal {
        set("stopSignal", v);
    }
    if let Some(ports) = config.exposed_ports.as_ref().filter(|p| !p.is_empty()) {
        let ports: Vec<&str> = ports.keys().map(String::as_str).collect();
        set("exposedPorts", &ports.join(","));
    }
    // conversion.md: Config.Labels take precedence over the implicit annotations.
    for (key, value) in config.labels.iter().flatten() {
        out.insert(key.clone(), value.clone());
    }
    out
}

/// The `linux` object: namespaces, id mappings, masked paths and device cgroup.
fn linux(options: &RuntimeOptions) -> Value {
    let mut uid_map: Vec<IdMapping> = options.uid_map.0.clone();
    let mut gid_map: Vec<IdMapping> = options.gid_map.0.clone();
    if options.rootless {
        // Without maps, an unprivileged user can map only itself: container root is us.
        if uid_map.is_empty() {
            uid_map.push(IdMapping {
                container_id: 0,
                host_id: rustix::process::geteuid().as_raw(),
                size: 1,
            });
        }
        if gid_map.is_empty() {
            gid_map.push(IdMapping {
                container_id: 0,
                host_id: rustix::process::getegid().as_raw(),
                size: 1,
            });
        }
    }
    let mut namespaces = vec!["pid", "network", "ipc", "uts", "mount"];
    if options.rootless {
        // Creating a network namespace unprivileged leaves the container without network;
        // umoci shares the host's (and bind-mounts its resolv.conf).
        namespaces.retain(|ns| *ns != "network");
    }
    if options.rootless || !uid_map.is_empty() || !gid_map.is_empty() {
        namespaces.push("user");
    }
    let namespaces: Vec<Value> = namespaces.iter().map(|t| json!({ "type": t })).collect();

    let mut linux = json!({
        "namespaces": namespaces,
        "maskedPaths": [
            "/proc/kcore",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi",
        ],
        "readonlyPaths": [
            "/proc/asound",
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger",
        ],
    });
    // As umoci: each mapping only when it has ranges (a uid map alone gives no gidMappings).
    if !uid_map.is_empty() {
        linux["uidMappings"] = json!(uid_map);
    }
    if !gid_map.is_empty() {
        linux["gidMappings"] = json!(gid_map);
    }
    if !options.rootless {
        // Rootless runtimes cannot set cgroup limits without delegation: ToRootless drops them.
        linux["resources"] = json!({ "devices": [{ "allow": false, "access": "rwm" }] });
    }
    linux
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;
    use std::process::Command;

    use serde_json::Map;

    use super::*;
    use crate::bundle::user::tests::{GROUP, PASSWD};
    use crate::spec::RootFs;

    fn image(config: ContainerConfig) -> ImageConfig {
        ImageConfig {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
            created: None,
            author: None,
            config: Some(config),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: Vec::new(),
                extra: Map::new(),
            },
            history: None,
            extra: Map::new(),
        }
    }

    /// A rootfs with the test passwd and group files.
    fn rootfs() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(rootfs.join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(rootfs.join("etc/group"), GROUP).unwrap();
        (dir, rootfs)
    }

    fn run(config: ContainerConfig, rootfs: &Path) -> Value {
        runtime_config(&image(config), rootfs, &RuntimeOptions::default()).unwrap()
    }

    fn strings(v: &Value) -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    }

    fn user_of(spec: &str, rootfs: &Path) -> Value {
        let config = ContainerConfig {
            user: Some(spec.into()),
            ..Default::default()
        };
        run(config, rootfs)["process"]["user"].clone()
    }

    fn namespaces(v: &Value) -> Vec<String> {
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_owned())
            .collect()
    }

    fn destinations(v: &Value) -> Vec<String> {
        v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn defaults_for_an_empty_config() {
        let dir = tempfile::tempdir().unwrap();
        let v = runtime_config(
            &image(ContainerConfig::default()),
            dir.path(),
            &RuntimeOptions::default(),
        )
        .unwrap();
        assert_eq!(v["ociVersion"], OCI_VERSION);
        assert_eq!(v["root"], json!({ "path": "rootfs" }));
        assert_eq!(v["process"]["terminal"], true);
        assert_eq!(strings(&v["process"]["args"]), ["sh"]);
        assert_eq!(v["process"]["cwd"], "/");
        // No passwd: root with no HOME and no groups.
        assert_eq!(v["process"]["user"], json!({ "uid": 0, "gid": 0 }));
        assert_eq!(
            strings(&v["process"]["env"]),
            [format!("PATH={DEFAULT_PATH}"), "TERM=xterm".into()]
        );
        assert_eq!(
            destinations(&v),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
        assert_eq!(
            v["mounts"][5]["options"],
            json!(["nosuid", "noexec", "nodev", "ro"])
        );
        assert_eq!(namespaces(&v), ["pid", "network", "ipc", "uts", "mount"]);
        assert!(v["linux"].get("uidMappings").is_none());
        assert!(v["linux"]["resources"]["devices"].is_array());
        assert!(strings(&v["linux"]["maskedPaths"]).contains(&"/proc/kcore".to_owned()));
        assert!(strings(&v["linux"]["readonlyPaths"]).contains(&"/proc/sys".to_owned()));
        assert_eq!(
            v["annotations"],
            json!({
                "org.opencontainers.image.os": "linux",
                "org.opencontainers.image.architecture": "amd64",
            })
        );
        // No config at all behaves like an empty one.
        let mut bare = image(ContainerConfig::default());
        bare.config = None;
        assert_eq!(
            runtime_config(&bare, dir.path(), &RuntimeOptions::default()).unwrap(),
            v
        );
    }

    #[test]
    fn entrypoint_and_cmd() {
        let dir = tempfile::tempdir().unwrap();
        let args = |ep: Option<&[&str]>, cmd: Option<&[&str]>| {
            let config = ContainerConfig {
                entrypoint: ep.map(|a| a.iter().map(|s| s.to_string()).collect()),
                cmd: cmd.map(|a| a.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            };
            strings(&run(config, dir.path())["process"]["args"])
        };
        assert_eq!(
            args(Some(&["/bin/ep", "-x"]), Some(&["a", "b"])),
            ["/bin/ep", "-x", "a", "b"]
        );
        assert_eq!(args(Some(&["/bin/ep"]), None), ["/bin/ep"]);
        assert_eq!(args(None, Some(&["/bin/cmd", "1"])), ["/bin/cmd", "1"]);
        assert_eq!(args(Some(&[]), Some(&["c"])), ["c"]);
        assert_eq!(args(None, None), ["sh"]);
        assert_eq!(args(Some(&[]), Some(&[])), ["sh"]);
    }

    #[test]
    fn users_by_name_and_id() {
        let (_dir, rootfs) = rootfs();
        // Empty user: root's entry, its home and its groups.
        assert_eq!(
            run(ContainerConfig::default(), &rootfs)["process"]["user"],
            json!({ "uid": 0, "gid": 0, "additionalGids": [10] })
        );
        assert_eq!(
            user_of("alice", &rootfs),
            json!({ "uid": 1000, "gid": 1000, "additionalGids": [10, 50] })
        );
        assert_eq!(
            user_of("bob", &rootfs),
            json!({ "uid": 1001, "gid": 1001, "additionalGids": [50] })
        );
        // A numeric uid with an entry takes the entry's gid (and groups, as umoci).
        assert_eq!(
            user_of("1000", &rootfs),
            json!({ "uid": 1000, "gid": 1000, "additionalGids": [10, 50] })
        );
        // A numeric uid without one is verbatim, gid 0.
        assert_eq!(user_of("4242", &rootfs), json!({ "uid": 4242, "gid": 0 }));
        // Explicit groups: verbatim or resolved, and no supplementary groups.
        assert_eq!(user_of("5:7", &rootfs), json!({ "uid": 5, "gid": 7 }));
        assert_eq!(user_of("1000:7", &rootfs), json!({ "uid": 1000, "gid": 7 }));
        assert_eq!(
            user_of("alice:wheel", &rootfs),
            json!({ "uid": 1000, "gid": 10 })
        );
        assert_eq!(
            user_of("alice:50", &rootfs),
            json!({ "uid": 1000, "gid": 50 })
        );
        assert_eq!(
            user_of("4242:staff", &rootfs),
            json!({ "uid": 4242, "gid": 50 })
        );
        assert_eq!(user_of(":wheel", &rootfs), json!({ "uid": 0, "gid": 10 }));
        assert_eq!(
            user_of("alice:", &rootfs),
            json!({ "uid": 1000, "gid": 1000, "additionalGids": [10, 50] })
        );
        // Numeric ids work without any passwd or group file.
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(
            user_of("33:44", empty.path()),
            json!({ "uid": 33, "gid": 44 })
        );
    }

    #[test]
    fn unresolvable_users_are_errors_naming_them() {
        let (_dir, rootfs) = rootfs();
        let empty = tempfile::tempdir().unwrap();
        let cases = [
            ("mallory", rootfs.as_path(), "mallory"),
            ("alice:nogroup", rootfs.as_path(), "nogroup"),
            ("alice", empty.path(), "alice"),
            ("0:wheel", empty.path(), "wheel"),
            ("bad", rootfs.as_path(), "bad"),
            ("99999999999", rootfs.as_path(), "99999999999"),
            ("1:4294967295", rootfs.as_path(), "4294967295"),
            ("a:b:c", rootfs.as_path(), "a:b:c"),
        ];
        for (spec, root, named) in cases {
            let config = ContainerConfig {
                user: Some(spec.into()),
                ..Default::default()
            };
            let err =
                runtime_config(&image(config), root, &RuntimeOptions::default()).expect_err(spec);
            assert!(matches!(err, Error::Invalid { .. }), "{spec}: {err:?}");
            assert!(err.to_string().contains(named), "{spec}: {err}");
        }
    }

    #[test]
    fn home_is_added_only_when_absent_and_env_keeps_its_order() {
        let (_dir, rootfs) = rootfs();
        let env = |user: &str, env: &[&str]| {
            let config = ContainerConfig {
                user: Some(user.into()),
                env: Some(env.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            };
            strings(&run(config, &rootfs)["process"]["env"])
        };
        assert_eq!(
            env("alice", &["Z=1", "A=2", "M=3"]),
            [
                format!("PATH={DEFAULT_PATH}"),
                "TERM=xterm".into(),
                "Z=1".into(),
                "A=2".into(),
                "M=3".into(),
                "HOME=/home/alice".into()
            ]
        );
        // The image's HOME wins; PATH and TERM are replaced in place; a repeated name keeps
        // its first position and its last value.
        assert_eq!(
            env(
                "alice",
                &["HOME=/x", "B=1", "PATH=/p", "B=2", "TERM=dumb", "EMPTY="]
            ),
            ["PATH=/p", "TERM=dumb", "HOME=/x", "B=2", "EMPTY="]
        );
        // No home in the entry, or no entry: no HOME.
        assert!(!env("nohome", &[]).iter().any(|e| e.starts_with("HOME=")));
        assert!(!env("4242", &[]).iter().any(|e| e.starts_with("HOME=")));
        assert_eq!(env("1001", &[]).last().unwrap(), "HOME=/home/bob");
        for bad in ["NOEQUALS", "=value"] {
            let config = ContainerConfig {
                env: Some(vec![bad.into()]),
                ..Default::default()
            };
            let err =
                runtime_config(&image(config), &rootfs, &RuntimeOptions::default()).unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn cwd_volumes_and_annotations() {
        let dir = tempfile::tempdir().unwrap();
        let mut img = image(ContainerConfig {
            working_dir: Some("/srv/app".into()),
            volumes: Some(
                ["/var/lib/data", "/cache"]
                    .into_iter()
                    .map(|v| (v.to_owned(), json!({})))
                    .collect(),
            ),
            exposed_ports: Some(
                ["8080/tcp", "53/udp"]
                    .into_iter()
                    .map(|v| (v.to_owned(), json!({})))
                    .collect(),
            ),
            stop_signal: Some("SIGINT".into()),
            labels: Some(
                [
                    ("org.opencontainers.image.author", "label-author"),
                    ("org.opencontainers.image.stopSignal", "SIGKILL"),
                    ("com.example.x", "y"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ),
            ..Default::default()
        });
        img.variant = Some("v8".into());
        img.author = Some("config-author".into());
        img.created = Some("2024-01-02T03:04:05.123Z".into());
        img.extra.insert("os.version".into(), json!("10.0.1"));
        img.extra.insert("os.features".into(), json!(["a", "b"]));
        let v = runtime_config(&img, dir.path(), &RuntimeOptions::default()).unwrap();
        assert_eq!(v["process"]["cwd"], "/srv/app");
        let tmpfs: Vec<&Value> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["source"] == "none")
            .collect();
        assert_eq!(
            tmpfs,
            [
                &json!({ "destination": "/cache", "type": "tmpfs", "source": "none",
                         "options": ["rw", "nosuid", "nodev", "noexec", "relatime"] }),
                &json!({ "destination": "/var/lib/data", "type": "tmpfs", "source": "none",
                         "options": ["rw", "nosuid", "nodev", "noexec", "relatime"] }),
            ]
        );
        assert_eq!(
            v["annotations"],
            json!({
                "org.opencontainers.image.os": "linux",
                "org.opencontainers.image.architecture": "amd64",
                "org.opencontainers.image.variant": "v8",
                "org.opencontainers.image.os.version": "10.0.1",
                "org.opencontainers.image.os.features": "a,b",
                "org.opencontainers.image.author": "label-author",
                "org.opencontainers.image.created": "2024-01-02T03:04:05.123Z",
                "org.opencontainers.image.stopSignal": "SIGKILL",
                "org.opencontainers.image.exposedPorts": "53/udp,8080/tcp",
                "com.example.x": "y",
            })
        );
    }

    #[test]
    fn non_linux_images_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut img = image(ContainerConfig::default());
        img.os = "windows".into();
        let err = runtime_config(&img, dir.path(), &RuntimeOptions::default()).unwrap_err();
        assert!(err.to_string().contains("windows"), "{err}");
    }

    #[test]
    fn id_mapped_configs_have_a_user_namespace() {
        let (_dir, rootfs) = rootfs();
        let options = RuntimeOptions {
            rootless: false,
            uid_map: IdMap(vec!["0:100000:65536".parse().unwrap()]),
            gid_map: IdMap(vec![
                "0:200000:1000".parse().unwrap(),
                "1000:300000:10".parse().unwrap(),
            ]),
        };
        let config = ContainerConfig {
            user: Some("alice".into()),
            ..Default::default()
        };
        let v = runtime_config(&image(config), &rootfs, &options).unwrap();
        assert_eq!(
            namespaces(&v),
            ["pid", "network", "ipc", "uts", "mount", "user"]
        );
        assert_eq!(
            v["linux"]["uidMappings"],
            json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }])
        );
        assert_eq!(
            v["linux"]["gidMappings"],
            json!([
                { "containerID": 0, "hostID": 200000, "size": 1000 },
                { "containerID": 1000, "hostID": 300000, "size": 10 },
            ])
        );
        // Ids stay container ids; mounts and resources are the privileged ones.
        assert_eq!(
            v["process"]["user"],
            json!({ "uid": 1000, "gid": 1000, "additionalGids": [10, 50] })
        );
        assert!(destinations(&v).contains(&"/sys/fs/cgroup".to_owned()));
        assert!(v["linux"].get("resources").is_some());

        // A uid map alone gives no gidMappings (as umoci).
        let uid_only = RuntimeOptions {
            gid_map: IdMap::default(),
            ..options
        };
        let v = runtime_config(&image(ContainerConfig::default()), &rootfs, &uid_only).unwrap();
        assert!(namespaces(&v).contains(&"user".to_owned()));
        assert!(v["linux"].get("gidMappings").is_none());
    }

    #[test]
    fn rootless_configs() {
        let (_dir, rootfs) = rootfs();
        let config = ContainerConfig {
            user: Some("alice".into()),
            volumes: Some(
                ["/data", "/sys/kernel/x", "/sysroot"]
                    .into_iter()
                    .map(|v| (v.to_owned(), json!({})))
                    .collect(),
            ),
            ..Default::default()
        };
        let options = RuntimeOptions {
            rootless: true,
            ..Default::default()
        };
        let v = runtime_config(&image(config.clone()), &rootfs, &options).unwrap();
        assert_eq!(namespaces(&v), ["pid", "ipc", "uts", "mount", "user"]);
        let euid = rustix::process::geteuid().as_raw();
        let egid = rustix::process::getegid().as_raw();
        assert_eq!(
            v["linux"]["uidMappings"],
            json!([{ "containerID": 0, "hostID": euid, "size": 1 }])
        );
        assert_eq!(
            v["linux"]["gidMappings"],
            json!([{ "containerID": 0, "hostID": egid, "size": 1 }])
        );
        assert!(v["linux"].get("resources").is_none());
        // No supplementary groups in an unprivileged user namespace.
        assert_eq!(v["process"]["user"], json!({ "uid": 1000, "gid": 1000 }));
        assert_eq!(
            destinations(&v),
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/data",
                "/sysroot",
                "/sys",
                "/etc/resolv.conf"
            ]
        );
        let mounts = v["mounts"].as_array().unwrap();
        assert_eq!(
            mounts[2]["options"],
            json!([
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620"
            ])
        );
        assert_eq!(
            mounts[7],
            json!({ "destination": "/sys", "type": "bind", "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"] })
        );

        // Explicit maps are kept as given.
        let mapped = RuntimeOptions {
            rootless: true,
            uid_map: IdMap(vec!["0:1000:1".parse().unwrap()]),
            gid_map: IdMap(vec!["0:1001:1".parse().unwrap()]),
        };
        let v = runtime_config(&image(config), &rootfs, &mapped).unwrap();
        assert_eq!(
            v["linux"]["uidMappings"],
            json!([{ "containerID": 0, "hostID": 1000, "size": 1 }])
        );
        assert_eq!(
            v["linux"]["gidMappings"],
            json!([{ "containerID": 0, "hostID": 1001, "size": 1 }])
        );
    }

    #[test]
    fn passwd_symlinks_cannot_escape_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        // A "host" passwd outside the rootfs with a user the rootfs does not have.
        let host = dir.path().join("host");
        std::fs::create_dir_all(host.join("etc")).unwrap();
        std::fs::write(
            host.join("etc/passwd"),
            "hostonly:x:4321:4321::/host:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(host.join("etc/group"), "hostgroup:x:4321:\n").unwrap();
        let host_passwd = host.join("etc/passwd");

        let user = |rootfs: &Path, spec: &str| {
            let config = ContainerConfig {
                user: Some(spec.into()),
                ..Default::default()
            };
            runtime_config(&image(config), rootfs, &RuntimeOptions::default())
        };

        // /etc/passwd -> absolute host path: resolved inside the rootfs, where it is absent.
        let r1 = dir.path().join("r1");
        std::fs::create_dir_all(r1.join("etc")).unwrap();
        symlink(&host_passwd, r1.join("etc/passwd")).unwrap();
        symlink(host.join("etc/group"), r1.join("etc/group")).unwrap();
        let err = user(&r1, "hostonly").unwrap_err();
        assert!(err.to_string().contains("hostonly"), "{err}");
        assert!(user(&r1, "0:hostgroup").is_err());
        // ... and when the rootfs has a file at that path, that copy is read.
        let inside = r1.join(host_passwd.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::write(&inside, "inside:x:77:78::/in:/bin/sh\n").unwrap();
        assert_eq!(
            user(&r1, "inside").unwrap()["process"]["user"],
            json!({ "uid": 77, "gid": 78 })
        );
        assert!(user(&r1, "hostonly").is_err());

        // Relative ../ escapes stop at the rootfs's root.
        let r2 = dir.path().join("r2");
        std::fs::create_dir_all(r2.join("etc")).unwrap();
        let dotdots = "../".repeat(host.components().count() + 5);
        let relative = format!("{dotdots}{}", host_passwd.to_str().unwrap());
        symlink(&relative, r2.join("etc/passwd")).unwrap();
        assert!(user(&r2, "hostonly").is_err());
        let inside = r2.join(host_passwd.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::write(&inside, "rel:x:5:6::/r:/bin/sh\n").unwrap();
        assert_eq!(
            user(&r2, "rel").unwrap()["process"]["user"],
            json!({ "uid": 5, "gid": 6 })
        );

        // /etc -> / (and -> the host's etc): /etc/passwd is the rootfs's /passwd.
        let r3 = dir.path().join("r3");
        std::fs::create_dir_all(&r3).unwrap();
        symlink("/", r3.join("etc")).unwrap();
        std::fs::write(r3.join("passwd"), "top:x:9:9::/top:/bin/sh\n").unwrap();
        let v = user(&r3, "top").unwrap();
        assert_eq!(v["process"]["user"], json!({ "uid": 9, "gid": 9 }));
        assert!(strings(&v["process"]["env"]).contains(&"HOME=/top".to_owned()));
        let r4 = dir.path().join("r4");
        std::fs::create_dir_all(&r4).unwrap();
        symlink(host.join("etc"), r4.join("etc")).unwrap();
        assert!(user(&r4, "hostonly").is_err());
        assert_eq!(
            user(&r4, "").unwrap()["process"]["user"],
            json!({ "uid": 0, "gid": 0 })
        );

        // Loops fail cleanly, naming the file; a non-file holds no users (as absent).
        let r5 = dir.path().join("r5");
        std::fs::create_dir_all(r5.join("etc")).unwrap();
        symlink("passwd", r5.join("etc/passwd")).unwrap();
        let err = user(&r5, "").unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("etc/passwd"), "{err}");
        let r6 = dir.path().join("r6");
        std::fs::create_dir_all(r6.join("etc/passwd")).unwrap();
        assert_eq!(
            user(&r6, "").unwrap()["process"]["user"],
            json!({ "uid": 0, "gid": 0 })
        );
        assert!(user(&r6, "alice").is_err());
        // A file where a directory should be: no passwd.
        let r7 = dir.path().join("r7");
        std::fs::create_dir_all(&r7).unwrap();
        std::fs::write(r7.join("etc"), "not a dir").unwrap();
        assert_eq!(
            user(&r7, "").unwrap()["process"]["user"],
            json!({ "uid": 0, "gid": 0 })
        );
    }

    // ---- comparison with umoci ----------------------------------------------------------

    /// True when `umoci` is on PATH; a missing umoci panics under STRATA_REQUIRE_PEERS=1.
    fn have_umoci() -> bool {
        let found = Command::new("umoci").arg("--version").output().is_ok();
        if !found {
            if std::env::var("STRATA_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!("umoci is required (STRATA_REQUIRE_PEERS=1) but not on PATH");
            }
            eprintln!(
                "SKIPPED: umoci not on PATH (set STRATA_REQUIRE_PEERS=1 to make this a failure)"
            );
        }
        found
    }

    fn umoci(args: &[&str]) {
        let out = Command::new("umoci").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The config blob of `tag`: index.json -> manifest -> config.
    fn image_config(layout: &Path, tag: &str) -> ImageConfig {
        let blob = |digest: &str| {
            let (alg, hex) = digest.split_once(':').unwrap();
            std::fs::read(layout.join("blobs").join(alg).join(hex)).unwrap()
        };
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap();
        let manifest: Value =
            serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap()
    }

    fn tmpfs_destinations(v: &Value) -> BTreeSet<String> {
        v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["type"] == "tmpfs" && m["source"] == "none")
            .map(|m| m["destination"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Builds images with `umoci config`, unpacks them with umoci, and checks that strata's
    /// config for umoci's rootfs matches umoci's config.json where both follow the same
    /// rules. The image sets author, stop signal and exposed ports and no label collides
    /// with an implicit annotation, and HOME is not in Env: umoci 0.4.7 differs there on
    /// purpose (see the module docs).
    #[test]
    fn matches_umoci() {
        if !have_umoci() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("layout");
        let l = layout.to_str().unwrap();
        // umoci needs --rootless to unpack as non-root; as root both modes are compared.
        let is_root = rustix::process::geteuid().as_raw() == 0;
        let unpack = |tag: &str, bundle: &Path, rootless: bool| {
            let image = format!("{l}:{tag}");
            let mut args = vec!["unpack"];
            if rootless {
                args.push("--rootless");
            }
            args.extend(["--image", &image, bundle.to_str().unwrap()]);
            umoci(&args);
        };

        umoci(&["init", "--layout", l]);
        umoci(&["new", "--image", &format!("{l}:base")]);
        let b0 = dir.path().join("b0");
        unpack("base", &b0, !is_root);
        std::fs::create_dir_all(b0.join("rootfs/etc")).unwrap();
        // Only the well-formed lines: Go's parser reads a non-numeric id as 0 where strata
        // skips the line (umoci would list "junk" as supplementary group 0).
        let well_formed = |data: &str, malformed: &[&str]| -> String {
            data.lines()
                .filter(|line| !malformed.iter().any(|m| line.starts_with(m)))
                .map(|line| format!("{line}\n"))
                .collect()
        };
        std::fs::write(
            b0.join("rootfs/etc/passwd"),
            well_formed(PASSWD, &["#", "broken", "bad"]),
        )
        .unwrap();
        std::fs::write(b0.join("rootfs/etc/group"), well_formed(GROUP, &["junk"])).unwrap();
        umoci(&[
            "repack",
            "--image",
            &format!("{l}:pw"),
            b0.to_str().unwrap(),
        ]);

        let modes: &[bool] = if is_root { &[false, true] } else { &[true] };
        for (i, user) in ["alice", "1000", "1001:staff", "5:7", "4242", "", ":wheel"]
            .into_iter()
            .enumerate()
        {
            let tag = format!("t{i}");
            let mut args = vec![
                "config".to_owned(),
                "--image".into(),
                format!("{l}:pw"),
                "--tag".into(),
                tag.clone(),
                "--author".into(),
                "Someone <a@example.com>".into(),
            ];
            let mut flag = |name: &str, value: &str| {
                args.push(format!("--{name}"));
                args.push(value.to_owned());
            };
            if !user.is_empty() {
                flag("config.user", user);
            }
            flag("config.env", "FOO=bar");
            flag("config.env", "PATH=/opt/bin:/bin");
            flag("config.env", "ZED=last");
            flag("config.entrypoint", "/bin/ep");
            flag("config.entrypoint", "--flag");
            flag("config.cmd", "arg1");
            flag("config.cmd", "arg 2");
            flag("config.volume", "/data");
            flag("config.volume", "/var/cache");
            flag("config.label", "com.example.a=b");
            flag("config.label", "org.opencontainers.image.title=t");
            flag("config.workingdir", "/work");
            flag("config.exposedports", "8080/tcp");
            flag("config.exposedports", "53/udp");
            flag("config.stopsignal", "SIGTERM");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            umoci(&args);

            for &rootless in modes {
                let bundle = dir.path().join(format!("b{}-{rootless}", i + 1));
                unpack(&tag, &bundle, rootless);
                let options = RuntimeOptions {
                    rootless,
                    ..Default::default()
                };
                let theirs: Value =
                    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap())
                        .unwrap();
                let ours = runtime_config(
                    &image_config(&layout, &tag),
                    bundle.join("rootfs"),
                    &options,
                )
                .unwrap();
                for key in ["args", "env", "cwd", "user"] {
                    assert_eq!(
                        ours["process"][key], theirs["process"][key],
                        "user {user:?}: process.{key}"
                    );
                }
                assert_eq!(ours["annotations"], theirs["annotations"], "user {user:?}");
                assert_eq!(tmpfs_destinations(&ours), tmpfs_destinations(&theirs));
                assert_eq!(
                    tmpfs_destinations(&ours),
                    BTreeSet::from(["/data".to_owned(), "/var/cache".to_owned()])
                );
                assert_eq!(namespaces(&ours), namespaces(&theirs), "user {user:?}");
                for key in ["uidMappings", "gidMappings", "maskedPaths", "readonlyPaths"] {
                    assert_eq!(ours["linux"][key], theirs["linux"][key], "linux.{key}");
                }
                // Every mount, in any order (umoci's volume order follows Go map iteration).
                let sorted = |v: &Value| {
                    let mut mounts: Vec<String> = v["mounts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(Value::to_string)
                        .collect();
                    mounts.sort();
                    mounts
                };
                assert_eq!(
                    sorted(&ours),
                    sorted(&theirs),
                    "user {user:?}, rootless {rootless}"
                );
            }
        }
    }
}
