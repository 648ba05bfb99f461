//! Just enough of the W3C WebDriver protocol to drive Debian's headless
//! Chromium through `chromedriver`: open pages, find elements, type,
//! click, read text, run a script, take screenshots, and read cookies and
//! downloads. Each [`Chromium`] starts its own driver on a free loopback
//! port, with a profile and a download folder of its own, and stops it
//! when dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The key WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Marks the page shown, so that the next one can be told from it.
const MARK_PAGE: &str = "window.pageBeforeAction = true;";
const NEXT_PAGE_LOADED: &str =
    "return window.pageBeforeAction === undefined && document.readyState === 'complete';";
/// WebDriver's code for the Enter key.
const ENTER: &str = "\u{E007}";

fn driver_binary() -> PathBuf {
    std::env::var_os("CHROMEDRIVER").map_or_else(|| PathBuf::from(CHROMEDRIVER), PathBuf::from)
}

fn browser_binary() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from(CHROMIUM), PathBuf::from)
}

/// Whether Chromium and its driver are installed here.
pub fn available() -> bool {
    driver_binary().is_file() && browser_binary().is_file()
}

/// A headless Chromium session.
pub struct Chromium {
    http: reqwest::Client,
    session: String,
    driver: tokio::process::Child,
    profile: tempfile::TempDir,
}

impl Chromium {
    pub async fn start() -> Chromium {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("address").port()
        };
        let driver = tokio::process::Command::new(driver_binary())
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let ready = crate::support::eventually(Duration::from_secs(20), async || {
            http.get(format!("{base}/status"))
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
        })
        .await;
        assert!(ready, "chromedriver did not come up");
        let profile = tempfile::tempdir().expect("profile folder");
        let downloads = profile.path().join("downloads");
        std::fs::create_dir_all(&downloads).expect("download folder");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser_binary(),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,1024", "--lang=en-US",
                    format!("--user-data-dir={}", profile.path().join("profile").display()),
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            },
        } } });
        let answer: Value = http
            .post(format!("{base}/session"))
            .json(&capabilities)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("session answer");
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        Chromium {
            http,
            session: format!("{base}/session/{session}"),
            driver,
            profile,
        }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        request = request.json(&body.unwrap_or_else(|| json!({})));
        let answer: Value = request
            .send()
            .await
            .expect("webdriver answers")
            .json()
            .await
            .expect("webdriver JSON");
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!("webdriver {path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    async fn get(&self, path: &str) -> Value {
        let answer: Value = self
            .http
            .get(format!("{}{path}", self.session))
            .send()
            .await
            .expect("webdriver answers")
            .json()
            .await
            .expect("webdriver JSON");
        answer["value"].clone()
    }

    pub async fn open(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The element matching the CSS `selector`; panics when there is none.
    pub async fn find(&self, selector: &str) -> String {
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": selector })),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {selector}: {found}"))
            .to_owned()
    }

    /// Sends the element `action` (`click`, `clear`).
    async fn act_on(&self, element: &str, action: &str) {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/{action}"),
            None,
        )
        .await;
    }

    /// Types `text` into the element matching `selector`, after clearing it.
    pub async fn fill(&self, selector: &str, text: &str) {
        let element = self.find(selector).await;
        self.act_on(&element, "clear").await;
        self.keys(selector, text).await;
    }

    /// Presses Enter in the element (submitting its form) and waits for the
    /// page it leads to, as [`Chromium::click`] does.
    pub async fn press_enter(&self, selector: &str) {
        self.execute(MARK_PAGE, json!([])).await;
        self.keys(selector, ENTER).await;
        self.wait_for_next_page(&format!("Enter in {selector}"))
            .await;
    }

    /// Sends keys (text, or keys such as [`ENTER`]) to the element.
    pub async fn keys(&self, selector: &str, text: &str) {
        let element = self.find(selector).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Clicks the element, which leads to another page (every click in
    /// the console does: a link or a form's button), and waits until that
    /// page has loaded.
    pub async fn click(&self, selector: &str) {
        let element = self.find(selector).await;
        self.execute(MARK_PAGE, json!([])).await;
        self.act_on(&element, "click").await;
        self.wait_for_next_page(&format!("clicking {selector}"))
            .await;
    }

    /// Waits until the page marked with [`MARK_PAGE`] has given way to a
    /// new one, fully loaded.
    async fn wait_for_next_page(&self, what: &str) {
        let loaded = crate::support::eventually(Duration::from_secs(15), async || {
            self.execute(NEXT_PAGE_LOADED, json!([])).await == json!(true)
        })
        .await;
        assert!(loaded, "{what} led to no page");
    }

    /// The rendered text of the element matching `selector`.
    pub async fn text(&self, selector: &str) -> String {
        let element = self.find(selector).await;
        self.get(&format!("/element/{element}/text"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The property `name` of the element (`value` of an input).
    pub async fn property(&self, selector: &str, name: &str) -> Value {
        let element = self.find(selector).await;
        self.get(&format!("/element/{element}/property/{name}"))
            .await
    }

    /// Runs `script` in the page (with `arguments` as its arguments).
    pub async fn execute(&self, script: &str, arguments: Value) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": arguments })),
        )
        .await
    }

    /// Sets an input's value as a date picker would.
    pub async fn set_value(&self, selector: &str, value: &str) {
        self.execute(
            "document.querySelector(arguments[0]).value = arguments[1];",
            json!([selector, value]),
        )
        .await;
    }

    pub async fn cookies(&self) -> Vec<Value> {
        self.get("/cookie")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Saves a PNG of the window as `name.png` in `folder`.
    pub async fn screenshot(&self, folder: &Path, name: &str) -> PathBuf {
        let data = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().expect("base64 PNG"))
            .expect("valid base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::create_dir_all(folder).expect("screenshot folder");
        let path = folder.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    /// Clicks the download link matching `selector` and reads the file it
    /// saves as `name`, once it is complete.
    pub async fn download(&self, selector: &str, name: &str) -> String {
        let element = self.find(selector).await;
        self.act_on(&element, "click").await;
        let path = self.profile.path().join("downloads").join(name);
        let arrived =
            crate::support::eventually(Duration::from_secs(15), async || path.is_file()).await;
        assert!(arrived, "{name} was not downloaded");
        std::fs::read_to_string(&path).expect("download readable")
    }

    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        let _ = self.driver.kill().await;
    }
}
