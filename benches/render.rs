//! Rendering a large skeleton through `fetch:template`, next to `cp -r` of
//! the same tree: `cargo bench --bench render`.
//!
//! The skeleton is generated in a temporary directory: realistic sizes (a few
//! hundred bytes to ~18 KiB, about 4 KiB on average), about 60 % of the files
//! with template expressions (`${{ values.x }}`, filters, `{% if %}`,
//! `{% for %}`), the rest plain text that still goes through the renderer,
//! as it does in Backstage; a few file and directory names are templated
//! too. `fetch:template` runs exactly as a task step runs it: through
//! `Action::run` (input validation, then the handler), its log lines
//! collected in memory as a dry-run does.
//!
//! Groups: `skeleton_1000` (`fetch_template` and `cp_r` of 1,000 files),
//! `skeleton_size` (both at 100, 1,000 and 5,000 files) and
//! `action_input_schema` (deriving an action's input schema, which each step does).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use scaffolder::actions::fetch::FetchTemplate;
use scaffolder::actions::{Action, ActionContext, LogSink, StepLogger};

/// Deterministic xorshift, so every run renders the same tree.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }
}

const WORDS: &[&str] = &[
    "request", "handler", "config", "service", "client", "record", "buffer", "stream", "cache", "event", "token",
    "schema", "router", "worker", "queue", "metric",
];

/// A line of plain source text (nothing the renderer would interpret).
fn plain_line(rng: &mut Rng, n: usize) -> String {
    let a = WORDS[(rng.next() % WORDS.len() as u64) as usize];
    let b = WORDS[(rng.next() % WORDS.len() as u64) as usize];
    match rng.next() % 5 {
        0 => format!("    let {a}_{n} = {b}::new({n}, \"{a}-{b}\");\n"),
        1 => format!("    // {a} {b}: keep the {a} until the {b} is flushed ({n})\n"),
        2 => format!("    if {a}.len() > {n} {{ return Err(Error::{b}({n})); }}\n"),
        3 => format!("fn {a}_{b}_{n}(input: &str) -> Result<(), Error> {{ Ok(()) }}\n"),
        _ => format!("    {a}.push({b}.clone()); // {n}\n"),
    }
}

/// A line with template expressions.
fn templated_line(rng: &mut Rng, n: usize) -> String {
    match rng.next() % 6 {
        0 => format!("// ${{{{ values.name }}}}: component {n}, owned by ${{{{ values.owner }}}}\n"),
        1 => format!("const NAME_{n}: &str = ${{{{ values.name | dump }}}};\n"),
        2 => format!("    language = \"${{{{ values.language | upper }}}}\" # {n}\n"),
        3 => "{%- if values.enableCi %}\nci: enabled\n{%- else %}\nci: disabled\n{%- endif %}\n".to_string(),
        4 => "{% for tag in values.tags %}  - ${{ tag }}\n{% endfor %}".to_string(),
        _ => format!("description: ${{{{ values.description | replace(\"service\", \"svc\") }}}} {n}\n"),
    }
}

/// Writes `count` files below `root/skeleton` and the `template.yaml` beside it.
fn generate(root: &Path, count: usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ count as u64);
    let skeleton = root.join("skeleton");
    std::fs::write(
        root.join("template.yaml"),
        "apiVersion: scaffolder.backstage.io/v1beta3\n",
    )
    .expect("write");
    for i in 0..count {
        let dir = match i % 10 {
            0 => "docs".to_string(),
            1 => "{% if values.enableCi %}ci{% endif %}".to_string(),
            2 | 3 => format!("config/env-{}", i % 7),
            _ => format!("src/module_{}", i % 40),
        };
        let templated = rng.unit() < 0.6;
        let name = if i % 20 == 0 {
            format!("${{{{ values.name }}}}_{i}.rs")
        } else {
            let ext = ["rs", "ts", "go", "yaml", "md", "txt"][(rng.next() % 6) as usize];
            format!("file_{i}.{ext}")
        };
        // 200 B … ~18 KiB, log-uniform.
        let size = (200.0 * 2f64.powf(rng.unit() * 6.5)) as usize;
        let mut text = String::with_capacity(size + 200);
        let mut n = 0;
        while text.len() < size {
            n += 1;
            if templated && rng.next() % 8 == 0 {
                text.push_str(&templated_line(&mut rng, n));
            } else {
                text.push_str(&plain_line(&mut rng, n));
            }
        }
        let path = skeleton.join(dir).join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

#[derive(Default)]
struct MemoryLog(Mutex<Vec<String>>);

#[async_trait]
impl LogSink for MemoryLog {
    async fn log(&self, _step_id: &str, message: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(message);
        }
    }
}

