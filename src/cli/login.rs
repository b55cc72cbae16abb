//! `strata login` and `strata logout`, and where every registry command finds credentials:
//! the files and programs docker, podman and skopeo use, found through the environment.

use std::io::Read;
use std::path::PathBuf;

use strata::registry::credentials::{Credential, CredentialStore};

use super::output::Output;
use super::registry::RegistryArgs;
use super::Status;

/// Log in to a registry: check the credentials, then store them as `docker login` does.
///
/// They go to docker's config file ($DOCKER_CONFIG/config.json, else ~/.docker/config.json),
/// through its credsStore or credHelpers program when it names one. Every registry command
/// then finds them there, or in containers' auth.json ($REGISTRY_AUTH_FILE,
/// $XDG_RUNTIME_DIR/containers/auth.json), which is read first.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The registry: HOST[:PORT] (docker.io for Docker Hub).
    registry: String,
    /// The user name.
    #[arg(short, long)]
    username: String,
    /// Read the password (or token) from standard input, so it is in no process listing or
    /// shell history.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry_args: RegistryArgs,
    #[command(flatten)]
    json: super::JsonArg,
}

/// Log out of a registry: remove its stored credentials.
#[derive(Debug, clap::Args)]
pub struct LogoutArgs {
    /// The registry: HOST[:PORT].
    registry: String,
    #[command(flatten)]
    json: super::JsonArg,
}

/// `login --json` and `logout --json`: the registry as strata names it (the key its
/// credentials are stored under), and what changed.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LoggedIn<'a> {
    registry: &'a str,
    username: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LoggedOut<'a> {
    registry: &'a str,
    removed: bool,
}

/// The credential store as the environment describes it.
pub fn store() -> CredentialStore {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let docker_config = env("DOCKER_CONFIG")
        .map(|d| d.join("config.json"))
        .or_else(|| env("HOME").map(|h| h.join(".docker/config.json")));
    let mut auth_files = Vec::new();
    if let Some(f) = env("REGISTRY_AUTH_FILE") {
        auth_files.push(f);
    }
    if let Some(d) = env("XDG_RUNTIME_DIR") {
        auth_files.push(d.join("containers/auth.json"));
    }
    let helper_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    CredentialStore {
        docker_config,
        auth_files,
        helper_path,
    }
}

/// The registry part of what the user typed: `HOST[:PORT]`, scheme and path removed.
fn registry_name(text: &str) -> anyhow::Result<String> {
    let bare = text
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("");
    // An image name in that registry says whether it is one; its own refusal would speak of
    // an image name the user never typed.
    let probe = format!("{bare}/x");
    let name = super::registry::parse_name(&probe).ok();
    let hub_by_default = |registry: &str| {
        registry == strata::registry::name::DOCKER_HUB
            && bare != "docker.io"
            && !bare.ends_with("docker.io")
    };
    let Some(name) = name.filter(|n| !bare.is_empty() && !hub_by_default(&n.registry)) else {
        super::output::usage!(
            "{text:?} is not a registry: give HOST[:PORT], e.g. localhost:5000 or docker.io"
        );
    };
    Ok(name.registry)
}

pub fn login(args: LoginArgs, out: &Output) -> anyhow::Result<Status> {
    let registry = registry_name(&args.registry)?;
    if !args.password_stdin {
        super::output::usage!("give the password on standard input with --password-stdin (a password in the arguments is visible to every user of the machine)");
    }
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password)?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        super::output::usage!("the password on standard input is empty");
    }
    let credential = std::sync::Arc::new(Credential::Basic {
        username: args.username.clone(),
        password,
    });
    let name = super::registry::parse_name(&format!("{registry}/x"))?;
    let options =
        super::registry::options(&name, &args.registry_args, out, Some(credential.clone()))?;
    strata::registry::Client::new(name.api_host(), options)?.ping()?;
    store().login(&registry, &credential)?;
    if args.json.json {
        out.json(&LoggedIn {
            registry: &registry,
            username: &args.username,
        })?;
    } else {
        out.note(format_args!("logged in to {registry} as {}", args.username));
    }
    Ok(Status::Success)
}

pub fn logout(args: LogoutArgs, out: &Output) -> anyhow::Result<Status> {
    let registry = registry_name(&args.registry)?;
    let removed = store().logout(&registry)?;
    if args.json.json {
        out.json(&LoggedOut {
            registry: &registry,
            removed,
        })?;
    } else if removed {
        out.note(format_args!("logged out of {registry}"));
    } else {
        out.note(format_args!("no credentials stored for {registry}"));
    }
    Ok(Status::Success)
}
