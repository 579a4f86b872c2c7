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
    for builtin in BUILTINS {
        filters.insert(builtin.name.to_string(), builtin.describe());
    }
    for (name, meta) in extra {
        filters.insert(name.clone(), meta.clone());
    }
    json!({
        "filters": Value::Object(filters),
        "globals": { "functions": {}, "values": {} }
    })
}

/// A nunjucks built-in filter, described in the same shape as Backstage's.
struct Builtin {
    name: &'static str,
    description: &'static str,
    input: &'static str,
    /// `(JSON type, description)` of each positional argument.
    arguments: &'static [(&'static str, &'static str)],
    output: &'static str,
    /// An expression using the filter, and what it renders.
    example: (&'static str, &'static str),
}

const DRAFT7: &str = "http://json-schema.org/draft-07/schema#";

impl Builtin {
    fn describe(&self) -> Value {
        let schema_of = |ty: &str| {
            if ty == "any" {
                json!({ "$schema": DRAFT7 })
            } else {
                json!({ "type": ty, "$schema": DRAFT7 })
            }
        };
        let arguments: Vec<Value> = self
            .arguments
            .iter()
            .map(|(ty, description)| {
                let mut arg = schema_of(ty);
                arg["description"] = json!(description);
                arg
            })
            .collect();
        let (expression, result) = self.example;
        json!({
            "description": self.description,
            "examples": [{
                "example": format!("- id: log\n  name: {}\n  action: debug:log\n  input:\n    message: ${{{{ {expression} }}}}", self.name),
                "notes": format!("- **Output**: `{result}`\n"),
            }],
            "schema": {
                "input": schema_of(self.input),
                "arguments": arguments,
                "output": schema_of(self.output),
            }
        })
    }
}

