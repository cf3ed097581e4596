//! Config validation: every mistake is named with its key and `file:line:col`.

use umbra_core::Config;

fn errors(text: &str) -> String {
    Config::parse(text, "umbra.toml", &|k| {
        (k == "SET").then(|| "value".to_string())
    })
    .map(|_| "valid".to_string())
    .unwrap_or_else(|e| e.to_string())
}

const SERVICES: &str = r#"
[services.api]
servers = ["http://127.0.0.1:9001"]
"#;

#[test]
fn unknown_key_is_named_with_position() {
    let e = errors("[proxy]\nlisten = \"127.0.0.1:1\"\nlistn = \"x\"\n");
    assert!(e.starts_with("umbra.toml:3:1:"), "{e}");
    assert!(e.contains("unknown field `listn`"), "{e}");
}

#[test]
fn unknown_service_and_duplicate_route() {
    let text = format!(
        "{SERVICES}\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"nope\"\n\n[[routes]]\nname = \"a\"\nrule = \"Path(`/x`)\"\nservice = \"api\"\n"
    );
    let e = errors(&text);
    assert!(
        e.contains("routes[0].service: unknown service `nope`"),
        "{e}"
    );
    assert!(
        e.contains("routes[1].name: duplicate route name `a`"),
        "{e}"
    );
    assert!(e.contains("umbra.toml:8:"), "line of the bad service: {e}");
}

#[test]
fn invalid_rule_shows_column() {
    let text = format!("{SERVICES}\n[[routes]]\nname = \"a\"\nrule = \"Host(`a`) && Pth(`/x`)\"\nservice = \"api\"\n");
    let e = errors(&text);
    assert!(
        e.contains("routes[0].rule: invalid rule at column 14"),
        "{e}"
    );
    // `rule = "` is 8 characters, so rule column 14 sits at file column 8 + 14.
    assert!(e.contains("umbra.toml:7:22:"), "{e}");
}

/// Found by the `config` fuzz target: a rule spread over lines (or spelled with escapes) had
/// its error column counted from the opening quote as if the value were one line of plain
/// characters, pointing past the end of the line.
#[test]
fn rule_columns_are_found_in_the_file_text() {
    let route = |rule: &str| {
        format!("{SERVICES}\n[[routes]]\nname = \"a\"\nrule = {rule}\nservice = \"api\"\n")
    };
    // Multi-line: `Path(`x`)` is refused at its value, rule column 21 on the rule's 2nd line.
    let e = errors(&route("\"\"\"Host(`a`)\n  && Path(`x`)\"\"\""));
    assert!(e.contains("invalid rule at column 21"), "{e}");
    assert!(e.contains("umbra.toml:8:11:"), "{e}");
    // The newline right after `\"\"\"` is not part of the value.
    let e = errors(&route("\"\"\"\nHost(`a`) && Pth(`/x`)\"\"\""));
    assert!(e.contains("invalid rule at column 14"), "{e}");
    assert!(e.contains("umbra.toml:8:14:"), "{e}");
    // An escape takes two characters of the file for one of the rule.
    let e = errors(&route("\"Host(\\\"a\\\") && Pth(`/x`)\""));
    assert!(e.contains("invalid rule at column 14"), "{e}");
    assert!(e.contains("umbra.toml:7:24:"), "{e}");
    // A literal string has no escapes.
    let e = errors(&route("'Host(`a`) && Pth(`/x`)'"));
    assert!(e.contains("umbra.toml:7:22:"), "{e}");
    // After `${VAR}` expansion the rule's columns are not the file's: the value is pointed at.
    let e = errors(&route("\"Host(`${SET}`) && Pth(`/x`)\""));
    assert!(e.contains("invalid rule at column 18"), "{e}");
    assert!(e.contains("umbra.toml:7:8:"), "{e}");
}

