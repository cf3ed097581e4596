//! A real headless Chromium driven through chromedriver (WebDriver, via fantoccini): started on
//! an ephemeral port per test, with its own profile directory, and stopped with its whole
//! process group. Without `chromium`/`chromedriver` a test is skipped loudly, except under
//! `CI=true`, where it fails. Screenshots go to `target/ui-screenshots/` (with
//! `UI_SCREENSHOTS_FULL=1`, whole-page ones too).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// Desktop and phone viewports for screenshots and layout checks.
pub const DESKTOP: (u32, u32) = (1280, 800);
pub const PHONE: (u32, u32) = (390, 844);

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A browser session and the chromedriver behind it.
pub struct Browser {
    pub client: Client,
    /// Taken by [`Browser::close`].
    driver: Option<tokio::process::Child>,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After a failed assertion the session was never closed: stop chromedriver and the
        // Chromium it started (they share the process group we gave chromedriver).
        if let Some(d) = &self.driver {
            kill_group(d);
        }
    }
}

/// Kills the process group of a child we started (and have not reaped yet, so its id is
/// still ours).
fn kill_group(child: &tokio::process::Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Starts chromedriver and a headless Chromium session at `size`, or None (after a loud
/// message) when they are not installed. Under `CI=true` a missing browser fails the test.
pub async fn start(test: &str, size: (u32, u32)) -> Option<Browser> {
    let (Some(chromium), Some(chromedriver)) = (
        on_path(&["chromium", "chromium-browser"]),
        on_path(&["chromedriver"]),
    ) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{test}: chromium and chromedriver must be on PATH when CI=true");
        }
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        let bar = "!".repeat(76);
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "\n{bar}\n!!! SKIPPED {test}: `chromium` and `chromedriver` are not both on PATH !!!\n\
!!! (Debian: apt-get install chromium chromium-driver)\n{bar}\n\n"
            )
            .as_bytes(),
        );
        return None;
    };
    let mut last = String::new();
    // The port is picked free and then given to chromedriver; retry if another process took it.
    for _ in 0..3 {
        let port = umbra_testkit::free_addr().port();
        let mut driver = tokio::process::Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        if !ready(&url).await {
            last = format!("chromedriver did not answer on port {port}");
            let _ = driver.kill().await;
            continue;
        }
        let profile = tempfile::tempdir().unwrap();
        match session(&url, &chromium, profile.path(), size).await {
            Ok(client) => {
                let browser = Browser {
                    client,
                    driver: Some(driver),
                    _profile: profile,
                };
                browser.resize(size).await;
                return Some(browser);
            }
            Err(e) => {
                last = e;
                let _ = driver.kill().await;
            }
        }
    }
    panic!("{test}: could not start a Chromium session: {last}");
}