/// The nunjucks filters templates use most, with nunjucks semantics.
const BUILTINS: &[Builtin] = &[
    Builtin { name: "abs", description: "Absolute value of a number.", input: "number", arguments: &[], output: "number", example: ("-3 | abs", "3") },
    Builtin { name: "batch", description: "Splits a list into lists of the given size, padding the last one with the fill value when given.", input: "array", arguments: &[("number", "Size of each batch"), ("any", "Fill value for the last batch")], output: "array", example: ("[1,2,3] | batch(2) | dump", "[[1,2],[3]]") },
    Builtin { name: "capitalize", description: "First character upper case, the rest lower case.", input: "string", arguments: &[], output: "string", example: ("'hELLO' | capitalize", "Hello") },
    Builtin { name: "center", description: "Centers the text in a field of the given width.", input: "string", arguments: &[("number", "Width (default 80)")], output: "string", example: ("'x' | center(5)", "  x  ") },
    Builtin { name: "default", description: "The value, or the default when the value is undefined (or falsy when the second argument is true). Alias `d`.", input: "any", arguments: &[("any", "Default value"), ("boolean", "Also replace falsy values")], output: "any", example: ("parameters.missing | default('none')", "none") },
    Builtin { name: "dictsort", description: "Sorts an object's entries by key (or by value), returning [key, value] pairs.", input: "object", arguments: &[("boolean", "Case sensitive"), ("string", "Sort by 'key' or 'value'")], output: "array", example: ("{b: 1, a: 2} | dictsort | dump", "[[\"a\",2],[\"b\",1]]") },
    Builtin { name: "dump", description: "JSON.stringify of the value, optionally indented.", input: "any", arguments: &[("number", "Indentation (spaces)")], output: "string", example: ("{a: [1, 2]} | dump", "{\"a\":[1,2]}") },
    Builtin { name: "escape", description: "Escapes HTML special characters. Alias `e`.", input: "string", arguments: &[], output: "string", example: ("'<b>' | escape", "&lt;b&gt;") },
    Builtin { name: "first", description: "The first item of a list or the first character of a string.", input: "any", arguments: &[], output: "any", example: ("['a', 'b'] | first", "a") },
    Builtin { name: "float", description: "Parses a number with decimals; the default when it is not a number.", input: "any", arguments: &[("number", "Default value")], output: "number", example: ("'1.5' | float", "1.5") },
    Builtin { name: "groupby", description: "Groups a list of objects by an attribute.", input: "array", arguments: &[("string", "Attribute")], output: "object", example: ("[{k: 'a'}, {k: 'b'}] | groupby('k') | dump", "{\"a\":[{\"k\":\"a\"}],\"b\":[{\"k\":\"b\"}]}") },
    Builtin { name: "indent", description: "Indents every line but the first by the given number of spaces (the first too when the second argument is true).", input: "string", arguments: &[("number", "Spaces (default 4)"), ("boolean", "Indent the first line")], output: "string", example: ("'a\\nb' | indent(2)", "a\\n  b") },
    Builtin { name: "int", description: "Parses an integer; the default when it is not a number.", input: "any", arguments: &[("number", "Default value")], output: "number", example: ("'42' | int", "42") },
    Builtin { name: "join", description: "Joins list items with a separator, optionally taking an attribute of each.", input: "array", arguments: &[("string", "Separator (default empty)"), ("string", "Attribute")], output: "string", example: ("['a', 'b'] | join(', ')", "a, b") },
    Builtin { name: "last", description: "The last item of a list or the last character of a string.", input: "any", arguments: &[], output: "any", example: ("['a', 'b'] | last", "b") },
    Builtin { name: "length", description: "Number of items of a list or object, or characters of a string.", input: "any", arguments: &[], output: "number", example: ("'abc' | length", "3") },
    Builtin { name: "list", description: "Converts a string to a list of characters or an object to a list of {key, value}.", input: "any", arguments: &[], output: "array", example: ("'ab' | list | dump", "[\"a\",\"b\"]") },
    Builtin { name: "lower", description: "Lower case.", input: "string", arguments: &[], output: "string", example: ("'ABC' | lower", "abc") },
    Builtin { name: "nl2br", description: "Replaces new lines with <br />.", input: "string", arguments: &[], output: "string", example: ("'a\\nb' | nl2br", "a<br />\\nb") },
    Builtin { name: "reject", description: "Items for which the named test fails.", input: "array", arguments: &[("string", "Test name, e.g. 'odd'")], output: "array", example: ("[1, 2, 3] | reject('odd') | dump", "[2]") },
    Builtin { name: "rejectattr", description: "Objects whose attribute is falsy are kept; others removed.", input: "array", arguments: &[("string", "Attribute")], output: "array", example: ("[{a: 1}, {a: 0}] | rejectattr('a') | dump", "[{\"a\":0}]") },
    Builtin { name: "replace", description: "Replaces occurrences of a string (all of them, or at most the given count).", input: "string", arguments: &[("string", "Text to find"), ("string", "Replacement"), ("number", "Maximum count")], output: "string", example: ("'a-b-c' | replace('-', '_')", "a_b_c") },
    Builtin { name: "reverse", description: "Reverses a list or a string.", input: "any", arguments: &[], output: "any", example: ("'abc' | reverse", "cba") },
    Builtin { name: "round", description: "Rounds a number to the given precision, with 'common', 'floor' or 'ceil'.", input: "number", arguments: &[("number", "Precision"), ("string", "Method")], output: "number", example: ("2.567 | round(1)", "2.6") },
    Builtin { name: "safe", description: "Marks the value as safe (no escaping; Backstage does not escape anyway).", input: "any", arguments: &[], output: "any", example: ("'<b>' | safe", "<b>") },
    Builtin { name: "select", description: "Items for which the named test passes.", input: "array", arguments: &[("string", "Test name, e.g. 'odd'")], output: "array", example: ("[1, 2, 3] | select('odd') | dump", "[1,3]") },
    Builtin { name: "selectattr", description: "Objects whose attribute is truthy.", input: "array", arguments: &[("string", "Attribute")], output: "array", example: ("[{a: 1}, {a: 0}] | selectattr('a') | dump", "[{\"a\":1}]") },
    Builtin { name: "slice", description: "Splits a list into the given number of slices.", input: "array", arguments: &[("number", "Number of slices"), ("any", "Fill value")], output: "array", example: ("[1, 2, 3] | slice(2) | dump", "[[1,2],[3]]") },
    Builtin { name: "sort", description: "Sorts a list, optionally reversed, case sensitive, or by an attribute.", input: "array", arguments: &[("boolean", "Reverse"), ("boolean", "Case sensitive"), ("string", "Attribute")], output: "array", example: ("[3, 1, 2] | sort | join(',')", "1,2,3") },
    Builtin { name: "string", description: "Converts the value to a string as JavaScript's String() does.", input: "any", arguments: &[], output: "string", example: ("[1, 2] | string", "1,2") },
    Builtin { name: "striptags", description: "Removes HTML tags and collapses white space (keeps line breaks when the argument is true).", input: "string", arguments: &[("boolean", "Preserve line breaks")], output: "string", example: ("'<p>a  b</p>' | striptags", "a b") },
    Builtin { name: "sum", description: "Sum of a list, optionally of an attribute, plus a start value.", input: "array", arguments: &[("string", "Attribute"), ("number", "Start value")], output: "number", example: ("[1, 2, 3] | sum", "6") },
    Builtin { name: "title", description: "Upper case at the start of every word.", input: "string", arguments: &[], output: "string", example: ("'hello world' | title", "Hello World") },
    Builtin { name: "trim", description: "Removes leading and trailing white space.", input: "string", arguments: &[], output: "string", example: ("'  a  ' | trim", "a") },
    Builtin { name: "truncate", description: "Shortens text to the given length, at a word boundary unless the second argument is true, ending with '...' or the given text.", input: "string", arguments: &[("number", "Length (default 255)"), ("boolean", "Cut words"), ("string", "End text")], output: "string", example: ("'hello world' | truncate(5)", "hello...") },
    Builtin { name: "upper", description: "Upper case.", input: "string", arguments: &[], output: "string", example: ("'abc' | upper", "ABC") },
    Builtin { name: "urlencode", description: "Percent-encodes a string, or an object as a query string.", input: "any", arguments: &[], output: "string", example: ("'a b&c' | urlencode", "a%20b%26c") },
    Builtin { name: "wordcount", description: "Number of words.", input: "string", arguments: &[], output: "number", example: ("'one two three' | wordcount", "3") },
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
    fn the_listing_has_backstage_s_filters_and_the_builtins() {
        let listing = templating_extensions();
        for name in [
            "parseRepoUrl",
            "parseEntityRef",
            "pick",
            "projectSlug",
            "dump",
            "replace",
            "default",
        ] {
            assert!(listing["filters"][name]["description"].is_string(), "{name}");
        }
        assert_eq!(
            listing["filters"]["replace"]["schema"]["arguments"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
    }
}
