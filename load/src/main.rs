//! Load harness: the same workloads against one or more scaffolder servers
//! (ours, the Backstage reference backend, …), printed side by side.
//!
//! ```sh
//! CARGO_TARGET_DIR=target cargo run --release --manifest-path load/Cargo.toml -- \
//!   --target ours=http://127.0.0.1:7007,pid=123,db=scaffolder_bench_x,ready=/readyz \
//!   --target backstage=http://127.0.0.1:7107,pid=456
//! ```
//!
//! Workloads (`--workloads`, default `s,w1,w2,sustained,watchers`; `s` needs
//! `--spawn NAME=CMD`):
//! - **S**: start the server command, time until readiness 200 and until both
//!   compat templates' `parameter-schema` are 200 (polled every 50 ms); RSS
//!   right after, and again after `--idle-seconds` idle.
//! - **W1**: sequential `POST /v2/dry-run` of `ref-demo` (template and its
//!   skeleton read from `--ref-demo`), as `shared/bench/README.md` defines.
//! - **W2**: `--tasks` `POST /v2/tasks` at once, one poller on
//!   `GET /v2/tasks?status=completed&status=failed&limit=1000` every 25 ms.
//! - **sustained**: closed loop, `--sustained-clients` clients each submitting
//!   a task and following its event stream to completion, for
//!   `--sustained-seconds`; completed tasks/s.
//! - **watchers**: `ref-wait` tasks kept running, watched by `--watchers`
//!   (default 10,1000) concurrent watchers (half SSE `eventstream`, half
//!   long-poll `events`),
//!   one round per number; whether every watcher got the events and
//!   the completion, server CPU, and (with `db=`) PostgreSQL transactions/s
//!   of the server's database while the watchers wait.
//!
//! Server RSS (VmRSS/VmHWM) and CPU seconds (utime+stime) per phase come from
//! `/proc/<pid>` when the target has a `pid` (or was spawned). The client runs
//! on the same machine as the servers and shares its CPU.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use clap::Parser;
use futures::StreamExt;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(name = "scaffolder-load", about = "Side-by-side load harness for scaffolder servers")]
struct Args {
    /// `NAME=BASE_URL[,pid=PID][,db=DATABASE][,ready=PATH]`, repeatable. The
    /// first target is the baseline of the ratios. `db` names the server's
    /// PostgreSQL database (for transactions/s); `ready` is the readiness path
    /// (default `/.backstage/health/v1/readiness`).
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// `NAME=SHELL_COMMAND`: start that target's server for workload S (run
    /// with `sh -c`; end it with `exec` so the PID is the server's). Spawned
    /// servers are stopped (SIGTERM) at the end.
    #[arg(long = "spawn")]
    spawns: Vec<String>,
    /// Comma-separated: s, w1, w2, sustained, watchers.
    #[arg(long, default_value = "s,w1,w2,sustained,watchers")]
    workloads: String,
    /// The `ref-demo` template directory (template.yaml and skeleton/).
    #[arg(long)]
    ref_demo: Option<PathBuf>,
    /// W1: number of sequential dry-runs.
    #[arg(long, default_value_t = 50)]
    dry_runs: usize,
    /// W2: number of tasks submitted at once.
    #[arg(long, default_value_t = 50)]
    tasks: usize,
    /// W2: poller interval.
    #[arg(long, default_value_t = 25)]
    poll_ms: u64,
    /// S: idle time before the second RSS reading.
    #[arg(long, default_value_t = 60)]
    idle_seconds: u64,
    /// sustained: duration.
    #[arg(long, default_value_t = 20)]
    sustained_seconds: u64,
    /// sustained: concurrent clients (each keeps one task in flight).
    #[arg(long, default_value_t = 20)]
    sustained_clients: usize,
    /// watchers: the numbers of concurrent watchers, one round each (the
    /// first is the reference the others are compared with).
    #[arg(long, value_delimiter = ',', default_value = "10,1000")]
    watchers: Vec<usize>,
    /// watchers: `ref-wait` tasks being watched (Backstage runs at most 10 at once).
    #[arg(long, default_value_t = 10)]
    watched_tasks: usize,
    /// watchers: how long the transactions and CPU are measured while the
    /// watchers wait (kept under the 30 s long-poll timeout, so that no
    /// long-poll request is repeated inside the window).
    #[arg(long, default_value_t = 15)]
    watch_seconds: u64,
    /// PostgreSQL database to read `pg_stat_database` from.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_url: String,
    /// Also write all figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone)]
struct Target {
    name: String,
    base: String,
    pid: Option<u32>,
    db: Option<String>,
    ready: String,
    spawn: Option<String>,
}

impl Target {
    fn api(&self) -> String {
        format!("{}/api/scaffolder/v2", self.base)
    }
}

fn parse_target(spec: &str) -> Target {
    let (name, rest) = spec
        .split_once('=')
        .unwrap_or_else(|| panic!("--target {spec:?}: expected NAME=URL[,pid=..][,db=..][,ready=..]"));
    let mut parts = rest.split(',');
    let base = parts.next().unwrap_or_default().trim_end_matches('/').to_string();
    let mut target = Target {
        name: name.to_string(),
        base,
        pid: None,
        db: None,
        ready: "/.backstage/health/v1/readiness".into(),
        spawn: None,
    };
    for part in parts {
        match part.split_once('=') {
            Some(("pid", v)) => target.pid = Some(v.parse().expect("pid= must be a number")),
            Some(("db", v)) => target.db = Some(v.to_string()),
            Some(("ready", v)) => target.ready = v.to_string(),
            _ => panic!("--target {spec:?}: unknown option {part:?}"),
        }
    }
    target
}

// ---------------------------------------------------------------- /proc

#[derive(Debug, Clone, Copy)]
struct ProcSample {
    rss_kib: u64,
    hwm_kib: u64,
    cpu_s: f64,
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn proc_sample(pid: Option<u32>) -> Option<ProcSample> {
    let pid = pid?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ProcSample {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
        cpu_s: ticks / clock_ticks(),
    })
}

// ---------------------------------------------------------------- stats

#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    p90: f64,
    mean: f64,
}

