"""Tests of Rancher's form for the chart (chart/questions.yml) and of the Rancher and Artifact Hub
annotations in chart/Chart.yaml, with the real tools.

The form follows Epinio's own (epinio/helm-charts, chart/epinio/questions.yml) and is read the way
Rancher's Apps UI (rancher/dashboard, shell/components/Questions) reads it:

- `variable` is a values path; `type` picks the input (string, password, boolean, int, float,
  enum, map[string], array[string]); subquestions show when the parent's value equals
  `show_subquestion_if` and inherit its group;
- `show_if` is `var=value` / `var!=value` terms joined by `&&` (and alternatives by `||`); an empty
  value means "empty or unset";
- `default` is applied only to a value missing from values.yaml; a boolean's "true"/"false"
  string becomes a boolean, every other default is sent as written (so a quoted number would
  reach Helm as a string).

Every variable must be a path of values.schema.json with a matching type, every default must be
values.yaml's value, and every answer the form can give at its defaults (each enum option, both
states of a checkbox) must render with `helm template`, on top of the minimal values the other
chart tests use, or be refused with the chart's documented message.

Run: .tools/venv/bin/python -m pytest tests/chart/test_questions.py   (after scripts/setup.sh)
A missing tool FAILS the test that needs it, naming scripts/setup.sh.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import tarfile
from pathlib import Path

import pytest

from test_chart import (  # noqa: F401  (helm, _yaml_available are fixtures)
    CHART,
    IAM,
    NAMESPACE,
    RELEASE,
    ROOT,
    TEST_IMAGE,
    VENV_BIN,
    _yaml_available,
    by_kind,
    helm,
    merge,
    need,
    run,
    yaml,
)
from test_gateway import DEFAULT_TLS

QUESTIONS = CHART / "questions.yml"

# Groups, in the order the form shows them (Rancher orders tabs by first appearance): the
# essentials first, then the advanced settings.
GROUPS = [
    "General settings",
    "Epinio's S3 storage",
    "Gateway mode",
    "Installer identity",
    "Advanced: IAM",
    "Advanced: Epinio",
    "Advanced: hook Jobs",
    "Advanced: gateway",
    "Monitoring",
]
ESSENTIAL_GROUPS = GROUPS[:3]
# What the issue calls the essentials: they must be in the first groups.
ESSENTIALS = {
    "irsa.clusterName",
    "irsa.region",
    "irsa.mode",
    "irsa.image.repository",
    "seaweedfs.enabled",
    "irsa.gateway.enabled",
    "irsa.gateway.tls.enabled",
    "irsa.gateway.tls.secretName",
    "irsa.gateway.tls.certManager.issuerKind",
    "irsa.gateway.tls.certManager.issuerName",
}

# Question types Rancher's form knows, and the JSON schema types each may write.
FORM_TYPES = {
    "string": {"string"},
    "multiline": {"string"},
    "password": {"string"},
    "hostname": {"string"},
    "secret": {"string"},
    "enum": {"string"},
    "boolean": {"boolean"},
    "int": {"integer", "number"},
    "float": {"number"},
    "map[string]": {"object"},
    "array[string]": {"array"},
}
STRING_TYPES = {t for t, s in FORM_TYPES.items() if s == {"string"}}
QUESTION_KEYS = {
    "variable", "label", "description", "type", "required", "default", "group", "min_length",
    "max_length", "min", "max", "options", "valid_chars", "invalid_chars", "subquestions",
    "show_if", "show_subquestion_if",
}
# Rancher's docs: subquestions[] cannot contain subquestions or show_subquestion_if.
SUBQUESTION_KEYS = QUESTION_KEYS - {"subquestions", "show_subquestion_if"}
TOP_KEYS = {"questions", "rancher_min_version", "rancher_max_version", "categories"}

# Answers the chart deliberately refuses, with its documented message (chart/templates/_helpers.tpl,
# README "Gateway mode"): (variable, answer as JSON) -> what the refusal says. The answer is
# rendered in the question's context: the minimal IAM values of test_chart (test_gateway's default
# TLS values when the question shows in gateway mode only).
REFUSALS = {
    ("irsa.clusterName", '""'): "irsa.clusterName is required",
    ("irsa.image.repository", '""'): "irsa.image.repository is required: this chart (from a checkout) names no image",
    ("irsa.gateway.enabled", "true"): "irsa.gateway.enabled is true, so Epinio signs its S3 requests to the "
    "gateway with s3.accessKeyID and s3.secretAccessKey, and at least one of them is empty",
    ("irsa.gateway.tls.enabled", "false"): "s3.useSSL is true (Epinio's default when unset), but "
    "irsa.gateway.tls.enabled is false",
    ("s3.endpoint", '"s3.amazonaws.com"'): "does not name the gateway's Service",
    ("s3.useSSL", "false"): "s3.useSSL is false: Epinio would speak plain HTTP to it",
    ("s3.certificateSecret", '""'): "but s3.certificateSecret is \"\": Epinio's server and staging trust only",
}
# A value for a `!=` condition on a string (the form's `show_if: "x!="` means "x is set").
SAMPLE_STRINGS = {"irsa.installer.existingSecret.name": "epinio-irsa-aws"}

# Questions without a default although values.yaml has a value: release.yml sets these in the
# published chart's values.yaml (the image, pinned by digest), so no one default fits both.
NO_DEFAULT = {"irsa.image.repository", "irsa.image.digest"}

MISSING = object()


# ------------------------------------------------------------------ loading
@pytest.fixture(scope="module")
def form() -> dict:
    assert QUESTIONS.exists(), f"{QUESTIONS} is missing"
    doc = yaml.safe_load(QUESTIONS.read_text())
    assert isinstance(doc, dict) and isinstance(doc.get("questions"), list), "questions.yml has no questions: list"
    return doc


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads((CHART / "values.schema.json").read_text())


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def flatten(form: dict) -> list[tuple[dict, dict | None]]:
    """Every question and subquestion, with its parent (None at the top)."""
    out = []
    for q in form["questions"]:
        out.append((q, None))
        for sub in q.get("subquestions") or []:
            out.append((sub, q))
    return out


def by_variable(form: dict) -> dict[str, dict]:
    return {q["variable"]: q for q, _ in flatten(form)}


def group_of(q: dict, parent: dict | None) -> str | None:
    return q.get("group") or (parent or {}).get("group")


def lookup(tree, path: str):
    node = tree
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def put(tree: dict, path: str, value) -> dict:
    keys = path.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = copy.deepcopy(value)
    return tree


def form_default(q: dict):
    """What Rancher's form sends for a question's default (Question.js: a boolean's string
    default becomes `default === 'true'`; anything else is sent as written)."""
    d = q["default"]
    if q.get("type") == "boolean" and isinstance(d, str):
        return d == "true"
    return d


def same(a, b) -> bool:
    """Equal and of the same JSON type (True is not 1, "120" is not 120)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# ------------------------------------------------------------------- schema
