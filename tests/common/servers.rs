//! Real stores on loopback for the remote-tier suite (installed by
//! `scripts/install-servers.sh`): SeaweedFS (`weed mini`, S3), `rclone serve s3`, nginx with
//! WebDAV, redis-server; and a TCP proxy that delays or cuts traffic.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A server process; killed when dropped.
pub struct Server {
    /// The `ZCFS_REMOTE` URL for it.
    pub url: String,
    /// Extra environment a client needs (credentials).
    pub env: Vec<(String, String)>,
    /// Where it keeps its objects (for tests that damage them), if on disk.
    pub data: Option<PathBuf>,
    pub port: u16,
    child: Child,
    _lock: Option<MutexGuard<'static, ()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Freezes the server (it keeps its sockets: a black hole).
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }
}

fn signal(pid: i32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn program(name: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain([
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
    ]) {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed: run scripts/install-servers.sh");
}

fn wait_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening on {port}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().unwrap()
}

fn log_file(dir: &Path) -> Stdio {
    Stdio::from(std::fs::File::create(dir.join("server.log")).unwrap())
}

/// SeaweedFS listens on fixed ports: one instance at a time per machine.
static WEED: Mutex<()> = Mutex::new(());

/// The S3 identities of `weed mini`: a writer (k/s) and a reader (rk/rs).
const WEED_IDENTITIES: &str = r#"{"identities":[
 {"name":"writer","credentials":[{"accessKey":"k","secretKey":"s"}],
  "actions":["Admin","Read","List","Tagging","Write"]},
 {"name":"reader","credentials":[{"accessKey":"rk","secretKey":"rs"}],
  "actions":["Read","List"]}]}"#;