/// Same definitions as the reference `bench.js`.
fn stats(xs: &[f64]) -> Stats {
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        return Stats {
            median: f64::NAN,
            p90: f64::NAN,
            mean: f64::NAN,
        };
    }
    let median = if n % 2 == 1 {
        s[(n - 1) / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Stats {
        median,
        p90: s[((0.9 * n as f64).floor() as usize).min(n - 1)],
        mean: s.iter().sum::<f64>() / n as f64,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------- results

/// One figure of one target: name, value, unit, and whether lower is better.
#[derive(Debug, Clone)]
struct Figure {
    key: String,
    value: f64,
    unit: &'static str,
    lower_is_better: bool,
}

#[derive(Default)]
struct Results {
    figures: Vec<Figure>,
    notes: Vec<String>,
}

impl Results {
    fn add(&mut self, key: impl Into<String>, value: f64, unit: &'static str, lower_is_better: bool) {
        let key = key.into();
        println!("  {key:<44} {}", fmt_value(value, unit));
        self.figures.push(Figure {
            key,
            value,
            unit,
            lower_is_better,
        });
    }

    fn rss(&mut self, phase: &str, sample: Option<ProcSample>) {
        if let Some(p) = sample {
            self.add(format!("RSS {phase}"), p.rss_kib as f64 / 1024.0, "MiB", true);
            self.add(
                format!("peak RSS (VmHWM) {phase}"),
                p.hwm_kib as f64 / 1024.0,
                "MiB",
                true,
            );
        }
    }

    fn note(&mut self, note: String) {
        println!("  note: {note}");
        self.notes.push(note);
    }
}

fn fmt_value(v: f64, unit: &str) -> String {
    if v.is_nan() {
        return "-".into();
    }
    if unit.is_empty() && v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let digits = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {unit}")
}

// ---------------------------------------------------------------- workloads

fn values(i: usize) -> Value {
    json!({
        "name": format!("bench-{i}"),
        "description": "benchmark service",
        "owner": "group:default/team-a",
        "language": "rust",
        "enableCi": true,
    })
}

fn ref_demo_dir(arg: Option<PathBuf>) -> PathBuf {
    if let Some(p) = arg {
        return p;
    }
    for candidate in [
        "tests/data/compat-templates/ref-demo",
        "../shared/fixtures/compat-templates/ref-demo",
        "../shared/bench/backstage-ref/templates/ref-demo",
    ] {
        let p = PathBuf::from(candidate);
        if p.join("template.yaml").is_file() {
            return p;
        }
    }
    panic!("no ref-demo template found; pass --ref-demo DIR");
}

/// The dry-run body of W1 without `values`: the template parsed as YAML and
/// its skeleton as base64 `directoryContents`, sorted by path.
fn inline_template(dir: &Path) -> (Value, Value) {
    let text = std::fs::read_to_string(dir.join("template.yaml")).expect("ref-demo/template.yaml is readable");
    let template: Value = serde_norway::from_str(&text).expect("ref-demo/template.yaml is YAML");
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir.join("skeleton")) {
        let entry = entry.expect("skeleton is readable");
        if entry.file_type().is_file() {
            let relative = entry.path().strip_prefix(dir).expect("inside the template dir");
            let path = relative.to_str().expect("UTF-8 skeleton paths").replace('\\', "/");
            let bytes = std::fs::read(entry.path()).expect("skeleton file is readable");
            files.push((path, base64::engine::general_purpose::STANDARD.encode(bytes)));
        }
    }
    files.sort();
    let contents = files
        .into_iter()
        .map(|(path, content)| json!({"path": path, "base64Content": content}))
        .collect();
    (template, Value::Array(contents))
}

async fn get_ok(client: &reqwest::Client, url: &str) -> bool {
    match client.get(url).send().await {
        Ok(r) => {
            let ok = r.status().is_success();
            let _ = r.bytes().await;
            ok
        }
        Err(_) => false,
    }
}

/// S: spawns the server, waits for readiness and both templates.
async fn startup(client: &reqwest::Client, target: &mut Target, cmd: &str, out: &mut Results) -> Child {
    let started = Instant::now();
    let child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    target.pid = Some(child.id());
    let ready_url = format!("{}{}", target.base, target.ready);
    let schema = |t: &str| format!("{}/templates/default/template/{t}/parameter-schema", target.api());
    let (demo, wait) = (schema("ref-demo"), schema("ref-wait"));
    let mut ready_at = None;
    let deadline = started + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < deadline, "{}: not healthy after 300 s", target.name);
        if ready_at.is_none() && get_ok(client, &ready_url).await {
            ready_at = Some(started.elapsed());
        }
        if ready_at.is_some() && get_ok(client, &demo).await && get_ok(client, &wait).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let healthy = started.elapsed();
    let sample = proc_sample(target.pid);
    out.add("S: start → readiness 200", ms(ready_at.unwrap_or(healthy)), "ms", true);
    out.add("S: start → both templates 200", ms(healthy), "ms", true);
    out.rss("right after ready", sample);
    child
}

/// W1: sequential dry-runs of ref-demo.
async fn w1(client: &reqwest::Client, target: &Target, n: usize, inline: &(Value, Value), out: &mut Results) {
    let url = format!("{}/dry-run", target.api());
    let cpu0 = proc_sample(target.pid);
    let t0 = Instant::now();
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let body = json!({"template": inline.0, "values": values(i), "directoryContents": inline.1});
        let body = serde_json::to_vec(&body).expect("JSON body");
        let s = Instant::now();
        let res = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("dry-run request");
        let status = res.status();
        let j: Value = res.json().await.expect("dry-run answer is JSON");
        lat.push(ms(s.elapsed()));
        let files = j["directoryContents"].as_array().map_or(0, Vec::len);
        assert!(
            status == 200 && files == 4,
            "{}: dry-run {i}: {status} {}",
            target.name,
            j.to_string().chars().take(300).collect::<String>()
        );
    }
    let total = ms(t0.elapsed());
    let st = stats(&lat);
    out.add(format!("W1: {n} dry-runs total"), total, "ms", true);
    out.add("W1: dry-run median", st.median, "ms", true);
    out.add("W1: dry-run p90", st.p90, "ms", true);
    out.add("W1: dry-run mean", st.mean, "ms", true);
    out.add(
        "W1: first dry-run",
        lat.first().copied().unwrap_or(f64::NAN),
        "ms",
        true,
    );
    if let (Some(a), Some(b)) = (cpu0, proc_sample(target.pid)) {
        out.add("W1: server CPU", b.cpu_s - a.cpu_s, "s", true);
    }
    out.rss("after W1", proc_sample(target.pid));
}