#[test]
fn bad_units_and_urls() {
    let e = errors("[proxy]\ntimeout = \"30 parsecs\"\nmax_body = \"ten\"\n[services.api]\nservers = [\"ftp//x\"]\n");
    assert!(e.contains("proxy.timeout"), "{e}");
    assert!(e.contains("proxy.max_body"), "{e}");
    assert!(e.contains("services.api.servers[0]"), "{e}");
    let e = errors(&format!("[proxy]\nheader_timeout = \"10ms\"\n{SERVICES}"));
    assert!(
        e.contains("proxy.header_timeout") && e.contains("at least 100ms"),
        "{e}"
    );
    let e = errors(&format!("[proxy]\nheader_timeout = \"soon\"\n{SERVICES}"));
    assert!(e.contains("proxy.header_timeout"), "{e}");
    let ok = errors(&format!("[proxy]\nheader_timeout = \"5s\"\n{SERVICES}"));
    assert_eq!(ok, "valid");
}

#[test]
fn public_admin_needs_token() {
    let e = errors("[admin]\nlisten = \"0.0.0.0:8081\"\n");
    assert!(e.contains("admin.token"), "{e}");
    assert_eq!(
        errors("[admin]\nlisten = \"0.0.0.0:8081\"\ntoken = \"s3cret\"\n"),
        "valid"
    );
}

#[test]
fn env_expansion() {
    assert_eq!(errors("[admin]\ntoken = \"${SET}\"\n"), "valid");
    let e = errors("[admin]\ntoken = \"${UNSET_VAR}\"\n");
    assert!(e.contains("admin.token") && e.contains("UNSET_VAR"), "{e}");
    assert_eq!(
        errors("[store]\nurl = \"${UNSET_VAR:-sqlite://x.db}\"\n"),
        "valid"
    );
}

#[test]
fn bad_shadow_and_canary_values() {
    let text = format!(
        "{SERVICES}\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\nshadow = {{ service = \"api\", percent = 150 }}\ncanary = {{ service = \"api\", weight = 10, sticky = \"sometimes\" }}\ncompare = {{ ignore = [\"no-slash\"] }}\n"
    );
    let e = errors(&text);
    assert!(e.contains("routes[0].shadow.percent"), "{e}");
    assert!(e.contains("routes[0].canary.sticky"), "{e}");
    assert!(e.contains("routes[0].compare.ignore[0]"), "{e}");
}

#[test]
fn docker_section_is_validated() {
    let ok = errors(
        "[docker]\nendpoint = \"unix:///var/run/docker.sock\"\nnetwork = \"web\"\nproject = \"shop\"\nexposed_by_default = false\n",
    );
    assert_eq!(ok, "valid");
    let e = errors("[docker]\nendpoint = \"docker.sock\"\n");
    assert!(
        e.contains("docker.endpoint: expected `unix:///path/to/docker.sock`"),
        "{e}"
    );
    assert!(e.contains("got `docker.sock`"), "{e}");
    let e = errors("[docker]\nprojet = \"shop\"\n");
    assert!(e.contains("unknown field `projet`"), "{e}");
}

#[test]
fn redact_names_are_checked_and_squashed() {
    let route = |redact: &str| {
        format!("{SERVICES}\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\nredact = {redact}\n")
    };
    let e = errors(&route(
        "{ names = [\"pin\", \"--\", \"42\"], paths = [\"x\"] }",
    ));
    assert!(
        e.contains("routes[0].redact.names[1]: name \"--\" has no letters"),
        "{e}"
    );
    assert!(e.contains("routes[0].redact.names[2]"), "{e}");
    assert!(!e.contains("redact.names[0]"), "{e}");
    assert!(e.contains("routes[0].redact.paths[0]"), "{e}");
    assert!(
        e.contains("umbra.toml:9:28: routes[0].redact.names[1]"),
        "position of the bad name: {e}"
    );
    let e = errors(&route("{ name = [\"pin\"] }"));
    assert!(e.contains("unknown field `name`"), "{e}");

    let text = route("{ headers = [\"X-Session\"], names = [\"PIN_code\", \"session.id\"] }");
    let config = Config::parse(&text, "umbra.toml", &|_| None).expect("valid");
    let redact = &config.routes[0].redact;
    assert_eq!(redact.headers, ["x-session"]);
    assert_eq!(redact.names, ["pincode", "sessionid"]);
}