fn context(template_dir: &Path, workspace: PathBuf) -> ActionContext {
    ActionContext {
        task_id: "bench".into(),
        step_id: "fetch".into(),
        workspace,
        template_base: url::Url::from_file_path(template_dir.join("template.yaml")).expect("absolute path"),
        raw_input: Value::Null,
        logger: StepLogger::new(Arc::new(MemoryLog::default()), "fetch"),
        secrets: Map::new(),
        user: json!({}),
        dry_run: false,
        cancel: CancellationToken::new(),
        integrations: Default::default(),
        extensions: Default::default(),
        outputs: Map::new(),
        limits: Default::default(),
        reader: None,
        run: Default::default(),
        approval: None,
    }
}

fn input() -> Value {
    json!({
        "url": "./skeleton",
        "targetPath": "./out",
        "values": {
            "name": "billing-api",
            "description": "benchmark service",
            "owner": "group:default/team-a",
            "language": "rust",
            "enableCi": true,
            "tags": ["rust", "payments", "internal"],
        },
    })
}

struct Skeleton {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

fn skeleton(count: usize) -> Skeleton {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    generate(&root, count);
    Skeleton { _dir: dir, root }
}

fn bench_fetch_template(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: BenchmarkId,
    s: &Skeleton,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    c.bench_with_input(id, &s.root, |b, root| {
        b.iter_batched(
            || {
                let workspace = tempfile::tempdir().expect("workspace");
                let ctx = context(root, workspace.path().to_path_buf());
                (workspace, ctx)
            },
            |(workspace, mut ctx)| {
                runtime
                    .block_on(FetchTemplate.run(&mut ctx, input()))
                    .expect("fetch:template succeeds");
                workspace
            },
            BatchSize::PerIteration,
        )
    });
}

fn bench_cp_r(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, id: BenchmarkId, s: &Skeleton) {
    c.bench_with_input(id, &s.root, |b, root| {
        b.iter_batched(
            || tempfile::tempdir().expect("workspace"),
            |workspace| {
                let status = Command::new("cp")
                    .arg("-r")
                    .arg(root.join("skeleton"))
                    .arg(workspace.path().join("out"))
                    .status()
                    .expect("cp runs");
                assert!(status.success(), "cp -r failed");
                workspace
            },
            BatchSize::PerIteration,
        )
    });
}

fn skeleton_1000(c: &mut Criterion) {
    let s = skeleton(1000);
    let mut group = c.benchmark_group("skeleton_1000");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1000));
    bench_fetch_template(&mut group, BenchmarkId::new("fetch_template", 1000), &s);
    bench_cp_r(&mut group, BenchmarkId::new("cp_r", 1000), &s);
    group.finish();
}

fn skeleton_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("skeleton_size");
    group.sample_size(10).measurement_time(Duration::from_secs(8));
    for count in [100, 1000, 5000] {
        let s = skeleton(count);
        group.throughput(Throughput::Elements(count as u64));
        bench_fetch_template(&mut group, BenchmarkId::new("fetch_template", count), &s);
        bench_cp_r(&mut group, BenchmarkId::new("cp_r", count), &s);
    }
    group.finish();
}

/// What deriving an action's input schema costs: done on every step, since
/// nothing caches it between actions.
fn action_input_schema(c: &mut Criterion) {
    c.bench_function("action_input_schema/fetch_template", |b| {
        b.iter(|| Action::input_schema(&FetchTemplate))
    });
}

criterion_group!(benches, skeleton_1000, skeleton_size, action_input_schema);
criterion_main!(benches);