async fn post_task(client: &reqwest::Client, target: &Target, body: &Value) -> String {
    let res = client
        .post(format!("{}/tasks", target.api()))
        .json(body)
        .send()
        .await
        .expect("POST /tasks");
    let status = res.status();
    let j: Value = res.json().await.expect("POST /tasks answer is JSON");
    assert_eq!(status, 201, "{}: POST /tasks: {j}", target.name);
    j["id"].as_str().expect("POST /tasks answers an id").to_string()
}

/// W2: N tasks at once, one poller on the list of finished tasks.
async fn w2(client: &reqwest::Client, target: &Target, n: usize, poll: Duration, out: &mut Results) {
    let cpu0 = proc_sample(target.pid);
    let t1 = Instant::now();
    let posts = futures::future::join_all((0..n).map(|i| async move {
        let s = Instant::now();
        let body = json!({"templateRef": "template:default/ref-demo", "values": values(i)});
        let id = post_task(client, target, &body).await;
        (id, s, s.elapsed())
    }))
    .await;
    let sent: HashMap<String, Instant> = posts.iter().map(|(id, s, _)| (id.clone(), *s)).collect();
    let mut done: HashMap<String, Instant> = HashMap::new();
    let mut failed = 0;
    let list = format!("{}/tasks?status=completed&status=failed&limit=1000", target.api());
    while done.len() < sent.len() {
        assert!(
            t1.elapsed() < Duration::from_secs(300),
            "{}: W2 timeout, {}/{} done",
            target.name,
            done.len(),
            sent.len()
        );
        let j: Value = client
            .get(&list)
            .send()
            .await
            .expect("GET /tasks")
            .json()
            .await
            .expect("task list is JSON");
        let seen = Instant::now();
        for t in j["tasks"].as_array().into_iter().flatten() {
            let Some(id) = t["id"].as_str() else { continue };
            if sent.contains_key(id) && !done.contains_key(id) {
                done.insert(id.to_string(), seen);
                if t["status"] != "completed" {
                    failed += 1;
                }
            }
        }
        tokio::time::sleep(poll).await;
    }
    let lat: Vec<f64> = sent.iter().map(|(id, s)| ms(done[id] - *s)).collect();
    let all = done.values().max().map_or(f64::NAN, |d| ms(*d - t1));
    let post = stats(&posts.iter().map(|p| ms(p.2)).collect::<Vec<_>>());
    let st = stats(&lat);
    out.add(format!("W2: {n} tasks, all done"), all, "ms", true);
    out.add("W2: submit → completed median", st.median, "ms", true);
    out.add("W2: submit → completed p90", st.p90, "ms", true);
    out.add("W2: POST /tasks median under burst", post.median, "ms", true);
    out.add("W2: failed tasks", failed as f64, "", true);
    if let (Some(a), Some(b)) = (cpu0, proc_sample(target.pid)) {
        out.add("W2: server CPU", b.cpu_s - a.cpu_s, "s", true);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    out.rss("1 s after W2", proc_sample(target.pid));
}

/// What an event stream or long poll has seen of one task.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    events: usize,
    completion: bool,
    first_event: Option<Instant>,
}

