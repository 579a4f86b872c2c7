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