/// `weed mini` with bucket `zcfs` (S3 on 127.0.0.1:8333). Its `If-None-Match: *` gives 412.
pub fn weed() -> Server {
    let lock = WEED.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir("zcfs-weed-");
    let config = dir.path().join("s3.json");
    std::fs::write(&config, WEED_IDENTITIES).unwrap();
    let mut child = Command::new(program("weed"))
        .args([
            "mini",
            &format!("-dir={}", dir.path().display()),
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-bucket=zcfs",
            "-master.telemetry=false",
            "-webdav=false",
            "-admin.ui=false",
            "-s3.port.iceberg=0",
            &format!("-s3.config={}", config.display()),
        ])
        .env("TMPDIR", dir.path())
        .env("AWS_ACCESS_KEY_ID", "k")
        .env("AWS_SECRET_ACCESS_KEY", "s")
        .stdin(Stdio::null())
        .stdout(log_file(dir.path()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(8333, &mut child, "weed mini");
    // The bucket exists once a signed request stops saying NoSuchBucket; a missing key is
    // then a 404 (anonymous requests get 403 throughout).
    let url = "s3://zcfs?endpoint=http://127.0.0.1:8333&region=us-east-1".to_string();
    let server = Server {
        url,
        env: vec![
            ("AWS_ACCESS_KEY_ID".into(), "k".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "s".into()),
        ],
        data: None,
        port: 8333,
        child,
        _lock: Some(lock),
        _dir: Some(dir),
    };
    wait_ready(&server);
    server
}

/// Waits until `zcfs remote status` finds the store answering.
fn wait_ready(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let probe = tempdir("zcfs-probe-");
    loop {
        let mut cmd = Command::new(crate::common::ZCFS);
        cmd.args(["remote", "status", "--json"])
            .env("ZCFS_DIR", probe.path().join("c"))
            .env("ZCFS_RUNTIME_DIR", probe.path().join("r"))
            .env("ZCFS_REMOTE", &server.url)
            .env_remove("ZCFS_CONFIG");
        for (k, v) in &server.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let _ = Command::new(crate::common::ZCFS)
            .arg("stop")
            .env("ZCFS_DIR", probe.path().join("c"))
            .env("ZCFS_RUNTIME_DIR", probe.path().join("r"))
            .output();
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "store at {} not ready: {}",
            server.url,
            String::from_utf8_lossy(&out.stdout)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `rclone serve s3` over a directory: objects are plain files under `data` (a test can
/// damage them); it ignores `If-None-Match`.
pub fn rclone() -> Server {
    let dir = tempdir("zcfs-rclone-");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("zcfs")).unwrap();
    let port = free_port();
    let mut child = Command::new(program("rclone"))
        .args(["serve", "s3", "--addr", &format!("127.0.0.1:{port}")])
        // rclone knows no key shorter than a few characters ("InvalidAccessKeyId").
        .args([
            "--auth-key",
            "zcfs-access-key,zcfs-secret-key",
            "--config",
            "/dev/null",
        ])
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(dir.path()))
        .spawn()
        .unwrap();
    wait_port(port, &mut child, "rclone serve s3");
    let server = Server {
        url: format!("s3://zcfs?endpoint=http://127.0.0.1:{port}&region=us-east-1"),
        env: vec![
            ("AWS_ACCESS_KEY_ID".into(), "zcfs-access-key".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "zcfs-secret-key".into()),
        ],
        data: Some(root.join("zcfs")),
        port,
        child,
        _lock: None,
        _dir: Some(dir),
    };
    wait_ready(&server);
    server
}

/// nginx with WebDAV at `/cache/`. `writers_need_auth`: GET/HEAD for anyone, writes only
/// with Basic auth `zcfs:secret` (read-only clients get 401 on PUT).
pub fn nginx(writers_need_auth: bool) -> Server {
    nginx_with(writers_need_auth, false)
}

/// nginx with WebDAV over https, its certificate issued by a private CA whose PEM file
/// `env` names in `ZCFS_REMOTE_CA_FILE`.
pub fn nginx_tls() -> Server {
    nginx_with(false, true)
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nginx_with(writers_need_auth: bool, tls: bool) -> Server {
    let dir = tempdir("zcfs-nginx-");
    let d = dir.path();
    let data = d.join("data");
    std::fs::create_dir_all(data.join("cache")).unwrap();
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    std::fs::write(d.join("htpasswd"), "zcfs:{PLAIN}secret\n").unwrap();
    let port = free_port();
    let mut env = vec![];
    let listen = if tls {
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=zcfs test CA",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(
            d.join("ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "2",
                "-extfile",
                "ext",
            ],
        );
        env.push((
            "ZCFS_REMOTE_CA_FILE".to_string(),
            d.join("ca.pem").to_string_lossy().into_owned(),
        ));
        format!(
            "127.0.0.1:{port} ssl; ssl_certificate {d}/leaf.pem; ssl_certificate_key {d}/leaf.key",
            d = d.display()
        )
    } else {
        format!("127.0.0.1:{port}")
    };
    let auth = if writers_need_auth {
        format!(
            "limit_except GET HEAD PROPFIND OPTIONS {{ auth_basic \"zcfs\"; auth_basic_user_file {}/htpasswd; }}",
            d.display()
        )
    } else {
        String::new()
    };
    let conf = format!(
        "load_module /usr/lib/nginx/modules/ngx_http_dav_ext_module.so;\n\
         user root; daemon off; master_process off; worker_processes 1;\n\
         pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{}}\n\
         http {{ access_log off; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;\n\
           fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
           server {{ listen {listen};\n\
             location /cache/ {{ root {data}; dav_methods PUT DELETE MKCOL;\n\
               dav_ext_methods PROPFIND OPTIONS; create_full_put_path on;\n\
               client_max_body_size 1G; {auth} }} }} }}\n",
        d = d.display(),
        data = data.display(),
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let mut child = Command::new(program("nginx"))
        .args(["-c", d.join("nginx.conf").to_str().unwrap(), "-p"])
        .arg(d)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file(d))
        .spawn()
        .unwrap();
    wait_port(port, &mut child, "nginx");
    let scheme = if tls { "https" } else { "http" };
    Server {
        url: format!("webdav+{scheme}://127.0.0.1:{port}/cache"),
        env,
        data: Some(data.join("cache")),
        port,
        child,
        _lock: None,
        _dir: Some(dir),
    }
}

/// redis-server on a loopback port, nothing persisted, LRU eviction.
pub fn redis() -> Server {
    let dir = tempdir("zcfs-redis-");
    let port = free_port();
    let mut child = Command::new(program("redis-server"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--maxmemory", "512mb"])
        .args(["--maxmemory-policy", "allkeys-lru", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(log_file(dir.path()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port, &mut child, "redis-server");
    Server {
        url: format!("redis://127.0.0.1:{port}/0"),
        env: vec![],
        data: None,
        port,
        child,
        _lock: None,
        _dir: Some(dir),
    }
}

/// What a [`Proxy`] does to the traffic it forwards.
#[derive(Clone, Default)]
pub struct Faults {
    /// Requests (a client chunk) starting with one of these wait this long first.
    pub delay_requests: Vec<&'static [u8]>,
    pub delay: Duration,
    /// Each connection is cut after this many bytes from the server.
    pub cut_after: Option<usize>,
}

/// A TCP proxy on loopback in front of `upstream`.
pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: u16, faults: Faults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let f = faults.clone();
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                // Client to server, delaying matching requests.
                std::thread::spawn(move || {
                    pump(client, server, |chunk, _| {
                        if f.delay_requests.iter().any(|p| chunk.starts_with(p)) {
                            std::thread::sleep(f.delay);
                        }
                        true
                    })
                });
                let cut = faults.cut_after;
                std::thread::spawn(move || {
                    pump(s2, c2, move |_, total| cut.is_none_or(|n| total <= n))
                });
            }
        });
        Proxy { port, stop }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to` until EOF or until `keep(chunk, bytes so far)` says stop.
fn pump(mut from: TcpStream, mut to: TcpStream, keep: impl Fn(&[u8], usize) -> bool) {
    let mut buf = vec![0u8; 64 << 10];
    let mut total = 0;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n;
        if !keep(&buf[..n], total) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// A shared directory (`file://`): no process; `data` is the directory.
pub fn dir_store(dir: &Path) -> Server {
    let data = dir.join("store");
    std::fs::create_dir_all(&data).unwrap();
    Server {
        url: format!("file://{}", data.display()),
        env: vec![],
        data: Some(data),
        port: 0,
        // A process that does nothing, so that every store is a `Server`.
        child: Command::new("sleep").arg("3600").spawn().unwrap(),
        _lock: None,
        _dir: None,
    }
}