/// Follows `GET …/eventstream` until the completion event (or `until`).
async fn follow_sse(client: &reqwest::Client, url: &str, until: Instant, seen: &std::sync::Mutex<Seen>) -> bool {
    let Ok(res) = client.get(url).header("accept", "text/event-stream").send().await else {
        return false;
    };
    if !res.status().is_success() {
        return false;
    }
    let mut stream = res.bytes_stream();
    let mut parser = scaffolder::sse::SseParser::default();
    loop {
        let chunk = tokio::select! {
            c = stream.next() => c,
            _ = tokio::time::sleep_until(until.into()) => return false,
        };
        let Some(Ok(chunk)) = chunk else { return false };
        for frame in parser.push(&chunk) {
            let completion = frame.event.as_deref() == Some("completion")
                || serde_json::from_str::<Value>(&frame.data).is_ok_and(|v| v["type"] == "completion");
            if let Ok(mut s) = seen.lock() {
                s.events += 1;
                s.first_event.get_or_insert_with(Instant::now);
                s.completion |= completion;
            }
            if completion {
                return true;
            }
        }
    }
}

/// Long-polls `GET …/events?after=` until the completion event (or `until`).
async fn follow_long_poll(client: &reqwest::Client, url: &str, until: Instant, seen: &std::sync::Mutex<Seen>) -> bool {
    let mut after: Option<i64> = None;
    while Instant::now() < until {
        let url = match after {
            Some(a) => format!("{url}?after={a}"),
            None => url.to_string(),
        };
        let res = tokio::select! {
            r = client.get(&url).send() => r,
            _ = tokio::time::sleep_until(until.into()) => return false,
        };
        let Ok(res) = res else { return false };
        if !res.status().is_success() {
            return false;
        }
        let Ok(events) = res.json::<Vec<Value>>().await else {
            return false;
        };
        let mut completion = false;
        for e in &events {
            if let Some(id) = e["id"].as_i64() {
                after = Some(after.map_or(id, |a| a.max(id)));
            }
            completion |= e["type"] == "completion";
        }
        if let Ok(mut s) = seen.lock() {
            if !events.is_empty() {
                s.events += events.len();
                s.first_event.get_or_insert_with(Instant::now);
            }
            s.completion |= completion;
        }
        if completion {
            return true;
        }
    }
    false
}

