//! The distribution spec's endpoints, one function each: manifests (get, head, put), blobs
//! (head, streamed get with resume, upload, mount), tags and referrers. Everything read is
//! checked against the digest it was asked by before anyone sees it.

use std::io::{Read, Write};

use super::client::{
    self, header, read_body, status_error, with_query, Access, Body, Call, Client, MANIFEST_TYPES,
};
use super::error::{Error, Result};
use crate::digest::{Algorithm, Digest};
use crate::spec::{media_type, BlobRef};

/// Manifests and indexes are small; distribution refuses those over 4 MiB.
pub const MANIFEST_LIMIT: u64 = 4 << 20;

/// A manifest or index as the registry served it.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its bytes, exactly as served.
    pub bytes: Vec<u8>,
    /// Its media type (the response's Content-Type, else the document's `mediaType`).
    pub media_type: String,
    /// Its digest, computed from the bytes.
    pub digest: Digest,
}

impl Fetched {
    /// Its descriptor.
    pub fn descriptor(&self) -> crate::spec::Descriptor {
        crate::spec::Descriptor::new(&self.media_type, &self.digest, self.bytes.len() as u64)
    }
}

fn manifest_path(repository: &str, reference: &str) -> String {
    format!("/v2/{repository}/manifests/{reference}")
}

fn blob_path(repository: &str, digest: &Digest) -> String {
    format!("/v2/{repository}/blobs/{digest}")
}

/// Fetches a manifest or index by tag or digest. A digest reference is verified; a tag's
/// bytes are checked against the `Docker-Content-Digest` the registry sent, if any. Schema 1
/// is refused.
pub fn get_manifest(client: &Client, repository: &str, reference: &str) -> Result<Fetched> {
    let call = Call::new(
        "GET",
        manifest_path(repository, reference),
        repository,
        Access::Pull,
    )
    .header("accept", MANIFEST_TYPES.join(", "));
    let url = client.url(&call.target);
    let mut response = client.expect(&call, &[200])?;
    let content_type = header(&response, "content-type").unwrap_or_default();
    let served_digest = header(&response, "docker-content-digest");
    let bytes = read_body(&mut response, MANIFEST_LIMIT, &url)?;
    let asked: Option<Digest> = reference.parse().ok().filter(|_| reference.contains(':'));
    let algorithm = asked.as_ref().map_or(Algorithm::Sha256, Digest::algorithm);
    let digest = Digest::of_bytes(algorithm, &bytes);
    if let Some(want) = &asked {
        if *want != digest {
            return Err(Error::Invalid {
                what: url,
                reason: format!(
                    "the registry sent a document whose digest is {digest}, not {want}"
                ),
            });
        }
    } else if let Some(served) = served_digest.and_then(|d| d.parse::<Digest>().ok()) {
        let ours = Digest::of_bytes(served.algorithm(), &bytes);
        if ours != served {
            return Err(Error::Invalid {
                what: url,
                reason: format!(
                    "the registry says the document is {served}, but its bytes are {ours}"
                ),
            });
        }
    }
    let media_type = manifest_media_type(&content_type, &bytes, &url)?;
    Ok(Fetched {
        bytes,
        media_type,
        digest,
    })
}

