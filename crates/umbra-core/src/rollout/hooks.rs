//! Rollout hooks: the state JSON POSTed to a URL (`before_step`, whose 2xx lets the step start;
//! `on_finish`, told the outcome). One HTTP/1.1 request over a fresh connection with a
//! timeout; control plane, never on a request's path.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// How long a hook may take, connection included.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// POSTs `body` to `url`; Ok with the status when it is 2xx, else why not (for the state and
/// the event: "hook answered 403", "hook timed out after 5s", ...).
pub async fn post(url: &str, body: &serde_json::Value) -> Result<u16, String> {
    match tokio::time::timeout(HOOK_TIMEOUT, send(url, body)).await {
        Ok(Ok(status)) if (200..300).contains(&status) => Ok(status),
        Ok(Ok(status)) => Err(format!("hook {url} answered {status}")),
        Ok(Err(e)) => Err(format!("hook {url} failed: {e}")),
        Err(_) => Err(format!(
            "hook {url} timed out after {}s",
            HOOK_TIMEOUT.as_secs()
        )),
    }
}

async fn send(url: &str, body: &serde_json::Value) -> Result<u16, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let authority = uri.authority().ok_or("URL has no host")?.clone();
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = http::Request::post(path)
        .header(http::header::HOST, authority.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "umbra-rollout")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    // Read (and drop) the answer so the server sees a complete exchange.
    let _ = resp.into_body().collect().await;
    Ok(status)
}
