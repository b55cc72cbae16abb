//! What `pull`, `push`, `login` and `ls`/`inspect` of a registry share: the connection flags
//! and the environment the library does not read (proxies, credential files).

use std::path::PathBuf;
use std::sync::Arc;

use strata::registry::{Client, ClientOptions, ImageName};

use super::output::Output;

/// How to reach a registry.
#[derive(Debug, clap::Args, Clone)]
#[command(next_help_heading = "Registry options")]
pub struct RegistryArgs {
    /// Speak plain HTTP to the registry (without it, only a loopback registry that does not
    /// answer HTTPS gets plain HTTP).
    #[arg(long)]
    pub plain_http: bool,
    /// Do not verify the registry's TLS certificate (test registries only: anyone in the
    /// middle reads the credentials).
    #[arg(long)]
    pub insecure: bool,
    /// A CA certificate (PEM) or a directory of them (*.crt, *.pem) to trust besides the
    /// system's; /etc/docker/certs.d/HOST and /etc/containers/certs.d/HOST are read too.
    #[arg(long, value_name = "PATH")]
    pub cert_dir: Vec<PathBuf>,
}

/// How many blobs move at once.
#[derive(Debug, clap::Args, Clone, Copy)]
pub struct JobsArg {
    /// Blobs moved at once.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
}

/// The prefix that marks a registry image where a layout reference could stand.
pub const REGISTRY_PREFIX: &str = "docker://";

/// Parses an image name, a usage error when it is not one.
pub fn parse_name(text: &str) -> anyhow::Result<ImageName> {
    text.parse::<ImageName>()
        .map_err(|e| anyhow::Error::new(super::output::Usage(e.to_string())))
}

/// A client for `name`'s registry, configured from the flags and the environment, with the
/// stored credential for the registry.
pub fn client(name: &ImageName, args: &RegistryArgs, out: &Output) -> anyhow::Result<Client> {
    // A broken credential setup (a credsStore program not installed, an unreadable file)
    // must not stop a pull of a public image: said, and the registry asked anonymously.
    let credential = match super::login::store().lookup_repository(&name.registry, &name.repository)
    {
        Ok(c) => c.map(Arc::new),
        Err(e) => {
            out.warn(format_args!("no credentials for {}: {e}", name.registry));
            None
        }
    };
    let options = options(name, args, out, credential)?;
    Ok(Client::new(name.api_host(), options)?)
}

/// The client options the flags and the environment give, with `credential`.
pub fn options(
    name: &ImageName,
    args: &RegistryArgs,
    out: &Output,
    credential: Option<Arc<strata::registry::credentials::Credential>>,
) -> anyhow::Result<ClientOptions> {
    let mut ca_certs = args.cert_dir.clone();
    for base in ["/etc/docker/certs.d", "/etc/containers/certs.d"] {
        let dir = PathBuf::from(base).join(&name.registry);
        if dir.is_dir() {
            ca_certs.push(dir);
        }
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let proxy = if args.plain_http {
        env("HTTP_PROXY").or_else(|| env("http_proxy"))
    } else {
        env("HTTPS_PROXY").or_else(|| env("https_proxy"))
    }
    .or_else(|| env("ALL_PROXY").or_else(|| env("all_proxy")));
    let no_proxy = env("NO_PROXY").or_else(|| env("no_proxy"));
    let log: Option<strata::registry::client::LogFn> = if out.verbosity() >= 1 {
        Some(Arc::new(|line: &str| eprintln!("strata: {line}")))
    } else {
        None
    };
    Ok(ClientOptions {
        plain_http: args.plain_http,
        insecure: args.insecure,
        ca_certs,
        proxy,
        no_proxy,
        credential,
        log,
        ..ClientOptions::default()
    })
}

/// For a command that reads a layout or a registry: a missing layout whose name reads as a
/// registry image (`localhost:5000/app`, `quay.io/org/app`) was most likely meant as one,
/// which the reference grammar spells `docker://NAME`: a usage error saying so.
pub fn hint_registry_spelling(text: &str) -> anyhow::Result<()> {
    let names_a_registry = text
        .split_once('/')
        .is_some_and(|(first, _)| strata::registry::name::names_registry(first));
    if names_a_registry && text.parse::<ImageName>().is_ok() {
        super::output::usage!(
            "{text} is no layout here; for the registry image, write {REGISTRY_PREFIX}{text}"
        );
    }
    Ok(())
}
