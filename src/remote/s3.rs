//! `s3://BUCKET[/PREFIX]?endpoint=URL&region=R&style=path|virtual`: S3 and S3-compatible
//! stores. Requests are signed with SigV4 in the `Authorization` header (`sigv4.rs`) and
//! sent by the shared agent.
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN` only (never from the URL); without them requests are anonymous
//! (a public bucket, read-only).

use std::io::Write;

use super::backend::{Backend, ErrorKind, Put, RemoteError, Size};
use super::http::Http;
use super::sigv4::{self, Credentials, EMPTY_SHA256};

pub struct S3 {
    http: Http,
    /// `scheme://host[:port]`.
    origin: String,
    /// `host[:port]` as signed.
    host: String,
    /// The path before the object's name: `/bucket/` (path style) or `/` (virtual host).
    base_path: String,
    region: String,
    credentials: Option<Credentials>,
}

/// Where an `s3://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub endpoint: url::Url,
    pub region: String,
    pub path_style: bool,
}

impl S3Location {
    /// From the URL's host (the bucket) and query; the default endpoint is AWS's.
    pub fn parse(
        url: &url::Url,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<S3Location, String> {
        let bucket = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("an s3:// URL names its bucket: s3://BUCKET/PREFIX")?
            .to_string();
        if !bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(format!("invalid bucket name {bucket:?}"));
        }
        let mut endpoint = None;
        let mut region = None;
        let mut style = None;
        for (k, v) in url.query_pairs() {
            match &*k {
                "endpoint" => endpoint = Some(v.to_string()),
                "region" => region = Some(v.to_string()),
                "style" => style = Some(v.to_string()),
                other => {
                    return Err(format!(
                        "unknown s3 URL parameter {other:?} (known: endpoint, region, style)"
                    ));
                }
            }
        }
        let region = region
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let custom = endpoint.is_some();
        let endpoint = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let endpoint: url::Url = endpoint
            .parse()
            .map_err(|e| format!("invalid s3 endpoint: {e}"))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err("the s3 endpoint must be an http:// or https:// URL".into());
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err("credentials do not belong in the endpoint URL: use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into());
        }
        let path_style = match style.as_deref() {
            Some("path") => true,
            Some("virtual") => false,
            // Custom endpoints (MinIO, SeaweedFS, Ceph...) are mostly path-style.
            None => custom,
            Some(other) => return Err(format!("unknown s3 style {other:?} (path or virtual)")),
        };
        Ok(S3Location {
            bucket,
            endpoint,
            region,
            path_style,
        })
    }
}

/// Percent-encodes an object name as SigV4 wants it (every byte but the unreserved ones
/// and `/`).
fn encode_path(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3 {
    pub fn new(
        loc: &S3Location,
        env: &dyn Fn(&str) -> Option<String>,
        http: Http,
    ) -> Result<S3, String> {
        let ep = &loc.endpoint;
        let host = ep.host_str().ok_or("the s3 endpoint has no host")?;
        let host = match ep.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let prefix = ep.path().trim_end_matches('/');
        let (host, base_path) = if loc.path_style {
            (host, format!("{prefix}/{}/", loc.bucket))
        } else {
            (format!("{}.{host}", loc.bucket), format!("{prefix}/"))
        };
        let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) if !key.is_empty() => Some(Credentials {
                key,
                secret,
                token: env("AWS_SESSION_TOKEN").filter(|t| !t.is_empty()),
            }),
            _ => None,
        };
        Ok(S3 {
            http,
            origin: format!("{}://{host}", ep.scheme()),
            host,
            base_path,
            region: loc.region.clone(),
            credentials,
        })
    }

    /// The URL and signed headers of a request.
    fn prepare(
        &self,
        method: &str,
        name: &str,
        extra: &[(&str, &str)],
        payload: Option<&[u8]>,
    ) -> (String, Vec<(&'static str, String)>) {
        let path = format!("{}{}", self.base_path, encode_path(name));
        let url = format!("{}{path}", self.origin);
        let mut headers: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(creds) = &self.credentials {
            let hash = payload.map_or_else(|| EMPTY_SHA256.to_string(), sigv4::sha256_hex);
            let date = sigv4::amz_date(crate::util::unix_now());
            headers = sigv4::sign(
                &sigv4::ToSign {
                    method,
                    host: &self.host,
                    path: &path,
                    headers: extra,
                    payload_sha256: &hash,
                    amz_date: &date,
                    region: &self.region,
                },
                creds,
            );
        }
        let headers = headers
            .into_iter()
            .map(|(k, v)| (static_name(&k), v))
            .collect();
        (url, headers)
    }
}

/// Header names as the agent wants them (the set is fixed).
fn static_name(k: &str) -> &'static str {
    match k {
        "authorization" => "authorization",
        "x-amz-date" => "x-amz-date",
        "x-amz-content-sha256" => "x-amz-content-sha256",
        "x-amz-security-token" => "x-amz-security-token",
        "if-none-match" => "if-none-match",
        _ => "x-zcfs-unknown",
    }
}

impl Backend for S3 {
    fn get(
        &self,
        name: &str,
        max: u64,
        size: Size,
        out: &mut dyn Write,
    ) -> Result<Option<u64>, RemoteError> {
        let (url, headers) = self.prepare("GET", name, &[], None);
        self.http.get(&url, headers, max, size, out)
    }

    fn head(&self, name: &str) -> Result<bool, RemoteError> {
        let (url, headers) = self.prepare("HEAD", name, &[], None);
        self.http.head(&url, headers)
    }

    fn put(
        &self,
        name: &str,
        bytes: &[u8],
        size: Size,
        if_absent: bool,
    ) -> Result<Put, RemoteError> {
        let extra: &[(&str, &str)] = if if_absent {
            &[("if-none-match", "*")]
        } else {
            &[]
        };
        let (url, headers) = self.prepare("PUT", name, extra, Some(bytes));
        match self.http.put(&url, headers, bytes, size) {
            // A store that does not implement conditional writes: the caller checked with
            // HEAD first, write unconditionally.
            Err(e) if if_absent && e.kind == ErrorKind::Protocol && e.detail == "HTTP 501" => {
                self.put(name, bytes, size, false)
            }
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_reject_what_they_cannot_mean() {
        let env = |k: &str| (k == "AWS_REGION").then(|| "eu-west-3".to_string());
        let u: url::Url = "s3://b/some/prefix".parse().unwrap();
        let l = S3Location::parse(&u, &env).unwrap();
        assert_eq!(l.bucket, "b");
        assert_eq!(l.region, "eu-west-3");
        assert_eq!(l.endpoint.as_str(), "https://s3.eu-west-3.amazonaws.com/");
        assert!(!l.path_style);
        let u: url::Url = "s3://b?endpoint=http://127.0.0.1:8333&region=x"
            .parse()
            .unwrap();
        let l = S3Location::parse(&u, &|_| None).unwrap();
        assert!(l.path_style);
        assert_eq!(l.region, "x");
        for bad in [
            "s3://b?endpoint=ftp://h",
            "s3://b?endpoint=http://k:s@h",
            "s3://b?colour=red",
            "s3://b?style=sideways",
        ] {
            let u: url::Url = bad.parse().unwrap();
            assert!(S3Location::parse(&u, &|_| None).is_err(), "{bad}");
        }
    }
}
