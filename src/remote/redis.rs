//! `redis://HOST[:PORT][/DB]` and `redis+unix:///PATH`: objects are string values under
//! their names (`SET ... NX` for conditional writes). The server's eviction policy decides
//! what stays (`allkeys-lru` suits a cache). A few connections are kept for reuse.
//! Credentials from `ZCFS_REMOTE_USERNAME`/`ZCFS_REMOTE_PASSWORD`, never from the URL.

use std::io::Write;

use parking_lot::Mutex;
use redis::IntoConnectionInfo;

use super::backend::{Backend, ErrorKind, Put, RemoteError, Size};
use crate::config::RemoteTimeouts;

const KEEP_CONNECTIONS: usize = 4;

pub struct Redis {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
    timeouts: RemoteTimeouts,
}

fn kind(e: &redis::RedisError) -> ErrorKind {
    if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_connection_refusal() || e.is_io_error() {
        ErrorKind::Connect
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.code()
            .is_some_and(|c| matches!(c, "NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
        ErrorKind::Auth
    } else {
        ErrorKind::Server
    }
}

fn err(e: redis::RedisError) -> RemoteError {
    RemoteError::new(kind(&e), e.to_string())
}

impl Redis {
    /// `url` is the redis crate's URL form, without zcfs's own parameters.
    pub fn new(
        url: &str,
        env: &dyn Fn(&str) -> Option<String>,
        timeouts: RemoteTimeouts,
    ) -> Result<Redis, String> {
        let info = url
            .into_connection_info()
            .map_err(|e| format!("invalid redis URL: {e}"))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = env("ZCFS_REMOTE_USERNAME").filter(|u| !u.is_empty()) {
            settings = settings.set_username(user);
        }
        if let Some(pass) = env("ZCFS_REMOTE_PASSWORD").filter(|p| !p.is_empty()) {
            settings = settings.set_password(pass);
        }
        let info = info.set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| format!("invalid redis URL: {e}"))?;
        Ok(Redis {
            client,
            idle: Mutex::new(Vec::new()),
            timeouts,
        })
    }

    /// Runs `f` on a connection set to the deadline of `size`; the connection is kept for
    /// reuse only if `f` succeeded (a failed one may hold half a reply).
    fn with<T>(
        &self,
        size: Size,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, RemoteError> {
        let conn = self.idle.lock().pop();
        let mut conn = match conn {
            Some(c) => c,
            None => self
                .client
                .get_connection_with_timeout(self.timeouts.connect)
                .map_err(err)?,
        };
        let read = match size {
            Size::Small => self.timeouts.op,
            Size::Large => self.timeouts.stall,
        };
        conn.set_read_timeout(Some(read)).map_err(err)?;
        conn.set_write_timeout(Some(read)).map_err(err)?;
        let r = f(&mut conn).map_err(err)?;
        let mut idle = self.idle.lock();
        if idle.len() < KEEP_CONNECTIONS {
            idle.push(conn);
        }
        Ok(r)
    }
}

impl Backend for Redis {
    fn get(
        &self,
        name: &str,
        max: u64,
        size: Size,
        out: &mut dyn Write,
    ) -> Result<Option<u64>, RemoteError> {
        // The length first, so that an oversized value is never transferred.
        let len: u64 = self.with(Size::Small, |c| redis::cmd("STRLEN").arg(name).query(c))?;
        if len > max {
            return Err(RemoteError::new(
                ErrorKind::TooLarge,
                format!("{len} bytes, more than {max}"),
            ));
        }
        if len == 0 {
            // Missing (zcfs never stores an empty object).
            return Ok(None);
        }
        let value: Option<Vec<u8>> = self.with(size, |c| {
            redis::cmd("GETRANGE")
                .arg(name)
                .arg(0)
                .arg(max as i64)
                .query(c)
        })?;
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        if value.len() as u64 > max {
            return Err(RemoteError::new(ErrorKind::TooLarge, "value over the cap"));
        }
        out.write_all(&value)
            .map_err(|e| RemoteError::new(ErrorKind::Io, format!("writing locally: {e}")))?;
        Ok(Some(value.len() as u64))
    }

    fn head(&self, name: &str) -> Result<bool, RemoteError> {
        let n: u64 = self.with(Size::Small, |c| redis::cmd("EXISTS").arg(name).query(c))?;
        Ok(n > 0)
    }

    fn put(
        &self,
        name: &str,
        bytes: &[u8],
        size: Size,
        if_absent: bool,
    ) -> Result<Put, RemoteError> {
        let stored: Option<String> = self.with(size, |c| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(name).arg(bytes);
            if if_absent {
                cmd.arg("NX");
            }
            cmd.query(c)
        })?;
        Ok(if stored.is_some() {
            Put::Stored
        } else {
            Put::Existed
        })
    }
}