def resolve(schema: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        node = schema["definitions"][node["$ref"].split("/")[-1]]
    return node


def schema_at(schema: dict, path: str) -> dict | None:
    node = schema
    for key in path.split("."):
        node = resolve(schema, node)
        props = node.get("properties") or {}
        if key not in props:
            return None
        node = props[key]
    return resolve(schema, node)


def branches(schema: dict, node: dict):
    """The node and every allOf/anyOf/oneOf branch under it, references resolved."""
    node = resolve(schema, node)
    yield node
    for key in ("allOf", "anyOf", "oneOf"):
        for branch in node.get(key, []):
            yield from branches(schema, branch)


def schema_types(schema: dict, node: dict) -> set[str]:
    types = set()
    for b in branches(schema, node):
        t = b.get("type")
        types |= set(t) if isinstance(t, list) else ({t} if t else set())
    return types


def schema_enum(schema: dict, node: dict) -> set | None:
    enums = [set(b["enum"]) for b in branches(schema, node) if "enum" in b]
    return set().union(*enums) if enums else None


def schema_bound(schema: dict, node: dict, key: str):
    found = [b[key] for b in branches(schema, node) if key in b]
    return found[0] if found else None


# ------------------------------------------------------------------ show_if
COND = re.compile(r"^\s*([A-Za-z0-9_.-]+?)\s*(!=|=)\s*(.*?)\s*$")


def parse_show_if(expr: str) -> list[list[tuple[str, str, str]]]:
    """`a=b&&c!=d||e=f` as alternatives (||) of conjunctions (&&) of (variable, op, value),
    as Rancher's form reads it (shell/components/Questions/index.vue, migrate)."""
    if not isinstance(expr, str) or not expr.strip():
        raise ValueError(f"show_if {expr!r} is not a non-empty string")
    out = []
    for alternative in expr.split("||"):
        terms = []
        for atom in alternative.split("&&"):
            m = COND.match(atom)
            if not m or "=" in m.group(3):
                raise ValueError(f"show_if {expr!r}: {atom!r} is not var=value or var!=value")
            terms.append((m.group(1), m.group(2), m.group(3)))
        out.append(terms)
    return out


def conditions(q: dict, parent: dict | None) -> list[list[tuple[str, str, str]]]:
    """When the question shows, as alternatives of conjunctions: the parent's own show_if, the
    parent's show_subquestion_if, and the question's show_if."""
    parts: list[list[list[tuple[str, str, str]]]] = []
    if parent is not None:
        if "show_if" in parent:
            parts.append(parse_show_if(parent["show_if"]))
        want = parent.get("show_subquestion_if")
        parts.append([[(parent["variable"], "=", str(want).lower() if isinstance(want, bool) else str(want))]])
    if "show_if" in q:
        parts.append(parse_show_if(q["show_if"]))
    if not parts:
        return [[]]
    return [[t for conj in combo for t in conj] for combo in itertools.product(*parts)]


def as_form_string(value) -> str:
    """How Rancher's form compares a value with a show_if literal (stringifyAnswer)."""
    if value is None or value is MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def shown(q: dict, parent: dict | None, vals: dict) -> bool:
    for conj in conditions(q, parent):
        if all((as_form_string(lookup(vals, var)) == want) == (op == "=") for var, op, want in conj):
            return True
    return False


def literal_problem(target: dict, value: str) -> str | None:
    """Why `value` cannot be compared with the question `target`'s answers (None: it can)."""
    t = target.get("type")
    if t == "boolean":
        return None if value in ("true", "false") else "a boolean compares with true or false"
    if t == "enum":
        return None if value in target.get("options", []) else f"not one of {target.get('options')}"
    if t == "int":
        return None if re.fullmatch(r"-?[0-9]+", value) else "not an integer"
    if t == "float":
        return None if re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value) else "not a number"
    if t in STRING_TYPES:
        return None
    return f"a {t} question cannot be compared"


