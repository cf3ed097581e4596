//! Pause and maintenance through real sockets, on both lanes (`proxy.fast_lane` on and off):
//! a paused route holds requests until resume (or answers 503 `paused` after `max`); a route in
//! maintenance answers 503, a page for browsers and umbra's JSON error otherwise.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde_json::json;
use umbra_core::Config;
use umbra_testkit::{eventually, get, send, Fixture};

fn config(fast_lane: bool, upstream: &Fixture) -> Config {
    let text = format!(
        "[proxy]\nlisten = \"127.0.0.1:0\"\nfast_lane = {fast_lane}\n[log]\naccess = false\n\
         [services.app]\nservers = [\"{}\"]\n\
         [[routes]]\nname = \"app\"\nrule = \"PathPrefix(`/`)\"\nservice = \"app\"\n",
        upstream.url()
    );
    Config::parse(&text, "hold.toml", &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

async fn upstream() -> Fixture {
    Fixture::builder()
        .json("/hello", json!({"hello": "world"}))
        .start()
        .await
}

async fn paused_requests_wait_for_resume(fast_lane: bool) {
    let fx = upstream().await;
    let umbra = support::start(config(fast_lane, &fx));
    assert_eq!(get(format!("{}/hello", umbra.url)).await.status, 200);
    umbra
        .rt
        .pause("app", Duration::from_secs(60), "test")
        .unwrap();
    let held = tokio::spawn(umbra_testkit::get(format!("{}/hello", umbra.url)));
    // Held: after a while it has still not reached the upstream nor been answered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !held.is_finished(),
        "lane fast={fast_lane}: a paused request was answered"
    );
    assert_eq!(fx.hits_for("/hello"), 1, "lane fast={fast_lane}");
    umbra.rt.resume("app", "test").unwrap();
    let answer = held.await.unwrap();
    assert_eq!(
        answer.status,
        200,
        "lane fast={fast_lane}: {}",
        answer.text()
    );
    assert_eq!(answer.json()["hello"], "world");
    assert_eq!(fx.hits_for("/hello"), 2);

    // A pause past its max answers 503 `paused`, and the upstream never sees the request.
    umbra
        .rt
        .pause("app", Duration::from_millis(50), "test")
        .unwrap();
    let answer = get(format!("{}/hello", umbra.url)).await;
    assert_eq!(answer.status, 503, "lane fast={fast_lane}");
    let v = answer.json();
    assert_eq!(v["error"], "paused", "{v}");
    assert!(v["request_id"].is_string(), "{v}");
    assert_eq!(fx.hits_for("/hello"), 2);
    umbra.rt.resume("app", "test").unwrap();
    assert_eq!(get(format!("{}/hello", umbra.url)).await.status, 200);
}

async fn maintenance_answers_a_page_or_json(fast_lane: bool) {
    let fx = upstream().await;
    let umbra = support::start(config(fast_lane, &fx));
    let message = "Upgrading the <database>; back at 10:00".to_string();
    umbra.rt.maintenance("app", message, "test").unwrap();
    let browser = http::Request::get(format!("{}/hello", umbra.url))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let page = send(browser).await;
    assert_eq!(page.status, 503, "lane fast={fast_lane}");
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let html = page.text();
    assert!(
        html.contains("Upgrading the &lt;database&gt;; back at 10:00"),
        "{html}"
    );
    assert!(page.header("x-request-id").is_some());

    let api = get(format!("{}/hello", umbra.url)).await;
    assert_eq!(api.status, 503);
    assert_eq!(api.header("content-type"), Some("application/json"));
    let v = api.json();
    assert_eq!(v["error"], "maintenance", "{v}");
    assert_eq!(v["message"], "Upgrading the <database>; back at 10:00");
    assert_eq!(fx.hits_for("/hello"), 0, "the upstream saw nothing");

    umbra.rt.resume("app", "test").unwrap();
    eventually(Duration::from_secs(5), || async {
        get(format!("{}/hello", umbra.url)).await.status == 200
    })
    .await;
}

#[tokio::test]
async fn pause_and_resume_on_the_fast_lane() {
    paused_requests_wait_for_resume(true).await;
}

#[tokio::test]
async fn pause_and_resume_on_hypers_lane() {
    paused_requests_wait_for_resume(false).await;
}

#[tokio::test]
async fn maintenance_on_the_fast_lane() {
    maintenance_answers_a_page_or_json(true).await;
}

#[tokio::test]
async fn maintenance_on_hypers_lane() {
    maintenance_answers_a_page_or_json(false).await;
}

#[tokio::test]
async fn an_unknown_route_cannot_be_paused() {
    let fx = upstream().await;
    let umbra = support::start(config(true, &fx));
    let e = umbra
        .rt
        .pause("nope", Duration::from_secs(1), "test")
        .unwrap_err();
    assert_eq!(e.to_string(), "no route named `nope`");
}
