//! Browser tests: the real binary (`pi-payments serve`, embedded defaults) and a headless
//! Chromium driven over WebDriver (`chromedriver` + fantoccini), for pages such as `/demo`.
//!
//! - [`ServeProcess`]: `pi-payments serve` in a temp directory on a free port, configured by
//!   environment variables only (its flags are not part of this contract); its output goes to
//!   `serve.log` there and is shown when a wait fails.
//! - [`Browser`]: chromedriver on a free port and one headless Chromium session with a temp
//!   profile; screenshots go to `<target>/screenshots/<test>-<step>.png`.
//! - [`BrowserTest`]: both, plus waits on the step log (`#log li[data-step]`) of the demo page.
//!
//! Everything started here is killed on drop (chromedriver with its whole process group, so
//! Chromium too), also when the test fails. Without chromedriver/Chromium the tests are skipped
//! with a message, unless `CI` is set: then they fail (CI must run them; `scripts/test`
//! installs both with apt).

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a page step or a service start may take (a deadline, not a measurement).
pub const STEP_DEADLINE: Duration = Duration::from_secs(90);

/// `APP_API_TOKEN` of the service: tests read payments and orders through the API with it.
pub const APP_API_TOKEN: &str = "browser-test-backend-token-0123456789";

/// A port nobody listens on right now (the OS's pick; released for the child to bind).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `name` on `PATH`, as an absolute path.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Where Cargo puts build output: `CARGO_TARGET_DIR` (relative to the workspace root), else
/// `target/` next to the root manifest.
pub fn target_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Kill a process group (the leader's pid) with SIGKILL; best effort.
fn kill_group(leader: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{leader}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `pi-payments serve` on embedded defaults (SQLite ledger and queue, the built-in pi-sim).
pub struct ServeProcess {
    /// The API's base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// A client for checks through the API.
    pub http: reqwest::Client,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServeProcess {
    /// Start it with `extra_env` on top of the defaults and wait until `/healthz` answers.
    pub async fn start(extra_env: &[(&str, &str)]) -> ServeProcess {
        // reqwest is built without a default TLS provider.
        pi_payments_core::pi_client::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("serve.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_pi-payments"));
        command.arg("serve").env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("ledger.db").display()),
            )
            .env("APP_API_TOKEN", APP_API_TOKEN);
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut serve = ServeProcess {
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            child,
            dir,
        };
        let deadline = Instant::now() + STEP_DEADLINE;
        loop {
            if let Some(status) = serve.child.try_wait().unwrap() {
                panic!("pi-payments serve exited ({status}):\n{}", serve.log());
            }
            let health = serve
                .http
                .get(format!("{}/healthz", serve.url))
                .send()
                .await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return serve;
            }
            assert!(
                Instant::now() < deadline,
                "pi-payments serve did not answer /healthz:\n{}",
                serve.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What it printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// `GET path` as the app's backend (`APP_API_TOKEN`): status and JSON body.
    pub async fn get_as_backend(&self, path: &str) -> (u16, serde_json::Value) {
        let answer = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(APP_API_TOKEN)
            .send()
            .await
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or_default())
    }
}

/// chromedriver and one headless Chromium session.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    /// Screenshots are named `<test>-<step>.png`.
    test: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, which Chromium's processes are in too.
        kill_group(self.driver.id());
        let _ = self.driver.wait();
    }
}

/// Where chromedriver and Chromium are: `CHROMEDRIVER` / `CHROME_BIN`, else `PATH`.
fn browser_binaries() -> Option<(PathBuf, PathBuf)> {
    let driver = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .or_else(|| on_path("chromedriver"))?;
    let chrome = std::env::var_os("CHROME_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            ["chromium", "chromium-browser", "google-chrome"]
                .into_iter()
                .find_map(on_path)
        })?;
    Some((driver, chrome))
}