# ------------------------------------------------------------- file and keys
def test_file_shape(form):
    problems = []
    extra = set(form) - TOP_KEYS
    if extra:
        problems.append(f"unknown top-level keys {sorted(extra)}")
    for q, parent in flatten(form):
        name = q.get("variable", q)
        allowed = QUESTION_KEYS if parent is None else SUBQUESTION_KEYS
        if set(q) - allowed:
            problems.append(f"{name}: keys {sorted(set(q) - allowed)} are not Rancher question keys here")
        for key in ("variable", "label", "description", "type"):
            if not isinstance(q.get(key), str) or not q[key].strip():
                problems.append(f"{name}: {key} must be a non-empty string")
        if q.get("type") not in FORM_TYPES:
            problems.append(f"{name}: type {q.get('type')!r} is not one of {sorted(FORM_TYPES)}")
        if "required" in q and not isinstance(q["required"], bool):
            problems.append(f"{name}: required must be true or false")
        if (q.get("type") == "enum") != ("options" in q):
            problems.append(f"{name}: options go with type enum, and only with it")
        if "options" in q and not (q["options"] and all(isinstance(o, str) for o in q["options"])):
            problems.append(f"{name}: options must be a non-empty list of strings")
        if parent is None and not q.get("group"):
            problems.append(f"{name}: a top-level question needs a group")
        if parent is not None and q.get("group", parent.get("group")) != parent.get("group"):
            problems.append(f"{name}: a subquestion shows in its parent's group, not {q['group']!r}")
        if ("subquestions" in q) != ("show_subquestion_if" in q):
            problems.append(f"{name}: subquestions and show_subquestion_if go together")
        if "subquestions" in q and not (isinstance(q["subquestions"], list) and q["subquestions"]):
            problems.append(f"{name}: subquestions must be a non-empty list")
        if q.get("type") == "boolean" and isinstance(q.get("default"), str) and q["default"] not in ("true", "false"):
            problems.append(f"{name}: a boolean default is \"true\" or \"false\", not {q['default']!r}")
    assert not problems, "\n".join(problems)