async fn task_status(client: &reqwest::Client, target: &Target, id: &str) -> String {
    let j: Value = match client.get(format!("{}/tasks/{id}", target.api())).send().await {
        Ok(r) => r.json().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    j["status"].as_str().unwrap_or("").to_string()
}

async fn pg_transactions(pg: Option<&sqlx::PgPool>, db: Option<&str>) -> Option<i64> {
    let (pg, db) = (pg?, db?);
    let row: Result<(i64,), _> =
        sqlx::query_as("SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1")
            .bind(db)
            .fetch_one(pg)
            .await;
    row.ok().map(|(n,)| n)
}

/// Waits until PostgreSQL has published every backend's pending statistics
/// (idle backends flush within 10 s, PostgreSQL 15).
const PG_STATS_LAG: Duration = Duration::from_millis(11_000);

/// One round of the watchers workload with `n` watchers.
async fn watchers_round(target: &Target, n: usize, args: &Args, pg: Option<&sqlx::PgPool>, out: &mut Results) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client");
    let tasks = args.watched_tasks.max(1);
    // Long enough to cover connecting, the statistics lag and the window.
    let connect_budget = 15;
    let seconds = connect_budget + PG_STATS_LAG.as_secs() + args.watch_seconds + 5;
    assert!(seconds <= 60, "ref-wait waits at most 60 s; lower --watch-seconds");
    let body = json!({"templateRef": "template:default/ref-wait", "values": {"seconds": seconds}});
    let ids = futures::future::join_all((0..tasks).map(|_| post_task(&client, target, &body))).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        while task_status(&client, target, id).await != "processing" {
            assert!(
                Instant::now() < deadline,
                "{}: ref-wait task {id} is not running",
                target.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let until = Instant::now() + Duration::from_secs(seconds + 30);
    let seen: Arc<Vec<std::sync::Mutex<Seen>>> = Arc::new((0..n).map(|_| Default::default()).collect());
    let connected_at = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let id = &ids[i % ids.len()];
            let sse = i % 2 == 0;
            let url = if sse {
                format!("{}/tasks/{id}/eventstream", target.api())
            } else {
                format!("{}/tasks/{id}/events", target.api())
            };
            let client = client.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                if sse {
                    follow_sse(&client, &url, until, &seen[i]).await
                } else {
                    follow_long_poll(&client, &url, until, &seen[i]).await
                }
            })
        })
        .collect();
    // Every watcher has its backlog (the events before the wait).
    let connect_deadline = connected_at + Duration::from_secs(connect_budget);
    let all_have_events = |seen: &[std::sync::Mutex<Seen>]| {
        seen.iter()
            .filter(|s| s.lock().map(|s| s.events > 0).unwrap_or(false))
            .count()
    };
    while all_have_events(&seen) < n && Instant::now() < connect_deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let with_backlog = all_have_events(&seen);
    let connect = ms(connected_at.elapsed());
    // Let the connection work settle and reach pg_stat_database.
    tokio::time::sleep(PG_STATS_LAG).await;
    // Statistics reach pg_stat_database up to 10 s late at both ends of the
    // window alike, so the difference is the steady rate.
    let x0 = pg_transactions(pg, target.db.as_deref()).await;
    let c0 = proc_sample(target.pid);
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.watch_seconds)).await;
    let x1 = pg_transactions(pg, target.db.as_deref()).await;
    let c1 = proc_sample(target.pid);
    let window = window.elapsed().as_secs_f64();
    let sample = proc_sample(target.pid);
    let mut completed = 0;
    for h in handles {
        if h.await.unwrap_or(false) {
            completed += 1;
        }
    }
    out.add(format!("watchers {n}: all got their backlog in"), connect, "ms", true);
    out.add(format!("watchers {n}: with backlog"), with_backlog as f64, "", false);
    out.add(format!("watchers {n}: saw the completion"), completed as f64, "", false);
    if let (Some(a), Some(b)) = (c0, c1) {
        out.add(
            format!("watchers {n}: server CPU while waiting"),
            (b.cpu_s - a.cpu_s) / window * 1000.0,
            "ms/s",
            true,
        );
    }
    if let (Some(a), Some(b)) = (x0, x1) {
        // The harness reads the statistics from another database: not counted.
        out.add(
            format!("watchers {n}: DB transactions/s while waiting"),
            (b - a) as f64 / window,
            "/s",
            true,
        );
    }
    out.rss(&format!("with {n} watchers"), sample);
    if completed < n {
        out.note(format!(
            "{}: {} of {n} watchers did not see the completion",
            target.name,
            n - completed
        ));
    }
}

