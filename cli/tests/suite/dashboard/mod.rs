//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (chromedriver) against a real `keel ui` on a temporary store, with the loopback
//! model server of `support`.

mod browser;
mod serve;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::Project;

#[path = "../../../../dashboard/tests/support/generate.rs"]
pub mod generate;

const INSTALL: &str = "the dashboard's browser tests need Chromium and its WebDriver: `apt-get install -y chromium chromium-driver` (Debian), then run the tests again";

/// Chromium's flags for a headless run as root with no network chatter.
const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
];

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path).chain([
        PathBuf::from("/usr/bin"),
        PathBuf::from("/usr/lib/chromium"),
    ]) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// A running `keel ui` on the project's store.
pub struct Ui {
    child: Child,
    stderr: Option<BufReader<std::process::ChildStderr>>,
    /// The URL it printed, with the token.
    pub url: String,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Ui {
    pub fn start(project: &Project) -> Self {
        let mut child = project
            .keel()
            .args(["ui", "--addr", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.contains("/?token="),
            "keel ui printed {url:?}"
        );
        let base = url.split("/?token=").next().unwrap().to_owned();
        let stderr = child.stderr.take().map(BufReader::new);
        Self {
            child,
            stderr,
            url,
            base,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it to exit; its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        self.child.wait().unwrap().code()
    }

    /// The first line it wrote to stderr.
    pub fn stderr_line(&mut self) -> String {
        let mut line = String::new();
        if let Some(err) = &mut self.stderr {
            err.read_line(&mut line).unwrap();
        }
        line
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium under chromedriver.
pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn start() -> Self {
        let driver_path =
            find(&["chromedriver"]).unwrap_or_else(|| panic!("chromedriver is missing: {INSTALL}"));
        let chromium = find(&["chromium", "chromium-browser", "google-chrome"])
            .unwrap_or_else(|| panic!("Chromium is missing: {INSTALL}"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // In a process group of its own, so Chromium goes with it (see Drop).
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver ({e}): {INSTALL}"));
        // chromedriver is ready when it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start listening on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium, "args": args }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("cannot start headless Chromium ({e}): {INSTALL}"));
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(Duration::from_secs(60)),
                Some(Duration::from_secs(60)),
                None,
            ))
            .await
            .unwrap();
        Self {
            driver,
            client,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Waits (on DOM mutations, not a timer) until `selector` matches an element
    /// whose text contains `text`.
    pub async fn wait_text(&self, selector: &str, text: &str) {
        let script = r#"
            const [sel, text, done] = arguments;
            const ok = () => [...document.querySelectorAll(sel)].some((n) => n.textContent.includes(text));
            if (ok()) return done(true);
            const obs = new MutationObserver(() => { if (ok()) { obs.disconnect(); done(true); } });
            obs.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
        "#;
        let found = self
            .client
            .execute_async(script, vec![json!(selector), json!(text)])
            .await;
        if found.is_err() {
            let body = self.js("return document.body.innerText").await;
            panic!("`{selector}` never showed {text:?}; the page shows:\n{body}");
        }
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    pub async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Saves a screenshot when `KEEL_UI_SCREENSHOTS` names a directory.
    pub async fn screenshot(&self, name: &str) {
        if let Some(dir) = std::env::var_os("KEEL_UI_SCREENSHOTS") {
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
        }
    }

    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.wait();
    }
}