def test_no_two_questions_share_a_variable(form):
    names = [q["variable"] for q, _ in flatten(form)]
    dups = sorted({n for n in names if names.count(n) > 1})
    assert not dups, f"variables asked twice: {dups}"


def test_variables_are_schema_paths_of_the_right_type(form, schema):
    problems = []
    for q, _ in flatten(form):
        var, t = q["variable"], q.get("type")
        node = schema_at(schema, var)
        if node is None:
            problems.append(f"{var}: not a path of values.schema.json")
            continue
        types = schema_types(schema, node)
        if not FORM_TYPES.get(t, set()) & types:
            problems.append(f"{var}: a {t} question, but the schema says {sorted(types) or 'no type'}")
            continue
        if t in ("map[string]", "array[string]"):
            inner = resolve(schema, node).get("additionalProperties" if t.startswith("map") else "items")
            if not isinstance(inner, dict) or "string" not in schema_types(schema, inner):
                problems.append(f"{var}: a {t} question, but the schema's entries are not strings")
        enum = schema_enum(schema, node)
        if t == "enum" and enum is not None and not set(q["options"]) <= enum:
            problems.append(f"{var}: options {sorted(set(q['options']) - enum)} are not in the schema's enum {sorted(enum)}")
        if t in STRING_TYPES - {"enum"} and enum is not None:
            problems.append(f"{var}: the schema allows only {sorted(enum)}: make it an enum")
        lo, hi = schema_bound(schema, node, "minimum"), schema_bound(schema, node, "maximum")
        if t in ("int", "float"):
            if lo is not None and q.get("min", lo) < lo:
                problems.append(f"{var}: min {q['min']} is below the schema's minimum {lo}")
            if hi is not None and q.get("max", hi) > hi:
                problems.append(f"{var}: max {q['max']} is above the schema's maximum {hi}")
            if "min" in q and "max" in q and q["min"] > q["max"]:
                problems.append(f"{var}: min above max")
    assert not problems, "\n".join(problems)


def default_problems(form: dict, values: dict) -> list[str]:
    problems = []
    for q, _ in flatten(form):
        var = q["variable"]
        current = lookup(values, var)
        if current is MISSING:
            problems.append(f"{var}: not in values.yaml (Rancher would apply the form's default silently)")
            continue
        if "default" not in q:
            # null (the job's default), an empty map or list, and the image, which the published
            # chart's values.yaml sets and a checkout's leaves empty: the form shows values.yaml's
            if current not in (None, {}, []) and var not in NO_DEFAULT:
                problems.append(f"{var}: no default, but values.yaml has {current!r}")
            continue
        if not same(form_default(q), current):
            problems.append(
                f"{var}: the form sends {json.dumps(form_default(q))} (default {q['default']!r}), "
                f"values.yaml has {json.dumps(current)}"
            )
        if q.get("type") == "enum" and q["default"] not in q["options"]:
            problems.append(f"{var}: default {q['default']!r} is not an option")
    return problems


