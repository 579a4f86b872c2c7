//! Metadata for `GET /v2/templating-extensions`: Backstage's four default
//! filters (descriptions, JSON schemas and examples as Backstage 4.3.0
//! publishes them) plus any filter registered with metadata.

use serde_json::{json, Map, Value};

/// The listing of the built-in Backstage filters:
/// `{filters: {name: {description, schema, examples}}, globals: {functions: {}, values: {}}}`.
pub fn templating_extensions() -> Value {
    listing(&[])
}

/// The listing with extra filters (`name`, metadata object) appended.
pub(crate) fn listing(extra: &[(String, Value)]) -> Value {
    let mut filters = Map::new();
    filters.insert("parseRepoUrl".to_string(), parse_repo_url());
    filters.insert("parseEntityRef".to_string(), parse_entity_ref());
    filters.insert("pick".to_string(), pick());
    filters.insert("projectSlug".to_string(), project_slug());
    for (name, meta) in extra {
        filters.insert(name.clone(), meta.clone());
    }
    json!({
        "filters": Value::Object(filters),
        "globals": { "functions": {}, "values": {} }
    })
}

/// The nunjucks filters templates use most, with an example each; not listed
/// by `GET /v2/templating-extensions` (Backstage lists only its additions to
/// nunjucks), but their examples are run as tests.
#[cfg(test)]
struct Builtin {
    name: &'static str,
    /// An expression using the filter, and what it renders.
    example: (&'static str, &'static str),
}

#[cfg(test)]
#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    Builtin { name: "abs", example: ("-3 | abs", "3") },
    Builtin { name: "batch", example: ("[1,2,3] | batch(2) | dump", "[[1,2],[3]]") },
    Builtin { name: "capitalize", example: ("'hELLO' | capitalize", "Hello") },
    Builtin { name: "center", example: ("'x' | center(5)", "  x  ") },
    Builtin { name: "default", example: ("parameters.missing | default('none')", "none") },
    Builtin { name: "dictsort", example: ("{b: 1, a: 2} | dictsort | dump", "[[\"a\",2],[\"b\",1]]") },
    Builtin { name: "dump", example: ("{a: [1, 2]} | dump", "{\"a\":[1,2]}") },
    Builtin { name: "escape", example: ("'<b>' | escape", "&lt;b&gt;") },
    Builtin { name: "first", example: ("['a', 'b'] | first", "a") },
    Builtin { name: "float", example: ("'1.5' | float", "1.5") },
    Builtin { name: "groupby", example: ("[{k: 'a'}, {k: 'b'}] | groupby('k') | dump", "{\"a\":[{\"k\":\"a\"}],\"b\":[{\"k\":\"b\"}]}") },
    Builtin { name: "indent", example: ("'a\\nb' | indent(2)", "a\\n  b") },
    Builtin { name: "int", example: ("'42' | int", "42") },
    Builtin { name: "join", example: ("['a', 'b'] | join(', ')", "a, b") },
    Builtin { name: "last", example: ("['a', 'b'] | last", "b") },
    Builtin { name: "length", example: ("'abc' | length", "3") },
    Builtin { name: "list", example: ("'ab' | list | dump", "[\"a\",\"b\"]") },
    Builtin { name: "lower", example: ("'ABC' | lower", "abc") },
    Builtin { name: "nl2br", example: ("'a\\nb' | nl2br", "a<br />\\nb") },
    Builtin { name: "reject", example: ("[1, 2, 3] | reject('odd') | dump", "[2]") },
    Builtin { name: "rejectattr", example: ("[{a: 1}, {a: 0}] | rejectattr('a') | dump", "[{\"a\":0}]") },
    Builtin { name: "replace", example: ("'a-b-c' | replace('-', '_')", "a_b_c") },
    Builtin { name: "reverse", example: ("'abc' | reverse", "cba") },
    Builtin { name: "round", example: ("2.567 | round(1)", "2.6") },
    Builtin { name: "safe", example: ("'<b>' | safe", "<b>") },
    Builtin { name: "select", example: ("[1, 2, 3] | select('odd') | dump", "[1,3]") },
    Builtin { name: "selectattr", example: ("[{a: 1}, {a: 0}] | selectattr('a') | dump", "[{\"a\":1}]") },
    Builtin { name: "slice", example: ("[1, 2, 3] | slice(2) | dump", "[[1,2],[3]]") },
    Builtin { name: "sort", example: ("[3, 1, 2] | sort | join(',')", "1,2,3") },
    Builtin { name: "string", example: ("[1, 2] | string", "1,2") },
    Builtin { name: "striptags", example: ("'<p>a  b</p>' | striptags", "a b") },
    Builtin { name: "sum", example: ("[1, 2, 3] | sum", "6") },
    Builtin { name: "title", example: ("'hello world' | title", "Hello World") },
    Builtin { name: "trim", example: ("'  a  ' | trim", "a") },
    Builtin { name: "truncate", example: ("'hello world' | truncate(5)", "hello...") },
    Builtin { name: "upper", example: ("'abc' | upper", "ABC") },
    Builtin { name: "urlencode", example: ("'a b&c' | urlencode", "a%20b%26c") },
    Builtin { name: "wordcount", example: ("'one two three' | wordcount", "3") },
];

