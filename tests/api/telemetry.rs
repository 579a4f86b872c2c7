//! Request ids, ids in the JSON logs and the OTLP span export, seen from
//! outside: the real `scaffolder serve` binary with its stderr captured and
//! an in-test OTLP/HTTP collector decoding what it receives. The span export
//! is compiled only with the `otlp` feature (CI runs this module with it);
//! without it, an OTLP endpoint is a start-up error.

use std::collections::HashSet;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::api::helpers::{admin_url, LIMIT};

/// A `scaffolder serve` process, killed when dropped.
struct Server {
    child: Child,
    base: String,
    stderr: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(env: &[(&str, String)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let db = format!("{}/scaffolder_test_{}", admin_url(), uuid::Uuid::new_v4().simple());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scaffolder"));
        cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--templates"])
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates"))
            .env("DATABASE_URL", db)
            .env("SCAFFOLDER__LOG__FORMAT", "json")
            .env("SCAFFOLDER__LOG__LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("scaffolder starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let echo = std::env::var_os("TEST_LOG").is_some();
        let stderr = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if echo {
                    eprintln!("{line}");
                }
                lines.push(line);
            }
            lines
        });
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stderr: Some(stderr),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + crate::common::PATIENCE;
        loop {
            let ready = client
                .get(format!("{}/readyz", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return server;
            }
            assert!(Instant::now() < deadline, "the server did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for a clean exit; returns every stderr line as JSON.
    async fn stop(mut self) -> Vec<Value> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "serve exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "serve did not stop after SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lines = self.stderr.take().expect("reader").join().expect("stderr reader");
        lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
            .collect()
    }
}

/// The value of `key` in the line's fields or in any of its spans.
fn field<'a>(line: &'a Value, key: &str) -> Vec<&'a Value> {
    let mut found: Vec<&Value> = line.get(key).into_iter().collect();
    if let Some(spans) = line["spans"].as_array() {
        found.extend(spans.iter().filter_map(|s| s.get(key)));
    }
    found
}

async fn run_task(client: &reqwest::Client, base: &str, request_id: &str) -> String {
    let res = client
        .post(format!("{base}/api/scaffolder/v2/tasks"))
        .header("x-request-id", request_id)
        .json(&json!({"templateRef": "template:default/wait-and-fail", "values": {"seconds": 0}}))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["x-request-id"], request_id);
    let id = res.json::<Value>().await.expect("body")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // The event stream closes after the completion event.
    let res = client
        .get(format!("{base}/api/scaffolder/v2/tasks/{id}/eventstream"))
        .send()
        .await
        .expect("stream");
    let text = tokio::time::timeout(LIMIT, res.text())
        .await
        .expect("the task ends")
        .unwrap();
    assert!(text.contains("event: completion"), "{text}");
    id
}

#[tokio::test]
async fn request_and_task_ids_reach_the_logs_and_spans_reach_the_collector() {
    #[cfg(feature = "otlp")]
    let mut collector = spans::Collector::start();
    #[cfg(feature = "otlp")]
    let env = [("SCAFFOLDER__TELEMETRY__OTLP_ENDPOINT", collector.endpoint.clone())];
    #[cfg(not(feature = "otlp"))]
    let env: [(&str, String); 0] = [];
    let server = Server::start(&env).await;
    let client = reqwest::Client::new();
    let id = run_task(&client, &server.base, "obs-test-0001").await;

    // Without an incoming id (or with an unusable one) the server makes one.
    for sent in [None, Some("no spaces allowed")] {
        let mut req = client.get(format!("{}/api/scaffolder/v2/tasks/{id}", server.base));
        if let Some(sent) = sent {
            req = req.header("x-request-id", sent);
        }
        let res = req.send().await.unwrap();
        let echoed = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&echoed).is_ok(), "{echoed}");
    }
    // A caller's W3C trace context is continued.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let res = client
        .get(format!("{}/api/scaffolder/v2/actions", server.base))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let logs = server.stop().await;

    // Logs: the access line of the create request carries its id…
    let created = logs
        .iter()
        .find(|l| l["message"] == "request answered" && field(l, "request_id").contains(&&json!("obs-test-0001")))
        .unwrap_or_else(|| panic!("no access line with the request id in {logs:#?}"));
    assert_eq!(created["status"], 201);
    assert!(field(created, "url.path").contains(&&json!("/api/scaffolder/v2/tasks")));
    // …and every step's line the task and step ids and the action.
    let steps: HashSet<String> = logs
        .iter()
        .filter(|l| l["message"] == "step finished" && field(l, "task_id").contains(&&json!(id)))
        .map(|l| {
            assert!(!field(l, "action").is_empty(), "{l}");
            field(l, "step_id")[0].as_str().expect("step id").to_owned()
        })
        .collect();
    let expected: HashSet<String> = ["hello", "wait", "boom", "bye"].map(String::from).into();
    assert_eq!(steps, expected);
    let finished = logs
        .iter()
        .find(|l| l["message"] == "task finished")
        .expect("a task finished line");
    assert!(field(finished, "task_id").contains(&&json!(id)), "{finished}");
    assert!(field(finished, "template").contains(&&json!("template:default/wait-and-fail")));

    #[cfg(feature = "otlp")]
    spans::check(&mut collector, &id, caller_trace, caller_span).await;
}