/// The media type of a served document: its Content-Type when that is one strata reads,
/// else the document's own `mediaType`. Docker's schema 1 is refused by name.
fn manifest_media_type(content_type: &str, bytes: &[u8], url: &str) -> Result<String> {
    let served = content_type.split(';').next().unwrap_or("").trim();
    #[derive(serde::Deserialize)]
    struct Shape {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<i64>,
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let shape: Option<Shape> = serde_json::from_slice(bytes).ok();
    let schema1 = served.starts_with("application/vnd.docker.distribution.manifest.v1")
        || shape.as_ref().and_then(|s| s.schema_version) == Some(1);
    if schema1 {
        return Err(Error::Unsupported(format!(
            "{url}: a Docker schema 1 manifest (deprecated since 2017, and unsigned images cannot be verified by digest); push it again with a current docker or skopeo to get schema 2"
        )));
    }
    if MANIFEST_TYPES.contains(&served) {
        // The type is recorded in the layout's descriptors, which must describe the bytes:
        // a manifest served as an index would leave a layout fsck rejects.
        let Some(shape) = shape else {
            return Ok(served.to_owned());
        };
        let is_index = shape.manifests.is_some();
        let fits = match &shape.media_type {
            Some(own) => own == served,
            None => (crate::spec::Kind::of(served) == crate::spec::Kind::Index) == is_index,
        };
        if !fits {
            return Err(Error::Invalid {
                what: url.to_owned(),
                reason: format!(
                    "served as {served}, but the document is {}",
                    match &shape.media_type {
                        Some(own) => format!("{own:?}"),
                        None if is_index => "an index".into(),
                        None => "a manifest".into(),
                    }
                ),
            });
        }
        return Ok(served.to_owned());
    }
    let Some(shape) = shape else {
        return Err(Error::Invalid {
            what: url.to_owned(),
            reason: format!("not a JSON manifest or index (served as {served:?})"),
        });
    };
    Ok(match shape.media_type {
        Some(m) => m,
        None if shape.manifests.is_some() => media_type::INDEX.to_owned(),
        None => media_type::MANIFEST.to_owned(),
    })
}

/// What the registry says of a manifest, without its bytes: its digest, media type and size.
pub fn head_manifest(
    client: &Client,
    repository: &str,
    reference: &str,
    access: Access,
) -> Result<Option<(Digest, u64)>> {
    let call = Call::new(
        "HEAD",
        manifest_path(repository, reference),
        repository,
        access,
    )
    .header("accept", MANIFEST_TYPES.join(", "));
    let response = client.send(&call)?;
    match response.status().as_u16() {
        200 => {
            let digest = header(&response, "docker-content-digest").and_then(|d| d.parse().ok());
            let size = header(&response, "content-length").and_then(|s| s.parse().ok());
            Ok(digest.zip(size))
        }
        404 => Ok(None),
        _ => Err(status_error("HEAD", &client.url(&call.target), response)),
    }
}

/// Stores a manifest or index under a tag or its digest. Returns the `OCI-Subject` header
/// (set by registries with the referrers API when the manifest has a subject).
pub fn put_manifest(
    client: &Client,
    repository: &str,
    reference: &str,
    bytes: &[u8],
    media_type: &str,
) -> Result<Option<String>> {
    let call = Call::new(
        "PUT",
        manifest_path(repository, reference),
        repository,
        Access::Push,
    )
    .body(Body::Bytes(bytes, media_type));
    let response = client.expect(&call, &[200, 201, 202])?;
    Ok(header(&response, "oci-subject"))
}

/// True when the registry has the blob (a HEAD answered 200 with its size).
pub fn has_blob(client: &Client, repository: &str, blob: &BlobRef, access: Access) -> Result<bool> {
    let call = Call::new(
        "HEAD",
        blob_path(repository, &blob.digest),
        repository,
        access,
    );
    let response = client.send(&call)?;
    match response.status().as_u16() {
        200 => Ok(header(&response, "content-length")
            .and_then(|s| s.parse::<u64>().ok())
            .is_none_or(|n| n == blob.size)),
        404 => Ok(false),
        _ => Err(status_error("HEAD", &client.url(&call.target), response)),
    }
}

/// Streams a blob into `out`, resuming with a Range request where a connection drops, and
/// calling `advance` with every chunk's length. At most the blob's size is accepted: the
/// caller's writer verifies the digest.
pub fn fetch_blob(
    client: &Client,
    repository: &str,
    blob: &BlobRef,
    out: &mut dyn Write,
    advance: &mut dyn FnMut(u64),
) -> Result<()> {
    let (retries, delay) = client.retry_policy();
    let mut done: u64 = 0;
    let mut attempt = 0u32;
    let target = blob_path(repository, &blob.digest);
    let url = client.url(&target);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let mut call = Call::new("GET", target.clone(), repository, Access::Pull);
        if done > 0 {
            call = call.header("range", format!("bytes={done}-"));
        }
        let response = client.send(&call)?;
        let status = response.status().as_u16();
        // A server that ignores the Range sends everything again: skip what we have.
        let mut skip = match status {
            200 => done,
            206 if done > 0 => {
                let start = header(&response, "content-range")
                    .and_then(|r| r.strip_prefix("bytes ").map(str::to_owned))
                    .and_then(|r| r.split('-').next().and_then(|s| s.parse::<u64>().ok()));
                if start != Some(done) {
                    return Err(Error::Invalid {
                        what: url,
                        reason: format!(
                            "asked for bytes from {done}, the registry sent another range"
                        ),
                    });
                }
                0
            }
            _ => return Err(status_error("GET", &url, response)),
        };
        let mut reader = response.into_body().into_reader();
        let failure = loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(e.to_string()),
            };
            let mut chunk = &buf[..n];
            if skip > 0 {
                let s = skip.min(n as u64) as usize;
                chunk = &chunk[s..];
                skip -= s as u64;
            }
            if chunk.is_empty() {
                continue;
            }
            if done + chunk.len() as u64 > blob.size {
                return Err(Error::WrongBlob {
                    url,
                    blob: blob.clone(),
                    got: "more bytes".into(),
                });
            }
            out.write_all(chunk).map_err(|e| Error::Transport {
                url: url.clone(),
                reason: format!("writing the blob: {e}"),
            })?;
            done += chunk.len() as u64;
            advance(chunk.len() as u64);
        };
        if done == blob.size && failure.is_none() {
            return Ok(());
        }
        let reason = failure.unwrap_or_else(|| {
            format!("the connection closed after {done} of {} bytes", blob.size)
        });
        if attempt >= retries {
            return Err(Error::Transport { url, reason });
        }
        client.log(&format!(
            "resuming {} at byte {done} ({reason})",
            blob.digest
        ));
        std::thread::sleep(delay.saturating_mul(1 << attempt.min(8)));
        attempt += 1;
    }
}