/// sustained: closed loop, each client submits a task and follows its event
/// stream until the completion event, then submits the next.
async fn sustained(client: &reqwest::Client, target: &Target, args: &Args, out: &mut Results) {
    let duration = Duration::from_secs(args.sustained_seconds);
    let cpu0 = proc_sample(target.pid);
    let start = Instant::now();
    let end = start + duration;
    let results = futures::future::join_all((0..args.sustained_clients).map(|c| async move {
        let mut lat = Vec::new();
        let mut i = 0;
        while Instant::now() < end {
            let s = Instant::now();
            let body = json!({"templateRef": "template:default/ref-demo", "values": values(c * 100_000 + i)});
            let id = post_task(client, target, &body).await;
            let seen = std::sync::Mutex::new(Seen::default());
            let url = format!("{}/tasks/{id}/eventstream", target.api());
            if follow_sse(client, &url, end + Duration::from_secs(120), &seen).await && Instant::now() <= end {
                lat.push(ms(s.elapsed()));
            }
            i += 1;
        }
        lat
    }))
    .await;
    let lat: Vec<f64> = results.into_iter().flatten().collect();
    let st = stats(&lat);
    out.add(
        format!("sustained ({} clients): completed tasks/s", args.sustained_clients),
        lat.len() as f64 / duration.as_secs_f64(),
        "/s",
        false,
    );
    out.add("sustained: submit → completion event median", st.median, "ms", true);
    out.add("sustained: submit → completion event p90", st.p90, "ms", true);
    if let (Some(a), Some(b)) = (cpu0, proc_sample(target.pid)) {
        out.add(
            "sustained: server CPU per task",
            (b.cpu_s - a.cpu_s) / lat.len().max(1) as f64 * 1000.0,
            "ms",
            true,
        );
    }
    out.rss("after sustained", proc_sample(target.pid));
}

// ---------------------------------------------------------------- report