#[cfg(not(feature = "otlp"))]
#[tokio::test]
async fn without_the_otlp_feature_an_endpoint_is_a_start_up_error() {
    let db = format!("{}/scaffolder_test_{}", admin_url(), uuid::Uuid::new_v4().simple());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scaffolder"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", db)
        .env("SCAFFOLDER__TELEMETRY__OTLP_ENDPOINT", "http://127.0.0.1:4318")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("scaffolder runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("this build has no OTLP exporter: build with `--features otlp`"),
        "{stderr}"
    );
}

#[cfg(feature = "otlp")]
mod spans {
    use actix_web::{web, App, HttpResponse, HttpServer};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use prost::Message;

    /// An OTLP/HTTP collector: every span posted to `/v1/traces`.
    pub(super) struct Collector {
        pub(super) endpoint: String,
        spans: tokio::sync::mpsc::UnboundedReceiver<(Vec<KeyValue>, Span)>,
        stop: actix_web::dev::ServerHandle,
    }

    impl Collector {
        pub(super) fn start() -> Collector {
            let (tx, spans) = tokio::sync::mpsc::unbounded_channel();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("collector binds");
            let port = listener.local_addr().expect("address").port();
            let server = HttpServer::new(move || {
                let tx = tx.clone();
                App::new().app_data(web::PayloadConfig::new(64 * 1024 * 1024)).route(
                    "/v1/traces",
                    web::post().to(move |req: actix_web::HttpRequest, body: web::Bytes| {
                        let tx = tx.clone();
                        async move {
                            assert_eq!(
                                req.headers().get("content-type").and_then(|v| v.to_str().ok()),
                                Some("application/x-protobuf")
                            );
                            let export = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
                            for resource in export.resource_spans {
                                let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
                                for scope in resource.scope_spans {
                                    for span in scope.spans {
                                        let _ = tx.send((attributes.clone(), span));
                                    }
                                }
                            }
                            HttpResponse::Ok().content_type("application/x-protobuf").finish()
                        }
                    }),
                )
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("collector listens")
            .run();
            let stop = server.handle();
            tokio::spawn(server);
            Collector {
                endpoint: format!("http://127.0.0.1:{port}"),
                spans,
                stop,
            }
        }

        fn received(&mut self) -> Vec<(Vec<KeyValue>, Span)> {
            let mut all = Vec::new();
            while let Ok(item) = self.spans.try_recv() {
                all.push(item);
            }
            all
        }
    }

    fn attr(attributes: &[KeyValue], key: &str) -> Option<String> {
        let value = attributes
            .iter()
            .find(|kv| kv.key == key)?
            .value
            .as_ref()?
            .value
            .as_ref()?;
        Some(match value {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::IntValue(i) => i.to_string(),
            AnyValue::BoolValue(b) => b.to_string(),
            other => format!("{other:?}"),
        })
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Spans: one per task run, one per step as its child, one per request.
    pub(super) async fn check(collector: &mut Collector, id: &str, caller_trace: &str, caller_span: &str) {
        let spans = collector.received();
        collector.stop.stop(false).await;
        assert!(
            spans
                .iter()
                .all(|(resource, _)| attr(resource, "service.name").as_deref() == Some("scaffolder")),
            "service.name"
        );
        let task = spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| attr(&s.attributes, "task_id").as_deref() == Some(id) && s.parent_span_id.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "no task span among {:#?}",
                    spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
                )
            });
        assert_eq!(task.name, "task template:default/wait-and-fail");
        assert_eq!(attr(&task.attributes, "result").as_deref(), Some("completed"));
        let mut children: Vec<(String, String)> = spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.parent_span_id == task.span_id)
            .filter_map(|s| {
                assert_eq!(s.trace_id, task.trace_id);
                Some((attr(&s.attributes, "step_id")?, attr(&s.attributes, "result")?))
            })
            .collect();
        children.sort();
        assert_eq!(
            children,
            [
                ("boom", "skipped"),
                ("bye", "completed"),
                ("hello", "completed"),
                ("wait", "completed")
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
        let step = spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| attr(&s.attributes, "step_id").as_deref() == Some("wait"))
            .expect("the wait step");
        assert_eq!(step.name, "step wait");
        assert_eq!(attr(&step.attributes, "action").as_deref(), Some("debug:wait"));

        let request = spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| attr(&s.attributes, "request_id").as_deref() == Some("obs-test-0001"))
            .expect("the create request's span");
        assert_eq!(request.name, "POST /api/scaffolder/v2/tasks");
        assert_eq!(request.kind, SpanKind::Server as i32);
        assert_eq!(
            attr(&request.attributes, "http.response.status_code").as_deref(),
            Some("201")
        );
        let continued = spans
            .iter()
            .map(|(_, s)| s)
            .find(|s| s.name == "GET /api/scaffolder/v2/actions")
            .expect("the actions request's span");
        assert_eq!(hex(&continued.trace_id), caller_trace);
        assert_eq!(hex(&continued.parent_span_id), caller_span);
    }
}