impl Browser {
    /// chromedriver and a headless Chromium for `test`; `None` (after saying why and how to
    /// install them) when they are missing and `CI` is unset.
    pub async fn start(test: &str) -> Option<Browser> {
        pi_payments_core::pi_client::install_crypto_provider();
        let Some((driver_bin, chrome_bin)) = browser_binaries() else {
            let advice = "chromedriver and Chromium are not installed: `apt-get install chromium chromium-driver` (scripts/test installs them), or set CHROMEDRIVER and CHROME_BIN";
            assert!(
                std::env::var_os("CI").is_none(),
                "{advice} (CI is set, so this fails instead of skipping)"
            );
            eprintln!("skipping {test}: {advice}");
            return None;
        };
        let port = free_port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver_bin.display()));
        let profile = tempfile::tempdir().unwrap();
        let mut browser_guard = DriverGuard(Some(driver));
        let webdriver = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + STEP_DEADLINE;
        loop {
            let status = http.get(format!("{webdriver}/status")).send().await;
            if status.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver ({}) did not come up on port {port}",
                driver_bin.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": chrome_bin,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("Chromium ({}) did not start: {e}", chrome_bin.display()));
        Some(Browser {
            client,
            test: test.to_string(),
            driver: browser_guard.0.take().unwrap(),
            _profile: profile,
        })
    }

    /// Save the page as `<target>/screenshots/<test>-<step>.png`; returns the path.
    pub async fn screenshot(&self, step: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        let dir = target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}-{step}.png", self.test));
        std::fs::write(&path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// End the session (Chromium quits); the drop then stops chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// Kills chromedriver if the start fails half-way.
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(mut driver) = self.0.take() {
            kill_group(driver.id());
            let _ = driver.wait();
        }
    }
}

/// A browser test of a page of the service: the service, the browser, and waits on the
/// page's step log.
pub struct BrowserTest {
    /// The service under test.
    pub serve: ServeProcess,
    /// The browser looking at it.
    pub browser: Browser,
}

impl BrowserTest {
    /// The service with `extra_env` and a browser for `test`; `None` when the test is skipped
    /// (see [`Browser::start`]).
    pub async fn start(test: &str, extra_env: &[(&str, &str)]) -> Option<BrowserTest> {
        let browser = Browser::start(test).await?;
        let serve = ServeProcess::start(extra_env).await;
        Some(BrowserTest { serve, browser })
    }

    /// Open `path` of the service.
    pub async fn open(&self, path: &str) {
        self.browser
            .client
            .goto(&format!("{}{path}", self.serve.url))
            .await
            .unwrap();
    }

    /// Click the element `css` matches (waiting for it to appear).
    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        element.click().await.unwrap();
    }

    /// The first element `css` matches, once there is one; on timeout the test fails with the
    /// page's log, a screenshot and the service's output.
    pub async fn wait_for(&self, css: &str) -> Element {
        match self
            .browser
            .client
            .wait()
            .at_most(STEP_DEADLINE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => self.fail(&format!("no {css} on the page: {e}")).await,
        }
    }

    /// The `n`-th (from 1) entry of step `step` in the page's log (`#log li[data-step]`);
    /// fails at once with the log when an `error` step appears first.
    pub async fn wait_for_step(&self, step: &str, n: usize) -> Element {
        let deadline = Instant::now() + STEP_DEADLINE;
        loop {
            let client = &self.browser.client;
            let errors = client
                .find_all(Locator::Css("#log li[data-step='error']"))
                .await
                .unwrap();
            if let Some(error) = errors.first() {
                let text = error.text().await.unwrap_or_default();
                return self
                    .fail(&format!(
                        "the page logged an error waiting for {step}: {text}"
                    ))
                    .await;
            }
            let mut found = client
                .find_all(Locator::Css(&format!("#log li[data-step='{step}']")))
                .await
                .unwrap();
            if found.len() >= n {
                return found.swap_remove(n - 1);
            }
            if Instant::now() > deadline {
                return self
                    .fail(&format!("step {step} (#{n}) never showed up"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The page's step log: `(step, text)` in order.
    pub async fn steps(&self) -> Vec<(String, String)> {
        let mut steps = Vec::new();
        for item in self
            .browser
            .client
            .find_all(Locator::Css("#log li"))
            .await
            .unwrap()
        {
            let step = item.attr("data-step").await.unwrap().unwrap_or_default();
            steps.push((step, item.text().await.unwrap_or_default()));
        }
        steps
    }

    async fn fail<T>(&self, why: &str) -> T {
        let shot = self.browser.screenshot("failure").await;
        let log: Vec<String> = self
            .steps()
            .await
            .into_iter()
            .map(|(step, text)| format!("  [{step}] {text}"))
            .collect();
        panic!(
            "{why}\npage log:\n{}\nscreenshot: {}\nservice output:\n{}",
            log.join("\n"),
            shot.display(),
            self.serve.log()
        );
    }

    /// Close the browser, then stop the service (also done on drop, less politely).
    pub async fn finish(self) {
        self.browser.close().await;
        drop(self.serve);
    }
}