fn parse_repo_url() -> Value {
    json!({
        "description": "Parses a repository URL into its constituent parts: owner, repository name, etc.",
        "examples": [
            {
                "example": "- id: log\n  name: Parse Repo URL\n  action: debug:log\n  input:\n    message: ${{ parameters.repoUrl | parseRepoUrl }}",
                "notes": " - **Input**: `github.com?repo=backstage&owner=backstage`\n  - **Output**: `{\"host\":\"github.com\",\"owner\":\"backstage\",\"repo\":\"backstage\"}`\n"
            }
        ],
        "schema": {
            "input": {
                "type": "string",
                "description": "repo URL as collected from repository picker",
                "$schema": "http://json-schema.org/draft-07/schema#"
            },
            "output": {
                "type": "object",
                "properties": {
                    "repo": {
                        "type": "string"
                    },
                    "host": {
                        "type": "string"
                    },
                    "owner": {
                        "type": "string"
                    },
                    "organization": {
                        "type": "string"
                    },
                    "workspace": {
                        "type": "string"
                    },
                    "project": {
                        "type": "string"
                    }
                },
                "required": [
                    "repo",
                    "host"
                ],
                "additionalProperties": false,
                "description": "`RepoSpec`",
                "$schema": "http://json-schema.org/draft-07/schema#"
            }
        }
    })
}

fn parse_entity_ref() -> Value {
    json!({
        "description": "Extracts the parts of an entity reference, such as the kind, namespace, and name.",
        "examples": [
            {
                "description": "Without context",
                "example": "- id: log\n  name: Parse Entity Reference\n  action: debug:log\n  input:\n    message: ${{ parameters.owner | parseEntityRef }}\n",
                "notes": "- **Input**: `group:techdocs`\n- **Output**: `{\"kind\": \"group\", \"namespace\": \"default\", \"name\": \"techdocs\"}`\n"
            },
            {
                "description": "With context",
                "example": "- id: log\n  name: Parse Entity Reference\n  action: debug:log\n  input:\n    message: ${{ parameters.owner | parseEntityRef({ defaultKind:\"group\", defaultNamespace:\"another-namespace\" }) }}\n",
                "notes": "- **Input**: `techdocs`\n- **Arguments:**: `[{ \"defaultKind\": \"group\", \"defaultNamespace\": \"another-namespace\" }]`\n- **Output**: `{\"kind\": \"group\", \"namespace\": \"another-namespace\", \"name\": \"techdocs\"}`\n"
            }
        ],
        "schema": {
            "input": {
                "anyOf": [
                    {
                        "type": "string",
                        "description": "compact entity reference"
                    },
                    {
                        "type": "object",
                        "properties": {
                            "kind": {
                                "type": "string"
                            },
                            "namespace": {
                                "type": "string"
                            },
                            "name": {
                                "type": "string"
                            }
                        },
                        "required": [
                            "name"
                        ],
                        "additionalProperties": false,
                        "description": "`CompoundEntityRef`"
                    }
                ],
                "$schema": "http://json-schema.org/draft-07/schema#"
            },
            "arguments": [
                {
                    "anyOf": [
                        {
                            "not": {}
                        },
                        {
                            "type": "object",
                            "properties": {
                                "defaultKind": {
                                    "type": "string",
                                    "description": "The default kind, if none is given in the reference"
                                },
                                "defaultNamespace": {
                                    "type": "string",
                                    "description": "The default namespace, if none is given in the reference"
                                }
                            },
                            "additionalProperties": false
                        }
                    ],
                    "$schema": "http://json-schema.org/draft-07/schema#"
                }
            ],
            "output": {
                "type": "object",
                "properties": {
                    "kind": {
                        "type": "string"
                    },
                    "namespace": {
                        "type": "string"
                    },
                    "name": {
                        "type": "string"
                    }
                },
                "required": [
                    "kind",
                    "namespace",
                    "name"
                ],
                "additionalProperties": false,
                "description": "`CompoundEntityRef`",
                "$schema": "http://json-schema.org/draft-07/schema#"
            }
        }
    })
}