def test_defaults_are_values_yaml(form, values):
    """Rancher applies a default only to a value values.yaml lacks; every variable is in
    values.yaml, and each default is its value, so the form starts where `helm install` would."""
    problems = default_problems(form, values)
    assert not problems, "\n".join(problems)


def test_defaults_are_the_published_charts_values_too(form, values):
    """release.yml publishes the chart with its image in values.yaml (repository and digest);
    the form stays true to that values.yaml as well."""
    published = copy.deepcopy(values)
    put(published, "irsa.image.repository", "ghcr.io/owner/epinio-irsa")
    put(published, "irsa.image.digest", "sha256:" + "0123456789abcdef" * 4)
    problems = default_problems(form, published)
    assert not problems, "\n".join(problems)


def test_show_if_and_subquestions_name_real_variables_and_valid_values(form, schema):
    questions = by_variable(form)
    problems, terms = [], 0
    for q, parent in flatten(form):
        var = q["variable"]
        if "show_if" in q:
            try:
                parsed = parse_show_if(q["show_if"])
            except ValueError as e:
                problems.append(f"{var}: {e}")
                continue
            for conj in parsed:
                for ref, _op, literal in conj:
                    terms += 1
                    if ref == var:
                        problems.append(f"{var}: show_if refers to itself")
                    elif ref not in questions:
                        problems.append(f"{var}: show_if names {ref}, which no question asks")
                    elif schema_at(schema, ref) is None:
                        problems.append(f"{var}: show_if names {ref}, not a values path")
                    elif (why := literal_problem(questions[ref], literal)) is not None:
                        problems.append(f"{var}: show_if compares {ref} with {literal!r}: {why}")
        if "show_subquestion_if" in q:
            want = q["show_subquestion_if"]
            literal = str(want).lower() if isinstance(want, bool) else str(want)
            if q.get("type") not in ("boolean", "enum"):
                problems.append(f"{var}: show_subquestion_if on a {q.get('type')} question")
            elif (why := literal_problem(q, literal)) is not None:
                problems.append(f"{var}: show_subquestion_if {want!r}: {why}")
            for sub in q.get("subquestions") or []:
                if "subquestions" in sub:
                    problems.append(f"{sub.get('variable')}: subquestions cannot nest")
    assert not problems, "\n".join(problems)
    assert terms > 0, "no show_if term was checked"


# ----------------------------------------------------------------- the layout
def test_groups_in_order_essentials_first(form):
    order, problems = [], []
    for q, parent in flatten(form):
        g = group_of(q, parent)
        if g not in GROUPS:
            problems.append(f"{q['variable']}: group {g!r} is not one of {GROUPS}")
        elif order and order[-1] != g and g in order:
            problems.append(f"{q['variable']}: group {g!r} is split (questions of a group stay together)")
        if g not in order:
            order.append(g)
    assert not problems, "\n".join(problems)
    assert order == GROUPS, f"groups shown in the order {order}, expected {GROUPS}"
    groups = {q["variable"]: group_of(q, p) for q, p in flatten(form)}
    misplaced = {v: groups.get(v) for v in ESSENTIALS if groups.get(v) not in ESSENTIAL_GROUPS}
    assert not misplaced, f"essentials outside {ESSENTIAL_GROUPS}: {misplaced}"


