//! Real processes for the scale-out tests: the `loan-tracker` binary on
//! its own port, and NGINX with the repository's configuration adapted to
//! those ports. Both are stopped when dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::support::eventually;

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// Whether NGINX can be run here.
pub fn nginx_available() -> bool {
    std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .is_ok_and(|output| output.status.success())
}

/// One `loan-tracker serve` process.
pub struct Service {
    pub port: u16,
    child: Option<Child>,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Starts the binary with `vars` (the test app's configuration) plus
    /// `extra`, and waits until it is ready.
    pub async fn start(vars: &HashMap<String, String>, extra: &[(&str, &str)]) -> Service {
        Self::start_command(&["serve"], vars, extra).await
    }

    /// Starts `loan-tracker <arguments>` (a command that listens on PORT).
    pub async fn start_command(
        arguments: &[&str],
        vars: &HashMap<String, String>,
        extra: &[(&str, &str)],
    ) -> Service {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("service.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_loan-tracker"))
            .args(arguments)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(vars)
            .envs(extra.iter().copied())
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("LOG_FORMAT", "json")
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .expect("start loan-tracker");
        let service = Service {
            port,
            child: Some(child),
            log,
            _dir: dir,
        };
        let url = service.url("/health/ready");
        let client = reqwest::Client::new();
        let ready = eventually(Duration::from_secs(30), async || {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(
            ready,
            "service on {port} did not become ready: {}",
            service.log_text()
        );
        service
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Runs `loan-tracker healthcheck` against this instance.
    pub async fn healthcheck(&self) -> bool {
        Command::new(env!("CARGO_BIN_EXE_loan-tracker"))
            .arg("healthcheck")
            .env("PORT", self.port.to_string())
            .env("HOST", "0.0.0.0")
            .status()
            .await
            .is_ok_and(|status| status.success())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(Child::id).expect("running")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit
    /// code.
    pub async fn terminate(&mut self) -> Option<i32> {
        let pid = self.pid();
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
        assert!(
            sent.is_ok_and(|status| status.success()),
            "kill -TERM {pid}"
        );
        let mut child = self.child.take()?;
        let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
            .await
            .expect("the service exits after SIGTERM")
            .expect("exit status");
        status.code()
    }
}

/// NGINX run as our own process, from `deploy/nginx.conf` with the
/// upstream servers, the listen address and the file paths adapted.
pub struct Nginx {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

/// The shipped configuration with its paths moved under `dir`, listening
/// on `port` and proxying to `upstreams`.
pub fn adapted_nginx_config(dir: &std::path::Path, port: u16, upstreams: &[u16]) -> String {
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/nginx.conf"))
            .expect("deploy/nginx.conf");
    let servers: String = upstreams
        .iter()
        .map(|upstream| {
            format!("server 127.0.0.1:{upstream} max_fails=2 fail_timeout=5s;\n        ")
        })
        .collect();
    let adapted = shipped
        .replace(
            "server app1:8080 max_fails=2 fail_timeout=5s;\n        server app2:8080 max_fails=2 fail_timeout=5s;\n        ",
            &servers,
        )
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("/var/log/nginx/error.log", &dir.join("error.log").display().to_string())
        .replace("/var/log/nginx/access.log", &dir.join("access.log").display().to_string())
        .replace("/var/run/nginx.pid", &dir.join("nginx.pid").display().to_string())
        .replace("worker_processes auto;", "worker_processes 1;");
    assert!(
        adapted.contains("127.0.0.1:"),
        "the upstream block was not found"
    );
    // Temporary files of a non-root NGINX go to its own directory.
    adapted.replace(
        "http {\n",
        &format!(
            "http {{\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
             fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n",
            d = dir.display()
        ),
    )
}

impl Nginx {
    pub async fn start(upstreams: &[u16]) -> Nginx {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let config = dir.path().join("nginx.conf");
        std::fs::write(&config, adapted_nginx_config(dir.path(), port, upstreams))
            .expect("write nginx.conf");
        let child = Command::new("nginx")
            .args([
                "-p",
                &dir.path().display().to_string(),
                "-c",
                &config.display().to_string(),
            ])
            .args(["-g", "daemon off;"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { port, child, dir };
        let url = nginx.url("/health/live");
        let client = reqwest::Client::new();
        let up = eventually(Duration::from_secs(10), async || {
            client
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(
            up,
            "nginx did not start: {}",
            std::fs::read_to_string(nginx.dir.path().join("error.log")).unwrap_or_default()
        );
        nginx
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Asks the master process to stop (it stops its workers) and waits.
    pub async fn stop(mut self) {
        self.terminate();
        let _ = self.child.wait().await;
    }

    fn terminate(&self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
}

impl Drop for Nginx {
    /// A SIGKILLed master would leave its workers running; SIGTERM makes it
    /// take them down with it.
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A PostgreSQL server of the test's own (initdb into a temporary
/// directory, on a free loopback port), which the test may stop and start.
pub struct PostgresServer {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    dir: tempfile::TempDir,
}

impl PostgresServer {
    /// `None` when PostgreSQL's server binaries are not installed.
    pub async fn start() -> Option<PostgresServer> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .find(|bin| bin.join("pg_ctl").exists())?;
        let dir = tempfile::Builder::new().prefix("lt-pg").tempdir().ok()?;
        let data = dir.path().join("data");
        std::fs::create_dir(&data).ok()?;
        // PostgreSQL refuses to run as root: hand the directory to `postgres`.
        if is_root() {
            let owner = |flag: &str| -> Option<u32> {
                let output = std::process::Command::new("id")
                    .args([flag, "postgres"])
                    .output()
                    .ok()?;
                String::from_utf8_lossy(&output.stdout).trim().parse().ok()
            };
            let (uid, gid) = (owner("-u")?, owner("-g")?);
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).ok()?;
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).ok()?;
        }
        let server = PostgresServer {
            port: free_port(),
            bin,
            data,
            dir,
        };
        let initdb = server
            .run(
                "initdb",
                &[
                    "-D",
                    &server.data.display().to_string(),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-sync",
                ],
            )
            .await;
        assert!(initdb, "initdb failed");
        server.start_again().await;
        Some(server)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    async fn run(&self, program: &str, arguments: &[&str]) -> bool {
        let path = self.bin.join(program).display().to_string();
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", &path]);
            command
        } else {
            Command::new(&path)
        };
        command
            .args(arguments)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .is_ok_and(|status| status.success())
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub async fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        let started = self
            .run(
                "pg_ctl",
                &[
                    "-D",
                    &self.data.display().to_string(),
                    "-o",
                    &options,
                    "-l",
                    &log,
                    "-w",
                    "start",
                ],
            )
            .await;
        assert!(
            started,
            "pg_ctl start failed: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server (`fast`: open sessions are cut).
    pub async fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data.display().to_string(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        )
        .await;
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let path = self.bin.join("pg_ctl").display().to_string();
        let data = self.data.display().to_string();
        let mut command = if is_root() {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--", &path]);
            command
        } else {
            std::process::Command::new(&path)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// The bootstrap admin of the processes these tests start.
pub const ADMIN: [(&str, &str); 3] = [
    ("ADMIN_EMAIL", "root@example.com"),
    ("ADMIN_USERNAME", "root"),
    ("ADMIN_PASSWORD", "root password 1"),
];

/// A thin HTTP client for one base URL.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    base: String,
}

impl Client {
    pub fn new(base: String) -> Client {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            base,
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> reqwest::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    pub async fn expect(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        status: u16,
    ) -> Value {
        let (got, body) = self
            .send(method, path, token, body, None)
            .await
            .unwrap_or_else(|error| panic!("{path}: {error}"));
        assert_eq!(got, status, "{path}: {body}");
        body
    }

    pub async fn token(&self, username: &str, password: &str) -> String {
        let body = self
            .expect(
                reqwest::Method::POST,
                "/auth/login",
                None,
                Some(json!({ "username": username, "password": password })),
                200,
            )
            .await;
        body["accessToken"].as_str().expect("token").to_owned()
    }

    /// Registers `username` (password `<username> password`), has the
    /// bootstrap admin approve a loan of `amount` over `term_months` for
    /// them, and returns the borrower's token and the loan id.
    pub async fn borrower_with_approved_loan(
        &self,
        username: &str,
        amount: &str,
        term_months: u32,
    ) -> (String, String) {
        let password = format!("{username} password");
        self.expect(
            reqwest::Method::POST,
            "/auth/register",
            None,
            Some(json!({ "email": format!("{username}@example.com"), "username": username, "password": password })),
            201,
        )
        .await;
        let borrower = self.token(username, &password).await;
        let admin = self.token(ADMIN[1].1, ADMIN[2].1).await;
        let loan = self
            .expect(
                reqwest::Method::POST,
                "/loans/apply",
                Some(&borrower),
                Some(json!({ "amount": amount, "termMonths": term_months })),
                201,
            )
            .await;
        let loan_id = loan["id"].as_str().expect("loan id").to_owned();
        self.expect(
            reqwest::Method::PATCH,
            &format!("/loans/{loan_id}/approve"),
            Some(&admin),
            None,
            200,
        )
        .await;
        (borrower, loan_id)
    }
}