fn pick() -> Value {
    json!({
        "description": "Selects a specific property (e.g. kind, namespace, name) from an object.",
        "examples": [
            {
                "example": "- id: log\n  name: Pick\n  action: debug:log\n  input:\n    message: ${{ parameters.owner | parseEntityRef | pick('name') }}",
                "notes": "- **Input**: `{ kind: 'Group', namespace: 'default', name: 'techdocs'` }\n- **Output**: `techdocs`\n"
            }
        ],
        "schema": {
            "input": {
                "$schema": "http://json-schema.org/draft-07/schema#"
            },
            "arguments": [
                {
                    "type": "string",
                    "description": "Property",
                    "$schema": "http://json-schema.org/draft-07/schema#"
                }
            ],
            "output": {
                "description": "Selected property",
                "$schema": "http://json-schema.org/draft-07/schema#"
            }
        }
    })
}

fn project_slug() -> Value {
    json!({
        "description": "Generates a project slug from a repository URL.",
        "examples": [
            {
                "example": "- id: log\n  name: Project Slug\n  action: debug:log\n  input:\n    message: ${{ parameters.repoUrl | projectSlug }}\n",
                "notes": "- **Input**: `github.com?repo=backstage&owner=backstage`\n- **Output**: backstage/backstage\n"
            }
        ],
        "schema": {
            "input": {
                "type": "string",
                "description": "repo URL as collected from repository picker",
                "$schema": "http://json-schema.org/draft-07/schema#"
            },
            "output": {
                "type": "string",
                "$schema": "http://json-schema.org/draft-07/schema#"
            }
        }
    })
}

#[cfg(test)]
mod builtin_tests {
    use super::*;
    use crate::templating::Renderer;

    /// Every documented example renders to what its notes say.
    #[test]
    fn builtin_examples_render_as_documented() {
        let renderer = Renderer::new();
        for b in BUILTINS {
            let (expression, expected) = b.example;
            let expected = expected.replace("\\n", "\n");
            let got = renderer
                .render_str(&format!("${{{{ {expression} }}}}"), &json!({ "parameters": {} }))
                .unwrap_or_else(|e| panic!("{}: {e}", b.name));
            assert_eq!(got, expected, "{}: {expression}", b.name);
        }
    }

    #[test]
    fn the_listing_is_backstages_additions_only() {
        let listing = templating_extensions();
        let names: Vec<&String> = listing["filters"]
            .as_object()
            .map(|f| f.keys().collect())
            .unwrap_or_default();
        assert_eq!(names, ["parseRepoUrl", "parseEntityRef", "pick", "projectSlug"]);
        assert_eq!(listing["globals"], json!({"functions": {}, "values": {}}));
    }
}
