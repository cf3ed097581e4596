//! The web UI in a real headless Chromium, driven through chromedriver, against a live umbra
//! (proxy, fixture upstreams, health checks, SQLite store, admin router; see [`stack`]) with
//! traffic flowing. Screenshots at desktop and phone size land in `target/ui-screenshots/`;
//! at phone size every page is checked not to scroll sideways.
//!
//! One browser at a time (the machine has two cores): each test holds [`ONE_BROWSER`].

mod driver;
mod stack;

use std::time::Duration;

use fantoccini::Locator;
use serde_json::Value;
use umbra_core::config::RawRoute;
use umbra_core::discovery::{ContainerStatus, DiscoveryStatus, LabelError};
use umbra_diff::Verdict;

use driver::{Browser, DESKTOP};

static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOKEN: &str = "t0ken-for-tests";

/// Sets an input's value by typing, after clearing it.
async fn type_into(b: &Browser, css: &str, text: &str) {
    let el = b.find(css).await;
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

async fn click(b: &Browser, css: &str) {
    b.find(css).await.click().await.unwrap();
}

/// Waits for a `confirm()` dialog and returns its text.
async fn dialog_text(b: &Browser) -> String {
    for _ in 0..100 {
        if let Ok(t) = b.client.get_alert_text().await {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no confirmation dialog appeared");
}

/// Marks the current document, to tell a live update from a reload.
async fn mark_document(b: &Browser) {
    b.js("window.__umbraMark = 1; return true;").await;
}

async fn still_same_document(b: &Browser) -> bool {
    b.js("return window.__umbraMark === 1;").await == Value::Bool(true)
}

fn stat(route: &str, stat: &str) -> String {
    format!(
        "document.querySelector('tr[data-route=\"{route}\"] [data-stat=\"{stat}\"]').textContent"
    )
}

fn dot(scope: &str, server: &str) -> String {
    format!("document.querySelector('{scope} .dot[data-server=\"{server}\"]').className")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_follows_live_traffic_and_health() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = driver::start("overview_follows_live_traffic_and_health", DESKTOP).await else {
        return;
    };
    let s = stack::start(None).await;
    s.wait_comparisons(Verdict::Different, 1).await;
    b.goto(&s.url("/")).await;
    mark_document(&b).await;
    let first = b
        .js(&format!("return Number({});", stat("api", "requests")))
        .await
        .as_f64()
        .unwrap();
    // The numbers move without a reload: requests, requests per second, the diff rate.
    b.wait_js(
        "the request count to grow",
        &format!("return Number({}) > {first} + 10;", stat("api", "requests")),
    )
    .await;
    b.wait_js(
        "a request rate",
        &format!(
            "return /^[0-9]+\\.[0-9]$/.test({0}) && Number({0}) > 0;",
            stat("api", "rps")
        ),
    )
    .await;
    b.wait_js(
        "a diff rate above zero",
        &format!("return {} !== '0.0%';", stat("api", "diff_rate")),
    )
    .await;
    b.wait_js(
        "p50 latencies of primary and shadow",
        &format!(
            "return {} !== '—' && {} !== '—';",
            stat("api", "p50_ms"),
            stat("api", "shadow_p50_ms")
        ),
    )
    .await;
    assert!(b.text("#live").await.starts_with("live · updated"));

    // One dot per server; every one is up.
    let down = s.v1[1].url();
    for server in [s.v1[0].url(), down.clone(), s.v2.url()] {
        b.wait_js(
            &format!("{server} to be up"),
            &format!("return {} === 'dot up';", dot("#routes", &server)),
        )
        .await;
    }
    // A replica that fails its health check turns red in both tables, without a reload.
    s.v1[1].set_healthy(false);
    b.wait_js(
        "the failing replica's dot to turn red",
        &format!(
            "return {} === 'dot down' && {} === 'dot down';",
            dot("#routes", &down),
            dot("#services", &down)
        ),
    )
    .await;
    let label = b
        .find(&format!("#routes .dot[data-server=\"{down}\"]"))
        .await
        .attr("aria-label")
        .await
        .unwrap();
    assert_eq!(label.as_deref(), Some(format!("{down} unhealthy").as_str()));
    assert_eq!(b.text("[data-available=\"v1\"]").await, "1/2");
    assert!(
        b.js(&format!(
            "return {} === 'dot up';",
            dot("#routes", &s.v1[0].url())
        ))
        .await
            == Value::Bool(true)
    );
    assert!(still_same_document(&b).await, "the overview reloaded");
    b.screenshots("overview").await;

    s.v1[1].set_healthy(true);
    b.wait_js(
        "the replica's dot to turn green again",
        &format!("return {} === 'dot up';", dot("#services", &down)),
    )
    .await;
    assert!(s.sent.load(std::sync::atomic::Ordering::Relaxed) > 0);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_then_shift_promote_and_audit() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = driver::start("compare_then_shift_promote_and_audit", DESKTOP).await else {
        return;
    };
    let s = stack::start(None).await;
    s.wait_comparisons(Verdict::Different, 3).await;

    // The list, filtered to differences; open the newest.
    b.goto(&s.url("/ui/comparisons?route=api&verdict=different"))
        .await;
    b.screenshots("comparisons").await;
    let first = b.find("table a[href^=\"/ui/comparisons/\"]").await;
    let href = first.attr("href").await.unwrap().unwrap();
    first.click().await.unwrap();
    b.wait_path(&href).await;

    // The changed field is highlighted on both sides; its neighbours are not.
    let price = |side: &str| format!(".side.{side} span.diff[data-path=\"/item/price\"]");
    assert_eq!(b.text(&price("primary")).await.trim(), "\"price\": 10,");
    assert_eq!(b.text(&price("shadow")).await.trim(), "\"price\": 12,");
    for side in ["primary", "shadow"] {
        let marked = b
            .find(&price(side))
            .await
            .css_value("background-color")
            .await
            .unwrap();
        let plain = b
            .find(&format!(".side.{side} span[data-path=\"/item/name\"]"))
            .await
            .css_value("background-color")
            .await
            .unwrap();
        assert_ne!(marked, plain, "{side}: the difference is not highlighted");
        assert_ne!(marked, "rgba(0, 0, 0, 0)", "{side}");
    }
    assert!(b
        .client
        .find_all(Locator::Css(".side span.diff[data-path=\"/item/name\"]"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        b.text("table.diffs tbody tr td:first-child").await,
        "/item/price"
    );
    assert!(b.text("button.copy").await.contains("copy as curl"));
    b.screenshots("comparison").await;

    // To the route page, and move the canary weight with the control.
    click(&b, "main a[href=\"/ui/routes/api\"]").await;
    b.wait_path("/ui/routes/api").await;
    type_into(&b, "#canary-service", "v2").await;
    type_into(&b, "#canary-weight", "25").await;
    mark_document(&b).await;
    click(
        &b,
        "form[data-url=\"/api/routes/api/canary\"] button[type=submit]",
    )
    .await;
    b.wait_js(
        "the canary fact to read v2 (25%)",
        "return [...document.querySelectorAll('dl.facts dd')].some(d => d.textContent.startsWith('v2 (25%)'));",
    )
    .await;
    let canary = s
        .runtime
        .load()
        .route("api")
        .unwrap()
        .spec
        .raw
        .canary
        .clone();
    assert_eq!(
        canary.map(|c| (c.service, c.weight)),
        Some(("v2".into(), 25.0))
    );
    assert_eq!(
        b.find("#canary-weight").await.prop("value").await.unwrap(),
        Some("25".into())
    );
    // Traffic now reaches v2 as the canary, not only as the shadow.
    let canary_requests = || {
        s.runtime
            .load()
            .route("api")
            .unwrap()
            .stats
            .canary_requests
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    umbra_testkit::eventually(Duration::from_secs(10), || async { canary_requests() > 0 }).await;
    b.screenshots("route").await;

    // Promote asks first; "cancel" changes nothing.
    click(&b, "button[data-url=\"/api/routes/api/promote\"]").await;
    let question = dialog_text(&b).await;
    assert_eq!(
        question,
        "Promote v2 to be the service of route api? (v1 is kept for a rollback.)"
    );
    b.client.dismiss_alert().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.runtime.load().route("api").unwrap().spec.service, "v1");
    // "OK" promotes: v2 serves the route and v1 is kept for a rollback.
    click(&b, "button[data-url=\"/api/routes/api/promote\"]").await;
    dialog_text(&b).await;
    b.client.accept_alert().await.unwrap();
    b.wait_js(
        "the service fact to read v2",
        "return document.querySelectorAll('dl.facts dd')[1].textContent.startsWith('v2');",
    )
    .await;
    {
        let snap = s.runtime.load();
        let r = snap.route("api").unwrap();
        assert_eq!(r.spec.service, "v2");
        assert_eq!(r.previous_service.as_deref(), Some("v1"));
    }

    // The audit log shows both changes, newest first, made from the UI.
    click(&b, "header a[href=\"/ui/events\"]").await;
    b.wait_path("/ui/events").await;
    let rows = b
        .js("return [...document.querySelectorAll('main table tbody tr')].map(tr => [...tr.cells].map(td => td.textContent));")
        .await;
    let rows = rows.as_array().unwrap();
    let kinds: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r[2].as_str().unwrap(),
                r[3].as_str().unwrap(),
                r[4].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        &kinds[..2],
        &[("promote", "api", "ui"), ("canary", "api", "ui")],
        "{rows:?}"
    );
    b.screenshots("events").await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_lead_the_route_page_and_open_their_comparisons() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = driver::start("findings_lead_the_route_page", DESKTOP).await else {
        return;
    };
    let s = stack::start(None).await;
    s.wait_comparisons(Verdict::Different, 3).await;

    // The overview shows the route's worst severity: v2's price is a changed value.
    b.goto(&s.url("/")).await;
    assert_eq!(
        b.text("tr[data-route=\"api\"] td.worst .badge.severity")
            .await,
        "MEDIUM"
    );

    // The route page leads with the one finding; the field table waits behind a click.
    b.goto(&s.url("/ui/routes/api")).await;
    let items = b
        .js("return [...document.querySelectorAll('#findings li.finding')].map(li => li.textContent);")
        .await;
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    let text = items[0].as_str().unwrap();
    assert!(
        text.contains("/item/price changed value on every GET /api/items/{id}"),
        "{text}"
    );
    let first_section = b
        .js("return document.querySelector('main section, main details').id;")
        .await;
    assert_eq!(first_section, "findings", "the findings come first");
    let table_shown = "const d = document.querySelector('#field-table'); \
        return d.open && document.querySelector('table.fields').checkVisibility();";
    assert_eq!(b.js(table_shown).await, Value::Bool(false));
    click(&b, "#field-table > summary").await;
    b.wait_js("the field table to show", table_shown).await;
    b.screenshots("route-findings").await;

    // "its comparisons" opens the list filtered to the finding: only its comparisons.
    let id = b
        .js("return document.querySelector('#findings li.finding').dataset.finding;")
        .await;
    let id = id.as_str().unwrap().to_owned();
    click(&b, "#findings a.finding-comparisons").await;
    b.wait_path(&format!("/ui/comparisons?finding={id}")).await;
    let endpoints = b
        .js("return [...document.querySelectorAll('#comparisons tbody tr')].map(tr => tr.querySelector('[data-label=endpoint]').textContent);")
        .await;
    let endpoints = endpoints.as_array().unwrap();
    assert!(!endpoints.is_empty());
    assert!(
        endpoints.iter().all(|e| e == "GET /api/items/{id}"),
        "{endpoints:?}"
    );
    assert_eq!(
        b.find("#f-finding").await.prop("value").await.unwrap(),
        Some(id)
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_in_with_the_token() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = driver::start("signs_in_with_the_token", DESKTOP).await else {
        return;
    };
    let s = stack::start(Some(TOKEN)).await;
    b.goto(&s.url("/ui/login")).await;
    b.screenshots("login").await;
    // A wrong token is refused on the page.
    type_into(&b, "#token", "not-it").await;
    click(&b, "form button[type=submit]").await;
    b.wait_js(
        "the refusal",
        "return !!document.querySelector('p.error[role=alert]');",
    )
    .await;
    assert_eq!(b.text("p.error[role=alert]").await, "wrong token");
    // The right one signs in once: the overview and its live refresh (API calls on the cookie
    // with the CSRF header) work, and scripts cannot read the cookie.
    type_into(&b, "#token", TOKEN).await;
    click(&b, "form button[type=submit]").await;
    b.wait_path("/").await;
    b.wait_js(
        "the live refresh",
        "return document.getElementById('live').textContent.startsWith('live · updated');",
    )
    .await;
    assert!(
        b.js("return document.cookie.includes('umbra_session');")
            .await
            == Value::Bool(false)
    );
    // A change from the UI passes the auth layer on the cookie.
    b.goto(&s.url("/ui/routes/api")).await;
    type_into(&b, "#shadow-percent", "50").await;
    click(
        &b,
        "form[data-url=\"/api/routes/api/shadow\"] button[type=submit]",
    )
    .await;
    b.wait_js(
        "the shadow fact to read v2 (50%)",
        "return [...document.querySelectorAll('dl.facts dd')].some(d => d.textContent.startsWith('v2 (50%)'));",
    )
    .await;
    let shadow = s
        .runtime
        .load()
        .route("api")
        .unwrap()
        .spec
        .raw
        .shadow
        .clone();
    assert_eq!(shadow.and_then(|s| s.0[0].percent), Some(50.0));
    b.close().await;
}

/// The error line of a route-form field.
fn field_error(id: &str) -> String {
    format!("return document.getElementById('rf-{id}-error').textContent;")
}

/// Submits the route form, waits for the error line of `field` and returns it.
async fn submit_expecting_error(b: &Browser, field: &str) -> String {
    click(b, "form.route-form button[type=submit]").await;
    b.wait_js(
        &format!("the {field} error"),
        &format!("return document.getElementById('rf-{field}-error').textContent !== '';"),
    )
    .await;
    b.js(&field_error(field))
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_made_edited_and_deleted_in_the_ui() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = driver::start("routes_are_made_edited_and_deleted_in_the_ui", DESKTOP).await
    else {
        return;
    };
    let s = stack::start(None).await;
    b.goto(&s.url("/")).await;
    click(&b, "details.new-route > summary").await;
    // The name of a file route is taken: the 409 lands next to the name.
    type_into(&b, "#rf-name", "api").await;
    type_into(&b, "#rf-rule", "PathPrefix(`/orders`)").await;
    type_into(&b, "#rf-service", "v1").await;
    let msg = submit_expecting_error(&b, "name").await;
    assert!(msg.contains("is defined by file"), "{msg}");
    assert_eq!(b.js("return document.activeElement.id;").await, "rf-name");
    type_into(&b, "#rf-name", "orders").await;
    type_into(&b, "#rf-rule", "PathPrefix(`/orders`").await;
    type_into(&b, "#rf-service", "v1").await;
    // The 422 lands next to the rule, which is marked invalid and focused.
    let msg = submit_expecting_error(&b, "rule").await;
    assert!(msg.starts_with("rule: invalid rule at column"), "{msg}");
    assert_eq!(b.js(&field_error("service")).await, "");
    assert_eq!(
        b.find("#rf-rule")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    assert_eq!(b.js("return document.activeElement.id;").await, "rf-rule");
    b.screenshots("route-form-error").await;

    // Fixed rule, a shadow with a percent out of range: that error goes to the percent.
    type_into(&b, "#rf-rule", "PathPrefix(`/orders`)").await;
    type_into(&b, "#rf-shadow-service", "v2").await;
    type_into(&b, "#rf-shadow-percent", "150").await;
    let msg = submit_expecting_error(&b, "shadow-percent").await;
    assert!(msg.contains("percent"), "{msg}");
    assert_eq!(b.js(&field_error("rule")).await, "");
    assert!(s.runtime.load().route("orders").is_none());

    type_into(&b, "#rf-shadow-percent", "50").await;
    click(&b, "form.route-form button[type=submit]").await;
    b.wait_path("/ui/routes/orders").await;
    assert!(b.text("dl.facts").await.contains("v2 (50%)"));
    {
        let snap = s.runtime.load();
        let r = snap.route("orders").unwrap();
        assert_eq!(r.spec.source.as_str(), "api");
        assert_eq!(
            r.spec.raw.shadow.as_ref().and_then(|s| s.0[0].percent),
            Some(50.0)
        );
    }
    let persisted = s.store.list_routes().await.unwrap();
    assert!(
        persisted.iter().any(|r| r.name == "orders"),
        "not persisted"
    );

    // A canary set with the control survives an edit of the route through the form.
    type_into(&b, "#canary-service", "v2").await;
    type_into(&b, "#canary-weight", "10").await;
    click(
        &b,
        "form[data-url=\"/api/routes/orders/canary\"] button[type=submit]",
    )
    .await;
    b.wait_js(
        "the canary",
        "return [...document.querySelectorAll('dl.facts dd')].some(d => d.textContent.startsWith('v2 (10%)'));",
    )
    .await;
    click(&b, "details.edit-route > summary").await;
    assert_eq!(
        b.find("#rf-name")
            .await
            .attr("readonly")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    type_into(&b, "#rf-priority", "50").await;
    click(&b, "form.route-form button[type=submit]").await;
    b.wait_js(
        "the new priority",
        "return [...document.querySelectorAll('dl.facts dt')].some(dt => dt.textContent === 'priority' && dt.nextElementSibling.textContent === '50');",
    )
    .await;
    {
        let snap = s.runtime.load();
        let raw: &RawRoute = &snap.route("orders").unwrap().spec.raw;
        assert_eq!(raw.priority, Some(50));
        assert_eq!(raw.canary.as_ref().map(|c| c.weight), Some(10.0));
        assert_eq!(raw.shadow.as_ref().and_then(|s| s.0[0].percent), Some(50.0));
    }
    b.screenshots("route-api").await;

    // Delete asks first, then returns to the overview without the route.
    click(&b, "details.edit-route > summary").await;
    click(
        &b,
        "button[data-method=\"DELETE\"][data-url=\"/api/routes/orders\"]",
    )
    .await;
    assert!(dialog_text(&b).await.contains("Delete route orders?"));
    b.client.accept_alert().await.unwrap();
    b.wait_path("/").await;
    assert!(b
        .client
        .find_all(Locator::Css("tr[data-route=\"orders\"]"))
        .await
        .unwrap()
        .is_empty());
    assert!(s.runtime.load().route("orders").is_none());

    // A file route is read-only, and a runtime change to it is marked as an override.
    b.goto(&s.url("/ui/routes/api")).await;
    assert!(b
        .text("p.note")
        .await
        .contains("Defined in the config file"));
    assert!(b
        .client
        .find_all(Locator::Css(
            "form.route-form, button[data-method=\"DELETE\"][data-url=\"/api/routes/api\"]"
        ))
        .await
        .unwrap()
        .is_empty());
    type_into(&b, "#shadow-percent", "40").await;
    click(
        &b,
        "form[data-url=\"/api/routes/api/shadow\"] button[type=submit]",
    )
    .await;
    b.wait_js(
        "the override mark",
        "return !!document.querySelector('dl.facts .badge.override');",
    )
    .await;
    let shadow_fact = b
        .js("return [...document.querySelectorAll('dl.facts dt')].find(dt => dt.textContent === 'shadow').nextElementSibling.textContent;")
        .await;
    assert_eq!(
        shadow_fact, "v2 (40%) runtime override (file: v2 (100%))",
        "{shadow_fact}"
    );
    b.screenshots("route-file-override").await;
    b.close().await;
}

fn discovery() -> DiscoveryStatus {
    DiscoveryStatus {
        enabled: true,
        connected: true,
        endpoint: "unix:///var/run/docker.sock".into(),
        last_error: None,
        last_sync_at_ms: Some(1_700_000_000_000),
        project: None,
        project_from: None,
        projects_seen: Vec::new(),
        notice: None,
        containers: vec![
            ContainerStatus {
                id: "3f2a9c1b7d4e5f60718293a4".into(),
                name: "shop-api-v2-1".into(),
                state: "running".into(),
                health: Some("healthy".into()),
                in_rotation: true,
                address: Some("http://172.18.0.5:8080".into()),
                network: Some("shop_default".into()),
                services: vec!["api-v2".into()],
                routes: vec!["api".into()],
                errors: vec![],
            },
            ContainerStatus {
                id: "9e8d7c6b5a4f3e2d1c0b".into(),
                name: "shop-worker-1".into(),
                state: "running".into(),
                health: None,
                in_rotation: false,
                address: None,
                network: None,
                services: vec![],
                routes: vec![],
                errors: vec![
                    LabelError {
                        label: "umbra.shadow.percent".into(),
                        message: "expected a number from 0 to 100, got `lots`".into(),
                    },
                    LabelError {
                        label: "-".into(),
                        message: "the container is on no network umbra can reach (set traefik.docker.network)".into(),
                    },
                ],
            },
        ],
    }
}

/// The seed's workflow: a route with a primary and a shadow target URL, made in the form
/// alone; the form makes the two services, and traffic reaches both targets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_to_target_urls_is_made_in_the_form() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = driver::start("a_route_to_target_urls_is_made_in_the_form", DESKTOP).await else {
        return;
    };
    let s = stack::start(None).await;
    let (primary, shadow) = (
        umbra_testkit::Fixture::builder()
            .json("/preview/hi", serde_json::json!({"v": 1}))
            .start()
            .await,
        umbra_testkit::Fixture::builder()
            .json("/preview/hi", serde_json::json!({"v": 2}))
            .start()
            .await,
    );
    b.goto(&s.url("/")).await;
    click(&b, "details.new-route > summary").await;
    type_into(&b, "#rf-name", "preview").await;
    type_into(&b, "#rf-rule", "PathPrefix(`/preview`)").await;
    // A URL that is no server: the service's 422 lands next to the service field.
    type_into(&b, "#rf-service", "ftp://127.0.0.1:1").await;
    let msg = submit_expecting_error(&b, "service").await;
    assert!(
        msg.starts_with("servers[0]:") && msg.contains("http"),
        "{msg}"
    );
    assert!(s.runtime.load().route("preview").is_none());

    type_into(&b, "#rf-service", &primary.url()).await;
    type_into(&b, "#rf-shadow-service", &shadow.url()).await;
    click(&b, "form.route-form button[type=submit]").await;
    b.wait_path("/ui/routes/preview").await;
    {
        let snap = s.runtime.load();
        let r = snap.route("preview").expect("the route is in force");
        assert_eq!(r.spec.service, "preview-primary");
        assert_eq!(r.spec.shadows[0].service, "preview-shadow");
        let url = |svc: &str| snap.service(svc).unwrap().spec.servers[0].url();
        assert_eq!(url("preview-primary"), primary.url());
        assert_eq!(url("preview-shadow"), shadow.url());
    }
    let stored: Vec<String> = s
        .store
        .list_routes()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    for key in [
        "preview",
        "service:preview-primary",
        "service:preview-shadow",
    ] {
        assert!(
            stored.iter().any(|n| n == key),
            "{key} not stored: {stored:?}"
        );
    }
    let answer = umbra_testkit::get(format!("{}/preview/hi", s.proxy)).await;
    assert_eq!(answer.json()["v"], 1);
    umbra_testkit::eventually(Duration::from_secs(10), || async {
        shadow.requests().iter().any(|r| r.path() == "/preview/hi")
    })
    .await;
    b.screenshots("route-from-urls").await;

    // Maintenance from the route page: the proxy answers 503 with the message; resume opens.
    type_into(&b, "#hold-message", "Back at noon").await;
    click(&b, "form.hold button[type=submit]").await;
    assert!(dialog_text(&b).await.contains("503 until resume"));
    b.client.accept_alert().await.unwrap();
    b.wait_js(
        "the maintenance state",
        "return document.getElementById('hold-state').textContent.includes('Back at noon');",
    )
    .await;
    let answer = umbra_testkit::get(format!("{}/preview/hi", s.proxy)).await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.json()["message"], "Back at noon");
    click(&b, "button[data-url=\"/api/routes/preview/resume\"]").await;
    b.wait_js(
        "the open state",
        "return document.getElementById('hold-state').textContent === 'Requests flow.';",
    )
    .await;
    assert_eq!(
        umbra_testkit::get(format!("{}/preview/hi", s.proxy))
            .await
            .status,
        200
    );
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_control_has_an_accessible_name_and_fits_a_phone() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = driver::start("every_control_has_an_accessible_name", DESKTOP).await else {
        return;
    };
    let s = stack::start(Some(TOKEN)).await;
    s.runtime.set_discovery(discovery());
    s.wait_comparisons(Verdict::Different, 1).await;
    let id = s
        .store
        .list(&umbra_store::ListQuery {
            verdict: Some(Verdict::Different),
            ..Default::default()
        })
        .await
        .unwrap()
        .items[0]
        .id;
    s.runtime
        .put_route(
            RawRoute {
                name: "orders".into(),
                rule: "PathPrefix(`/orders`)".into(),
                service: "v1".into(),
                ..Default::default()
            },
            "test",
        )
        .unwrap();

    b.goto(&s.url("/ui/login")).await;
    let missing = b.unnamed_controls().await;
    assert!(
        missing.is_empty(),
        "/ui/login: controls without a name: {missing:#?}"
    );
    type_into(&b, "#token", TOKEN).await;
    click(&b, "form button[type=submit]").await;
    b.wait_path("/").await;

    let pages = [
        ("overview-discovery", "/#discovery".to_string()),
        ("route-file", "/ui/routes/api".into()),
        ("route-api-edit", "/ui/routes/orders".into()),
        ("comparisons-all", "/ui/comparisons".into()),
        ("comparison-detail", format!("/ui/comparisons/{id}")),
        ("events-all", "/ui/events".into()),
    ];
    for (name, path) in pages {
        b.goto(&s.url(&path)).await;
        // Open every disclosure so that the controls inside count too.
        b.js(
            "document.querySelectorAll('details').forEach(d => d.open = true); \
              if (location.hash) { document.querySelector(location.hash).scrollIntoView(); } \
              return true;",
        )
        .await;
        let missing = b.unnamed_controls().await;
        assert!(
            missing.is_empty(),
            "{path}: controls without a name: {missing:#?}"
        );
        let count = b
            .js("return document.querySelectorAll('button, input, select, a[href]').length;")
            .await;
        assert!(count.as_u64().unwrap() > 3, "{path}: {count} controls");
        b.screenshots(name).await;
    }
    // The discovery section names the label mistakes.
    b.goto(&s.url("/")).await;
    let errors = b.text("#discovery tr.has-errors").await;
    assert!(errors.contains("umbra.shadow.percent"), "{errors}");
    assert!(
        errors.contains("expected a number from 0 to 100"),
        "{errors}"
    );
    // The check itself finds a control without a name.
    b.js("const i = document.createElement('input'); i.id = 'nameless'; document.querySelector('main').append(i); return true;")
        .await;
    let missing = b.unnamed_controls().await;
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].contains("nameless"), "{missing:?}");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rollout_timeline_is_paused_and_aborted_from_the_route_page() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = driver::start("the_rollout_timeline_is_paused_and_aborted", DESKTOP).await else {
        return;
    };
    let s = stack::start(None).await;
    let spec = umbra_core::config::RawRollout {
        service: "v2".into(),
        steps: Some(vec!["shadow 1h".into(), "100%".into()]),
        // v2's price differs on purpose: let this rollout run rather than be judged.
        max_diff_rate: Some(1.0),
        min_requests: Some(5),
        interval: Some("200ms".into()),
        ..Default::default()
    };
    s.rollouts.start("api", spec, "api").await.unwrap();
    b.goto(&s.url("/ui/routes/api")).await;
    b.wait_js(
        "the timeline to show the running shadow step",
        "return document.querySelector('.rollout .badge.rollout-running') !== null \
         && document.querySelector('.rollout .step-current').textContent.includes('shadow 1h');",
    )
    .await;
    b.screenshots("rollout").await;
    click(&b, "button[data-url=\"/api/routes/api/rollout/pause\"]").await;
    b.wait_js(
        "the rollout to read paused",
        "return document.querySelector('.rollout .badge.rollout-paused') !== null;",
    )
    .await;
    click(&b, "button[data-url=\"/api/routes/api/rollout/abort\"]").await;
    assert!(dialog_text(&b)
        .await
        .contains("All traffic returns to the primary"));
    b.client.accept_alert().await.unwrap();
    b.wait_js(
        "the rollout to read aborted, with the pause by the UI in its history",
        "return document.querySelector('.rollout .badge.rollout-aborted') !== null \
         && [...document.querySelectorAll('.rollout .decision')].some(d => d.textContent.includes('paused') && d.textContent.includes('by ui'));",
    )
    .await;
    assert!(s
        .runtime
        .load()
        .route("api")
        .unwrap()
        .spec
        .shadows
        .is_empty());
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_side_by_side_and_one_stopped_from_the_route_page() {
    let _one = ONE_BROWSER.lock().await;
    let Some(b) = driver::start("candidates_side_by_side", DESKTOP).await else {
        return;
    };
    let s = stack::start(None).await;
    // A second candidate beside v2: v1 itself, which answers like the primary.
    let candidate = |service: &str| umbra_core::config::RawShadow {
        service: service.into(),
        percent: Some(100.0),
        ..Default::default()
    };
    let both = umbra_core::config::RawShadows(vec![candidate("v2"), candidate("v1")]);
    s.runtime.set_shadow("api", Some(both), "test").unwrap();
    s.wait_comparisons(Verdict::Different, 3).await;

    b.goto(&s.url("/ui/routes/api")).await;
    let cards = "return [...document.querySelectorAll('.candidates .candidate')]\
        .map(c => [c.dataset.candidate, c.querySelectorAll('li[data-finding]').length]);";
    b.wait_js(
        "v2's card to list its finding",
        "return [...document.querySelectorAll('.candidates .candidate[data-candidate=v2] li[data-finding]')].length === 1;",
    )
    .await;
    assert_eq!(b.js(cards).await, serde_json::json!([["v2", 1], ["v1", 0]]));
    b.screenshots("candidates").await;

    // Stopping v1 asks first, then leaves v2 shadowing alone.
    click(
        &b,
        ".candidate[data-candidate=v1] button[data-url=\"/api/routes/api/shadow?service=v1\"]",
    )
    .await;
    assert!(dialog_text(&b).await.contains("Stop shadowing to v1"));
    b.client.accept_alert().await.unwrap();
    b.wait_js(
        "the candidates section to go (one candidate left)",
        "return document.querySelector('.candidates') === null;",
    )
    .await;
    let left: Vec<String> = s
        .runtime
        .load()
        .route("api")
        .unwrap()
        .spec
        .shadows
        .iter()
        .map(|c| c.service.clone())
        .collect();
    assert_eq!(left, ["v2"]);
    b.close().await;
}
