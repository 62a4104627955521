//! The dashboard's targets, on a store generated here: the runs list of 10,000 runs
//! (≤ 100 ms), a 20,000-event run's first page from the API (≤ 50 ms), and that
//! run's page in headless Chromium painted (first contentful paint ≤ 1 s). Each API
//! figure is shown beside a baseline measured in the same run: the store call the
//! handler cannot avoid.
//!
//! `cargo bench -p keel-dashboard` (Chromium: `apt-get install -y chromium chromium-driver`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use keel_dashboard::{Local, Options, Server};
use keel_engine::Keel;
use keel_storage::{EventStore, RunId, Seq, SledStore};
use serde_json::json;
use support::{generate, send};

const ROUNDS: usize = 30;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let median = samples[samples.len() / 2];
    let p95 = samples[(samples.len() * 95 / 100).min(samples.len() - 1)];
    (ms(median), ms(p95))
}

async fn time<F, Fut>(rounds: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        f().await;
        out.push(start.elapsed());
    }
    out
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path().join("store")).unwrap();
    let started = Instant::now();
    generate::many_runs(&store, 10_000).await;
    let long = RunId::new();
    let events = generate::events(
        "coding_agent",
        "a very long session",
        4_999,
        1_700_000_000_000,
    );
    generate::write_run(&store, long, "coding_agent", "a very long session", &events).await;
    println!(
        "generated 10,000 runs and a 20,000-event run in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let keel = Keel::new(store);
    let server = Server::start(
        Local::new(keel.clone(), []),
        Options::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let addr = server.addr();
    let host = addr.to_string();
    let bearer = format!("Bearer {}", server.token());
    let get = |path: String| {
        let (host, bearer) = (host.clone(), bearer.clone());
        async move {
            let r = send(
                addr,
                "GET",
                &path,
                &[("host", &host), ("authorization", &bearer)],
                None,
            )
            .await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            r
        }
    };

    // The first page of the 20,000-event run, cold (its cost is folded from the
    // whole log once) and then warm.
    let start = Instant::now();
    let first = get(format!("/api/runs/{long}?limit=500")).await;
    let cold = start.elapsed();
    assert_eq!(first.json()["events"].as_array().unwrap().len(), 500);
    let page = stats(
        time(ROUNDS, || async {
            get(format!("/api/runs/{long}?limit=500")).await;
        })
        .await,
    );
    let read = stats(
        time(ROUNDS, || async {
            keel.store().read(long, Seq(19_500)).await.unwrap();
        })
        .await,
    );

    let list = stats(
        time(ROUNDS, || async {
            get("/api/runs?limit=50".to_owned()).await;
        })
        .await,
    );
    let filtered = stats(
        time(ROUNDS, || async {
            get("/api/runs?limit=50&agent=agent-1&text=module%20m7".to_owned()).await;
        })
        .await,
    );
    let index = stats(
        time(ROUNDS, || async {
            keel.store().list_runs().await.unwrap();
        })
        .await,
    );

    // The list when its index must be read again (it is kept INDEX_MAX_AGE at most).
    let mut misses = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(keel_dashboard::INDEX_MAX_AGE + Duration::from_millis(50)).await;
        let start = Instant::now();
        get("/api/runs?limit=50".to_owned()).await;
        misses.push(start.elapsed());
    }
    let cold_list = stats(misses);

    println!("\n| what | median | p95 | target | baseline (same run) | ratio |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!(
        "| GET /api/runs, 10,001 runs, 50 a page | {:.1} ms | {:.1} ms | ≤ 100 ms | store.list_runs() {:.1} ms | {:.2}× |",
        list.0,
        list.1,
        index.0,
        list.0 / index.0
    );
    println!(
        "| the same when the index is read again (at most once a second) | {:.1} ms | max {:.1} ms of 5 | ≤ 100 ms | store.list_runs() {:.1} ms | {:.2}× |",
        cold_list.0,
        cold_list.1,
        index.0,
        cold_list.0 / index.0
    );
    println!(
        "| GET /api/runs filtered (agent + text) | {:.1} ms | {:.1} ms | ≤ 100 ms | store.list_runs() {:.1} ms | {:.2}× |",
        filtered.0,
        filtered.1,
        index.0,
        filtered.0 / index.0
    );
    println!(
        "| GET /api/runs/{{20k-event run}}, last 500 events | {:.1} ms | {:.1} ms | ≤ 50 ms | store.read(last 500) {:.1} ms | {:.2}× |",
        page.0,
        page.1,
        read.0,
        page.0 / read.0
    );
    println!(
        "| the same, first request (cost folded from the whole log once) | {:.1} ms | | | | |",
        ms(cold)
    );

    match paint(&server, long).await {
        Ok(samples) => {
            let (median, worst) = (samples[samples.len() / 2], samples[samples.len() - 1]);
            println!(
                "| Chromium: the 20k-event run's page, first contentful paint | {median:.0} ms | max {worst:.0} ms of {} loads | ≤ 1,000 ms | | |",
                samples.len()
            );
        }
        Err(e) => println!("\nChromium figure not measured: {e}"),
    }
    server.stop().await;
}

/// First contentful paint of the run's page, from the Performance API, over fresh
/// page loads.
async fn paint(server: &Server, run: RunId) -> Result<Vec<f64>, String> {
    let install =
        "install `chromium` and `chromium-driver` (apt-get install -y chromium chromium-driver)";
    let driver = which("chromedriver").ok_or(format!("chromedriver is missing: {install}"))?;
    let chromium = which("chromium").ok_or(format!("chromium is missing: {install}"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": chromium, "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            format!("--user-data-dir={}", profile.path().display())]}),
    );
    let result = async {
        let client = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .map_err(|e| e.to_string())?;
        client.goto(&server.url()).await.map_err(|e| e.to_string())?;
        let mut samples = Vec::new();
        for _ in 0..7 {
            client.goto(&format!("http://{}/runs/{run}", server.addr())).await.map_err(|e| e.to_string())?;
            let fcp = client
                .execute_async(
                    r#"const done = arguments[0];
                    const read = () => { const p = performance.getEntriesByName('first-contentful-paint')[0]; if (p) { done(p.startTime); return true; } return false; };
                    if (!read()) new PerformanceObserver(() => read()).observe({ type: 'paint', buffered: true });"#,
                    vec![],
                )
                .await
                .map_err(|e| e.to_string())?;
            samples.push(fcp.as_f64().ok_or("no paint entry")?);
        }
        let _ = client.close().await;
        samples.sort_by(f64::total_cmp);
        Ok(samples)
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