def test_mode_dependent_questions_show_only_in_their_mode(form):
    """Gateway-only settings show only with irsa.gateway.enabled=true, the TLS settings only with
    TLS on, the issuer only when no existing Secret is named, the IRSA-only ones never under
    pod-identity, and the existing Secret's keys only when a Secret is named."""
    rules = [
        (lambda v: (v.startswith("irsa.gateway.") and v != "irsa.gateway.enabled") or v in ("s3.endpoint", "s3.useSSL"),
         ("irsa.gateway.enabled", "=", "true")),
        (lambda v: v.startswith("irsa.gateway.tls.") and v != "irsa.gateway.tls.enabled",
         ("irsa.gateway.tls.enabled", "=", "true")),
        (lambda v: v.startswith("irsa.gateway.tls.certManager."), ("irsa.gateway.tls.secretName", "=", "")),
        (lambda v: v.startswith("irsa.oidcProvider.") or v == "irsa.stsRegionalEndpoints",
         ("irsa.mode", "!=", "pod-identity")),
        (lambda v: v.startswith("irsa.installer.existingSecret.") and v != "irsa.installer.existingSecret.name",
         ("irsa.installer.existingSecret.name", "!=", "")),
    ]
    problems, checked = [], 0
    for q, parent in flatten(form):
        for applies, term in rules:
            if applies(q["variable"]):
                checked += 1
                if not all(term in conj for conj in conditions(q, parent)):
                    problems.append(f"{q['variable']}: shows without {term[0]}{term[1]}{term[2]}")
    assert not problems, "\n".join(problems)
    assert checked >= 15, f"only {checked} mode-dependent questions found"


# Values the form leaves to Rancher's YAML editor, by path prefix, and why. A new value in
# values.yaml must be asked or added here.
LEFT_OUT = {
    "irsa.resources": "Kubernetes ResourceRequirements",
    "irsa.podSecurityContext": "Kubernetes securityContext",
    "irsa.containerSecurityContext": "Kubernetes securityContext",
    "irsa.nodeSelector": "Kubernetes scheduling",
    "irsa.tolerations": "Kubernetes scheduling",
    "irsa.affinity": "Kubernetes scheduling",
    "irsa.podAnnotations": "pod metadata",
    "irsa.podLabels": "pod metadata",
    "irsa.imagePullSecrets": "a list of objects",
    "irsa.extraEnv": "a list of EnvVar",
    "irsa.networkPolicy.egress": "a list of NetworkPolicyEgressRule",
    "irsa.argocd": "Argo CD only: plain Helm, which Rancher runs, refuses it",
    "irsa.gateway.resources": "Kubernetes ResourceRequirements",
    "irsa.gateway.topologySpreadConstraints": "Kubernetes scheduling",
    "irsa.gateway.nodeSelector": "Kubernetes scheduling",
    "irsa.gateway.tolerations": "Kubernetes scheduling",
    "irsa.gateway.affinity": "Kubernetes scheduling",
    "irsa.gateway.podAnnotations": "pod metadata",
    "irsa.gateway.podLabels": "pod metadata",
    "irsa.gateway.extraEnv": "a list of EnvVar",
    "irsa.gateway.networkPolicy.extraEgress": "a list of NetworkPolicyEgressRule",
    "irsa.gateway.metrics.serviceMonitor.namespaceSelector": "a Kubernetes LabelSelector",
}


