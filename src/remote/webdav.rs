//! `webdav+http(s)://HOST/PATH` (WebDAV: nginx, Apache, any DAV share) and `http(s)://`
//! (a plain HTTP cache that takes GET/HEAD/PUT, such as bazel-remote's). Objects are the
//! URL plus their name. A WebDAV server that refuses a PUT into a missing collection (409)
//! gets the collections made with MKCOL, once per directory. Authentication from
//! `ZCFS_REMOTE_USERNAME`/`ZCFS_REMOTE_PASSWORD` (Basic) or `ZCFS_REMOTE_TOKEN` (Bearer).

use std::collections::HashSet;
use std::io::Write;

use parking_lot::Mutex;

use super::backend::{Backend, ErrorKind, Put, RemoteError, Size};
use super::http::{Http, Send, status_error};

pub struct WebDav {
    http: Http,
    /// Ends with `/`.
    base: String,
    auth: Option<String>,
    /// Make missing collections (WebDAV) rather than fail (plain HTTP).
    dav: bool,
    made: Mutex<HashSet<String>>,
}

impl WebDav {
    pub fn new(
        base: &url::Url,
        dav: bool,
        env: &dyn Fn(&str) -> Option<String>,
        http: Http,
    ) -> WebDav {
        let mut base = base.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        let auth = match (
            env("ZCFS_REMOTE_TOKEN").filter(|t| !t.is_empty()),
            env("ZCFS_REMOTE_USERNAME").filter(|u| !u.is_empty()),
        ) {
            (Some(token), _) => Some(format!("Bearer {token}")),
            (None, Some(user)) => {
                let pass = env("ZCFS_REMOTE_PASSWORD").unwrap_or_default();
                Some(format!(
                    "Basic {}",
                    base64(format!("{user}:{pass}").as_bytes())
                ))
            }
            (None, None) => None,
        };
        WebDav {
            http,
            base,
            auth,
            dav,
            made: Mutex::new(HashSet::new()),
        }
    }

    fn url(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        self.auth
            .iter()
            .map(|a| ("authorization", a.clone()))
            .collect()
    }

    /// Makes the collections above `name`, outermost first.
    fn make_collections(&self, name: &str) -> Result<(), RemoteError> {
        let parts: Vec<&str> = name.split('/').collect();
        for i in 1..parts.len() {
            let dir = format!("{}/", parts[..i].join("/"));
            if self.made.lock().contains(&dir) {
                continue;
            }
            let resp = self.http.request(
                "MKCOL",
                &self.url(&dir),
                Size::Small,
                Send {
                    headers: self.headers(),
                    body: None,
                },
            )?;
            match resp.status().as_u16() {
                // Made, or already there (405: not allowed on an existing resource).
                200..=299 | 405 => {
                    self.made.lock().insert(dir);
                }
                code => return Err(status_error(code, &resp)),
            }
        }
        Ok(())
    }
}

impl Backend for WebDav {
    fn get(
        &self,
        name: &str,
        max: u64,
        size: Size,
        out: &mut dyn Write,
    ) -> Result<Option<u64>, RemoteError> {
        self.http
            .get(&self.url(name), self.headers(), max, size, out)
    }

    fn head(&self, name: &str) -> Result<bool, RemoteError> {
        self.http.head(&self.url(name), self.headers())
    }

    fn put(
        &self,
        name: &str,
        bytes: &[u8],
        size: Size,
        if_absent: bool,
    ) -> Result<Put, RemoteError> {
        let mut headers = self.headers();
        if if_absent {
            headers.push(("if-none-match", "*".to_string()));
        }
        match self.http.put(&self.url(name), headers.clone(), bytes, size) {
            Err(e) if self.dav && e.kind == ErrorKind::Protocol && e.detail == "HTTP 409" => {
                self.make_collections(name)?;
                self.http.put(&self.url(name), headers, bytes, size)
            }
            r => r,
        }
    }
}

/// Standard base64 with padding (for a Basic authorization header).
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RemoteTimeouts;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn credentials_come_from_the_environment() {
        let u: url::Url = "http://h/c".parse().unwrap();
        let env = |k: &str| match k {
            "ZCFS_REMOTE_USERNAME" => Some("u".to_string()),
            "ZCFS_REMOTE_PASSWORD" => Some("p".to_string()),
            _ => None,
        };
        let w = WebDav::new(&u, true, &env, Http::new(RemoteTimeouts::default(), &None));
        assert_eq!(w.url("zcfs1/p/ab/x"), "http://h/c/zcfs1/p/ab/x");
        assert_eq!(w.auth.as_deref(), Some("Basic dTpw"));
    }
}
