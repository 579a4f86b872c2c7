#!/usr/bin/env python3
"""Captures tests/data/api-golden-extra/*.json from a running Backstage
scaffolder-backend 4.3.0 (the reference of ../shared/bench/backstage-ref set
up as tests/data/api-golden-extra/README.md says).

    python3 scripts/capture-api-golden-extra.py http://127.0.0.1:7217
"""
import base64
import json
import os
import re
import sys
import urllib.error
import urllib.request

BASE = (sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:7217").rstrip("/")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "api-golden-extra")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + "/api/scaffolder" + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def normalise(value):
    text = json.dumps(value)
    text = UUID.sub("<UUID>", text)
    text = re.sub(r'(file://)?/tmp/[^"\\]*?(dry-run-content-|dry-run-)', r"<WORK_DIR>/\2", text)
    return json.loads(text)


def save(name, description, method, path, body=None):
    status, answer = call(method, path, body)
    record = {
        "description": description,
        "request": {"method": method, "path": "/api/scaffolder" + path, **({"body": body} if body is not None else {})},
        "response": {"status": status, "body": normalise(answer)},
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(record, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(name, status)
    return status, answer


def template(steps, **spec):
    return {
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": "wire"},
        "spec": {"owner": "user:guest", "type": "service", "steps": steps, **spec},
    }


def b64(text):
    return base64.b64encode(text.encode()).decode()


SECRETS_SCHEMA = {"schema": {"type": "object", "required": ["apiToken"],
                             "properties": {"apiToken": {"type": "string", "minLength": 5}}}}
LOG = [{"id": "log", "name": "Log", "action": "debug:log", "input": {"message": "hello"}}]

# Filters applied to a SafeString (`| safe`) of an undefined value and of a
# defined multi-line one: nunjucks' SafeString is an object, so the
# empty-string shortcuts of some filters do not apply to it.
FILTERS = ["indent(8, true)", "indent(2)", "upper", "lower", "capitalize", "title", "trim",
           "replace('a', 'b')", "truncate(3)", "center(5)", "default('d')", "length", "first",
           "last", "reverse", "wordcount", "striptags", "urlencode", "escape", "string", "list | join(',')",
           "int", "float", "nl2br", "dump"]
CASES = {"missing-safe": "values.missing | safe", "lines-safe": "values.lines | safe",
         "missing": "values.missing", "empty-safe": "values.empty | safe"}


def safe_filters():
    """One dry-run per (filter, input): a file `[${{ <input> | <filter> }}]`
    rendered by fetch:template; the rendered text or the error."""
    results = {}
    for f in FILTERS:
        for case, expr in CASES.items():
            body = {
                "template": template([{"id": "fetch", "name": "Fetch", "action": "fetch:template",
                                       "input": {"url": "./skeleton",
                                                 "values": {"lines": "${{ parameters.lines }}", "empty": ""}}}]),
                "values": {"lines": "one\ntwo"},
                "directoryContents": [{"path": "skeleton/out.txt", "base64Content": b64(f"[${{{{ {expr} | {f} }}}}]")}],
            }
            status, answer = call("POST", "/v2/dry-run", body)
            if status == 200:
                files = {x["path"]: base64.b64decode(x["base64Content"]).decode() for x in answer["directoryContents"]}
                results[f"{case} | {f}"] = {"status": 200, "text": files.get("out.txt")}
            else:
                results[f"{case} | {f}"] = {"status": status, "error": answer.get("error", {}).get("name")}
    record = {
        "description": "fetch:template rendering `[${{ <input> | <filter> }}]`, one dry-run each; "
                       "inputs: " + json.dumps(CASES) + " with values {lines: 'one\\ntwo', empty: ''}",
        "results": results,
    }
    with open(os.path.join(OUT, "dry-run-safe-filters.json"), "w") as fh:
        json.dump(record, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    print("dry-run-safe-filters", len(results))


def main():
    os.makedirs(OUT, exist_ok=True)
    save("parameter-schema-full", "GET parameter-schema of a template with presentation, ui:options, "
         "formDecorators, a page with `when` and a page without title",
         "GET", "/v2/templates/default/template/wire-capture/parameter-schema")
    save("tasks-create-400-secrets-required", "POST /v2/tasks without the secret spec.secrets.schema requires",
         "POST", "/v2/tasks", {"templateRef": "template:default/wire-capture", "values": {"name": "a"}})
    save("tasks-create-400-secrets-invalid", "POST /v2/tasks with a secret too short for spec.secrets.schema",
         "POST", "/v2/tasks", {"templateRef": "template:default/wire-capture", "values": {"name": "a"},
                               "secrets": {"apiToken": "abc"}})
    status, created = save("tasks-create-secrets-ok", "POST /v2/tasks with the required secret",
                           "POST", "/v2/tasks", {"templateRef": "template:default/wire-capture",
                                                 "values": {"name": "a"}, "secrets": {"apiToken": "abcdef"}})
    if status == 201:
        save("tasks-retry-400-secrets-required", "POST /v2/tasks/{id}/retry without the required secret",
             "POST", f"/v2/tasks/{created['id']}/retry", {})
    save("dry-run-400-secrets-required", "POST /v2/dry-run of a template with spec.secrets.schema, no secrets",
         "POST", "/v2/dry-run", {"template": template(LOG, secrets=SECRETS_SCHEMA), "values": {},
                                 "directoryContents": []})
    save("dry-run-403-upload-outside", "POST /v2/dry-run with a directoryContents path above the template",
         "POST", "/v2/dry-run", {"template": template(LOG), "values": {},
                                 "directoryContents": [{"path": "../skeleton/a.txt", "base64Content": b64("a")}]})
    save("dry-run-403-upload-absolute", "POST /v2/dry-run with an absolute directoryContents path",
         "POST", "/v2/dry-run", {"template": template(LOG), "values": {},
                                 "directoryContents": [{"path": "/tmp/wire-capture-absolute.txt", "base64Content": b64("a")}]})
    safe_filters()
    save("dry-run-safe-values", "`| safe` of an object, a number, a list and undefined in spec.output",
         "POST", "/v2/dry-run", {"template": template(LOG, parameters=[{"properties": {
             "obj": {"type": "object"}, "n": {"type": "number"}, "list": {"type": "array"}}}],
             output={"missing": "${{ parameters.missing | safe }}", "obj": "${{ parameters.obj | safe }}",
                     "n": "${{ parameters.n | safe }}", "list": "${{ parameters.list | safe }}",
                     "indented": "${{ parameters.missing | safe | indent(2, true) }}"}),
             "values": {"obj": {"a": 1}, "n": 5, "list": ["x", "y"]}, "directoryContents": []})
    save("dry-run-catalog-fetch-missing", "catalog:fetch of a missing entity in a dry-run",
         "POST", "/v2/dry-run", {"template": template([{"id": "fetch", "name": "Fetch", "action": "catalog:fetch",
                                                        "input": {"entityRef": "component:default/missing"}}]),
                                 "values": {}, "directoryContents": []})
    save("dry-run-catalog-fetch-optional", "catalog:fetch of a missing entity with optional: true in a dry-run",
         "POST", "/v2/dry-run", {"template": template(
             [{"id": "fetch", "name": "Fetch", "action": "catalog:fetch",
               "input": {"entityRef": "component:default/missing", "optional": True}},
              {"id": "many", "name": "Many", "action": "catalog:fetch",
               "input": {"entityRefs": ["component:default/missing", "template:default/ref-demo"], "optional": True}}],
             output={"entity": "${{ steps.fetch.output.entity }}",
                     "second": "${{ steps.many.output.entities[1].metadata.name }}"}),
             "values": {}, "directoryContents": []})
    save("dry-run-default-environment", "environment.parameters and environment.secrets in a dry-run "
         "(scaffolder.defaultEnvironment: parameters.region eu-west-1, secrets.deployKey)",
         "POST", "/v2/dry-run", {"template": template(
             [{"id": "log", "name": "Log", "action": "debug:log",
               "input": {"message": "region=${{ environment.parameters.region }} key=${{ environment.secrets.deployKey }}"}},
              {"id": "fetch", "name": "Fetch", "action": "fetch:template",
               "input": {"url": "./skeleton", "values": {"region": "${{ environment.parameters.region }}",
                                                          "key": "${{ environment.secrets.deployKey }}"}}}],
             output={"region": "${{ environment.parameters.region }}",
                     "key": "${{ environment.secrets.deployKey }}"}),
             "values": {},
             "directoryContents": [{"path": "skeleton/env.txt",
                                    "base64Content": b64("region=${{ values.region }} key=[${{ values.key }}]\n")}]})
    save("autocomplete-400-unsupported", "POST /v2/autocomplete with no provider installed",
         "POST", "/v2/autocomplete/github/repositoriesWithOwner", {"token": "t", "context": {}})
    save("autocomplete-400-missing-token", "POST /v2/autocomplete without a token",
         "POST", "/v2/autocomplete/github/repositoriesWithOwner", {"context": {}})


if __name__ == "__main__":
    main()