async fn ready(url: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = umbra_testkit::try_get(format!("{url}/status")).await {
            if r.status == 200 && r.json()["value"]["ready"] == true {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn session(
    url: &str,
    chromium: &Path,
    profile: &Path,
    (w, h): (u32, u32),
) -> Result<Client, String> {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                format!("--window-size={w},{h}"),
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut builder = ClientBuilder::new(connector);
    builder.capabilities(caps);
    tokio::time::timeout(Duration::from_secs(60), builder.connect(url))
        .await
        .map_err(|_| "no session within 60 s".to_string())?
        .map_err(|e| e.to_string())
}

/// WebDriver "Get Computed Label": the accessible name Chromium computes for an element.
#[derive(Debug)]
struct ComputedLabel(String);

impl WebDriverCompatibleCommand for ComputedLabel {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/element/{}/computedlabel",
            session.unwrap_or_default(),
            self.0
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::GET, None)
    }
}

impl Browser {
    /// Makes the viewport `w`×`h` CSS pixels (the window is larger by whatever the browser
    /// keeps around the page).
    pub async fn resize(&self, (w, h): (u32, u32)) {
        self.client.set_window_size(w, h).await.unwrap();
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];")
            .await;
        let (iw, ih) = (
            inner[0].as_u64().unwrap_or(w.into()) as u32,
            inner[1].as_u64().unwrap_or(h.into()) as u32,
        );
        if (iw, ih) != (w, h) {
            self.client
                .set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih))
                .await
                .unwrap();
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element `{css}`: {e}"))
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Waits (up to 15 s) until `script` returns true, polling every 100 ms.
    pub async fn wait_js(&self, what: &str, script: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if self.js(script).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the browser's URL path (and query) is `path`.
    pub async fn wait_path(&self, path: &str) {
        let script = format!(
            "return location.pathname + location.search === {};",
            Value::from(path)
        );
        self.wait_js(&format!("the page {path}"), &script).await;
    }

    /// Whether the page scrolls sideways at the current size.
    pub async fn scrolls_sideways(&self) -> bool {
        self.js("return document.documentElement.scrollWidth > window.innerWidth;")
            .await
            == Value::Bool(true)
    }

    /// Saves a full-viewport screenshot as `target/ui-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Screenshots at desktop and phone size, checking at phone size that the page does not
    /// scroll sideways; leaves the window at desktop size.
    pub async fn screenshots(&self, name: &str) {
        self.resize(PHONE).await;
        let wide = self
            .js(
                "return [document.documentElement.scrollWidth, window.innerWidth, \
                 [...document.querySelectorAll('body *')] \
                   .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5) \
                   .slice(0, 5).map(e => e.outerHTML.slice(0, 120))];",
            )
            .await;
        self.screenshot(&format!("{name}-phone")).await;
        assert!(
            !self.scrolls_sideways().await,
            "{name} scrolls sideways at phone width: [scrollWidth, innerWidth, elements past the edge] = {wide:#}"
        );
        self.full_page(&format!("{name}-phone-full"), PHONE).await;
        self.resize(DESKTOP).await;
        self.screenshot(&format!("{name}-desktop")).await;
        self.full_page(&format!("{name}-desktop-full"), DESKTOP)
            .await;
    }

    /// With `UI_SCREENSHOTS_FULL=1`, also a screenshot of the whole page at this width (for
    /// people reviewing the layout); the viewport is restored afterwards.
    async fn full_page(&self, name: &str, (w, h): (u32, u32)) {
        if std::env::var_os("UI_SCREENSHOTS_FULL").is_none() {
            return;
        }
        let height = self
            .js("return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .unwrap_or(h.into()) as u32;
        self.resize((w, height.clamp(h, 6000))).await;
        self.screenshot(name).await;
        self.resize((w, h)).await;
    }

    /// Every displayed button, input, select, textarea, link, summary and image-role element
    /// on the page without an accessible name (as Chromium computes it), as outer HTML.
    pub async fn unnamed_controls(&self) -> Vec<String> {
        let controls = self
            .client
            .find_all(Locator::Css(
                "button, input:not([type=hidden]), select, textarea, a[href], summary, [role=img]",
            ))
            .await
            .unwrap();
        let mut missing = Vec::new();
        for el in controls {
            // Hidden controls (a closed disclosure) are out of reach and have no name yet.
            if !el.is_displayed().await.unwrap_or(false) {
                continue;
            }
            let label = self
                .client
                .issue_cmd(ComputedLabel(el.element_id().to_string()))
                .await
                .unwrap_or_else(|e| panic!("computedlabel: {e}"));
            if label.as_str().is_none_or(|l| l.trim().is_empty()) {
                let html = el.html(false).await.unwrap_or_default();
                missing.push(html.chars().take(200).collect());
            }
        }
        missing
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        if let Some(mut d) = self.driver.take() {
            kill_group(&d);
            let _ = d.wait().await;
        }
    }
}

/// `target/ui-screenshots` of this workspace (or of `$CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("ui-screenshots")
}
