//! The store conformance suite: every case is written once against `Arc<dyn ComparisonStore>`
//! and runs against SQLite (a temp file) and a real PostgreSQL (a private throwaway cluster,
//! or `$UMBRA_TEST_PG_URL`). Plus a PostgreSQL fault test (server stopped and restarted under a
//! running writer) and a printed write-throughput measurement.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use umbra_diff::{Comparison, DiffKind, Difference, Observation, Verdict};
use umbra_store::{
    ComparisonStore, ListQuery, NewEvent, StoreWriter, StoredRoute, Totals, WriterConfig,
};

use support::{comparison, diff, Harness, T0};

/// Runs each case against both backends: `sqlite::<case>` and `postgres::<case>`.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = crate::support::sqlite();
                    crate::cases::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = crate::support::postgres().await else { return };
                    crate::cases::$case(&h).await;
                    h.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    roundtrip_full_and_counted_only,
    list_filters_and_cursor_paging,
    stats_aggregate_counts_noise_and_field_keys,
    latency_samples_newest_first,
    retention_deletes_in_batches_and_keeps_aggregates,
    routes_put_list_delete,
    rollouts_put_replace_and_survive_a_restart,
    events_append_and_page,
    ignore_rules_add_list_delete,
    restart_keeps_everything,
    migrations_are_idempotent,
    writer_samples_same_and_flushes_on_shutdown,
    throughput_write_batch_512,
    finding_filter_lists_only_its_comparisons,
    replay_rebuilds_findings_inputs_and_retention_drops_tags,
);

/// Ids of a full listing, following `next` to the end.
async fn all_ids(store: &Arc<dyn ComparisonStore>, mut q: ListQuery) -> Vec<i64> {
    let mut ids = Vec::new();
    loop {
        let page = store.list(&q).await.expect("list");
        assert!(page.items.len() <= q.clamped_limit() as usize);
        ids.extend(page.items.iter().map(|s| s.id));
        match page.next {
            Some(n) => {
                assert_eq!(
                    Some(n),
                    page.items.last().map(|s| s.id),
                    "next is the last id"
                );
                q.before = Some(n);
            }
            None => return ids,
        }
    }
}

mod cases {
    use super::*;

    pub async fn roundtrip_full_and_counted_only(h: &Harness) {
        let store = h.open().await;
        assert_eq!(store.kind(), h.backend);
        store.ping().await.expect("ping");
        assert!(store.write_batch(&[], &[]).await.unwrap().is_empty());

        let mut different = comparison("api", "GET /items/{id}", Verdict::Different, T0 + 1);
        different.noise = Some(vec![diff("/ts", DiffKind::Changed)]);
        different.differences.push(Difference {
            path: "/nested".into(),
            kind: DiffKind::Type,
            // key order and numbers must survive
            primary: Some(json!({"z": 1, "a": 2.5, "m": [true, null]})),
            candidate: Some(json!("12345678901234567")),
        });
        let shadow_error = comparison("api", "GET /items/{id}", Verdict::ShadowError, T0 + 2);
        let mut binary = comparison("api", "GET /img/{id}", Verdict::Same, T0 + 3);
        binary.primary.body = vec![0, 159, 146, 150, 255]; // not UTF-8
        binary.shadow.as_mut().unwrap().body = b"text with NUL \0 and \xc3\xa9".to_vec();
        binary.shadow.as_mut().unwrap().truncated = true;
        binary.request.body = b"hex:looks like hex".to_vec();
        let counted = comparison("api", "GET /items/{id}", Verdict::Same, T0 + 4);

        let full = vec![different.clone(), shadow_error.clone(), binary.clone()];
        let ids = store
            .write_batch(&full, std::slice::from_ref(&counted))
            .await
            .expect("write_batch");
        assert_eq!(ids.len(), 4);
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids ascending in input order: {ids:?}"
        );

        for (c, id) in full.iter().zip(&ids) {
            let got = store.get(*id).await.unwrap().expect("stored");
            let want = Comparison {
                id: *id,
                ..c.clone()
            };
            assert_eq!(got, want);
            // The detail is kept verbatim, key order included. (Differences are equal as
            // values; PostgreSQL's jsonb may reorder keys inside them.)
            let detail = |c: &Comparison| {
                serde_json::to_string(&(&c.request, &c.primary, &c.shadow, &c.error, &c.noise))
                    .unwrap()
            };
            assert_eq!(detail(&got), detail(&want));
        }

        let got = store
            .get(ids[3])
            .await
            .unwrap()
            .expect("counted-only stored");
        assert_eq!(got.id, ids[3]);
        assert_eq!(got.created_at_ms, counted.created_at_ms);
        assert_eq!(got.route, counted.route);
        assert_eq!(got.endpoint, counted.endpoint);
        assert_eq!(got.request_id, counted.request_id);
        assert_eq!(got.verdict, Verdict::Same);
        assert_eq!(got.request.method, counted.request.method);
        assert_eq!(got.request.uri, counted.request.uri);
        assert!(got.request.headers.is_empty() && got.request.host.is_empty());
        assert_eq!(got.primary.status, counted.primary.status);
        assert_eq!(got.primary.latency_us, counted.primary.latency_us);
        assert!(got.primary.body.is_empty() && got.primary.headers.is_empty());
        let shadow = got.shadow.expect("shadow status kept");
        assert_eq!(shadow.status, 200);
        assert_eq!(
            shadow.latency_us,
            counted.shadow.as_ref().unwrap().latency_us
        );
        assert!(shadow.body.is_empty());
        assert_eq!(got.differences, counted.differences);
        assert_eq!(got.noise, None);