#[test]
fn admin_hosts_are_host_names() {
    let ok = Config::parse(
        "[admin]\nhosts = [\"Umbra.Internal.\", \"admin.example.com\"]\n",
        "umbra.toml",
        &|_| None,
    )
    .unwrap();
    assert_eq!(ok.admin.hosts, ["umbra.internal", "admin.example.com"]);
    let e =
        errors("[admin]\nhosts = [\"ok.example\", \"umbra:8081\", \"http://x\", \"*.x\", \"\"]\n");
    assert!(e.contains("admin.hosts[1]") && e.contains("port"), "{e}");
    assert!(e.contains("admin.hosts[2]") && e.contains("URL"), "{e}");
    assert!(
        e.contains("admin.hosts[3]") && e.contains("wildcard"),
        "{e}"
    );
    assert!(e.contains("admin.hosts[4]") && e.contains("empty"), "{e}");
    assert!(!e.contains("admin.hosts[0]"), "{e}");
    let e = errors("[admin]\nhostz = [\"x\"]\n");
    assert!(e.contains("unknown field `hostz`"), "{e}");
}

#[test]
fn edge_keys_are_checked_and_named() {
    let e = errors(
        "[proxy]\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\", \"proxy.internal\"]\nidle_timeout = \"10ms\"\n",
    );
    assert!(!e.contains("trusted_proxies[0]"), "{e}");
    assert!(
        e.contains("proxy.trusted_proxies[1]") && e.contains("CIDR"),
        "{e}"
    );
    assert!(e.contains("proxy.trusted_proxies[2]"), "{e}");
    assert!(
        e.contains("proxy.idle_timeout: must be at least 100ms"),
        "{e}"
    );

    let route = |extra: &str| {
        format!("{SERVICES}\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n{extra}\n")
    };
    let e = errors(&route("upgrades = [\"websocket\", \"h2c\", \"a b\"]"));
    assert!(
        e.contains("routes[0].upgrades[1]") && e.contains("h2c"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].upgrades[2]") && e.contains("not a protocol"),
        "{e}"
    );
    assert!(!e.contains("upgrades[0]"), "{e}");

    let ok = Config::parse(
        &route("upgrades = [\"WebSocket\"]\nunderscores_in_headers = true"),
        "umbra.toml",
        &|_| None,
    )
    .expect("valid");
    assert_eq!(ok.routes[0].upgrades, ["websocket"]);
    assert!(ok.routes[0].underscores_in_headers);
    let plain = Config::parse(&route(""), "umbra.toml", &|_| None).expect("valid");
    assert_eq!(
        plain.routes[0].upgrades,
        ["websocket"],
        "WebSocket by default"
    );
    assert!(
        !plain.proxy.trusts("127.0.0.1".parse().unwrap()),
        "no peer trusted by default"
    );
    let trusted = Config::parse(
        "[proxy]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        "umbra.toml",
        &|_| None,
    )
    .expect("valid");
    assert!(
        trusted.proxy.trusts("::ffff:127.0.0.1".parse().unwrap()),
        "v4-mapped peers too"
    );
}