/// A blob's bytes in memory (a config), verified.
pub fn get_small_blob(client: &Client, repository: &str, blob: &BlobRef) -> Result<Vec<u8>> {
    if blob.size > crate::layout::JSON_LIMIT {
        return Err(Error::Invalid {
            what: blob.digest.to_string(),
            reason: format!("{} bytes is too large for a configuration", blob.size),
        });
    }
    let mut bytes = Vec::with_capacity(blob.size as usize);
    fetch_blob(client, repository, blob, &mut bytes, &mut |_| {})?;
    let got = Digest::of_bytes(blob.digest.algorithm(), &bytes);
    if got != blob.digest {
        return Err(Error::WrongBlob {
            url: client.url(&blob_path(repository, &blob.digest)),
            blob: blob.clone(),
            got: format!("bytes whose digest is {got}"),
        });
    }
    Ok(bytes)
}

/// Asks the registry to link a blob from another repository of its own. True when it did.
pub fn mount_blob(client: &Client, repository: &str, blob: &BlobRef, from: &str) -> Result<bool> {
    let target = format!(
        "/v2/{repository}/blobs/uploads/?mount={}&from={}",
        client::encode(&blob.digest.to_string()),
        client::encode(from)
    );
    let call = Call::new("POST", target, repository, Access::Push);
    let response = client.send(&call)?;
    match response.status().as_u16() {
        201 => Ok(true),
        // 202: the registry opened an ordinary upload instead; it is left to expire.
        202 => Ok(false),
        _ => Err(status_error("POST", &client.url(&call.target), response)),
    }
}

/// Uploads a blob: one PUT for a blob up to `chunk` bytes (or any size when `chunk` is 0),
/// else PATCH requests of `chunk` bytes and a closing PUT. `open(offset)` reads the blob from
/// `offset`.
///
/// A request whose answer was lost may have done its work: a retried closing PUT then finds
/// the upload gone, a retried PATCH finds the upload past its range (distribution cancels an
/// upload resumed at another offset). So a failed upload ends in success if the registry
/// has the blob after all, and is otherwise started over once.
pub fn upload_blob(
    client: &Client,
    repository: &str,
    blob: &BlobRef,
    chunk: u64,
    open: &(dyn Fn(u64) -> std::io::Result<Box<dyn Read>> + Sync),
    advance: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut restarted = false;
    loop {
        let err = match upload_once(client, repository, blob, chunk, open, advance) {
            Ok(()) => return Ok(()),
            Err(e @ (Error::Auth { .. } | Error::Layout(_))) => return Err(e),
            Err(e) => e,
        };
        if has_blob(client, repository, blob, Access::Push).unwrap_or(false) {
            return Ok(());
        }
        if restarted {
            return Err(err);
        }
        client.log(&format!("uploading {} again ({err})", blob.digest));
        restarted = true;
    }
}