        let page = store.list(&ListQuery::default()).await.unwrap();
        let fulls: Vec<bool> = page.items.iter().map(|s| s.full).collect();
        assert_eq!(fulls, vec![false, true, true, true]);
        let first = page.items.last().unwrap();
        assert_eq!(first.difference_count, 3);
        assert_eq!(first.primary_status, 200);
        assert_eq!(first.shadow_status, Some(500));
        assert_eq!(first.method, "GET");
        assert_eq!(first.uri, different.request.uri);
        assert_eq!(
            first.shadow_latency_us,
            Some(different.shadow.unwrap().latency_us)
        );
        assert_eq!(page.items[2].shadow_status, None);
        assert_eq!(page.items[2].shadow_latency_us, None);

        assert!(store.get(ids[3] + 1000).await.unwrap().is_none());
    }

    pub async fn list_filters_and_cursor_paging(h: &Harness) {
        let store = h.open().await;
        let routes = ["api", "web"];
        let endpoints = ["GET /a", "GET /b/{id}", "POST /c"];
        let mut all: Vec<Comparison> = Vec::new();
        for i in 0..90i64 {
            all.push(comparison(
                routes[(i % 2) as usize],
                endpoints[(i % 3) as usize],
                Verdict::ALL[(i % 4) as usize],
                T0 + i * 10,
            ));
        }
        let mut ids = Vec::new();
        for chunk in all.chunks(25) {
            ids.extend(store.write_batch(chunk, &[]).await.unwrap());
        }
        let rows: Vec<(i64, &Comparison)> = ids.iter().copied().zip(&all).collect();
        let expect = |f: &dyn Fn(&Comparison) -> bool| -> Vec<i64> {
            let mut v: Vec<i64> = rows
                .iter()
                .filter(|(_, c)| f(c))
                .map(|(id, _)| *id)
                .collect();
            v.reverse();
            v
        };

        // unfiltered, odd page size: every id once, newest first
        let q = |limit| ListQuery {
            limit,
            ..ListQuery::default()
        };
        assert_eq!(all_ids(&store, q(7)).await, expect(&|_| true));
        assert_eq!(all_ids(&store, q(90)).await, expect(&|_| true));
        let exact = store.list(&q(90)).await.unwrap();
        assert_eq!(
            (exact.items.len(), exact.next),
            (90, None),
            "exact fit has no next page"
        );

        for route in routes {
            let rq = ListQuery {
                route: Some(route.into()),
                limit: 4,
                ..ListQuery::default()
            };
            assert_eq!(
                all_ids(&store, rq.clone()).await,
                expect(&|c| c.route == route)
            );
            for v in Verdict::ALL {
                let vq = ListQuery {
                    verdict: Some(v),
                    ..rq.clone()
                };
                assert_eq!(
                    all_ids(&store, vq.clone()).await,
                    expect(&|c| c.route == route && c.verdict == v)
                );
                for e in endpoints {
                    let eq = ListQuery {
                        endpoint: Some(e.into()),
                        ..vq.clone()
                    };
                    assert_eq!(
                        all_ids(&store, eq).await,
                        expect(&|c| c.route == route && c.verdict == v && c.endpoint == e)
                    );
                }
            }
            for e in endpoints {
                let eq = ListQuery {
                    endpoint: Some(e.into()),
                    ..rq.clone()
                };
                assert_eq!(
                    all_ids(&store, eq).await,
                    expect(&|c| c.route == route && c.endpoint == e)
                );
            }
        }
        let vq = ListQuery {
            verdict: Some(Verdict::Noise),
            limit: 5,
            ..ListQuery::default()
        };
        assert_eq!(
            all_ids(&store, vq).await,
            expect(&|c| c.verdict == Verdict::Noise)
        );

        // a cursor in the middle
        let mid = ids[40];
        let page = store
            .list(&ListQuery {
                before: Some(mid),
                limit: 3,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            page.items.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![ids[39], ids[38], ids[37]]
        );
        assert_eq!(page.next, Some(ids[37]));
        let none = store
            .list(&ListQuery {
                route: Some("nope".into()),
                ..ListQuery::default()
            })
            .await
            .unwrap();
        assert!(none.items.is_empty() && none.next.is_none());

        // summary content
        let s = &store.list(&q(1)).await.unwrap().items[0];
        let (id, c) = rows.last().unwrap();
        assert_eq!(s.id, *id);
        assert_eq!(s.created_at_ms, c.created_at_ms);
        assert_eq!(
            (s.route.as_str(), s.endpoint.as_str()),
            (c.route.as_str(), c.endpoint.as_str())
        );
        assert_eq!(s.request_id, c.request_id);
        assert_eq!(s.verdict, c.verdict);
        assert_eq!(s.primary_latency_us, c.primary.latency_us);

        // limit is clamped to 1..=500
        assert_eq!(store.list(&q(0)).await.unwrap().items.len(), 1);
        let more: Vec<Comparison> = (0..450)
            .map(|i| comparison("bulk", "GET /", Verdict::Same, T0 + 10_000 + i))
            .collect();
        store.write_batch(&[], &more).await.unwrap();
        let big = store.list(&q(100_000)).await.unwrap();
        assert_eq!(big.items.len(), 500);
        assert!(big.next.is_some());
    }

    pub async fn stats_aggregate_counts_noise_and_field_keys(h: &Harness) {
        let store = h.open().await;
        let ep = "GET /orders/{id}";
        let mk = |verdict, diffs: Vec<Difference>, noise: Option<Vec<Difference>>| {
            let mut c = comparison("shop", ep, verdict, T0);
            c.differences = diffs;
            c.noise = noise;
            c
        };
        let a = mk(
            Verdict::Different,
            vec![
                diff("/lines/0/price", DiffKind::Changed),
                diff("/lines/12/price", DiffKind::Changed),
                diff("/lines/3/sku", DiffKind::Removed),
                diff("status", DiffKind::Status),
            ],
            Some(vec![diff("/generated_at", DiffKind::Changed)]),
        );
        let b = mk(
            Verdict::Noise,
            vec![diff("/generated_at", DiffKind::Changed)],
            Some(vec![
                diff("/generated_at", DiffKind::Changed),
                diff("/lines/7/price", DiffKind::Changed),
            ]),
        );
        let c = mk(Verdict::Same, vec![], None);
        let d = mk(Verdict::ShadowError, vec![], None);
        let mut other = comparison("shop", "POST /orders", Verdict::Different, T0);
        other.differences = vec![diff("/id", DiffKind::Type)];
        store
            .write_batch(&[a.clone(), b.clone()], std::slice::from_ref(&c))
            .await
            .unwrap();
        store
            .write_batch(&[a.clone(), d, other], &[c.clone(), c])
            .await
            .unwrap();
        store
            .write_batch(&[comparison("blog", "GET /", Verdict::Same, T0)], &[])
            .await
            .unwrap();

        let stats = store.route_stats("shop").await.unwrap();
        assert_eq!(
            stats
                .iter()
                .map(|e| e.endpoint.as_str())
                .collect::<Vec<_>>(),
            vec![ep, "POST /orders"],
            "busiest endpoint first"
        );
        let e = &stats[0];
        assert_eq!(
            e.totals,
            Totals {
                total: 7,
                noise_total: 3,
                same: 3,
                different: 2,
                noise: 1,
                shadow_error: 1
            }
        );
        let field = |path: &str, kind| {
            e.fields
                .iter()
                .find(|f| f.path == path && f.kind == kind)
                .map(|f| (f.count, f.noise_count))
        };
        // once per comparison even though two indexes differ in `a`
        assert_eq!(field("/lines/*/price", DiffKind::Changed), Some((2, 1)));
        assert_eq!(field("/lines/*/sku", DiffKind::Removed), Some((2, 0)));
        assert_eq!(field("status", DiffKind::Status), Some((2, 0)));
        assert_eq!(field("/generated_at", DiffKind::Changed), Some((1, 3)));
        assert_eq!(field("/lines/0/price", DiffKind::Changed), None);
        assert_eq!(e.fields.len(), 4);
        let counts: Vec<u64> = e.fields.iter().map(|f| f.count).collect();
        assert!(
            counts.windows(2).all(|w| w[0] >= w[1]),
            "most frequent first: {counts:?}"
        );
        assert_eq!(stats[1].totals.different, 1);
        assert_eq!(stats[1].fields.len(), 1);
        assert!(store.route_stats("nope").await.unwrap().is_empty());

        let routes = store.routes_with_stats().await.unwrap();
        assert_eq!(
            routes.iter().map(|r| r.route.as_str()).collect::<Vec<_>>(),
            vec!["blog", "shop"]
        );
        assert_eq!(routes[1].totals.total, 8);
        assert_eq!(routes[1].totals.different, 3);
        assert_eq!(routes[1].totals.of(Verdict::Same), 3);
        assert_eq!(routes[0].totals.total, 1);
    }

    pub async fn latency_samples_newest_first(h: &Harness) {
        let store = h.open().await;
        let mut batch = Vec::new();
        for i in 0..20i64 {
            let v = if i % 5 == 0 {
                Verdict::ShadowError
            } else {
                Verdict::Same
            };
            let ep = if i % 2 == 0 { "GET /even" } else { "GET /odd" };
            batch.push(comparison("api", ep, v, T0 + i));
        }
        batch.push(comparison("other", "GET /even", Verdict::Same, T0 + 100));
        store.write_batch(&batch[..10], &batch[10..]).await.unwrap();

        let all = store.latency_samples("api", None, 1000).await.unwrap();
        assert_eq!(all.len(), 20);
        let times: Vec<i64> = all.iter().map(|s| s.created_at_ms).collect();
        assert_eq!(times, (0..20).rev().map(|i| T0 + i).collect::<Vec<_>>());
        let s = &all[0]; // i = 19
        assert_eq!(s.endpoint, "GET /odd");
        assert_eq!(s.primary_us, batch[19].primary.latency_us);
        assert_eq!(
            s.shadow_us,
            Some(batch[19].shadow.as_ref().unwrap().latency_us)
        );
        let err = all.iter().find(|s| s.created_at_ms == T0 + 15).unwrap();
        assert_eq!(err.shadow_us, None);

        let even = store
            .latency_samples("api", Some("GET /even"), 3)
            .await
            .unwrap();
        assert_eq!(
            even.iter().map(|s| s.created_at_ms).collect::<Vec<_>>(),
            vec![T0 + 18, T0 + 16, T0 + 14]
        );
        assert!(even.iter().all(|s| s.endpoint == "GET /even"));
        assert_eq!(
            store.latency_samples("api", None, 0).await.unwrap().len(),
            1
        );
        assert!(store
            .latency_samples("none", None, 10)
            .await
            .unwrap()
            .is_empty());
    }

    pub async fn retention_deletes_in_batches_and_keeps_aggregates(h: &Harness) {
        let store = h.open().await;
        let day = 86_400_000;
        // more old rows than one retention batch, so the sweep loops
        let n_old = umbra_store::RETENTION_BATCH as i64 + 321;
        let old: Vec<Comparison> = (0..n_old)
            .map(|i| comparison("api", "GET /", Verdict::Same, T0 - 10 * day + i))
            .collect();
        let old_full = comparison("api", "GET /", Verdict::Different, T0 - 9 * day);
        let new: Vec<Comparison> = (0..10)
            .map(|i| comparison("api", "GET /", Verdict::Different, T0 + i))
            .collect();
        for chunk in old.chunks(1000) {
            store.write_batch(&[], chunk).await.unwrap();
        }
        let old_id = store
            .write_batch(std::slice::from_ref(&old_full), &[])
            .await
            .unwrap()[0];
        let new_ids = store.write_batch(&new, &[]).await.unwrap();
        let before = store.route_stats("api").await.unwrap();

        let deleted = store.delete_older_than(T0 - day).await.unwrap();
        assert_eq!(deleted, n_old as u64 + 1);
        assert!(store.get(old_id).await.unwrap().is_none());
        let mut left = all_ids(
            &store,
            ListQuery {
                limit: 500,
                ..ListQuery::default()
            },
        )
        .await;
        left.reverse();
        assert_eq!(left, new_ids);
        // the boundary is exclusive: created_at == cutoff stays
        assert_eq!(store.delete_older_than(T0).await.unwrap(), 0);
        assert_eq!(store.delete_older_than(T0 + 1).await.unwrap(), 1);
        assert_eq!(
            store.route_stats("api").await.unwrap(),
            before,
            "aggregates kept"
        );
        assert_eq!(store.delete_older_than(T0 - day).await.unwrap(), 0);
    }

    /// The cause ids a comparison is tagged with (as the store computes them).
    fn causes_of(c: &Comparison) -> Vec<String> {
        umbra_diff::cause_ids(&c.route, &c.candidate, &Observation::from_comparison(c))
    }

    pub async fn finding_filter_lists_only_its_comparisons(h: &Harness) {
        let store = h.open().await;
        // `Different` comparisons answer 500 (one status cause); `Noise` ones change `/ts`.
        let mut batch = Vec::new();
        for i in 0..30 {
            let verdict = [Verdict::Different, Verdict::Noise, Verdict::Same][i % 3];
            batch.push(comparison("api", "GET /items/{id}", verdict, T0 + i as i64));
        }
        let mut v3 = comparison("api", "GET /items/{id}", Verdict::Different, T0 + 99);
        v3.candidate = "v3".into();
        batch.push(v3.clone());
        let ids = store.write_batch(&batch, &[]).await.unwrap();
        let status = causes_of(&batch[0]);
        let ts = causes_of(&batch[1]);
        assert_eq!((status.len(), ts.len()), (1, 1));
        assert!(causes_of(&batch[2]).is_empty());
        assert_ne!(causes_of(&v3), status, "ids are per candidate");

        let want = |k: usize| -> Vec<i64> {
            let mut v: Vec<i64> = (0..30).filter(|i| i % 3 == k).map(|i| ids[i]).collect();
            v.reverse();
            v
        };
        let q = |f: &str, limit| ListQuery {
            finding: Some(f.to_owned()),
            limit,
            ..ListQuery::default()
        };
        assert_eq!(all_ids(&store, q(&status[0], 3)).await, want(0));
        assert_eq!(all_ids(&store, q(&ts[0], 500)).await, want(1));
        let only_v3 = all_ids(&store, q(&causes_of(&v3)[0], 50)).await;
        assert_eq!(only_v3, vec![ids[30]]);
        assert!(all_ids(&store, q("0000000000000000", 50)).await.is_empty());
        // With other filters: the finding's comparisons of that verdict only.
        let mixed = ListQuery {
            verdict: Some(Verdict::Noise),
            ..q(&status[0], 50)
        };
        assert!(all_ids(&store, mixed).await.is_empty());
        let page = store.list(&q(&status[0], 1)).await.unwrap();
        assert_eq!(page.items[0].candidate, "v2");
        assert_eq!(page.items[0].id, want(0)[0]);
    }

    pub async fn replay_rebuilds_findings_inputs_and_retention_drops_tags(h: &Harness) {
        let store = h.open().await;
        let day = 86_400_000;
        let old = comparison("api", "GET /", Verdict::Different, T0 - 2 * day);
        let full: Vec<Comparison> = (0..5)
            .map(|i| comparison("api", "GET /", Verdict::Noise, T0 + i))
            .collect();
        let counted = comparison("api", "GET /", Verdict::Different, T0 + 9);
        let old_id = store
            .write_batch(std::slice::from_ref(&old), &[])
            .await
            .unwrap()[0];
        let ids = store
            .write_batch(&full, std::slice::from_ref(&counted))
            .await
            .unwrap();
        let upto = *ids.last().unwrap();

        let page = store.replay(old_id, upto, 4).await.unwrap();
        assert_eq!(page.iter().map(|c| c.id).collect::<Vec<_>>(), ids[..4]);
        let rest = store.replay(page[3].id, upto, 4).await.unwrap();
        assert_eq!(rest.iter().map(|c| c.id).collect::<Vec<_>>(), ids[4..]);
        // Everything findings need comes back, counted-only rows included.
        let c = &page[0];
        assert_eq!((c.candidate.as_str(), c.verdict), ("v2", Verdict::Noise));
        assert_eq!(c.differences.len(), full[0].differences.len());
        assert_eq!(c.noise.as_ref().map(Vec::len), Some(1));
        assert_eq!(causes_of(c), causes_of(&full[0]));
        let last = &rest[1];
        assert_eq!(
            (last.primary.status, last.shadow.as_ref().map(|s| s.status)),
            (200, Some(500))
        );
        assert_eq!(causes_of(last), causes_of(&counted));
        assert!(store.replay(upto, upto, 10).await.unwrap().is_empty());

        // Retention takes the tags with their comparisons; newer ones keep theirs.
        let status = causes_of(&old)[0].clone();
        let of = |f: &str| ListQuery {
            finding: Some(f.to_owned()),
            ..ListQuery::default()
        };
        assert_eq!(all_ids(&store, of(&status)).await, vec![ids[5], old_id]);
        assert_eq!(store.delete_older_than(T0 - day).await.unwrap(), 1);
        assert_eq!(all_ids(&store, of(&status)).await, vec![ids[5]]);
    }

    pub async fn routes_put_list_delete(h: &Harness) {
        let store = h.open().await;
        assert!(store.list_routes().await.unwrap().is_empty());
        let api = StoredRoute {
            name: "api".into(),
            kind: "api".into(),
            doc: json!({"rule": "PathPrefix(`/api`)", "service": "api", "shadow": {"service": "api-v2", "percent": 50}}),
            updated_at_ms: T0,
        };
        let web = StoredRoute {
            name: "web".into(),
            kind: "override".into(),
            doc: json!({"canary": {"service": "web-v2", "weight": 10}}),
            updated_at_ms: T0 + 1,
        };
        store.put_route(&web).await.unwrap();
        store.put_route(&api).await.unwrap();
        assert_eq!(
            store.list_routes().await.unwrap(),
            vec![api.clone(), web.clone()]
        );

        let api2 = StoredRoute {
            doc: json!({"rule": "Host(`x`)", "service": "api-v2"}),
            updated_at_ms: T0 + 5,
            ..api
        };
        store.put_route(&api2).await.unwrap();
        assert_eq!(store.list_routes().await.unwrap(), vec![api2, web.clone()]);

        assert!(store.delete_route("api").await.unwrap());
        assert!(!store.delete_route("api").await.unwrap());
        assert_eq!(store.list_routes().await.unwrap(), vec![web]);
    }

    pub async fn rollouts_put_replace_and_survive_a_restart(h: &Harness) {
        let store = h.open().await;
        assert!(store.list_rollouts().await.unwrap().is_empty());
        let first = json!({"route": "api", "step": 0, "history": [{"action": "start"}]});
        store.put_rollout("api", &first).await.unwrap();
        let second = json!({"route": "api", "step": 1, "window_start_ms": T0, "history": []});
        store.put_rollout("api", &second).await.unwrap();
        store
            .put_rollout("web", &json!({"route": "web", "step": 2}))
            .await
            .unwrap();
        drop(store);
        let store = h.open().await;
        let all = store.list_rollouts().await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], ("api".to_string(), second));
        assert_eq!(all[1].1["step"], 2);
    }

    pub async fn events_append_and_page(h: &Harness) {
        let store = h.open().await;
        let start = now_ms();
        let kinds = [
            "route.put",
            "shadow.start",
            "promote",
            "rollback",
            "reload.failed",
        ];
        let mut ids = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            ids.push(
                store
                    .append_event(&NewEvent {
                        kind: (*kind).into(),
                        route: (i != 4).then(|| "api".into()),
                        source: ["api", "ui", "cli", "file", "docker"][i].into(),
                        actor: (i == 1).then(|| "alice".into()),
                        detail: json!({"step": i, "z": "last", "a": "first"}),
                    })
                    .await
                    .unwrap(),
            );
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let end = now_ms();

        let page1 = store.list_events(2, None).await.unwrap();
        assert_eq!(
            page1.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![ids[4], ids[3]]
        );
        let page2 = store.list_events(2, Some(ids[3])).await.unwrap();
        assert_eq!(
            page2.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![ids[2], ids[1]]
        );
        let page3 = store.list_events(2, Some(ids[1])).await.unwrap();
        assert_eq!(page3.iter().map(|e| e.id).collect::<Vec<_>>(), vec![ids[0]]);

        let e = &page2[1];
        assert_eq!(e.kind, "shadow.start");
        assert_eq!(e.route.as_deref(), Some("api"));
        assert_eq!(e.source, "ui");
        assert_eq!(e.actor.as_deref(), Some("alice"));
        assert_eq!(e.detail, json!({"step": 1, "z": "last", "a": "first"}));
        assert!((start..=end).contains(&e.created_at_ms));
        assert_eq!(page1[0].route, None);
        assert_eq!(page1[0].kind, "reload.failed");
        assert_eq!(store.list_events(0, None).await.unwrap().len(), 1);
    }

    pub async fn ignore_rules_add_list_delete(h: &Harness) {
        let store = h.open().await;
        let a = store
            .add_ignore(
                "api",
                Some("GET /items/{id}"),
                "/items/*/etag",
                Some(DiffKind::Changed),
            )
            .await
            .unwrap();
        let again = store
            .add_ignore(
                "api",
                Some("GET /items/{id}"),
                "/items/*/etag",
                Some(DiffKind::Changed),
            )
            .await
            .unwrap();
        assert_eq!(a, again, "adding an existing rule returns it");
        let any_kind = store
            .add_ignore("api", Some("GET /items/{id}"), "/items/*/etag", None)
            .await
            .unwrap();
        let any_endpoint = store
            .add_ignore("api", None, "/meta/ts", None)
            .await
            .unwrap();
        assert_eq!(
            store
                .add_ignore("api", None, "/meta/ts", None)
                .await
                .unwrap(),
            any_endpoint
        );
        let other = store
            .add_ignore("web", None, "/meta/ts", Some(DiffKind::Added))
            .await
            .unwrap();
        assert_eq!(
            BTreeSet::from([a, any_kind, any_endpoint, other]).len(),
            4,
            "distinct rules get distinct ids"
        );

        let rules = store.list_ignores("api").await.unwrap();
        assert_eq!(
            rules.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![a, any_kind, any_endpoint]
        );
        assert_eq!(rules[0].route, "api");
        assert_eq!(rules[0].endpoint.as_deref(), Some("GET /items/{id}"));
        assert_eq!(rules[0].path, "/items/*/etag");
        assert_eq!(rules[0].kind, Some(DiffKind::Changed));
        assert_eq!(rules[1].kind, None);
        assert_eq!(rules[2].endpoint, None);
        assert!(rules[0].created_at_ms > T0 - 86_400_000 * 365);

        assert!(store.delete_ignore(any_kind).await.unwrap());
        assert!(!store.delete_ignore(any_kind).await.unwrap());
        assert_eq!(
            store
                .list_ignores("api")
                .await
                .unwrap()
                .iter()
                .map(|r| r.id)
                .collect::<Vec<_>>(),
            vec![a, any_endpoint]
        );
        assert_eq!(store.list_ignores("web").await.unwrap().len(), 1);
        assert!(store.list_ignores("none").await.unwrap().is_empty());
    }

    pub async fn restart_keeps_everything(h: &Harness) {
        let store = h.open().await;
        let full: Vec<Comparison> = (0..30)
            .map(|i| comparison("api", "GET /x", Verdict::ALL[i % 4], T0 + i as i64))
            .collect();
        let counted: Vec<Comparison> = (0..20)
            .map(|i| comparison("api", "GET /x", Verdict::Same, T0 + 100 + i))
            .collect();
        let ids = store.write_batch(&full, &counted).await.unwrap();
        let route = StoredRoute {
            name: "api".into(),
            kind: "api".into(),
            doc: json!({"service": "api"}),
            updated_at_ms: T0,
        };
        store.put_route(&route).await.unwrap();
        let ev = store
            .append_event(&NewEvent {
                kind: "route.put".into(),
                route: Some("api".into()),
                source: "api".into(),
                actor: None,
                detail: json!({}),
            })
            .await
            .unwrap();
        let rule = store.add_ignore("api", None, "/ts", None).await.unwrap();
        let stats = store.route_stats("api").await.unwrap();
        let mut before = Vec::new();
        for id in &ids {
            before.push(store.get(*id).await.unwrap().unwrap());
        }
        drop(store);

        let store = h.open().await;
        for (id, want) in ids.iter().zip(&before) {
            assert_eq!(store.get(*id).await.unwrap().as_ref(), Some(want));
        }
        let mut listed = all_ids(
            &store,
            ListQuery {
                limit: 500,
                ..ListQuery::default()
            },
        )
        .await;
        listed.reverse();
        assert_eq!(listed, ids);
        assert_eq!(store.route_stats("api").await.unwrap(), stats);
        assert_eq!(store.list_routes().await.unwrap(), vec![route]);
        assert_eq!(store.list_events(10, None).await.unwrap()[0].id, ev);
        assert_eq!(store.list_ignores("api").await.unwrap()[0].id, rule);
        // ids keep growing after a restart
        let next = store.write_batch(&full[..1], &[]).await.unwrap();
        assert!(next[0] > *ids.last().unwrap());
    }

    pub async fn migrations_are_idempotent(h: &Harness) {
        // two replicas starting at once on an empty database, then a third
        let (a, b) = tokio::join!(h.open(), h.open());
        let ids = a
            .write_batch(&[comparison("api", "GET /", Verdict::Different, T0)], &[])
            .await
            .unwrap();
        assert!(b.get(ids[0]).await.unwrap().is_some());
        let c = h.open().await;
        assert_eq!(c.list(&ListQuery::default()).await.unwrap().items.len(), 1);
        b.write_batch(&[], &[comparison("api", "GET /", Verdict::Same, T0 + 1)])
            .await
            .unwrap();
        assert_eq!(c.route_stats("api").await.unwrap()[0].totals.total, 2);
    }

    pub async fn writer_samples_same_and_flushes_on_shutdown(h: &Harness) {
        let store = h.open().await;
        for (keep_same, route) in [(0.0, "keep-none"), (1.0, "keep-all")] {
            let (tx, rx) = mpsc::channel(1024);
            let shutdown = CancellationToken::new();
            let writer = StoreWriter::spawn(
                store.clone(),
                rx,
                WriterConfig {
                    batch_max: 16,
                    flush_every: Duration::from_secs(3600),
                    keep_same,
                },
                shutdown.clone(),
            );
            for i in 0..100i64 {
                let v = if i % 4 == 0 {
                    Verdict::Different
                } else {
                    Verdict::Same
                };
                tx.try_send(comparison(route, "GET /", v, T0 + i))
                    .expect("room in channel");
            }
            // Full batches go out at once; the last partial one only at shutdown (its
            // flush_every is an hour), so this also shows shutdown flushes what is queued.
            shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(30), writer.join())
                .await
                .expect("writer stops after shutdown");
            let page = store
                .list(&ListQuery {
                    route: Some(route.into()),
                    limit: 500,
                    ..ListQuery::default()
                })
                .await
                .unwrap();
            assert_eq!(page.items.len(), 100, "{route}: every comparison written");
            for s in &page.items {
                let want_full = s.verdict != Verdict::Same || keep_same >= 1.0;
                assert_eq!(s.full, want_full, "{route}: {s:?}");
            }
            let stats = store.route_stats(route).await.unwrap();
            assert_eq!((stats[0].totals.same, stats[0].totals.different), (75, 25));
            assert!(tx
                .try_send(comparison(route, "GET /", Verdict::Same, T0))
                .is_err());
        }

        // the counters
        let (tx, rx) = mpsc::channel(64);
        let shutdown = CancellationToken::new();
        let writer =
            StoreWriter::spawn(store.clone(), rx, WriterConfig::default(), shutdown.clone());
        for i in 0..10 {
            tx.try_send(comparison("counters", "GET /", Verdict::Noise, T0 + i))
                .unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while writer.written() < 10 {
            assert!(
                Instant::now() < deadline,
                "writer wrote {} of 10",
                writer.written()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(writer.dropped(), 0);
        assert!(writer.last_error().is_none() && !writer.is_failing());
        drop(tx); // all senders gone also ends the writer
        tokio::time::timeout(Duration::from_secs(30), writer.join())
            .await
            .expect("writer stops when its senders are gone");
    }

    pub async fn throughput_write_batch_512(h: &Harness) {
        let store = h.open().await;
        const BATCHES: usize = 20;
        // a realistic mix: 5 % of `same` kept in full, everything else full
        let mut batches = Vec::new();
        for b in 0..BATCHES {
            let mut full = Vec::new();
            let mut counted = Vec::new();
            for i in 0..512usize {
                let n = (b * 512 + i) as i64;
                let v = match i % 10 {
                    0 => Verdict::Different,
                    1 => Verdict::Noise,
                    _ => Verdict::Same,
                };
                let c = comparison("bench", ["GET /a/{id}", "GET /b"][i % 2], v, T0 + n);
                if v == Verdict::Same && i % 20 != 2 {
                    counted.push(c);
                } else {
                    full.push(c);
                }
            }
            batches.push((full, counted));
        }
        let start = Instant::now();
        for (full, counted) in &batches {
            store.write_batch(full, counted).await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let all_full: Vec<Comparison> = batches[0].0.iter().chain(&batches[0].1).cloned().collect();
        let start_full = Instant::now();
        for _ in 0..5 {
            store.write_batch(&all_full, &[]).await.unwrap();
        }
        let secs_full = start_full.elapsed().as_secs_f64();
        eprintln!(
            "THROUGHPUT {}: write_batch(512): {:.0} comparisons/s (mixed, 25% full), {:.0}/s (all full)",
            h.backend,
            (BATCHES * 512) as f64 / secs,
            (5 * 512) as f64 / secs_full,
        );
        let total = store.routes_with_stats().await.unwrap()[0].totals.total;
        assert_eq!(total, (BATCHES * 512 + 5 * 512) as u64);
    }

    fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }
}

/// With a writer running against PostgreSQL, the server is stopped mid-run and started again:
/// senders never wait, the writer counts drops while it is down, and new comparisons are
/// written again afterwards without restarting anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_drops_and_recovers() {
    let Some(bin) = support::pg::bin_dir() else {
        support::pg::skip_or_panic("the PostgreSQL fault test");
        return;
    };
    // its own cluster: stopping the shared one would break the other tests
    let cluster = support::pg::PgCluster::start_new(bin);
    let store: Arc<dyn ComparisonStore> = Arc::new(
        umbra_store::PostgresStore::connect(&cluster.url())
            .await
            .expect("connect"),
    );
    let (tx, rx) = mpsc::channel(256);
    let shutdown = CancellationToken::new();
    let writer = StoreWriter::spawn(
        store.clone(),
        rx,
        WriterConfig {
            batch_max: 32,
            flush_every: Duration::from_millis(20),
            keep_same: 1.0,
        },
        shutdown.clone(),
    );
    let mut seq = 0i64;
    let mut slowest_send = Duration::ZERO;
    let mut full_drops = 0u64;
    let mut send = |route: &str| {
        seq += 1;
        let c = comparison(route, "GET /", Verdict::Different, T0 + seq);
        let t = Instant::now();
        if tx.try_send(c).is_err() {
            full_drops += 1; // the data plane would count this
        }
        slowest_send = slowest_send.max(t.elapsed());
    };
    let wait_until = |what: &str, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let what = what.to_owned();
        move || {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
        }
    };

    // before: writes flow
    for _ in 0..50 {
        send("before");
    }
    let check = wait_until("writes before the outage", 30);
    while writer.written() < 50 {
        check();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // outage: keep sending; the writer drops and counts, senders never wait
    cluster.stop();
    let check = wait_until("the writer to notice the outage", 60);
    while writer.dropped() == 0 {
        check();
        send("during");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for _ in 0..500 {
        send("during"); // more than the channel holds
    }
    assert!(writer.is_failing());
    let err = writer.last_error().expect("last error recorded");
    eprintln!("store error while down: {}", err.display_chain());
    assert!(store.ping().await.is_err());

    // recovery: same server back on the same port; nothing restarted on our side
    cluster.start();
    let check = wait_until("writes after the outage", 60);
    loop {
        check();
        send("after");
        let page = store
            .list(&ListQuery {
                route: Some("after".into()),
                ..ListQuery::default()
            })
            .await;
        if matches!(&page, Ok(p) if !p.items.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!writer.is_failing());
    store.ping().await.expect("ping after recovery");

    eprintln!(
        "fault test: written {}, dropped by writer {}, refused by full channel {}, slowest try_send {:?}",
        writer.written(),
        writer.dropped(),
        full_drops,
        slowest_send
    );
    assert!(
        full_drops > 0,
        "the bounded channel filled while the store was down"
    );
    // try_send cannot wait by construction; this catches a regression to a blocking path
    assert!(slowest_send < Duration::from_secs(1), "{slowest_send:?}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), writer.join())
        .await
        .expect("writer stops");
    let stats = store.route_stats("before").await.unwrap();
    assert_eq!(stats[0].totals.total, 50);
}

/// `open` picks the backend by scheme; failures name the URL (password masked) and the cause.
#[tokio::test]
async fn open_errors_name_the_url_and_cause() {
    let err = match umbra_store::open("postgres://umbra:hunter2@127.0.0.1:1/umbra").await {
        Err(e) => e.display_chain(),
        Ok(_) => panic!("nothing listens on port 1"),
    };
    assert!(
        err.contains("postgres://umbra:***@127.0.0.1:1/umbra"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    assert!(
        err.to_lowercase().contains("connect"),
        "cause missing: {err}"
    );

    let err = match umbra_store::open("sqlite:///proc/umbra-no-such-dir/umbra.db").await {
        Err(e) => e.display_chain(),
        Ok(_) => panic!("/proc is not writable"),
    };
    assert!(
        err.contains("sqlite:///proc/umbra-no-such-dir/umbra.db"),
        "{err}"
    );
    assert!(err.contains("/proc/umbra-no-such-dir"), "{err}");

    for bad in ["mysql://db/x", "sqlite://"] {
        assert!(umbra_store::open(bad).await.is_err(), "{bad}");
    }
}

/// The in-memory SQLite store (demo mode) works through the same trait on one connection.
#[tokio::test]
async fn sqlite_memory_store_works() {
    let store = umbra_store::open("sqlite::memory:")
        .await
        .expect("open memory");
    assert_eq!(store.kind(), "sqlite");
    let c = comparison("demo", "GET /", Verdict::Different, T0);
    let ids = store
        .write_batch(std::slice::from_ref(&c), &[])
        .await
        .unwrap();
    let got = store.get(ids[0]).await.unwrap().unwrap();
    assert_eq!(got, Comparison { id: ids[0], ..c });
    assert_eq!(
        store.route_stats("demo").await.unwrap()[0].totals.different,
        1
    );
    store.ping().await.unwrap();
}
