//! HTTP plumbing shared by the S3 and WebDAV backends: one blocking `ureq` agent with
//! zcfs's deadlines, status codes mapped to [`ErrorKind`]s, bodies read under a cap.

use std::io::Write;
use std::time::Duration;

use ureq::http::Response;

use super::backend::{ErrorKind, Put, RemoteError, Size, copy_capped};
use crate::config::RemoteTimeouts;

/// An agent and the deadlines it applies.
pub struct Http {
    agent: ureq::Agent,
    timeouts: RemoteTimeouts,
}

/// What a request sends, besides its URL and method.
pub struct Send<'a> {
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<&'a [u8]>,
}

/// Root certificates to trust instead of the public ones (a private CA).
pub type Roots = Option<std::sync::Arc<Vec<ureq::tls::Certificate<'static>>>>;

/// Reads the certificates of a PEM file (`ZCFS_REMOTE_CA_FILE`).
pub fn load_roots(path: &std::path::Path) -> Result<Vec<ureq::tls::Certificate<'static>>, String> {
    let pem = crate::util::read_capped(path, 4 << 20)
        .map_err(|e| format!("reading {}: {e}", path.display()))?
        .ok_or_else(|| format!("{} is larger than 4 MiB", path.display()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

impl Http {
    pub fn new(timeouts: RemoteTimeouts, roots: &Roots) -> Http {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(certs) = roots {
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(certs.clone()));
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .http_status_as_error(false)
            .timeout_connect(Some(timeouts.connect))
            .max_redirects(0)
            .allow_non_standard_methods(true)
            .user_agent(concat!("zcfs/", env!("CARGO_PKG_VERSION")))
            // The responses are zcfs's own bytes; no transparent decompression.
            .accept_encoding("identity")
            .build()
            .into();
        Http { agent, timeouts }
    }

    /// Runs one request under the deadline of its size. Uploads of large objects get time
    /// in proportion to their size (at least 1 MB/s beyond the transfer deadline).
    pub fn request(
        &self,
        method: &str,
        url: &str,
        size: Size,
        send: Send<'_>,
    ) -> Result<Response<ureq::Body>, RemoteError> {
        let t = &self.timeouts;
        let (global, per_read) = match size {
            Size::Small => (t.op, t.op),
            Size::Large => {
                let upload = send.body.map(|b| b.len() as u64 / (1 << 20)).unwrap_or(0);
                (t.transfer + Duration::from_secs(upload), t.stall)
            }
        };
        let mut req = ureq::http::Request::builder().method(method).uri(url);
        for (k, v) in &send.headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(send.body.unwrap_or(&[]))
            .map_err(|e| RemoteError::new(ErrorKind::Protocol, e.to_string()))?;
        let req = self
            .agent
            .configure_request(req)
            .timeout_global(Some(global))
            .timeout_per_read(Some(per_read))
            .build();
        self.agent.run(req).map_err(from_ureq)
    }

    /// GET: `Ok(None)` on 404, the body streamed into `out` under the cap on 200.
    pub fn get(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        max: u64,
        size: Size,
        out: &mut dyn Write,
    ) -> Result<Option<u64>, RemoteError> {
        let resp = self.request(
            "GET",
            url,
            size,
            Send {
                headers,
                body: None,
            },
        )?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            code => return Err(status_error(code, &resp)),
        }
        if let Some(len) = content_length(&resp)
            && len > max
        {
            return Err(RemoteError::new(
                ErrorKind::TooLarge,
                format!("{len} bytes, more than {max}"),
            ));
        }
        let mut reader = resp
            .into_body()
            .into_with_config()
            .limit(max.saturating_add(1))
            .reader();
        copy_capped(&mut reader, max, out, |e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                ErrorKind::Timeout
            } else {
                ErrorKind::Connect
            }
        })
        .map(Some)
    }

    /// HEAD: whether the object exists.
    pub fn head(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
    ) -> Result<bool, RemoteError> {
        let resp = self.request(
            "HEAD",
            url,
            Size::Small,
            Send {
                headers,
                body: None,
            },
        )?;
        match resp.status().as_u16() {
            200 | 204 => Ok(true),
            404 => Ok(false),
            code => Err(status_error(code, &resp)),
        }
    }

    /// PUT: 2xx stored, 412 already there (a conditional write).
    pub fn put(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        bytes: &[u8],
        size: Size,
    ) -> Result<Put, RemoteError> {
        let resp = self.request(
            "PUT",
            url,
            size,
            Send {
                headers,
                body: Some(bytes),
            },
        )?;
        match resp.status().as_u16() {
            200..=299 => Ok(Put::Stored),
            412 => Ok(Put::Existed),
            code => Err(status_error(code, &resp)),
        }
    }
}

fn content_length(resp: &Response<ureq::Body>) -> Option<u64> {
    resp.headers()
        .get("content-length")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The error an unexpected status stands for.
pub fn status_error(code: u16, resp: &Response<ureq::Body>) -> RemoteError {
    let kind = match code {
        401 | 403 => ErrorKind::Auth,
        429 => ErrorKind::Throttled,
        503 if resp.headers().contains_key("retry-after") => ErrorKind::Throttled,
        500..=599 => ErrorKind::Server,
        _ => ErrorKind::Protocol,
    };
    RemoteError::new(kind, format!("HTTP {code}"))
}

pub fn from_ureq(e: ureq::Error) -> RemoteError {
    let kind = match &e {
        ureq::Error::Timeout(_) => ErrorKind::Timeout,
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => ErrorKind::Connect,
        ureq::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ErrorKind::Timeout,
            _ => ErrorKind::Connect,
        },
        ureq::Error::BodyExceedsLimit(_) => ErrorKind::TooLarge,
        _ => ErrorKind::Protocol,
    };
    RemoteError::new(kind, e.to_string())
}