def value_leaves(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from value_leaves(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def test_every_value_is_asked_or_left_to_the_yaml_editor(form, values):
    asked = set(by_variable(form))
    left_out = [
        p for p in value_leaves(values)
        if p not in asked and not any(p == x or p.startswith(x + ".") for x in LEFT_OUT)
    ]
    assert not left_out, f"values neither in the form nor in LEFT_OUT: {left_out}"
    overlap = sorted(v for v in asked if any(v == x or v.startswith(x + ".") for x in LEFT_OUT))
    assert not overlap, f"asked and listed as left out: {overlap}"


# ------------------------------------------------------------- the form renders
def render_answer(helm: str, tmp_path: Path, base: dict, var: str, answer) -> "subprocess.CompletedProcess":  # noqa: F821
    vf = tmp_path / "form-base.yaml"
    vf.write_text(yaml.safe_dump(merge(TEST_IMAGE, base)))
    return run([helm, "template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(vf), "--set-json", f"{var}={json.dumps(answer)}"])


def context(q: dict, parent: dict | None, questions: dict[str, dict]) -> dict:
    """The minimal values of the other chart tests, with the question shown: test_gateway's
    default TLS values when it shows in gateway mode, test_chart's IAM values otherwise, and
    its show_if conditions (first alternative) answered."""
    conj = conditions(q, parent)[0]
    gateway = ("irsa.gateway.enabled", "=", "true") in conj
    base = copy.deepcopy(DEFAULT_TLS if gateway else IAM)
    for var, op, literal in conj:
        target = questions[var]
        if op == "=":
            value = {"true": True, "false": False}[literal] if target["type"] == "boolean" else literal
        elif target["type"] == "boolean":
            value = literal != "true"
        elif target["type"] == "enum":
            value = next(o for o in target["options"] if o != literal)
        else:
            value = SAMPLE_STRINGS[var]
        put(base, var, value)
    return base


def answers(q: dict, values: dict) -> list:
    """What the form gives at its defaults: the default (values.yaml's value without one), every
    option of an enum, both states of a checkbox."""
    start = form_default(q) if "default" in q else lookup(values, q["variable"])
    if q["type"] == "enum":
        return [start] + [o for o in q["options"] if o != start]
    if q["type"] == "boolean":
        return [start, not start]
    return [start]


def test_every_answer_renders_or_is_refused_as_documented(helm, tmp_path, form, values):
    questions = by_variable(form)
    problems, used, renders = [], set(), 0
    for q, parent in flatten(form):
        base = context(q, parent, questions)
        assert shown(q, parent, merge(values, base)), f"{q['variable']}: the test's context does not show it"
        for answer in answers(q, values):
            key = (q["variable"], json.dumps(answer))
            res = render_answer(helm, tmp_path, base, q["variable"], answer)
            renders += 1
            if key in REFUSALS:
                used.add(key)
                if res.returncode == 0 or REFUSALS[key] not in res.stderr:
                    problems.append(f"{key[0]}={key[1]}: expected the refusal {REFUSALS[key]!r}, got rc {res.returncode}: {res.stderr.strip()[-400:]}")
            elif res.returncode != 0:
                problems.append(f"{key[0]}={key[1]}: helm template failed: {res.stderr.strip()[-600:]}")
    assert not problems, "\n".join(problems)
    assert used == set(REFUSALS), f"refusals no answer of the form reaches any more: {sorted(set(REFUSALS) - used)}"
    assert renders > len(questions)


def fill(form: dict, values: dict, answers_given: dict) -> dict:
    """Values as Rancher submits them: values.yaml, the user's answers, and every question the
    form shows at that point at its default (the form sets defaults only where values.yaml has
    no value; here every default is values.yaml's, so this changes nothing but proves it)."""
    vals = copy.deepcopy(values)
    for var, answer in answers_given.items():
        put(vals, var, answer)
    for q, parent in flatten(form):
        if q["variable"] not in answers_given and "default" in q and shown(q, parent, vals):
            put(vals, q["variable"], form_default(q))
    return vals


def test_the_filled_in_form_renders_in_iam_and_gateway_mode(helm, tmp_path, form, values):
    required = [q["variable"] for q, _ in flatten(form) if q.get("required")]
    assert sorted(required) == ["irsa.clusterName", "irsa.image.repository"], required
    iam = {
        "irsa.clusterName": "demo",
        "irsa.image.repository": "registry.example.com/epinio-irsa",
        "seaweedfs.enabled": False,
    }
    docs_of = {}
    for mode, given, extra in (
        ("iam", iam, []),
        ("pod-identity", {**iam, "irsa.mode": "pod-identity"}, []),
        (
            "gateway",
            {
                **iam,
                "irsa.gateway.enabled": True,
                "s3.accessKeyID": DEFAULT_TLS["s3"]["accessKeyID"],
                "s3.secretAccessKey": DEFAULT_TLS["s3"]["secretAccessKey"],
                "s3.endpoint": DEFAULT_TLS["s3"]["endpoint"],
            },
            # not a value of this chart, so not in the form: set in Rancher's YAML editor
            ["--set-string", f"s3.certificateSecret={DEFAULT_TLS['s3']['certificateSecret']}"],
        ),
    ):
        vf = tmp_path / f"filled-{mode}.yaml"
        vf.write_text(yaml.safe_dump(fill(form, values, given)))
        res = run([helm, "template", RELEASE, str(CHART), "-n", NAMESPACE, "-f", str(vf), *extra])
        assert res.returncode == 0, f"{mode}: {res.stderr}"
        docs_of[mode] = [d for d in yaml.safe_load_all(res.stdout) if d]
    # the gateway names the form's descriptions quote are the rendered ones (release fixed by Chart.yaml)
    docs = docs_of["gateway"]
    service = next(d for d in by_kind(docs, "Service"))["metadata"]["name"]
    certificate = next(d for d in docs if d["kind"] == "Certificate")["spec"]["secretName"]
    questions = by_variable(form)
    assert f"{service}.<namespace>.svc.cluster.local" in questions["s3.endpoint"]["description"]
    assert certificate in questions["irsa.gateway.tls.enabled"]["description"]
    assert certificate in questions["irsa.gateway.tls.secretName"]["description"]


# ---------------------------------------------------------- Chart.yaml, tools
def test_chart_annotations_for_rancher_and_artifact_hub():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    ann = chart.get("annotations") or {}
    # the chart's own fields stay as they were
    assert chart["name"] == "epinio-irsa" and chart["apiVersion"] == "v2" and chart["type"] == "application"
    assert ann.get("category") == "Security"
    # Artifact Hub, as Epinio's chart has them
    cargo = (ROOT / "Cargo.toml").read_text()
    license_ = re.search(r'^license\s*=\s*"([^"]+)"', cargo, re.M).group(1)
    assert ann.get("artifacthub.io/license") == license_
    assert ann.get("artifacthub.io/prerelease") in ("true", "false")
    assert (ann["artifacthub.io/prerelease"] == "true") == ("-" in str(chart["version"])), "prerelease follows the version"
    # Rancher's catalog annotations
    assert ann.get("catalog.cattle.io/display-name", "").strip()
    # the fixed release name is the one every test renders with, so the gateway's Service
    # and Secret names quoted in the form are the ones Rancher's install gets
    assert ann.get("catalog.cattle.io/release-name") == RELEASE
    assert ann.get("catalog.cattle.io/kube-version") == chart["kubeVersion"]
    assert ann.get("catalog.cattle.io/os") == "linux" and ann.get("catalog.cattle.io/permits-os") == "linux"
    assert ann.get("catalog.cattle.io/type") == "app"
    # Epinio's namespace is wherever Epinio is: not fixed; not certified by Rancher
    assert "catalog.cattle.io/namespace" not in ann
    assert "catalog.cattle.io/certified" not in ann
    for key, value in ann.items():
        assert isinstance(value, str), f"annotation {key} must be a string, not {value!r}"


def test_helm_lint_and_package_ship_the_form(helm, tmp_path):
    vf = tmp_path / "values.yaml"
    vf.write_text(yaml.safe_dump(merge(TEST_IMAGE, IAM)))
    res = run([helm, "lint", "--strict", str(CHART), "-n", NAMESPACE, "-f", str(vf)])
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 chart(s) failed" in res.stdout
    res = run([helm, "package", str(CHART), "-d", str(tmp_path)])
    assert res.returncode == 0, res.stdout + res.stderr
    (tgz,) = tmp_path.glob("epinio-irsa-*.tgz")
    with tarfile.open(tgz) as tar:
        packaged = tar.extractfile("epinio-irsa/questions.yml").read().decode()
    assert packaged == QUESTIONS.read_text(), "Rancher reads questions.yml from the packaged chart"


def test_yamllint_questions_and_chart_yaml():
    yamllint = need(VENV_BIN / "yamllint", "yamllint 1.38.0")
    config = "{extends: default, rules: {line-length: {max: 120}, document-start: disable, comments: {min-spaces-from-content: 1}}}"
    res = run([yamllint, "-s", "-d", config, str(QUESTIONS), str(CHART / "Chart.yaml")])
    assert res.returncode == 0, res.stdout + res.stderr