fn print_table(targets: &[Target], results: &[Results]) {
    let mut keys: Vec<(String, &'static str, bool)> = Vec::new();
    for r in results {
        for f in &r.figures {
            if !keys.iter().any(|k| k.0 == f.key) {
                keys.push((f.key.clone(), f.unit, f.lower_is_better));
            }
        }
    }
    let value = |r: &Results, key: &str| r.figures.iter().find(|f| f.key == key).map(|f| f.value);
    let base = &targets[0].name;
    let mut header = format!(
        "| metric | {} |",
        targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(" | ")
    );
    let mut rule = format!("| --- |{}", " ---: |".repeat(targets.len()));
    for t in &targets[1..] {
        header.push_str(&format!(" {} / {base} |", t.name));
        rule.push_str(" ---: |");
    }
    println!("\n{header}\n{rule}");
    for (key, unit, lower) in keys {
        let vals: Vec<Option<f64>> = results.iter().map(|r| value(r, &key)).collect();
        let mut line = if lower {
            format!("| {key} |")
        } else {
            format!("| {key} (higher is better) |")
        };
        for v in &vals {
            line.push_str(&format!(" {} |", v.map_or("-".into(), |v| fmt_value(v, unit))));
        }
        for v in &vals[1..] {
            let ratio = match (vals[0], *v) {
                (Some(b), Some(v)) if b != 0.0 => format!("{:.1}×", v / b),
                _ => "-".into(),
            };
            line.push_str(&format!(" {ratio} |"));
        }
        println!("{line}");
    }
}

fn main() {
    let args = Args::parse();
    let mut targets: Vec<Target> = args.targets.iter().map(|t| parse_target(t)).collect();
    for spawn in &args.spawns {
        let (name, cmd) = spawn.split_once('=').expect("--spawn NAME=COMMAND");
        let target = targets
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("--spawn {name}: no such --target"));
        target.spawn = Some(cmd.to_string());
    }
    let workloads: HashSet<String> = args.workloads.split(',').map(|w| w.trim().to_lowercase()).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(args, targets, workloads));
}

async fn run(args: Args, mut targets: Vec<Target>, workloads: HashSet<String>) {
    let client = reqwest::Client::new();
    let mut results: Vec<Results> = targets.iter().map(|_| Results::default()).collect();
    let mut children: Vec<Child> = Vec::new();
    let pg = match sqlx::PgPool::connect(&args.pg_url).await {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("no PostgreSQL statistics ({}): {e}", args.pg_url);
            None
        }
    };

    if workloads.contains("s") {
        // One at a time, so that no start competes with another for the CPU.
        for (target, out) in targets.iter_mut().zip(results.iter_mut()) {
            let Some(cmd) = target.spawn.clone() else { continue };
            println!("== {} (S)", target.name);
            children.push(startup(&client, target, &cmd, out).await);
        }
        if args.idle_seconds > 0 && !children.is_empty() {
            println!("== idle {} s", args.idle_seconds);
            tokio::time::sleep(Duration::from_secs(args.idle_seconds)).await;
            for (target, out) in targets.iter().zip(results.iter_mut()) {
                println!("== {} (idle)", target.name);
                out.rss(&format!("after {} s idle", args.idle_seconds), proc_sample(target.pid));
            }
        }
    }
    let inline = inline_template(&ref_demo_dir(args.ref_demo.clone()));
    for (target, out) in targets.iter().zip(results.iter_mut()) {
        println!("== {} ({})", target.name, target.base);
        if !workloads.contains("s") {
            out.rss("before", proc_sample(target.pid));
        }
        if workloads.contains("w1") {
            w1(&client, target, args.dry_runs, &inline, out).await;
        }
        if workloads.contains("w2") {
            w2(&client, target, args.tasks, Duration::from_millis(args.poll_ms), out).await;
        }
        if workloads.contains("sustained") {
            sustained(&client, target, &args, out).await;
        }
        if workloads.contains("watchers") {
            for &n in &args.watchers {
                watchers_round(target, n, &args, pg.as_ref(), out).await;
            }
        }
    }
    print_table(&targets, &results);
    for r in &results {
        for n in &r.notes {
            println!("note: {n}");
        }
    }
    if let Some(path) = &args.json {
        let doc: BTreeMap<&str, Value> = targets
            .iter()
            .zip(&results)
            .map(|(t, r)| {
                let figures: serde_json::Map<String, Value> =
                    r.figures.iter().map(|f| (f.key.clone(), json!(f.value))).collect();
                (
                    t.name.as_str(),
                    json!({"base": t.base, "figures": figures, "notes": r.notes}),
                )
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&doc).expect("JSON")).expect("cannot write --json file");
    }
    for mut child in children {
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