fn upload_once(
    client: &Client,
    repository: &str,
    blob: &BlobRef,
    chunk: u64,
    open: &(dyn Fn(u64) -> std::io::Result<Box<dyn Read>> + Sync),
    advance: &mut dyn FnMut(u64),
) -> Result<()> {
    let start = Call::new(
        "POST",
        format!("/v2/{repository}/blobs/uploads/"),
        repository,
        Access::Push,
    );
    let response = client.expect(&start, &[202])?;
    let mut location = upload_location(client, &start, &response)?;
    let digest = blob.digest.to_string();
    if chunk == 0 || blob.size <= chunk {
        let opener = || open(0);
        let call = Call::new(
            "PUT",
            with_query(&location, "digest", &digest),
            repository,
            Access::Push,
        )
        .body(Body::Stream {
            length: blob.size,
            open: &opener,
        });
        client.expect(&call, &[201, 204])?;
        advance(blob.size);
        return Ok(());
    }
    let mut offset = 0;
    let mut resumes = 0;
    while offset < blob.size {
        let len = chunk.min(blob.size - offset);
        let opener = || open(offset).map(|r| Box::new(r.take(len)) as Box<dyn Read>);
        let call = Call::new("PATCH", location.clone(), repository, Access::Push)
            .header("content-range", format!("{}-{}", offset, offset + len - 1))
            .body(Body::Stream {
                length: len,
                open: &opener,
            });
        let response = match client.expect(&call, &[202, 204]) {
            Ok(r) => r,
            // The registry may have kept part of a chunk whose connection dropped: ask how
            // far it got and go on from there (a few times at most).
            Err(e @ (Error::Transport { .. } | Error::Status { status: 416, .. }))
                if resumes < 5 =>
            {
                resumes += 1;
                let (at, next) = upload_status(client, repository, &location).map_err(|_| e)?;
                client.log(&format!(
                    "resuming the upload of {} at byte {at}",
                    blob.digest
                ));
                if at > blob.size {
                    return Err(Error::Invalid {
                        what: client.url(&location),
                        reason: format!(
                            "the registry says the upload holds {at} bytes of a {}-byte blob",
                            blob.size
                        ),
                    });
                }
                if at < offset {
                    return Err(Error::Invalid {
                        what: client.url(&location),
                        reason: format!("the registry lost part of the upload (it has {at} bytes, {offset} were sent)"),
                    });
                }
                advance(at - offset);
                offset = at;
                location = next;
                continue;
            }
            Err(e) => return Err(e),
        };
        location = upload_location(client, &call, &response)?;
        offset += len;
        advance(len);
    }
    let call = Call::new(
        "PUT",
        with_query(&location, "digest", &digest),
        repository,
        Access::Push,
    );
    client.expect(&call, &[201, 204])?;
    Ok(())
}

/// How many bytes an open upload holds (its `Range: 0-N`), and where to go on.
fn upload_status(client: &Client, repository: &str, location: &str) -> Result<(u64, String)> {
    let call = Call::new("GET", location.to_owned(), repository, Access::Push);
    let response = client.expect(&call, &[204])?;
    // `0-N` names the last byte held; distribution writes `0-0` for nothing held too, and
    // chunks are never one byte long, so that reads as nothing.
    let held = match header(&response, "range").and_then(|r| {
        r.rsplit('-')
            .next()
            .and_then(|n| n.trim().parse::<u64>().ok())
    }) {
        None | Some(0) => 0,
        Some(last) => last.checked_add(1).ok_or_else(|| Error::Invalid {
            what: client.url(location),
            reason: format!("the upload's status says it holds byte {last}"),
        })?,
    };
    Ok((held, upload_location(client, &call, &response)?))
}

fn upload_location(
    client: &Client,
    call: &Call<'_>,
    response: &client::Response,
) -> Result<String> {
    match header(response, "location") {
        // Relative to the request, as RFC 7231 says (the distribution spec defers to it).
        Some(l) => Ok(client::resolve(&client.url(&call.target), &l)),
        None => Err(Error::Invalid {
            what: client.url(&call.target),
            reason: "the registry opened an upload without a Location".into(),
        }),
    }
}

/// The most tags a listing holds (in memory) before strata gives up on it.
pub const MAX_TAGS: usize = 1_000_000;