/// `https://` and `h2c://` servers are accepted (the port defaulting to the scheme's); a
/// service's `ca` must be a readable PEM file and is for `https://` servers only.
#[test]
fn upstream_schemes_and_the_service_ca() {
    let cfg = Config::parse(
        "[services.a]\nservers = [\"https://a.internal\", \"h2c://b.internal\"]\n",
        "umbra.toml",
        &|_| None,
    )
    .expect("https and h2c servers are valid");
    let servers = &cfg.services["a"].servers;
    assert_eq!(servers[0].url(), "https://a.internal:443");
    assert_eq!(servers[1].url(), "h2c://b.internal:80");

    let e = errors("[services.a]\nservers = [\"ftp://x:1\"]\n");
    assert!(e.contains("services.a.servers[0]"), "{e}");
    assert!(e.contains("`http`, `https` or `h2c` (got `ftp`)"), "{e}");

    let e =
        errors("[services.a]\nservers = [\"https://127.0.0.1:1\"]\nca = \"/no/such/dir/ca.pem\"\n");
    assert!(e.starts_with("umbra.toml:3:"), "{e}");
    assert!(
        e.contains("services.a.ca: cannot read `/no/such/dir/ca.pem`"),
        "{e}"
    );

    let e = errors("[services.a]\nservers = [\"h2c://127.0.0.1:1\"]\nca = \"/etc/hostname\"\n");
    assert!(e.starts_with("umbra.toml:3:"), "{e}");
    assert!(
        e.contains("services.a.ca: a CA applies to `https://` servers only, and `h2c://127.0.0.1:1` is not one"),
        "{e}"
    );
}

#[test]
fn typed_noise_is_on_by_default_and_a_route_can_turn_it_off() {
    let route = |compare: &str| {
        format!(
            "{SERVICES}\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n{compare}\n"
        )
    };
    let typed = |text: &str| {
        let c = Config::parse(text, "umbra.toml", &|_| None).expect("valid");
        c.routes[0].compare.typed_noise
    };
    assert!(typed(&route("")));
    assert!(!typed(&route("compare = { typed_noise = false }")));
    // A wrong type is pointed at by position (the value of `typed_noise`).
    let e = errors(&route("compare = { typed_noise = \"no\" }"));
    assert!(e.starts_with("umbra.toml:9:27:"), "{e}");
    assert!(e.contains("expected a boolean"), "{e}");
}

