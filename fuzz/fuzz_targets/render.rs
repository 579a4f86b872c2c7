//! The nunjucks-compatible renderer: any template string with any JSON
//! context must render or fail with a `TemplateError`, never panic, and stop
//! within its fuel and output budgets (libFuzzer's `-timeout` catches hangs).
//!
//! Input: `template NUL context-json`; without a NUL byte the whole input is
//! the template and the context is a fixed one.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use scaffolder::templating::{RenderOptions, Renderer, TemplateError};
use serde_json::{json, Value};

/// A small budget, so that a loop in a template ends quickly.
const FUEL: u64 = 200_000;
const OUTPUT_LIMIT: usize = 1 << 20;

/// Built once: the plain and the cookiecutter-compatible renderer.
fn renderers() -> &'static [Renderer; 2] {
    static RENDERERS: OnceLock<[Renderer; 2]> = OnceLock::new();
    RENDERERS.get_or_init(|| {
        [
            RenderOptions::default(),
            RenderOptions {
                cookiecutter_compat: true,
                trim_blocks: true,
                lstrip_blocks: true,
            },
        ]
        .map(|options| {
            Renderer::builder()
                .options(options)
                .fuel(FUEL)
                .output_limit(OUTPUT_LIMIT)
                .build()
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let (template, context) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], serde_json::from_slice::<Value>(&data[i + 1..]).ok()),
        None => (data, None),
    };
    let Ok(template) = std::str::from_utf8(template) else {
        return;
    };
    let context = context.unwrap_or_else(|| {
        json!({
            "parameters": { "name": "svc", "list": [1, 2, 3], "nested": { "a": "b" }, "n": 7, "flag": true },
            "steps": { "s": { "output": { "x": "y" } } },
            "user": { "entity": { "metadata": { "name": "u" } } },
        })
    });
    for renderer in renderers() {
        match renderer.render_str(template, &context) {
            Ok(out) => assert!(
                out.len() <= OUTPUT_LIMIT,
                "output beyond its limit: {} bytes",
                out.len()
            ),
            Err(TemplateError::OutputTooLarge(limit)) => assert_eq!(limit, OUTPUT_LIMIT),
            Err(_) => {}
        }
        // Step inputs are rendered as values: strings inside JSON.
        let _ = renderer.render_value(&json!({ "a": template, "b": [template] }), &context);
    }
});