/// Every tag of a repository, following the registry's pages (`Link: <...>; rel="next"`).
pub fn list_tags(client: &Client, repository: &str) -> Result<Vec<String>> {
    let mut tags = Vec::new();
    let mut target = format!("/v2/{repository}/tags/list?n=1000");
    // A registry's pages could go on forever, or loop: the tags are kept in memory, so
    // both are cut short.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let call = Call::new("GET", target.clone(), repository, Access::Pull);
        let url = client.url(&target);
        if !seen.insert(url.clone()) {
            return Err(Error::Invalid {
                what: url,
                reason: "the tag list's next page is one already read (the pages loop)".into(),
            });
        }
        let mut response = client.expect(&call, &[200])?;
        let next = header(&response, "link").and_then(|l| next_link(&l));
        let bytes = read_body(&mut response, MANIFEST_LIMIT * 4, &url)?;
        #[derive(serde::Deserialize)]
        struct TagList {
            tags: Option<Vec<String>>,
        }
        let page: TagList = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
            what: url.clone(),
            reason: format!("not a tag list: {}", crate::words::json_reason(&e)),
        })?;
        let got = page.tags.unwrap_or_default();
        // Tags are printed one per line: one with control characters could forge output
        // or drive the terminal. Registries keep to the spec's grammar.
        if let Some(bad) = got.iter().find(|t| !super::name::is_tag(t)) {
            return Err(Error::Invalid {
                what: url,
                reason: format!(
                    "the registry listed {:?}, which is not a tag",
                    bad.chars().take(200).collect::<String>()
                ),
            });
        }
        let empty = got.is_empty();
        tags.extend(got);
        if tags.len() > MAX_TAGS {
            return Err(Error::Invalid {
                what: url,
                reason: format!("the repository lists more than {MAX_TAGS} tags"),
            });
        }
        match next {
            // Relative to the page it came on: glued to the host, `list?last=a` would
            // name another host (`registry.examplelist`).
            Some(n) if !empty => target = client::resolve(&url, &n),
            _ => return Ok(tags),
        }
    }
    Err(Error::Invalid {
        what: client.url(&format!("/v2/{repository}/tags/list")),
        reason: "more than 10,000 pages of tags".into(),
    })
}

/// The target of a `Link` header's `rel="next"`.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned()
        })
    })
}

/// The referrers of a manifest: from the referrers API, else from the fallback tag
/// `<alg>-<hex>` (registries without the API, distribution 2.8 among them). None found: an
/// empty list.
pub fn referrers(
    client: &Client,
    repository: &str,
    digest: &Digest,
) -> Result<Vec<crate::spec::Descriptor>> {
    let call = Call::new(
        "GET",
        format!("/v2/{repository}/referrers/{digest}"),
        repository,
        Access::Pull,
    )
    .header("accept", media_type::INDEX);
    let url = client.url(&call.target);
    let mut response = client.send(&call)?;
    let bytes = match response.status().as_u16() {
        200 if header(&response, "content-type")
            .is_some_and(|c| c.starts_with(media_type::INDEX)) =>
        {
            read_body(&mut response, MANIFEST_LIMIT, &url)?
        }
        200 | 404 | 405 => match fallback_index(client, repository, digest)? {
            Some(f) => f.bytes,
            None => return Ok(Vec::new()),
        },
        _ => return Err(status_error("GET", &url, response)),
    };
    let index = crate::layout::walk::decode_index(&bytes, media_type::INDEX, &url)?;
    Ok(index.manifests)
}

/// The fallback tag of a subject's referrers, as the distribution spec names it.
pub fn fallback_tag(digest: &Digest) -> String {
    format!("{}-{}", digest.algorithm().name(), digest.hex())
}

/// The index at a subject's fallback tag, if there is one.
pub fn fallback_index(
    client: &Client,
    repository: &str,
    digest: &Digest,
) -> Result<Option<Fetched>> {
    match get_manifest(client, repository, &fallback_tag(digest)) {
        Ok(f) => Ok(Some(f)),
        Err(Error::Status { status: 404, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }

    #[test]
    fn schema1_refused_and_types_read() {
        let err = manifest_media_type(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            b"{}",
            "u",
        )
        .unwrap_err();
        assert!(err.to_string().contains("schema 1"));
        let err =
            manifest_media_type("application/json", br#"{"schemaVersion":1}"#, "u").unwrap_err();
        assert!(err.to_string().contains("schema 1"));
        assert_eq!(
            manifest_media_type(
                "application/json",
                br#"{"schemaVersion":2,"manifests":[]}"#,
                "u"
            )
            .unwrap(),
            media_type::INDEX
        );
        assert_eq!(
            manifest_media_type(
                &format!("{}; charset=utf-8", media_type::DOCKER_MANIFEST),
                b"{}",
                "u"
            )
            .unwrap(),
            media_type::DOCKER_MANIFEST
        );
    }
}