#[test]
fn rollout_mistakes_are_named_with_position() {
    let route = |rollout: &str| {
        format!(
            "{SERVICES}\n[services.v2]\nservers = [\"http://127.0.0.1:9002\"]\n\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\nrollout = {rollout}\n"
        )
    };
    let ok = route(r#"{ service = "v2", steps = ["shadow 1s", "10% 1s", "100%"] }"#);
    assert_eq!(errors(&ok), "valid");
    let e = errors(&route(
        r#"{ service = "v2", steps = ["canary 1s", "120% 1s", "100%"] }"#,
    ));
    assert!(
        e.contains("routes[0].rollout.steps[0]: `canary 1s` is not a step"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].rollout.steps[1]:") && e.contains("at most 100"),
        "{e}"
    );
    assert!(
        e.contains("umbra.toml:12:38:"),
        "line and column of the step: {e}"
    );
    let e = errors(&route(
        r#"{ service = "v2", max_diff_rate = -0.5, failure_limit = -1 }"#,
    ));
    assert!(
        e.contains("routes[0].rollout.max_diff_rate: -0.5 is not a share"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].rollout.failure_limit: -1 must be at least 1"),
        "{e}"
    );
    let e = errors(&route(r#"{ service = "api" }"#));
    assert!(
        e.contains("routes[0].rollout.service: `api` is already the route's service"),
        "{e}"
    );
    let e = errors(&route(r#"{ service = "v3" }"#));
    assert!(
        e.contains("routes[0].rollout.service: unknown service `v3`"),
        "{e}"
    );
}

#[test]
fn route_headers_are_checked_and_named() {
    let route = |extra: &str| {
        format!("{SERVICES}\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n{extra}\n")
    };
    let e = errors(&route(
        "headers = { request = { set = { \"X Bad\" = \"1\", \"Host\" = \"h\" }, remove = [\"X-Forwarded-For\"] }, \
         response = { set = { \"X-Ok\" = \"a\\nb\" }, remove = [\"Content-Length\"], sett = {} } }",
    ));
    assert!(e.contains("unknown field `sett`"), "{e}");
    let e = errors(&route(
        "headers = { request = { set = { \"X Bad\" = \"1\", \"Host\" = \"h\" }, remove = [\"X-Forwarded-For\"] }, \
         response = { set = { \"X-Ok\" = \"a\\nb\" }, remove = [\"Content-Length\"] } }",
    ));
    assert!(
        e.contains("routes[0].headers.request.set.X Bad: `X Bad` is not a header name"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].headers.request.set.Host: `Host` is written by umbra"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].headers.request.remove[0]: `X-Forwarded-For` is written by umbra"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].headers.response.set.X-Ok:") && e.contains("not a header value"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].headers.response.remove[0]: `Content-Length`"),
        "{e}"
    );
    assert!(
        e.contains("umbra.toml:9:43: routes[0].headers.request.set.X Bad"),
        "{e}"
    );

    let ok = Config::parse(
        &route(
            "headers = { response = { set = { \"X-Frame-Options\" = \"DENY\" } }, request = {} }",
        ),
        "umbra.toml",
        &|_| None,
    )
    .expect("valid");
    let h = ok.routes[0].headers.as_ref().expect("headers");
    assert!(h.request.is_none(), "an empty side is skipped");
    assert_eq!(h.response.as_ref().unwrap().set[0].0, "x-frame-options");
    let plain = Config::parse(&route(""), "umbra.toml", &|_| None).expect("valid");
    assert!(plain.routes[0].headers.is_none());
}

#[test]
fn rate_limits_are_checked_and_named() {
    let route = |extra: &str| {
        format!("{SERVICES}\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\n{extra}\n")
    };
    let e = errors(&route(
        "rate_limit = { rps = 0, burst = 0, key = \"cookie:x\" }",
    ));
    assert!(
        e.contains("routes[0].rate_limit.rps: 0 is not a rate"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].rate_limit.burst: must be at least 1"),
        "{e}"
    );
    assert!(
        e.contains("routes[0].rate_limit.key: `cookie:x` is not a rate-limit key"),
        "{e}"
    );
    assert!(e.contains("umbra.toml:9:"), "{e}");
    let e = errors(&route(
        "rate_limit = { rps = 5, burst = 10, key = \"header:X Key\" }",
    ));
    assert!(
        e.contains("routes[0].rate_limit.key: `X Key` is not a header name"),
        "{e}"
    );
    let e = errors(&route("rate_limit = { rps = 5 }"));
    assert!(e.contains("missing field `burst`"), "{e}");

    let ok = Config::parse(
        &route("rate_limit = { rps = 50, burst = 100, key = \"header:X-Api-Key\" }"),
        "umbra.toml",
        &|_| None,
    )
    .expect("valid");
    let limit = ok.routes[0].rate_limit.as_ref().expect("a limit");
    assert_eq!((limit.rps, limit.burst), (50.0, 100));
    assert_eq!(
        limit.key,
        umbra_core::config::RateKey::Header(http::HeaderName::from_static("x-api-key"))
    );
}

#[test]
fn access_log_file_keys_are_checked() {
    let e = errors("[log]\nfile = \"/tmp/x/\"\nmax_size = \"10 parsecs\"\n");
    assert!(e.contains("log.file: `/tmp/x/` is not a file path"), "{e}");
    assert!(e.contains("log.max_size:"), "{e}");
    let e = errors("[log]\nkeep = 2\n");
    assert!(e.contains("log.file: `max_size` and `keep`"), "{e}");
    let ok = Config::parse(
        "[log]\nfile = \"/data/access.log\"\nmax_size = \"1MiB\"\nkeep = 5\n",
        "umbra.toml",
        &|_| None,
    )
    .expect("valid");
    let f = ok.log.file.expect("a file");
    assert_eq!((f.max_size, f.keep), (1024 * 1024, 5));
    let f = Config::parse("[log]\nfile = \"a.log\"\n", "umbra.toml", &|_| None)
        .expect("valid")
        .log
        .file
        .expect("a file");
    assert_eq!((f.max_size, f.keep), (10 * 1024 * 1024, 3), "the defaults");
}

#[test]
fn the_compose_example_is_valid_and_uses_the_edge_keys() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/compose/umbra.toml"
    );
    let text = std::fs::read_to_string(path).expect("the compose example");
    let config = Config::parse(&text, "umbra.toml", &|k| {
        (k == "UMBRA_ADMIN_TOKEN").then(|| "t".to_string())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let route = &config.routes[0];
    let set = &route
        .headers
        .as_ref()
        .unwrap()
        .response
        .as_ref()
        .unwrap()
        .set;
    assert!(set.iter().any(|(n, _)| n == "strict-transport-security"));
    assert_eq!(route.rate_limit.as_ref().unwrap().burst, 100);
    assert_eq!(config.log.file.unwrap().keep, 3);
}

#[test]
fn shadow_takes_a_list_of_candidates_each_named_in_errors() {
    let services = format!(
        "{SERVICES}[services.v2]\nservers = [\"http://127.0.0.1:9002\"]\n[services.v3]\nservers = [\"http://127.0.0.1:9003\"]\n"
    );
    let route = |shadow: &str| {
        format!("{services}\n[[routes]]\nname = \"a\"\nrule = \"PathPrefix(`/`)\"\nservice = \"api\"\nshadow = {shadow}\n")
    };
    let text = route(
        "[{ service = \"v2\" }, { service = \"v3\", percent = 20, methods = [\"GET\", \"POST\"] }]",
    );
    let cfg = Config::parse(&text, "umbra.toml", &|_| None).expect("valid");
    let shadows = &cfg.routes[0].shadows;
    let got: Vec<(&str, f64, usize)> = shadows
        .iter()
        .map(|s| (s.service.as_str(), s.percent, s.methods.len()))
        .collect();
    assert_eq!(got, [("v2", 100.0, 3), ("v3", 20.0, 2)]);

    // A list's keys carry the index, at the right line and column.
    let e = errors(&route(
        "[\n  { service = \"v2\" },\n  { service = \"v3\", percent = 150 },\n]",
    ));
    assert!(
        e.contains("routes[0].shadow[1].percent: 150 is not a percentage"),
        "{e}"
    );
    assert!(e.starts_with("umbra.toml:15:31:"), "{e}");
    let e = errors(&route("[{ service = \"v2\" }, { service = \"ghost\" }]"));
    assert!(
        e.contains("routes[0].shadow[1].service: unknown service `ghost`"),
        "{e}"
    );
    let e = errors(&route(
        "[{ service = \"v2\" }, { service = \"v2\", percent = 5 }]",
    ));
    assert!(
        e.contains("routes[0].shadow[1].service: `v2` is already a shadow candidate of this route"),
        "{e}"
    );
    let e = errors(&route("[{ service = \"v2\", percnt = 5 }]"));
    assert!(e.contains("unknown field `percnt`"), "{e}");
    let e = errors(&route("\"v2\""));
    assert!(
        e.contains("a shadow table `{ service = ... }` or a list of them"),
        "{e}"
    );
    // One candidate is still a table, and is written back as one.
    let one =
        Config::parse(&route("{ service = \"v2\" }"), "umbra.toml", &|_| None).expect("valid");
    let back = serde_json::to_value(&one.routes[0].raw.shadow).unwrap();
    assert_eq!(back, serde_json::json!({ "service": "v2" }));
    let two = serde_json::to_value(&cfg.routes[0].raw.shadow).unwrap();
    assert_eq!(two[1]["service"], "v3");
}
