#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""A stand-in Kubernetes API server for the tests of the k8s module.

It follows the Kubernetes API conventions closely enough that kubectl and the
official Python client work against it unchanged:
https://kubernetes.io/docs/reference/using-api/api-concepts/

- HTTPS with a CA and a server certificate for 127.0.0.1 generated at start
  (or plain HTTP), bearer tokens (401 Status when missing or wrong), client
  certificates signed by the CA (user = CN), per-user RBAC-like rules (403
  Status naming user, verb, resource, group and namespace).
- Discovery (/api, /apis, ...), /version, /openapi/v2 (protobuf and JSON),
  /openapi/v3 (server-side field validation is advertised, so kubectl's
  default --validate=strict works).
- Namespaces, Secrets, ConfigMaps, Leases, CustomResourceDefinitions and the
  custom resources they define (the backbone CRDs are preloaded unless told
  otherwise): list (label/field selectors, limit/continue), get, create,
  update (resourceVersion conflicts), patch (merge, strategic merge for the
  built-in types, JSON patch, server-side apply), delete, deletecollection,
  status subresource, metadata.generation, finalizers, dry-run, structural
  schema validation, pruning and defaulting for custom resources
  (fieldValidation Strict/Warn/Ignore), garbage collection through
  ownerReferences.
- Watch: chunked newline-delimited JSON events ADDED/MODIFIED/DELETED/
  BOOKMARK/ERROR, resourceVersion semantics, 410 Gone (an ERROR event in a
  200 stream) for a resourceVersion older than the retained history,
  timeoutSeconds, allowWatchBookmarks, sendInitialEvents.
- Test hooks, as methods and as unauthenticated POSTs under /_test/:
  compact (forces 410), bookmark, drop-watches, token, fail, requests.

Run: python3 fake_apiserver.py --port 0 --dir DIR [--http]; it writes
DIR/ca.crt, DIR/token, DIR/kubeconfig and prints `READY <port>`.
Import: FakeApiServer(directory=...).start() ... .stop()
"""

import argparse
import base64
import bisect
import copy
import datetime
import hashlib
import http.server
import ipaddress
import json
import os
import queue
import re
import secrets
import shutil
import signal
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time
import traceback
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

try:
    import yaml
except ImportError:  # YAML bodies and --crds files need python3-yaml
    yaml = None

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CRD_DIR = os.path.normpath(
    os.path.join(HERE, "..", "..", "packaging", "kubernetes", "crds")
)
K8S_VERSION = {
    "major": "1",
    "minor": "30",
    "gitVersion": "v1.30.0-backbone.fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2024-04-17T00:00:00Z",
    "goVersion": "go1.22.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
ADMIN_USER = "kubernetes-admin"
MERGE_TYPES = ("application/merge-patch+json",)
CR_PATCH_TYPES = (
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
)


def now_rfc3339():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def jcopy(obj):
    return json.loads(json.dumps(obj))


def truthy(v):
    return v is not None and v.lower() in ("1", "true", "t", "yes")


# ---------------------------------------------------------------- errors


class ApiError(Exception):
    """An error answered as a metav1.Status object."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details, self.headers = details, headers or {}

    def status(self):
        s = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            s["details"] = self.details
        return s


def _details(rt, name=None, **extra):
    d = {}
    if name:
        d["name"] = name
    if rt is not None:
        if rt.group:
            d["group"] = rt.group
        d["kind"] = rt.plural
    d.update(extra)
    return d


def not_found(rt, name):
    return ApiError(404, "NotFound", f'{rt.gr} "{name}" not found', _details(rt, name))


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def invalid(rt, name, causes):
    """422 with field causes: [(reason, field, message)]."""
    msgs = [f"{f}: {m}" if f else m for _, f, m in causes]
    text = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{rt.kind}{"." + rt.group if rt.group else ""} "{name}" is invalid: {text}',
        {
            "name": name,
            "group": rt.group,
            "kind": rt.kind,
            "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes],
        },
    )


def conflict(rt, name):
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.gr} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        _details(rt, name),
    )


def gone(message):
    return ApiError(410, "Expired", message)


# ---------------------------------------------------------------- resource types


class ResType:
    """One resource of one group/version, built in or defined by a CRD."""

    def __init__(
        self,
        group,
        version,
        plural,
        kind,
        namespaced,
        singular=None,
        short_names=(),
        categories=(),
        status=False,
        schema=None,
        generation=False,
        unconditional_update=True,
        create_on_update=False,
        columns=None,
        crd=None,
        list_kind=None,
        strategic=True,
    ):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced, self.singular = namespaced, singular or kind.lower()
        self.short_names, self.categories = list(short_names), list(categories)
        self.status, self.schema, self.generation = status, schema, generation
        self.unconditional_update, self.create_on_update = unconditional_update, create_on_update
        self.columns, self.crd, self.strategic = columns, crd, strategic
        self.list_kind = list_kind or kind + "List"

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gr(self):  # "clients.backbone.mortenolsen.pro", "secrets"
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def skey(self):  # storage key: independent of the version
        return (self.group, self.plural)

    def verbs(self):
        return ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    def discovery(self):
        out = [
            {
                "name": self.plural,
                "singularName": self.singular,
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": self.verbs(),
            }
        ]
        if self.short_names:
            out[0]["shortNames"] = self.short_names
        if self.categories:
            out[0]["categories"] = self.categories
        out[0]["storageVersionHash"] = base64.b64encode(
            hashlib.sha256(f"{self.group}/{self.version}/{self.kind}".encode()).digest()[:8]
        ).decode()
        if self.status:
            out.append(
                {
                    "name": self.plural + "/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        return out


def _str_map():
    return {"type": "object", "additionalProperties": {"type": "string"}}


OWNER_REF_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "name", "uid"],
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "name": {"type": "string"},
        "uid": {"type": "string"},
        "controller": {"type": "boolean"},
        "blockOwnerDeletion": {"type": "boolean"},
    },
}
OBJECT_META_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "selfLink": {"type": "string"},
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": "string", "nullable": True},
        "deletionTimestamp": {"type": "string", "nullable": True},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "labels": _str_map(),
        "annotations": _str_map(),
        "ownerReferences": {"type": "array", "items": OWNER_REF_SCHEMA},
        "finalizers": {"type": "array", "items": {"type": "string"}},
        "managedFields": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    },
}
ANY_OBJECT = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _builtin_schema(props):
    p = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
    }
    p.update(props)
    return {"type": "object", "properties": p}


def builtin_types():
    secret = _builtin_schema(
        {
            "data": _str_map(),
            "stringData": _str_map(),
            "type": {"type": "string"},
            "immutable": {"type": "boolean"},
        }
    )
    configmap = _builtin_schema(
        {"data": _str_map(), "binaryData": _str_map(), "immutable": {"type": "boolean"}}
    )
    namespace = _builtin_schema(
        {
            "spec": {
                "type": "object",
                "properties": {"finalizers": {"type": "array", "items": {"type": "string"}}},
            },
            "status": ANY_OBJECT,
        }
    )
    lease = _builtin_schema(
        {
            "spec": {
                "type": "object",
                "properties": {
                    "holderIdentity": {"type": "string"},
                    "leaseDurationSeconds": {"type": "integer"},
                    "acquireTime": {"type": "string"},
                    "renewTime": {"type": "string"},
                    "leaseTransitions": {"type": "integer"},
                    "strategy": {"type": "string"},
                    "preferredHolder": {"type": "string"},
                },
            }
        }
    )
    crd = _builtin_schema({"spec": ANY_OBJECT, "status": ANY_OBJECT})
    return [
        ResType(
            "",
            "v1",
            "namespaces",
            "Namespace",
            False,
            short_names=["ns"],
            status=True,
            schema=namespace,
            columns="namespace",
        ),
        ResType("", "v1", "secrets", "Secret", True, schema=secret, columns="secret"),
        ResType(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            True,
            short_names=["cm"],
            schema=configmap,
            columns="configmap",
        ),
        ResType(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            True,
            schema=lease,
            create_on_update=True,
            columns="lease",
        ),
        ResType(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            short_names=["crd", "crds"],
            categories=["api-extensions"],
            status=True,
            schema=crd,
            generation=True,
            columns="crd",
        ),
    ]


# ---------------------------------------------------------------- structural schemas


def _type_name(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def _type_ok(v, t):
    n = _type_name(v)
    return n == t or (t == "number" and n == "integer")


def _fmt(v):
    return json.dumps(v) if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


class Validation:
    """Validates, prunes and defaults a value against a structural schema
    (the subset of OpenAPI v3 CustomResourceDefinitions use)."""

    def __init__(self):
        self.errors = []  # (reason, field, message)
        self.unknown = []  # field paths pruned

    def err(self, reason, path, message):
        self.errors.append((reason, path, message))

    def run(self, value, schema, path, prune=True):
        if schema is None:
            return value
        if value is None:
            if (
                schema.get("nullable")
                or schema.get("x-kubernetes-preserve-unknown-fields")
                and "type" not in schema
            ):
                return None
            self.err(
                "FieldValueTypeInvalid",
                path,
                f'Invalid value: "null": {path} in body must be of type '
                f'{schema.get("type", "object")}: "null"',
            )
            return value
        t = schema.get("type")
        if schema.get("x-kubernetes-int-or-string"):
            if _type_name(value) not in ("integer", "string"):
                self.err(
                    "FieldValueTypeInvalid",
                    path,
                    f'Invalid value: "{_type_name(value)}": {path} in body '
                    "must be of type integer-or-string",
                )
                return value
        elif t and not _type_ok(value, t):
            self.err(
                "FieldValueTypeInvalid",
                path,
                f'Invalid value: "{_type_name(value)}": {path} in body must '
                f'be of type {t}: "{_type_name(value)}"',
            )
            return value
        if isinstance(value, dict):
            value = self._object(value, schema, path, prune)
        elif isinstance(value, list):
            value = self._array(value, schema, path, prune)
        self._scalar(value, schema, path)
        for key in ("allOf", "anyOf", "oneOf", "not"):
            if key in schema:
                self._junctor(key, value, schema[key], path)
        return value

    def _object(self, value, schema, path, prune):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        keep = (
            schema.get("x-kubernetes-preserve-unknown-fields")
            or addl is True
            or (props is None and addl is None and "type" not in schema)
        )
        out = {}
        for k, v in value.items():
            sub = f"{path}.{k}" if path else k
            if props is not None and k in props:
                out[k] = self.run(v, props[k], sub, prune)
            elif isinstance(addl, dict):
                out[k] = self.run(v, addl, sub, prune)
            elif keep or not prune:
                out[k] = v
            else:
                self.unknown.append(sub)
        for k, s in (props or {}).items():
            if k not in out and isinstance(s, dict) and "default" in s:
                out[k] = copy.deepcopy(s["default"])
        for r in schema.get("required", []):
            if r not in out:
                self.err("FieldValueRequired", f"{path}.{r}" if path else r, "Required value")
        if "maxProperties" in schema and len(out) > schema["maxProperties"]:
            self.err(
                "TooMany",
                path,
                f"Too many: {len(out)}: must have at most {schema['maxProperties']} items",
            )
        if "minProperties" in schema and len(out) < schema["minProperties"]:
            self.err(
                "FieldValueInvalid",
                path,
                f"Invalid value: {len(out)}: {path} in body should have at least "
                f"{schema['minProperties']} properties",
            )
        return out

    def _array(self, value, schema, path, prune):
        items = schema.get("items")
        out = [
            self.run(v, items, f"{path}[{i}]", prune) if isinstance(items, dict) else v
            for i, v in enumerate(value)
        ]
        if "maxItems" in schema and len(out) > schema["maxItems"]:
            self.err(
                "TooMany",
                path,
                f"Too many: {len(out)}: must have at most {schema['maxItems']} items",
            )
        if "minItems" in schema and len(out) < schema["minItems"]:
            self.err(
                "FieldValueInvalid",
                path,
                f"Invalid value: {len(out)}: {path} in body should have at least "
                f"{schema['minItems']} items",
            )
        lt = schema.get("x-kubernetes-list-type")
        if schema.get("uniqueItems") or lt == "set":
            seen = set()
            for i, v in enumerate(out):
                k = json.dumps(v, sort_keys=True)
                if k in seen:
                    self.err("FieldValueDuplicate", f"{path}[{i}]", f"Duplicate value: {_fmt(v)}")
                seen.add(k)
        if lt == "map":
            keys = schema.get("x-kubernetes-list-map-keys", [])
            seen = set()
            for i, v in enumerate(out):
                if not isinstance(v, dict):
                    continue
                k = json.dumps([v.get(x) for x in keys])
                if k in seen:
                    self.err(
                        "FieldValueDuplicate",
                        f"{path}[{i}]",
                        "Duplicate value: " + json.dumps({x: v.get(x) for x in keys}),
                    )
                seen.add(k)
        return out

    def _scalar(self, value, schema, path):
        if "enum" in schema and value not in schema["enum"]:
            self.err(
                "FieldValueNotSupported",
                path,
                f"Unsupported value: {_fmt(value)}: supported values: "
                + ", ".join(_fmt(e) for e in schema["enum"]),
            )
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            mn, mx = schema.get("minimum"), schema.get("maximum")
            if mn is not None and (value < mn or (schema.get("exclusiveMinimum") and value == mn)):
                op = (
                    "greater than" if schema.get("exclusiveMinimum") else "greater than or equal to"
                )
                self.err(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {value}: {path} in body should be {op} {mn}",
                )
            if mx is not None and (value > mx or (schema.get("exclusiveMaximum") and value == mx)):
                op = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
                self.err(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {value}: {path} in body should be {op} {mx}",
                )
            mo = schema.get("multipleOf")
            if mo and (value / mo) != int(value / mo):
                self.err(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {value}: {path} in body should be a " f"multiple of {mo}",
                )
        if isinstance(value, str):
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                self.err("TooLong", path, f"Too long: may not be longer than {schema['maxLength']}")
            if "minLength" in schema and len(value) < schema["minLength"]:
                self.err(
                    "FieldValueInvalid",
                    path,
                    f'Invalid value: "{value}": {path} in body should be at '
                    f"least {schema['minLength']} chars long",
                )
            if "pattern" in schema and not re.search(schema["pattern"], value):
                self.err(
                    "FieldValueInvalid",
                    path,
                    f'Invalid value: "{value}": {path} in body should match '
                    f"'{schema['pattern']}'",
                )

    def _passes(self, value, schema, path):
        v = Validation()
        v.run(copy.deepcopy(value), schema, path, prune=False)
        return not v.errors, v.errors

    def _junctor(self, key, value, sub, path):
        shown = f'Invalid value: "{_type_name(value)}": '
        if key == "not":
            if self._passes(value, sub, path)[0]:
                self.err("FieldValueInvalid", path, shown + "must not validate the schema (not)")
            return
        results = [self._passes(value, s, path) for s in sub]
        ok = sum(1 for r, _ in results if r)
        if key == "allOf":
            for r, errs in results:
                self.errors.extend(errs)
        elif key == "anyOf" and ok == 0:
            for _, errs in results:
                self.errors.extend(errs)
            self.err("FieldValueInvalid", path, shown + "must validate at least one schema (anyOf)")
        elif key == "oneOf" and ok != 1:
            self.err(
                "FieldValueInvalid", path, shown + "must validate one and only one schema (oneOf)"
            )


def structural_errors(schema, path="openAPIV3Schema", in_junctor=False, root=True):
    """The main rules of structural schemas (a CRD that breaks them is
    refused by a real API server)."""
    errs = []
    if not isinstance(schema, dict):
        return [(path, "must be an object")]
    if in_junctor:
        for k in ("type", "additionalProperties", "default", "nullable", "description"):
            if k in schema:
                errs.append((f"{path}.{k}", "must not be set inside allOf/anyOf/oneOf/not"))
    elif "type" not in schema and not (
        schema.get("x-kubernetes-preserve-unknown-fields")
        or schema.get("x-kubernetes-int-or-string")
    ):
        errs.append(
            (f"{path}.type", "Required value: must not be empty for specified object fields")
        )
    if root and schema.get("type") not in (None, "object"):
        errs.append((f"{path}.type", "Invalid value: must be object at the root"))
    if (
        "properties" in schema
        and isinstance(schema.get("additionalProperties"), (dict, bool))
        and schema.get("additionalProperties") is not False
    ):
        errs.append(
            (
                f"{path}.additionalProperties",
                "Forbidden: additionalProperties and properties are " "mutual exclusive",
            )
        )
    for k, s in (schema.get("properties") or {}).items():
        if root and k == "metadata" and isinstance(s, dict):
            extra = set(s) - {"type", "properties", "description"}
            extra |= set((s.get("properties") or {})) - {"name", "generateName"}
            if extra:
                errs.append(
                    (
                        f"{path}.properties[metadata]",
                        "Forbidden: must not specify anything other than "
                        "name and generateName, but metadata is implicitly specified",
                    )
                )
            continue
        errs += structural_errors(s, f"{path}.properties[{k}]", in_junctor, False)
    if isinstance(schema.get("items"), dict):
        errs += structural_errors(schema["items"], f"{path}.items", in_junctor, False)
    if isinstance(schema.get("additionalProperties"), dict):
        errs += structural_errors(
            schema["additionalProperties"], f"{path}.additionalProperties", in_junctor, False
        )
    for k in ("allOf", "anyOf", "oneOf"):
        for i, s in enumerate(schema.get(k) or []):
            errs += structural_errors(s, f"{path}.{k}[{i}]", True, False)
    if isinstance(schema.get("not"), dict):
        errs += structural_errors(schema["not"], f"{path}.not", True, False)
    return errs


# ---------------------------------------------------------------- patches


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


MERGE_KEYS = {"ownerReferences": "uid", "conditions": "type"}


def strategic_merge_patch(target, patch, field=None):
    """Strategic merge patch for the built-in types (maps merge, lists with a
    known merge key merge by key, other lists are replaced; $patch,
    $retainKeys, $deleteFromPrimitiveList and $setElementOrder handled)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.split("/", 1)[1]
            out[name] = [x for x in out.get(name, []) if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict):
            r = strategic_merge_patch(out.get(k), v, k)
            if r is None:
                out.pop(k, None)
            else:
                out[k] = r
        elif isinstance(v, list) and k in MERGE_KEYS and isinstance(out.get(k), list):
            key = MERGE_KEYS[k]
            cur = [copy.deepcopy(x) for x in out[k]]
            for item in v:
                if not isinstance(item, dict):
                    continue
                idx = next(
                    (
                        i
                        for i, x in enumerate(cur)
                        if isinstance(x, dict) and x.get(key) == item.get(key)
                    ),
                    None,
                )
                if item.get("$patch") == "delete":
                    if idx is not None:
                        cur.pop(idx)
                elif idx is None:
                    cur.append({a: b for a, b in item.items() if a != "$patch"})
                else:
                    cur[idx] = strategic_merge_patch(cur[idx], item, k)
            out[k] = cur
        elif isinstance(v, list) and k == "finalizers" and isinstance(out.get(k), list):
            out[k] = out[k] + [x for x in v if x not in out[k]]
        else:
            out[k] = copy.deepcopy(v)
    if retain is not None:
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            if not p.isdigit() or int(p) >= len(cur):
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: "
                    f"index {p} out of range",
                )
            cur = cur[int(p)]
        elif isinstance(cur, dict) and p in cur:
            cur = cur[p]
        else:
            raise ApiError(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request: "
                f"doc is missing path: /{'/'.join(parts)}",
            )
    return cur


def json_patch(doc, ops):
    """RFC 6902 JSON patch."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(
                "the server rejected our request due to an error in our request: malformed op"
            )
        kind, parts = op["op"], _pointer(op["path"])

        def put(parts, value, replace=False):
            nonlocal doc
            if not parts:
                doc = value
                return
            parent, last = _walk(doc, parts[:-1]), parts[-1]
            if isinstance(parent, list):
                if last == "-" and not replace:
                    parent.append(value)
                elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
                    if replace:
                        parent[int(last)] = value
                    else:
                        parent.insert(int(last), value)
                else:
                    raise ApiError(
                        422,
                        "Invalid",
                        f"the server rejected our request due to an error in our "
                        f"request: index {last} out of range",
                    )
            elif isinstance(parent, dict):
                if replace and last not in parent:
                    raise ApiError(
                        422,
                        "Invalid",
                        "the server rejected our request due to an error in our "
                        f"request: replace operation does not apply: doc is missing key: {op['path']}",
                    )
                parent[last] = value
            else:
                raise ApiError(
                    422, "Invalid", f"the server rejected our request: cannot set {op['path']}"
                )

        def remove(parts):
            parent, last = _walk(doc, parts[:-1]), parts[-1]
            if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
                return parent.pop(int(last))
            if isinstance(parent, dict) and last in parent:
                return parent.pop(last)
            raise ApiError(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request: "
                f"remove operation does not apply: doc is missing path: {op['path']}",
            )

        if kind == "add":
            put(parts, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            put(parts, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            remove(parts)
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            val = copy.deepcopy(_walk(doc, src))
            if kind == "move":
                remove(src)
            put(parts, val)
        elif kind == "test":
            if _walk(doc, parts) != op.get("value"):
                raise ApiError(
                    422,
                    "Invalid",
                    "the server rejected our request due to an error in our request: "
                    f"testing value {op['path']} failed: test failed",
                )
        else:
            raise bad_request(f"Unexpected kind: {kind}")
    return doc


def apply_merge(live, applied):
    """Server-side apply, simplified: the applied configuration is merged
    into the live object (maps deep-merged, lists and scalars replaced);
    managedFields are not tracked."""
    if not isinstance(applied, dict) or not isinstance(live, dict):
        return copy.deepcopy(applied)
    out = dict(live)
    for k, v in applied.items():
        out[k] = apply_merge(live.get(k), v) if isinstance(v, dict) else copy.deepcopy(v)
    return out


# ---------------------------------------------------------------- selectors

_LABEL_REQ = re.compile(
    r"\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$"
)


def _split_selector(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def label_selector(s):
    if not s:
        return lambda labels: True
    reqs = []
    for part in _split_selector(s):
        m = _LABEL_REQ.match(part)
        if not m:
            raise bad_request(f"unable to parse requirement: {part.strip()!r}")
        neg, key, op, val, setop, vals = m.groups()
        if neg:
            reqs.append(lambda l, k=key: k not in l)
        elif op in ("=", "=="):
            reqs.append(lambda l, k=key, v=val: l.get(k) == v)
        elif op == "!=":
            reqs.append(lambda l, k=key, v=val: l.get(k) != v)
        elif setop:
            vs = {x.strip() for x in vals.split(",") if x.strip()}
            if setop == "in":
                reqs.append(lambda l, k=key, vs=vs: l.get(k) in vs)
            else:
                reqs.append(lambda l, k=key, vs=vs: l.get(k) not in vs)
        else:
            reqs.append(lambda l, k=key: k in l)
    return lambda labels: all(r(labels or {}) for r in reqs)


def field_selector(s, rt):
    if not s:
        return lambda obj: True
    reqs = []
    for part in s.split(","):
        m = re.match(r"\s*([A-Za-z.]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise bad_request(f"invalid selector: '{s}'; can't understand '{part}'")
        field, op, val = m.groups()
        allowed = (
            {"metadata.name", "metadata.namespace"}
            | ({"type"} if rt.plural == "secrets" else set())
            | ({"status.phase"} if rt.plural == "namespaces" else set())
        )
        if field not in allowed:
            raise bad_request(
                f'"{field}" is not a known field selector: only "metadata.name", '
                '"metadata.namespace"'
            )

        def get(obj, f=field):
            cur = obj
            for p in f.split("."):
                cur = cur.get(p) if isinstance(cur, dict) else None
            return "" if cur is None else str(cur)

        reqs.append(
            (lambda o, g=get, v=val: g(o) != v)
            if op == "!="
            else (lambda o, g=get, v=val: g(o) == v)
        )
    return lambda obj: all(r(obj) for r in reqs)


# ---------------------------------------------------------------- JSONPath (printer columns)


def jsonpath(obj, path):
    """The JSONPath subset of additionalPrinterColumns: .a.b, [n], [*],
    [?(@.x=="y")]."""
    toks = re.findall(
        r"\.([A-Za-z0-9_-]+)|\[(\d+|\*|\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*[\"']([^\"']*)[\"']\))\]",
        path.strip().strip("{}"),
    )
    cur = [obj]
    for name, bracket, fkey, fval in toks:
        nxt = []
        for c in cur:
            if name:
                if isinstance(c, dict) and name in c:
                    nxt.append(c[name])
            elif bracket == "*":
                if isinstance(c, list):
                    nxt.extend(c)
            elif bracket.isdigit():
                if isinstance(c, list) and int(bracket) < len(c):
                    nxt.append(c[int(bracket)])
            elif isinstance(c, list):
                for x in c:
                    v = x
                    for p in fkey.split("."):
                        v = v.get(p) if isinstance(v, dict) else None
                    if v is not None and str(v) == fval:
                        nxt.append(x)
        cur = nxt
    return cur


def human_duration(seconds):
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    return f"{h // 24}d"


def _age(obj):
    ts = obj.get("metadata", {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    t = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    return human_duration((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())


# ---------------------------------------------------------------- OpenAPI v2 in protobuf (gnostic openapi_v2)


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb_len(field, data):
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _pb_str(field, s):
    return _pb_len(field, s.encode())


def _pb_schema(s):
    out = b""
    for name, field in (
        ("$ref", 1),
        ("format", 2),
        ("title", 3),
        ("description", 4),
        ("pattern", 13),
    ):
        if isinstance(s.get(name), str):
            out += _pb_str(field, s[name])
    for name, field in (("maximum", 7), ("minimum", 9)):
        if isinstance(s.get(name), (int, float)):
            out += _varint(field << 3 | 1) + struct.pack("<d", float(s[name]))
    for name, field in (("exclusiveMaximum", 8), ("exclusiveMinimum", 10), ("uniqueItems", 16)):
        if s.get(name):
            out += _varint(field << 3) + b"\x01"
    for name, field in (
        ("maxLength", 11),
        ("minLength", 12),
        ("maxItems", 14),
        ("minItems", 15),
        ("maxProperties", 17),
        ("minProperties", 18),
    ):
        if isinstance(s.get(name), int):
            out += _varint(field << 3) + _varint(s[name])
    for r in s.get("required", []):
        out += _pb_str(19, r)
    ap = s.get("additionalProperties")
    if isinstance(ap, dict):
        out += _pb_len(21, _pb_len(1, _pb_schema(ap)))
    elif isinstance(ap, bool):
        out += _pb_len(21, _varint(2 << 3) + (b"\x01" if ap else b"\x00"))
    if isinstance(s.get("type"), str):
        out += _pb_len(22, _pb_str(1, s["type"]))
    if isinstance(s.get("items"), dict):
        out += _pb_len(23, _pb_len(1, _pb_schema(s["items"])))
    if isinstance(s.get("properties"), dict):
        out += _pb_len(
            25,
            b"".join(
                _pb_len(1, _pb_str(1, k) + _pb_len(2, _pb_schema(v)))
                for k, v in s["properties"].items()
            ),
        )
    for k, v in s.items():
        if k.startswith("x-"):
            out += _pb_len(31, _pb_str(1, k) + _pb_len(2, _pb_str(2, json.dumps(v))))
    return out


def openapi_v2_protobuf(doc):
    out = _pb_str(1, doc["swagger"])
    out += _pb_len(2, _pb_str(1, doc["info"]["title"]) + _pb_str(2, doc["info"]["version"]))
    out += _pb_len(8, b"")
    out += _pb_len(
        9,
        b"".join(
            _pb_len(1, _pb_str(1, k) + _pb_len(2, _pb_schema(v)))
            for k, v in doc["definitions"].items()
        ),
    )
    return out


META_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
OWNER_REF = "io.k8s.apimachinery.pkg.apis.meta.v1.OwnerReference"


def _definition_name(rt):
    rev = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{rev}.{rt.version}.{rt.kind}"


def _to_v2(s):
    """A CRD schema as published in OpenAPI v2 (junctors, nullable and the
    x-kubernetes- extensions dropped; preserved subtrees left open)."""
    if not isinstance(s, dict):
        return {}
    out = {
        k: v
        for k, v in s.items()
        if k
        in (
            "type",
            "format",
            "description",
            "required",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "minLength",
            "maxLength",
            "pattern",
            "minItems",
            "maxItems",
            "uniqueItems",
        )
    }
    if s.get("x-kubernetes-preserve-unknown-fields"):
        return out if out.get("type") == "object" else {k: v for k, v in out.items() if k != "type"}
    if s.get("x-kubernetes-int-or-string"):
        return {}
    if isinstance(s.get("properties"), dict):
        out["properties"] = {k: _to_v2(v) for k, v in s["properties"].items()}
    if isinstance(s.get("items"), dict):
        out["items"] = _to_v2(s["items"])
    if isinstance(s.get("additionalProperties"), dict):
        out["additionalProperties"] = _to_v2(s["additionalProperties"])
    return out


def _meta_schema(ref_prefix):
    props = {}
    for k, v in OBJECT_META_SCHEMA["properties"].items():
        props[k] = {kk: vv for kk, vv in v.items() if kk != "nullable"}
    props["ownerReferences"] = {"type": "array", "items": {"$ref": ref_prefix + OWNER_REF}}
    props["managedFields"] = {"type": "array", "items": {"type": "object"}}
    return {"type": "object", "description": "Standard object's metadata.", "properties": props}


def _owner_schema():
    return {k: v for k, v in OWNER_REF_SCHEMA.items()}


# ---------------------------------------------------------------- certificates


def make_pki(directory, host="127.0.0.1"):
    """CA, server certificate for host/localhost and an admin client
    certificate, as PEM files in directory."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def pem_key(k):
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def name(cn, org=None):
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)
    ca_key = key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("backbone-fake-apiserver-ca"))
        .issuer_name(name("backbone-fake-apiserver-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(subject, usage, sans=None):
        k = key()
        b = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return b.sign(ca_key, hashes.SHA256()), k

    sans = [x509.DNSName("localhost"), x509.DNSName("kubernetes.default.svc")]
    try:
        sans.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        sans.append(x509.DNSName(host))
    if host != "127.0.0.1":
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server, server_key = leaf(name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client, client_key = leaf(name(ADMIN_USER, "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH)
    files = {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "ca.key": pem_key(ca_key),
        "server.crt": server.public_bytes(serialization.Encoding.PEM),
        "server.key": pem_key(server_key),
        "client.crt": client.public_bytes(serialization.Encoding.PEM),
        "client.key": pem_key(client_key),
    }
    paths = {}
    for fname, data in files.items():
        p = os.path.join(directory, fname)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        paths[fname] = p
    return paths


def sign_client_cert(directory, user, groups=(), prefix=None):
    """Issues a client certificate (CN=user, O=groups) from the CA in
    directory; returns (cert path, key path)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    with open(os.path.join(directory, "ca.crt"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(directory, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), None)
    k = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, user)] + [
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups
    ]
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca.subject)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    prefix = prefix or re.sub(r"[^A-Za-z0-9_.-]", "_", user)
    cp, kp = os.path.join(directory, prefix + ".crt"), os.path.join(directory, prefix + ".key")
    with open(cp, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(kp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            k.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cp, kp


# ---------------------------------------------------------------- rules


def normalize_rules(rules, namespaces=None):
    """Rules as RBAC PolicyRules ({verbs, apiGroups, resources,
    resourceNames}) or shorthand strings "VERB[,VERB] RESOURCE[,RESOURCE]"
    ("*" alone = everything). A rule may carry "namespaces" (a RoleBinding);
    without it, `namespaces` applies, None meaning cluster-wide."""
    out = []
    for r in rules or []:
        if isinstance(r, str):
            parts = r.split()
            if parts == ["*"]:
                r = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}
            elif len(parts) == 2:
                r = {
                    "verbs": parts[0].split(","),
                    "apiGroups": ["*"],
                    "resources": parts[1].split(","),
                }
            else:
                raise ValueError(f"bad rule {r!r}: expected 'VERB RESOURCE'")
        r = dict(r)
        r.setdefault("apiGroups", ["*"])
        r.setdefault("resourceNames", [])
        if "namespaces" not in r:
            r["namespaces"] = list(namespaces) if namespaces is not None else None
        out.append(r)
    return out


def rule_allows(rule, verb, group, resource, name, namespace):
    if "*" not in rule["verbs"] and verb not in rule["verbs"]:
        return False
    if "*" not in rule["apiGroups"] and group not in rule["apiGroups"]:
        return False
    res = rule.get("resources", [])
    if "*" not in res and resource not in res:
        if "/" not in resource or ("*/" + resource.split("/", 1)[1]) not in res:
            return False
    if rule["resourceNames"] and (not name or name not in rule["resourceNames"]):
        return False
    if rule["namespaces"] is not None and namespace not in rule["namespaces"]:
        return False
    return True


# ---------------------------------------------------------------- server


class _Event:
    __slots__ = ("rv", "type", "skey", "obj", "old")

    def __init__(self, rv, etype, skey, obj, old):
        self.rv, self.type, self.skey, self.obj, self.old = rv, etype, skey, obj, old


class _Watcher:
    def __init__(self, rt, namespace, lsel, fsel, bookmarks, table, user):
        self.rt, self.namespace, self.lsel, self.fsel = rt, namespace, lsel, fsel
        self.bookmarks, self.table, self.user = bookmarks, table, user
        self.q = queue.Queue()
        self.handler = None

    def matches(self, obj):
        if obj is None:
            return False
        m = obj.get("metadata", {})
        if self.namespace is not None and m.get("namespace") != self.namespace:
            return False
        return self.lsel(m.get("labels")) and self.fsel(obj)

    def offer(self, ev):
        """Event for this watcher, translated for its selectors."""
        if ev.skey != self.rt.skey:
            return
        now, before = self.matches(ev.obj), self.matches(ev.old)
        if ev.type == "MODIFIED":
            if now and not before:
                self.q.put(("ADDED", ev.obj))
            elif before and not now:
                self.q.put(("DELETED", ev.obj))
            elif now:
                self.q.put(("MODIFIED", ev.obj))
        elif now:
            self.q.put((ev.type, ev.obj))


class FakeApiServer:
    """The stand-in API server. Use start()/stop() or as a context manager.

    Arguments: directory (files; default a temporary one, removed by stop()),
    port (0 = any), host, tls (False = plain HTTP), crds (CRD files or
    directories to preload; default packaging/kubernetes/crds, [] = none),
    history_limit (watch events kept; older resourceVersions get 410),
    bookmark_interval (seconds between BOOKMARKs on every watch that allows
    them; 0 = only send_bookmark()), anonymous (who a request without
    credentials is: None = 401 over HTTPS, the admin over HTTP; True =
    system:anonymous; or a user name), namespaces (created at start), token
    (the admin token; default random), gc_delay (seconds before the garbage
    collector acts), log (callable for the access log).

    After start(): .port, .url, .token (all rights), .ca_path (None without
    TLS), .directory holding ca.crt, ca.key, client.crt/.key (CN
    kubernetes-admin), token, kubeconfig (token, CA inline),
    kubeconfig-files (tokenFile and CA path), kubeconfig-cert (client
    certificate), serviceaccount/{token,ca.crt,namespace} (the in-cluster
    layout; with in_cluster_env() for KUBERNETES_SERVICE_HOST/PORT).

    Test hooks (also as unauthenticated POSTs under /_test/, JSON bodies):
    compact() [/_test/compact], send_bookmark() [/_test/bookmark],
    drop_watches(graceful=False) [/_test/drop-watches {"graceful": bool}],
    set_token(token, rules, user=None, namespaces=None) [/_test/token
    {"token", "rules", "user", "namespaces"} or {"token", "delete": true}],
    fail(path_regex, code=500, count=1, method=None, retry_after=None)
    [/_test/fail {"path", "code", "count", "method", "retryAfter"}],
    .requests / clear_requests() [GET|DELETE /_test/requests],
    watch_count(plural) / wait_for_watches(n, plural, timeout)
    [GET /_test/watches], resource_version() [GET /_test/resourceversion],
    kubeconfig_for(token), and direct object access without HTTP: create(),
    apply(), get(), list(), update_status(), delete(), load_crds().
    """

    def __init__(
        self,
        directory=None,
        port=0,
        host="127.0.0.1",
        tls=True,
        crds=None,
        history_limit=1000,
        bookmark_interval=0.0,
        anonymous=None,
        namespaces=DEFAULT_NAMESPACES,
        token=None,
        gc_delay=0.05,
        log=None,
    ):
        self._own_directory = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="fake-apiserver-")
        os.makedirs(self.directory, exist_ok=True)
        self.host, self.port, self.tls = host, port, tls
        self.crd_paths = [DEFAULT_CRD_DIR] if crds is None else list(crds)
        self.history_limit, self.bookmark_interval = history_limit, bookmark_interval
        # who a request without credentials is: None = nobody (401). Over
        # plain HTTP kubectl never sends a token, so there it is the admin,
        # as on the old insecure port (a token that is sent is still checked).
        if anonymous is None:
            anonymous = ADMIN_USER if not tls else False
        self.anonymous = "system:anonymous" if anonymous is True else (anonymous or None)
        self.gc_delay = gc_delay
        self.token = token or secrets.token_urlsafe(32)
        self.log = log
        self._mu = threading.RLock()
        self._rv = 0
        self._oldest_rv = 0  # every event after this resourceVersion is in _history
        self._history = []  # _Event, ascending rv
        self._store = {}  # skey -> {(namespace or "", name): object}
        self._types = {}  # (group, version, plural) -> ResType
        self._watchers = set()
        self._tokens = {}  # token -> user
        self._rules = {}  # user -> [rule]
        self._failures = []  # injected failures
        self.requests = []  # (method, path, query, user, code)
        self._gc_queue = queue.Queue()
        self._stopping = threading.Event()
        self._httpd = None
        self._threads = []
        self._conns = set()
        for rt in builtin_types():
            self._register(rt)
        self.set_token(self.token, ["*"], user=ADMIN_USER)
        for ns in namespaces:
            self.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for p in self.crd_paths:
            self.load_crds(p)

    # ------------------------------------------------------------ lifecycle

    def start(self):
        server = self

        class HTTPServer(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 64

            def finish_request(self, request, client_address):
                if server._ssl is not None:
                    try:
                        request.settimeout(10)
                        request = server._ssl.wrap_socket(request, server_side=True)
                        request.settimeout(None)
                    except (OSError, ssl.SSLError):
                        request.close()
                        return
                with server._mu:
                    server._conns.add(request)
                try:
                    self.RequestHandlerClass(request, client_address, self)
                finally:
                    with server._mu:
                        server._conns.discard(request)
                    if server._ssl is not None:
                        try:
                            request.close()
                        except OSError:
                            pass

        self._httpd = HTTPServer((self.host, self.port), _Handler)
        self._httpd.api = self
        self.port = self._httpd.server_address[1]
        self._ssl = None
        self.ca_path = None
        if self.tls:
            pki = make_pki(self.directory, self.host)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki["server.crt"], pki["server.key"])
            ctx.load_verify_locations(pki["ca.crt"])
            ctx.verify_mode = ssl.CERT_OPTIONAL
            ctx.set_alpn_protocols(["http/1.1"])
            self._ssl = ctx
            self.ca_path = pki["ca.crt"]
        self.url = f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"
        self._write_files()
        for target in (self._httpd.serve_forever, self._gc_loop, self._bookmark_loop):
            t = threading.Thread(target=target, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stopping.set()
        self._gc_queue.put(None)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        self.drop_watches(graceful=False)
        with self._mu:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _write_files(self):
        d = self.directory
        with open(os.path.join(d, "token"), "w") as f:
            f.write(self.token)
        cluster = {"server": self.url}
        cluster_files = {"server": self.url}
        if self.tls:
            with open(self.ca_path, "rb") as f:
                cluster["certificate-authority-data"] = base64.b64encode(f.read()).decode()
            cluster_files["certificate-authority"] = self.ca_path

        def config(cl, user):
            return {
                "apiVersion": "v1",
                "kind": "Config",
                "preferences": {},
                "clusters": [{"name": "fake", "cluster": cl}],
                "users": [{"name": "admin", "user": user}],
                "contexts": [
                    {
                        "name": "fake",
                        "context": {"cluster": "fake", "user": "admin", "namespace": "default"},
                    }
                ],
                "current-context": "fake",
            }

        self.kubeconfig = os.path.join(d, "kubeconfig")
        self.kubeconfig_files = os.path.join(d, "kubeconfig-files")
        with open(self.kubeconfig, "w") as f:
            json.dump(config(cluster, {"token": self.token}), f, indent=2)
        with open(self.kubeconfig_files, "w") as f:
            json.dump(config(cluster_files, {"tokenFile": os.path.join(d, "token")}), f, indent=2)
        if self.tls:
            self.kubeconfig_cert = os.path.join(d, "kubeconfig-cert")
            with open(self.kubeconfig_cert, "w") as f:
                json.dump(
                    config(
                        cluster_files,
                        {
                            "client-certificate": os.path.join(d, "client.crt"),
                            "client-key": os.path.join(d, "client.key"),
                        },
                    ),
                    f,
                    indent=2,
                )
        # The in-cluster layout (/var/run/secrets/kubernetes.io/serviceaccount)
        sa = os.path.join(d, "serviceaccount")
        os.makedirs(sa, exist_ok=True)
        with open(os.path.join(sa, "token"), "w") as f:
            f.write(self.token)
        with open(os.path.join(sa, "namespace"), "w") as f:
            f.write("default")
        if self.tls:
            with open(self.ca_path, "rb") as src, open(os.path.join(sa, "ca.crt"), "wb") as dst:
                dst.write(src.read())

    def kubeconfig_for(self, token, path=None):
        """Writes a kubeconfig using another token; returns its path."""
        path = path or os.path.join(
            self.directory, "kubeconfig-" + hashlib.sha256(token.encode()).hexdigest()[:8]
        )
        with open(self.kubeconfig) as f:
            cfg = json.load(f)
        cfg["users"][0]["user"] = {"token": token}
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        return path

    def in_cluster_env(self):
        """KUBERNETES_SERVICE_HOST/PORT as a pod would see them."""
        return {"KUBERNETES_SERVICE_HOST": self.host, "KUBERNETES_SERVICE_PORT": str(self.port)}

    # ------------------------------------------------------------ test hooks

    def set_token(self, token, rules, user=None, namespaces=None):
        """Grants `rules` (see normalize_rules) to the user of `token`
        (replacing what that user had). Returns the user name."""
        user = user or "user-" + hashlib.sha256(token.encode()).hexdigest()[:8]
        with self._mu:
            self._tokens[token] = user
            self._rules[user] = normalize_rules(rules, namespaces)
        return user

    def set_user_rules(self, user, rules, namespaces=None):
        with self._mu:
            self._rules[user] = normalize_rules(rules, namespaces)

    def remove_token(self, token):
        with self._mu:
            self._tokens.pop(token, None)

    def compact(self):
        """Forgets the event history: a watch or a continued list from any
        resourceVersion issued so far gets 410 Gone. Returns the new oldest
        valid resourceVersion."""
        with self._mu:
            self._rv += 1
            self._oldest_rv = self._rv
            self._history = []
            return self._rv

    def send_bookmark(self):
        """A BOOKMARK now on every open watch that allows bookmarks."""
        with self._mu:
            for w in self._watchers:
                if w.bookmarks:
                    w.q.put(("BOOKMARK", str(self._rv)))
            return len(self._watchers)

    def drop_watches(self, graceful=False):
        """Ends every open watch: graceful = the stream ends as on timeout;
        otherwise the connection is cut mid-stream."""
        with self._mu:
            ws = list(self._watchers)
        for w in ws:
            w.q.put(("END" if graceful else "DROP", None))
        return len(ws)

    def watch_count(self, plural=None):
        with self._mu:
            return sum(1 for w in self._watchers if plural is None or w.rt.plural == plural)

    def wait_for_watches(self, n, plural=None, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.watch_count(plural) >= n:
                return True
            time.sleep(0.02)
        return False

    def fail(self, path, code=500, count=1, method=None, retry_after=None):
        """The next `count` requests whose path matches the regex `path`
        (and method, if given) are answered with `code` (a Status)."""
        with self._mu:
            self._failures.append(
                {
                    "path": re.compile(path),
                    "code": code,
                    "count": count,
                    "method": method,
                    "retry_after": retry_after,
                }
            )

    def clear_requests(self):
        with self._mu:
            self.requests = []

    def resource_version(self):
        with self._mu:
            return str(self._rv)

    def load_crds(self, path):
        """Creates (or updates) the CRDs of a YAML file or directory."""
        files = [path]
        if os.path.isdir(path):
            files = [
                os.path.join(path, f)
                for f in sorted(os.listdir(path))
                if f.endswith((".yaml", ".yml", ".json"))
            ]
        for fn in files:
            with open(fn) as f:
                text = f.read()
            docs = json.loads(text) if fn.endswith(".json") else list(yaml.safe_load_all(text))
            for doc in docs if isinstance(docs, list) else [docs]:
                if doc:
                    self.apply(doc)

    # direct object access (no HTTP, full rights)

    def _rt_for(self, api_version, kind):
        group, _, version = api_version.rpartition("/")
        with self._mu:
            for rt in self._types.values():
                if rt.group == group and rt.version == version and rt.kind == kind:
                    return rt
        raise KeyError(f"no resource for {api_version} {kind}")

    def _rt_plural(self, group, plural):
        with self._mu:
            for rt in self._types.values():
                if rt.group == group and rt.plural == plural:
                    return rt
        raise KeyError(f"no resource {plural}.{group}")

    def create(self, obj):
        rt = self._rt_for(obj["apiVersion"], obj["kind"])
        return self._create(
            rt, obj.get("metadata", {}).get("namespace") if rt.namespaced else None, obj, {}, []
        )[0]

    def apply(self, obj):
        """Creates or replaces (keeping the status) an object."""
        rt = self._rt_for(obj["apiVersion"], obj["kind"])
        ns = obj.get("metadata", {}).get("namespace", "default") if rt.namespaced else None
        name = obj["metadata"]["name"]
        with self._mu:
            cur = self._get_obj(rt, ns, name)
            if cur is None:
                return self._create(rt, ns, obj, {}, [])[0]
            new = copy.deepcopy(obj)
            new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            return self._update(rt, ns, name, new, {}, [], status=False)[0]

    def get(self, group, plural, namespace, name):
        rt = self._rt_plural(group, plural)
        with self._mu:
            o = self._get_obj(rt, namespace if rt.namespaced else None, name)
            return copy.deepcopy(o) if o else None

    def list(self, group, plural, namespace=None):
        rt = self._rt_plural(group, plural)
        with self._mu:
            return [
                copy.deepcopy(o)
                for (ns, _), o in sorted(self._store.get(rt.skey, {}).items())
                if namespace is None or ns == namespace
            ]

    def update_status(self, group, plural, namespace, name, status):
        rt = self._rt_plural(group, plural)
        with self._mu:
            o = copy.deepcopy(self._get_obj(rt, namespace, name))
            o["status"] = status
            return self._update(
                rt, namespace if rt.namespaced else None, name, o, {}, [], status=True
            )[0]

    def delete(self, group, plural, namespace, name):
        rt = self._rt_plural(group, plural)
        return self._delete(rt, namespace if rt.namespaced else None, name, {}, {})

    # ------------------------------------------------------------ storage core (hold _mu)

    def _register(self, rt):
        self._types[(rt.group, rt.version, rt.plural)] = rt
        self._store.setdefault(rt.skey, {})

    def _get_obj(self, rt, ns, name):
        return self._store.get(rt.skey, {}).get((ns or "", name))

    def _emit(self, etype, rt, obj, old=None):
        ev = _Event(self._rv, etype, rt.skey, obj, old)
        self._history.append(ev)
        if len(self._history) > self.history_limit:
            dropped = self._history.pop(0)
            self._oldest_rv = dropped.rv
        for w in self._watchers:
            w.offer(ev)
        if obj.get("metadata", {}).get("ownerReferences") and etype != "DELETED":
            self._gc_queue.put(
                ("check", rt.skey, obj["metadata"].get("namespace"), obj["metadata"]["name"])
            )

    def _versioned(self, rt, obj, with_type=True):
        o = copy.deepcopy(obj)
        if with_type:
            o["apiVersion"], o["kind"] = rt.api_version, rt.kind
        else:
            o.pop("apiVersion", None)
            o.pop("kind", None)
        return o

    def _validate(self, rt, obj, name, params, warnings, old=None):
        """Schema validation, pruning, defaulting and the type's own rules."""
        mode = params.get("fieldValidation") or "Warn"
        if mode not in ("Ignore", "Warn", "Strict"):
            raise bad_request(
                f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", '
                '"Strict", "Warn"'
            )
        v = Validation()
        meta = v.run(obj.get("metadata") or {}, OBJECT_META_SCHEMA, "metadata")
        if rt.schema is not None:
            schema = copy.deepcopy(rt.schema)
            schema.setdefault("properties", {})
            schema["properties"]["metadata"] = {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": True,
            }
            schema["properties"].setdefault("apiVersion", {"type": "string"})
            schema["properties"].setdefault("kind", {"type": "string"})
            obj = v.run(obj, schema, "")
        obj["metadata"] = meta
        if v.unknown:
            if mode == "Strict":
                unk = ", ".join(f'unknown field "{u}"' for u in v.unknown)
                raise bad_request(
                    f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: strict '
                    f"decoding error: {unk}"
                )
            if mode == "Warn":
                warnings.extend(f'unknown field "{u}"' for u in v.unknown)
        errors = list(v.errors)
        errors += self._type_rules(rt, obj, old)
        if errors:
            raise invalid(rt, name, errors)
        return obj

    def _type_rules(self, rt, obj, old):
        errs = []
        meta = obj["metadata"]
        name = meta.get("name", "")
        if rt.plural == "namespaces":
            if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
                errs.append(
                    (
                        "FieldValueInvalid",
                        "metadata.name",
                        f'Invalid value: "{name}": a lowercase RFC 1123 '
                        "label must consist of lower case alphanumeric characters or '-', and must start and "
                        "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                        "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                    )
                )
        elif (
            not re.fullmatch(
                r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*", name
            )
            or len(name) > 253
        ):
            errs.append(
                (
                    "FieldValueInvalid",
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 '
                    "subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
                    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                )
            )
        for i, ref in enumerate(meta.get("ownerReferences") or []):
            if not ref.get("uid"):
                errs.append(
                    (
                        "FieldValueInvalid",
                        "metadata.ownerReferences.uid",
                        'Invalid value: "": uid must ' "not be empty",
                    )
                )
            if not ref.get("apiVersion") or not ref.get("kind") or not ref.get("name"):
                errs.append(
                    (
                        "FieldValueInvalid",
                        f"metadata.ownerReferences[{i}]",
                        "Invalid value: apiVersion, " "kind and name must be set",
                    )
                )
        if sum(1 for r in meta.get("ownerReferences") or [] if r.get("controller")) > 1:
            errs.append(
                (
                    "FieldValueInvalid",
                    "metadata.ownerReferences",
                    "Invalid value: Only one reference can " "have Controller set to true",
                )
            )
        if rt.plural == "secrets":
            for k, val in (obj.get("data") or {}).items():
                if not re.fullmatch(r"[-._a-zA-Z0-9]+", k):
                    errs.append(
                        (
                            "FieldValueInvalid",
                            f"data[{k}]",
                            f'Invalid value: "{k}": a valid config key '
                            "must consist of alphanumeric characters, '-', '_' or '.'",
                        )
                    )
            if old is not None:
                if obj.get("type") != old.get("type"):
                    errs.append(
                        (
                            "FieldValueInvalid",
                            "type",
                            f'Invalid value: "{obj.get("type")}": field is ' "immutable",
                        )
                    )
                if old.get("immutable") and (
                    obj.get("data") != old.get("data") or not obj.get("immutable")
                ):
                    errs.append(
                        (
                            "FieldValueForbidden",
                            "data",
                            "Forbidden: field is immutable when `immutable` " "is set",
                        )
                    )
        if rt.plural == "leases":
            errs += self._lease_rules(obj)
        if rt.plural == "customresourcedefinitions":
            errs += self._crd_rules(obj, old)
        return errs

    # A MicroTime as the API server parses it (RFC 3339, fraction optional).
    MICRO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")

    def _lease_rules(self, obj):
        """coordination.k8s.io/v1 validation of a Lease's spec."""
        errs = []
        spec = obj.get("spec") or {}
        for f in ("acquireTime", "renewTime"):
            v = spec.get(f)
            if v is not None and not (isinstance(v, str) and self.MICRO_TIME.fullmatch(v)):
                errs.append(("FieldValueInvalid", f"spec.{f}",
                             f'Invalid value: "{v}": not a MicroTime (RFC 3339 with microseconds)'))
        d = spec.get("leaseDurationSeconds")
        if d is not None and (not isinstance(d, int) or d <= 0):
            errs.append(("FieldValueInvalid", "spec.leaseDurationSeconds",
                         f"Invalid value: {d}: must be greater than 0"))
        t = spec.get("leaseTransitions")
        if t is not None and (not isinstance(t, int) or t < 0):
            errs.append(("FieldValueInvalid", "spec.leaseTransitions",
                         f"Invalid value: {t}: must be greater than or equal to 0"))
        return errs

    def _crd_rules(self, obj, old):
        errs = []
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
        for f, v in (
            ("spec.group", group),
            ("spec.names.plural", plural),
            ("spec.names.kind", kind),
        ):
            if not v:
                errs.append(("FieldValueRequired", f, "Required value"))
        if group and plural and obj["metadata"].get("name") != f"{plural}.{group}":
            errs.append(
                (
                    "FieldValueInvalid",
                    "metadata.name",
                    f'Invalid value: "{obj["metadata"].get("name")}": '
                    'must be spec.names.plural+"."+spec.group',
                )
            )
        if spec.get("scope") not in ("Namespaced", "Cluster"):
            errs.append(
                (
                    "FieldValueNotSupported",
                    "spec.scope",
                    f'Unsupported value: "{spec.get("scope")}": '
                    'supported values: "Cluster", "Namespaced"',
                )
            )
        versions = spec.get("versions") or []
        if not versions:
            errs.append(
                (
                    "FieldValueRequired",
                    "spec.versions",
                    "Required value: must have exactly one version " "marked as storage version",
                )
            )
        elif sum(1 for v in versions if v.get("storage")) != 1:
            errs.append(
                (
                    "FieldValueInvalid",
                    "spec.versions",
                    "Invalid value: must have exactly one version " "marked as storage version",
                )
            )
        for i, v in enumerate(versions):
            schema = (v.get("schema") or {}).get("openAPIV3Schema")
            if schema is None:
                errs.append(
                    (
                        "FieldValueRequired",
                        f"spec.versions[{i}].schema.openAPIV3Schema",
                        "Required value: schemas are required",
                    )
                )
                continue
            for f, m in structural_errors(schema, f"spec.versions[{i}].schema.openAPIV3Schema"):
                errs.append(
                    ("FieldValueInvalid" if "Required" not in m else "FieldValueRequired", f, m)
                )
        if old is not None:
            if (old.get("spec") or {}).get("group") != group:
                errs.append(
                    ("FieldValueInvalid", "spec.group", "Invalid value: field is immutable")
                )
            if ((old.get("spec") or {}).get("names") or {}).get("plural") != plural:
                errs.append(
                    ("FieldValueInvalid", "spec.names.plural", "Invalid value: field is immutable")
                )
        return errs

    def _normalize(self, rt, obj):
        """Defaults and conversions of the built-in types."""
        if rt.plural == "secrets":
            data = obj.get("data") or {}
            for k, v in (obj.get("data") or {}).items():
                try:
                    base64.b64decode(v, validate=True)
                except (ValueError, TypeError):
                    raise bad_request(
                        'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                        "at input byte 0"
                    )
            for k, v in (obj.pop("stringData", None) or {}).items():
                data[k] = base64.b64encode(v.encode()).decode()
            if data:
                obj["data"] = data
            obj.setdefault("type", "Opaque")
        elif rt.plural == "namespaces":
            name = obj["metadata"].get("name")
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {
                "phase": "Terminating" if obj["metadata"].get("deletionTimestamp") else "Active"
            }
        elif rt.plural == "customresourcedefinitions":
            spec = obj.get("spec") or {}
            names = dict(spec.get("names") or {})
            if names.get("kind"):
                names.setdefault("singular", names["kind"].lower())
                names.setdefault("listKind", names["kind"] + "List")
            spec["names"] = names
            for v in spec.get("versions") or []:
                v.setdefault("served", True)
            spec.setdefault("conversion", {"strategy": "None"})
            obj["spec"] = spec
            storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
            ts = now_rfc3339()
            obj["status"] = {
                "acceptedNames": names,
                "storedVersions": storage,
                "conditions": [
                    {
                        "type": "NamesAccepted",
                        "status": "True",
                        "reason": "NoConflicts",
                        "message": "no conflicts found",
                        "lastTransitionTime": ts,
                    },
                    {
                        "type": "Established",
                        "status": "True",
                        "reason": "InitialNamesAccepted",
                        "message": "the initial names have been accepted",
                        "lastTransitionTime": ts,
                    },
                ],
            }
        return obj

    def _crd_types(self, crd):
        spec = crd["spec"]
        names = spec["names"]
        out = []
        for v in spec.get("versions", []):
            if not v.get("served", True):
                continue
            out.append(
                ResType(
                    spec["group"],
                    v["name"],
                    names["plural"],
                    names["kind"],
                    spec.get("scope") == "Namespaced",
                    singular=names.get("singular"),
                    short_names=names.get("shortNames", ()),
                    categories=names.get("categories", ()),
                    status="status" in (v.get("subresources") or {}),
                    schema=(v.get("schema") or {}).get("openAPIV3Schema"),
                    generation=True,
                    unconditional_update=False,
                    columns=v.get("additionalPrinterColumns") or [],
                    crd=crd["metadata"]["name"],
                    list_kind=names.get("listKind"),
                    strategic=False,
                )
            )
        return out

    def _sync_crd(self, crd, deleted=False):
        name = crd["metadata"]["name"]
        for key in [k for k, t in self._types.items() if t.crd == name]:
            del self._types[key]
        if deleted:
            return
        for rt in self._crd_types(crd):
            self._register(rt)

    def _spec_changed(self, rt, old, new):
        def strip(o):
            return {
                k: v for k, v in o.items() if k not in ("metadata", "status" if rt.status else "")
            }

        return strip(old) != strip(new)

    def _check_namespace(self, rt, ns):
        if rt.namespaced:
            nsrt = self._types[("", "v1", "namespaces")]
            if self._get_obj(nsrt, None, ns) is None:
                raise ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{ns}" not found',
                    {"name": ns, "kind": "namespaces"},
                )

    def _create(self, rt, ns, body, params, warnings):
        with self._mu:
            if not isinstance(body, dict):
                raise bad_request("the body of the request was in an unknown format")
            obj = copy.deepcopy(body)
            if rt.crd and (not obj.get("kind") or not obj.get("apiVersion")):
                missing = "Kind" if not obj.get("kind") else "Version"
                raise bad_request(f"Object '{missing}' is missing in '{json.dumps(body)}'")
            if (
                obj.get("kind", rt.kind) != rt.kind
                or obj.get("apiVersion", rt.api_version) != rt.api_version
            ):
                raise bad_request(
                    f"the API version in the data ({obj.get('apiVersion')}) does not match the expected "
                    f"API version ({rt.api_version})"
                    if obj.get("kind", rt.kind) == rt.kind
                    else f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: no kind '
                    f'"{obj.get("kind")}" is registered'
                )
            meta = obj.setdefault("metadata", {})
            if not isinstance(meta, dict):
                raise bad_request("metadata must be an object")
            if rt.namespaced:
                if meta.get("namespace") and meta["namespace"] != ns:
                    raise bad_request(
                        "the namespace of the provided object does not match the namespace sent on "
                        "the request"
                    )
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            if meta.get("resourceVersion"):
                raise ApiError(
                    500,
                    "InternalError",
                    "Internal error occurred: resourceVersion should not be set on "
                    "objects to be created",
                    {
                        "causes": [
                            {
                                "message": "resourceVersion should not be set on "
                                "objects to be created"
                            }
                        ]
                    },
                )
            if not meta.get("name"):
                if meta.get("generateName"):
                    meta["name"] = meta["generateName"] + "".join(
                        secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5)
                    )
                else:
                    raise invalid(
                        rt,
                        "",
                        [
                            (
                                "FieldValueRequired",
                                "metadata.name",
                                "Required value: name or generateName is required",
                            )
                        ],
                    )
            name = meta["name"]
            if rt.status and rt.crd:
                obj.pop("status", None)
            obj = self._validate(rt, obj, name, params, warnings)
            obj = self._normalize(rt, obj)
            if rt.namespaced:
                self._check_namespace(rt, ns)
            if self._get_obj(rt, ns, name) is not None:
                raise ApiError(
                    409, "AlreadyExists", f'{rt.gr} "{name}" already exists', _details(rt, name)
                )
            meta = obj["metadata"]
            for k in (
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "managedFields",
            ):
                meta.pop(k, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if rt.generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            if params.get("dryRun"):
                meta["resourceVersion"] = ""
                return self._versioned(rt, obj), 201
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._store[rt.skey][(ns or "", name)] = obj
            if rt.plural == "customresourcedefinitions":
                self._sync_crd(obj)
            self._emit("ADDED", rt, copy.deepcopy(obj))
            return self._versioned(rt, obj), 201

    def _update(self, rt, ns, name, body, params, warnings, status=False, check_rv=True):
        with self._mu:
            if not isinstance(body, dict):
                raise bad_request("the body of the request was in an unknown format")
            old = self._get_obj(rt, ns, name)
            obj = copy.deepcopy(body)
            meta = (
                obj.setdefault("metadata", {})
                if isinstance(obj.get("metadata"), dict) or "metadata" not in obj
                else None
            )
            if meta is None:
                raise bad_request("metadata must be an object")
            if meta.get("name", name) != name:
                raise bad_request(
                    f"the name of the object ({meta.get('name')}) does not match the name on the URL "
                    f"({name})"
                )
            meta["name"] = name
            if rt.namespaced:
                if meta.get("namespace") and meta["namespace"] != ns:
                    raise bad_request(
                        "the namespace of the provided object does not match the namespace sent on "
                        "the request"
                    )
                meta["namespace"] = ns
            if old is None:
                if rt.create_on_update and not status:
                    meta.pop("resourceVersion", None)
                    return self._create(rt, ns, obj, params, warnings)
                raise not_found(rt, name)
            rv = meta.get("resourceVersion")
            if check_rv:
                if not rv and not rt.unconditional_update:
                    raise invalid(
                        rt,
                        name,
                        [
                            (
                                "FieldValueInvalid",
                                "metadata.resourceVersion",
                                "Invalid value: 0x0: must be specified for an update",
                            )
                        ],
                    )
                if rv and rv != old["metadata"]["resourceVersion"]:
                    raise conflict(rt, name)
            if (
                obj.get("kind", rt.kind) != rt.kind
                or obj.get("apiVersion", rt.api_version) != rt.api_version
            ):
                raise bad_request(
                    f"the API version or kind in the data does not match {rt.api_version} {rt.kind}"
                )
            if status:
                st = obj.get("status")
                obj = copy.deepcopy(old)
                if st is None:
                    obj.pop("status", None)
                else:
                    obj["status"] = st
            else:
                if rt.status:
                    if "status" in old:
                        obj["status"] = copy.deepcopy(old["status"])
                    else:
                        obj.pop("status", None)
            obj = self._validate(rt, obj, name, params, warnings, old)
            obj = self._normalize(rt, obj)
            if rt.plural == "customresourcedefinitions":  # conditions keep their transition times
                before = {c["type"]: c for c in (old.get("status") or {}).get("conditions", [])}
                for c in obj["status"]["conditions"]:
                    o = before.get(c["type"])
                    if o and o.get("status") == c["status"]:
                        c["lastTransitionTime"] = o.get("lastTransitionTime")
            meta, ometa = obj["metadata"], old["metadata"]
            for k in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
            ):
                if k in ometa:
                    meta[k] = ometa[k]
                else:
                    meta.pop(k, None)
            if rt.plural == "namespaces":
                obj["status"] = (
                    copy.deepcopy(old.get("status", {})) if not status else obj.get("status", {})
                )
            meta["resourceVersion"] = ometa["resourceVersion"]
            obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
            if ometa.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(ometa.get("finalizers") or [])
                if added:
                    raise invalid(
                        rt,
                        name,
                        [
                            (
                                "FieldValueForbidden",
                                "metadata.finalizers",
                                "Forbidden: no new finalizers can be added if the object is being "
                                "deleted",
                            )
                        ],
                    )
            if rt.generation and not status and self._spec_changed(rt, old, obj):
                meta["generation"] = ometa.get("generation", 1) + 1
            if obj == old:  # no-op: nothing is written, the resourceVersion stays
                return self._versioned(rt, obj), 200
            if params.get("dryRun"):
                return self._versioned(rt, obj), 200
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                self._really_delete(rt, ns, name, "Background")
                return self._versioned(rt, obj), 200
            self._rv += 1
            meta["resourceVersion"] = str(self._rv)
            self._store[rt.skey][(ns or "", name)] = obj
            if rt.plural == "customresourcedefinitions":
                self._sync_crd(obj)
            self._emit("MODIFIED", rt, copy.deepcopy(obj), copy.deepcopy(old))
            return self._versioned(rt, obj), 200

    def _patch(self, rt, ns, name, ctype, raw, params, warnings, status=False):
        with self._mu:
            old = self._get_obj(rt, ns, name)
            if ctype == "application/apply-patch+yaml":
                if not params.get("fieldManager"):
                    raise invalid(
                        rt,
                        name,
                        [
                            (
                                "FieldValueRequired",
                                "fieldManager",
                                "Required value: is required for apply patch",
                            )
                        ],
                    )
                applied = _parse_yaml_or_json(raw)
                if not isinstance(applied, dict):
                    raise bad_request("apply patch must be an object")
                if old is None:
                    if status:
                        raise not_found(rt, name)
                    applied.setdefault("metadata", {}).setdefault("name", name)
                    return self._create(rt, ns, applied, params, warnings)
                new = apply_merge(self._versioned(rt, old), applied)
                new["metadata"]["resourceVersion"] = (
                    applied.get("metadata", {}).get("resourceVersion")
                    or old["metadata"]["resourceVersion"]
                )
                return self._update(rt, ns, name, new, params, warnings, status=status)
            if old is None:
                raise not_found(rt, name)
            try:
                patch = json.loads(raw or b"null")
            except ValueError as e:
                raise bad_request(f"error decoding patch: {e}")
            cur = self._versioned(rt, old)
            if ctype == "application/json-patch+json":
                new = json_patch(cur, patch)
            elif ctype == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise bad_request("error decoding patch: a merge patch must be a JSON object")
                new = merge_patch(cur, patch)
            elif ctype == "application/strategic-merge-patch+json":
                if not rt.strategic:
                    raise ApiError(
                        415,
                        "UnsupportedMediaType",
                        "the body of the request was in an unknown format "
                        f"- accepted media types include: {CR_PATCH_TYPES}",
                    )
                if not isinstance(patch, dict):
                    raise bad_request(
                        "error decoding patch: a strategic merge patch must be a JSON object"
                    )
                new = strategic_merge_patch(cur, patch)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - "
                    f"accepted media types include: {CR_PATCH_TYPES}"
                    + (", application/strategic-merge-patch+json" if rt.strategic else ""),
                )
            if not isinstance(new, dict):
                raise bad_request("the patched object is not an object")
            new.setdefault("metadata", {})
            # a patch carrying metadata.resourceVersion is a precondition
            prv = new["metadata"].get("resourceVersion")
            if prv and prv != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return self._update(rt, ns, name, new, params, warnings, status=status)

    def _delete(self, rt, ns, name, params, options):
        with self._mu:
            obj = self._get_obj(rt, ns, name)
            if obj is None:
                raise not_found(rt, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.gr} "{name}": Precondition '
                    f"failed: UID in precondition: {pre['uid']}, UID in object meta: "
                    f"{obj['metadata']['uid']}",
                    _details(rt, name),
                )
            if (
                pre.get("resourceVersion")
                and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]
            ):
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.gr} "{name}": Precondition '
                    f"failed: ResourceVersion in precondition: {pre['resourceVersion']}, ResourceVersion "
                    f"in object meta: {obj['metadata']['resourceVersion']}",
                    _details(rt, name),
                )
            policy = (
                options.get("propagationPolicy") or params.get("propagationPolicy") or "Background"
            )
            if options.get("orphanDependents") is True:
                policy = "Orphan"
            if policy not in ("Orphan", "Background", "Foreground"):
                raise bad_request(f'propagationPolicy: Unsupported value: "{policy}"')
            dry = options.get("dryRun") or params.get("dryRun")
            if obj["metadata"].get("finalizers"):
                if dry:
                    return self._versioned(rt, obj), 200
                if obj["metadata"].get("deletionTimestamp"):
                    return self._versioned(rt, obj), 200
                old = copy.deepcopy(obj)
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                if rt.plural == "namespaces":
                    obj["status"] = {"phase": "Terminating"}
                self._rv += 1
                obj["metadata"]["resourceVersion"] = str(self._rv)
                self._emit("MODIFIED", rt, copy.deepcopy(obj), old)
                if rt.plural == "namespaces":  # the namespace controller, at once
                    self._delete_namespace_contents(ns or name)
                    self._really_delete(rt, ns, name, policy)
                return self._versioned(rt, obj), 200
            if dry:
                return self._versioned(rt, obj), 200
            if policy == "Orphan":  # the orphan finalizer: dependents lose the reference first
                self._orphan_dependents(obj["metadata"]["uid"])
            elif policy == "Foreground":  # the foregroundDeletion finalizer: dependents go first
                self._delete_dependents(obj["metadata"]["uid"])
            self._really_delete(rt, ns, name, policy)
            return {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": _details(rt, name, uid=obj["metadata"]["uid"]),
            }, 200

    def _really_delete(self, rt, ns, name, policy):
        obj = self._store[rt.skey].pop((ns or "", name), None)
        if obj is None:
            return
        if rt.plural == "namespaces":
            self._delete_namespace_contents(name)
        if rt.plural == "customresourcedefinitions":
            for t in [t for t in self._types.values() if t.crd == name]:
                for ons, oname in list(self._store.get(t.skey, {})):
                    self._really_delete(t, ons or None, oname, "Background")
            self._sync_crd(obj, deleted=True)
            self._store.pop((obj["spec"]["group"], obj["spec"]["names"]["plural"]), None)
            for w in list(self._watchers):
                if w.rt.crd == name:
                    w.q.put(("END", None))
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._emit("DELETED", rt, copy.deepcopy(obj))
        self._gc_queue.put(("owner", obj["metadata"]["uid"], policy))

    def _dependents(self, uid):
        out = []
        for rt in {t.skey: t for t in self._types.values()}.values():
            for (ns, name), o in list(self._store.get(rt.skey, {}).items()):
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or []):
                    out.append((rt, ns, name, o))
        return out

    def _orphan_dependents(self, uid):
        for rt, ns, name, o in self._dependents(uid):
            new = copy.deepcopy(o)
            refs = [r for r in o["metadata"]["ownerReferences"] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._rv += 1
            new["metadata"]["resourceVersion"] = str(self._rv)
            self._store[rt.skey][(ns, name)] = new
            self._emit("MODIFIED", rt, copy.deepcopy(new), copy.deepcopy(o))

    def _delete_dependents(self, uid):
        for rt, ns, name, o in self._dependents(uid):
            self._delete_dependents(o["metadata"]["uid"])
            self._really_delete(rt, ns or None, name, "Foreground")

    def _delete_namespace_contents(self, ns):
        for rt in list({t.skey: t for t in self._types.values() if t.namespaced}.values()):
            for ons, oname in list(self._store.get(rt.skey, {})):
                if ons == ns:
                    self._really_delete(rt, ons, oname, "Background")

    # ------------------------------------------------------------ garbage collector

    def _owner_alive(self, dep_ns, ref):
        group = ref.get("apiVersion", "").rpartition("/")[0]
        for rt in self._types.values():
            if rt.group == group and rt.kind == ref.get("kind"):
                o = self._get_obj(rt, dep_ns if rt.namespaced else None, ref.get("name"))
                return o is not None and o["metadata"]["uid"] == ref.get("uid")
        return True  # an unknown kind: the real GC keeps waiting, never deletes

    def _gc_loop(self):
        while not self._stopping.is_set():
            item = self._gc_queue.get()
            if item is None:
                return
            if self.gc_delay:
                time.sleep(self.gc_delay)
            try:
                with self._mu:
                    self._gc(item)
            except Exception:  # a test server must not die of a GC bug
                traceback.print_exc()

    def _gc(self, item):
        if item[0] == "owner":
            _, uid, policy = item
            targets = [(rt.skey, ns, name) for rt, ns, name, _ in self._dependents(uid)]
        else:
            _, skey, ns, name = item
            targets, policy = [(skey, ns or "", name)], "Background"
        for skey, ns, name in targets:
            rt = next((t for t in self._types.values() if t.skey == skey), None)
            o = self._store.get(skey, {}).get((ns, name))
            if rt is None or o is None:
                continue
            refs = o["metadata"].get("ownerReferences") or []
            alive = [r for r in refs if self._owner_alive(ns or None, r)]
            if len(alive) == len(refs):
                continue
            if not alive and policy != "Orphan":
                self._really_delete(rt, ns or None, name, "Background")
            else:
                new = copy.deepcopy(o)
                if alive:
                    new["metadata"]["ownerReferences"] = alive
                else:
                    new["metadata"].pop("ownerReferences", None)
                self._rv += 1
                new["metadata"]["resourceVersion"] = str(self._rv)
                self._store[skey][(ns, name)] = new
                self._emit("MODIFIED", rt, copy.deepcopy(new), copy.deepcopy(o))

    def _bookmark_loop(self):
        while not self._stopping.wait(self.bookmark_interval or 1.0):
            if self.bookmark_interval:
                self.send_bookmark()

    # ------------------------------------------------------------ read paths

    def _list(self, rt, ns, params):
        lsel = label_selector(params.get("labelSelector"))
        fsel = field_selector(params.get("fieldSelector"), rt)
        limit = int(params.get("limit") or 0)
        with self._mu:
            list_rv = self._rv
            start = None
            if params.get("continue"):
                try:
                    tok = json.loads(base64.urlsafe_b64decode(params["continue"] + "=="))
                    list_rv, start = int(tok["rv"]), tuple(tok["start"])
                except (ValueError, KeyError, TypeError):
                    raise bad_request(
                        "continue key is not valid: incorrect encoded start resourceVersion"
                    )
                if list_rv < self._oldest_rv:
                    raise gone(
                        "The provided continue parameter is too old to display a consistent list result. "
                        "You can start a new list without the continue parameter, or use the continue "
                        "token in this response to retrieve the remainder of the results. Continuing with "
                        "the provided token results in an inconsistent list - objects that were created, "
                        "modified, or deleted between the time the first chunk was returned and now may "
                        "show up in the list."
                    )
            rv, match = params.get("resourceVersion"), params.get("resourceVersionMatch")
            if rv not in (None, "", "0"):
                try:
                    n = int(rv)
                except ValueError:
                    raise bad_request(f'resourceVersion: Invalid value: "{rv}": must be a number')
                if n > self._rv:
                    raise ApiError(
                        504,
                        "Timeout",
                        f"Too large resource version: {n}, current: {self._rv}",
                        {
                            "causes": [
                                {
                                    "reason": "ResourceVersionTooLarge",
                                    "message": "Too large resource version",
                                }
                            ],
                            "retryAfterSeconds": 1,
                        },
                    )
                if match == "Exact" and n < self._oldest_rv:
                    raise gone(f"too old resource version: {n} ({self._oldest_rv})")
            items = []
            for key in sorted(self._store.get(rt.skey, {})):
                o = self._store[rt.skey][key]
                if ns is not None and key[0] != ns:
                    continue
                if start is not None and key <= start:
                    continue
                if lsel(o["metadata"].get("labels")) and fsel(o):
                    items.append((key, o))
            meta = {"resourceVersion": str(list_rv)}
            if limit and len(items) > limit:
                last = items[limit - 1][0]
                meta["continue"] = (
                    base64.urlsafe_b64encode(
                        json.dumps({"rv": list_rv, "start": list(last)}).encode()
                    )
                    .decode()
                    .rstrip("=")
                )
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            return {
                "kind": rt.list_kind,
                "apiVersion": rt.api_version,
                "metadata": meta,
                "items": [self._versioned(rt, o, with_type=bool(rt.crd)) for _, o in items],
            }

    def _start_watch(self, rt, ns, params, table, user):
        """Registers a watcher; returns (watcher, initial events) or raises."""
        lsel = label_selector(params.get("labelSelector"))
        fsel = field_selector(params.get("fieldSelector"), rt)
        w = _Watcher(rt, ns, lsel, fsel, truthy(params.get("allowWatchBookmarks")), table, user)
        rv = params.get("resourceVersion")
        initial = []
        with self._mu:
            if truthy(params.get("sendInitialEvents")):
                for key in sorted(self._store.get(rt.skey, {})):
                    o = self._store[rt.skey][key]
                    if w.matches(o):
                        initial.append(("ADDED", copy.deepcopy(o)))
                initial.append(("BOOKMARK-INITIAL", str(self._rv)))
            elif rv in (None, "", "0"):
                for key in sorted(self._store.get(rt.skey, {})):
                    o = self._store[rt.skey][key]
                    if w.matches(o):
                        initial.append(("ADDED", copy.deepcopy(o)))
            else:
                try:
                    n = int(rv)
                except ValueError:
                    raise bad_request(f'resourceVersion: Invalid value: "{rv}": must be a number')
                if n < self._oldest_rv:
                    return None, [
                        (
                            "ERROR",
                            gone(f"too old resource version: {n} ({self._oldest_rv})").status(),
                        )
                    ]
                if n > self._rv:
                    deadline = time.time() + 3
                    while n > self._rv and time.time() < deadline:
                        self._mu.release()
                        time.sleep(0.05)
                        self._mu.acquire()
                    if n > self._rv:
                        raise ApiError(
                            504,
                            "Timeout",
                            f"Too large resource version: {n}, current: {self._rv}",
                            {
                                "causes": [
                                    {
                                        "reason": "ResourceVersionTooLarge",
                                        "message": "Too large resource version",
                                    }
                                ],
                                "retryAfterSeconds": 1,
                            },
                        )
                idx = bisect.bisect_right([e.rv for e in self._history], n)
                for ev in self._history[idx:]:
                    w.offer(ev)
            self._watchers.add(w)
        return w, initial

    def _stop_watch(self, w):
        with self._mu:
            self._watchers.discard(w)

    def _authorize(self, user, verb, rt_group, resource, name, ns):
        with self._mu:
            rules = self._rules.get(user, [])
            return any(rule_allows(r, verb, rt_group, resource, name, ns) for r in rules)

    def _take_failure(self, method, path):
        with self._mu:
            for f in self._failures:
                if (
                    f["count"] > 0
                    and f["path"].search(path)
                    and (not f["method"] or f["method"] == method)
                ):
                    f["count"] -= 1
                    return f
        return None

    # ------------------------------------------------------------ discovery and OpenAPI

    def _groups(self):
        groups = {}
        with self._mu:
            for rt in self._types.values():
                if rt.group:
                    groups.setdefault(rt.group, [])
                    if rt.version not in groups[rt.group]:
                        groups[rt.group].append(rt.version)
        out = []
        for g, versions in sorted(groups.items()):
            vs = [
                {"groupVersion": f"{g}/{v}", "version": v} for v in sorted(versions, reverse=True)
            ]
            out.append({"name": g, "versions": vs, "preferredVersion": vs[0]})
        return out

    def _resource_list(self, group, version):
        with self._mu:
            rts = [rt for rt in self._types.values() if rt.group == group and rt.version == version]
        if not rts:
            return None
        res = []
        for rt in sorted(rts, key=lambda r: r.plural):
            res.extend(rt.discovery())
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": res,
        }

    def _gv_types(self):
        with self._mu:
            out = {}
            for rt in self._types.values():
                out.setdefault((rt.group, rt.version), []).append(rt)
            return out

    def _cr_schema(self, rt, ref_prefix):
        schema = copy.deepcopy(rt.schema or {"type": "object"})
        props = schema.setdefault("properties", {})
        props["apiVersion"] = {
            "type": "string",
            "description": "APIVersion defines the versioned schema of this "
            "representation of an object.",
        }
        props["kind"] = {
            "type": "string",
            "description": "Kind is a string value representing the REST resource "
            "this object represents.",
        }
        props["metadata"] = (
            {"$ref": ref_prefix + META_REF}
            if ref_prefix.startswith("#/definitions")
            else {
                "allOf": [{"$ref": ref_prefix + META_REF}],
                "description": "Standard object's metadata.",
            }
        )
        schema["x-kubernetes-group-version-kind"] = [
            {"group": rt.group, "kind": rt.kind, "version": rt.version}
        ]
        return schema

    def openapi_v2(self):
        defs = {META_REF: _meta_schema("#/definitions/"), OWNER_REF: _owner_schema()}
        for (g, v), rts in self._gv_types().items():
            for rt in rts:
                if rt.crd:
                    s = _to_v2(self._cr_schema(rt, "#/definitions/"))
                    s["properties"]["metadata"] = {"$ref": "#/definitions/" + META_REF}
                    s["x-kubernetes-group-version-kind"] = [
                        {"group": rt.group, "kind": rt.kind, "version": rt.version}
                    ]
                    defs[_definition_name(rt)] = s
        return {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": K8S_VERSION["gitVersion"]},
            "paths": {},
            "definitions": defs,
        }

    def openapi_v3_doc(self, group, version):
        rts = self._gv_types().get((group, version))
        if not rts:
            return None
        prefix = "#/components/schemas/"
        schemas = {
            META_REF: _meta_schema(prefix),
            OWNER_REF: _owner_schema(),
            "io.k8s.apimachinery.pkg.apis.meta.v1.Patch": {"type": "object"},
        }
        paths = {}
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        for rt in rts:
            name = _definition_name(rt)
            if rt.crd:
                schemas[name] = self._cr_schema(rt, prefix)
            gvk = {"group": rt.group, "kind": rt.kind, "version": rt.version}
            item = (
                f"{base}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
                if rt.namespaced
                else f"{base}/{rt.plural}/{{name}}"
            )
            ref = {"$ref": prefix + name} if rt.crd else {"type": "object"}
            content = {
                t: {"schema": {"$ref": prefix + "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}}
                for t in (
                    "application/json-patch+json",
                    "application/merge-patch+json",
                    "application/apply-patch+yaml",
                )
            }
            params = [
                {"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                for p in ("dryRun", "fieldManager", "fieldValidation")
            ]
            params.append(
                {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": True}}
            )
            paths[item] = {
                "get": {
                    "operationId": f"read{rt.kind}",
                    "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk,
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": ref}},
                        }
                    },
                },
                "patch": {
                    "operationId": f"patch{rt.kind}",
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": params,
                    "requestBody": {"content": content, "required": True},
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": ref}},
                        }
                    },
                },
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ]
                + (
                    [
                        {
                            "name": "namespace",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ]
                    if rt.namespaced
                    else []
                ),
            }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": K8S_VERSION["gitVersion"]},
            "paths": paths,
            "components": {"schemas": schemas},
        }

    def openapi_v3_root(self):
        paths = {}
        for g, v in sorted(self._gv_types()):
            key = f"apis/{g}/{v}" if g else f"api/{v}"
            doc = json.dumps(self.openapi_v3_doc(g, v), sort_keys=True).encode()
            paths[key] = {
                "serverRelativeURL": f"/openapi/v3/{key}?hash="
                + hashlib.sha512(doc).hexdigest()[:128].upper()
            }
        return {"paths": paths}

    # ------------------------------------------------------------ tables

    def _table(self, rt, objs, list_meta, include):
        if rt.columns == "secret":
            cols = [
                ("Name", "string", "name"),
                ("Type", "string", ""),
                ("Data", "integer", ""),
                ("Age", "string", ""),
            ]

            def cells(o):
                return [o["metadata"]["name"], o.get("type", ""), len(o.get("data") or {}), _age(o)]

        elif rt.columns == "namespace":
            cols = [("Name", "string", "name"), ("Status", "string", ""), ("Age", "string", "")]

            def cells(o):
                return [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""), _age(o)]

        elif rt.columns == "configmap":
            cols = [("Name", "string", "name"), ("Data", "integer", ""), ("Age", "string", "")]

            def cells(o):
                return [
                    o["metadata"]["name"],
                    len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                    _age(o),
                ]

        elif rt.columns == "lease":
            cols = [("Name", "string", "name"), ("Holder", "string", ""), ("Age", "string", "")]

            def cells(o):
                return [
                    o["metadata"]["name"],
                    (o.get("spec") or {}).get("holderIdentity", ""),
                    _age(o),
                ]

        elif rt.columns == "crd":
            cols = [("Name", "string", "name"), ("Created At", "date", "")]

            def cells(o):
                return [o["metadata"]["name"], o["metadata"].get("creationTimestamp")]

        else:
            pcs = rt.columns or [
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
            ]
            cols = [("Name", "string", "name")] + [
                (
                    c["name"],
                    c.get("type", "string"),
                    c.get("format", ""),
                    c.get("priority", 0),
                    c.get("description", ""),
                )
                for c in pcs
            ]

            def cells(o):
                out = [o["metadata"]["name"]]
                for c in pcs:
                    vals = jsonpath(o, c["jsonPath"])
                    if not vals:
                        out.append(None)
                        continue
                    v = vals[0]  # like the real table convertor: the first result only
                    if c.get("type") == "string":
                        out.append(v if isinstance(v, str) else json.dumps(v))
                    elif c.get("type") == "date":
                        out.append(
                            _age({"metadata": {"creationTimestamp": v}})
                            if isinstance(v, str)
                            else "<invalid>"
                        )
                    else:
                        out.append(v)
                return out

        defs = []
        for c in cols:
            d = {
                "name": c[0],
                "type": c[1],
                "format": c[2],
                "description": c[4] if len(c) > 4 else "",
                "priority": c[3] if len(c) > 3 else 0,
            }
            if c[0] == "Name":
                d["description"] = "Name must be unique within a namespace."
            defs.append(d)
        rows = []
        for o in objs:
            row = {"cells": cells(o)}
            if include == "Object":
                row["object"] = self._versioned(rt, o)
            elif include != "None":
                row["object"] = {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": copy.deepcopy(o["metadata"]),
                }
            rows.append(row)
        return {
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta,
            "columnDefinitions": defs,
            "rows": rows,
        }


def _parse_yaml_or_json(raw):
    text = raw.decode() if isinstance(raw, bytes) else raw
    try:
        return json.loads(text)
    except ValueError:
        if yaml is None:
            raise bad_request("YAML bodies need python3-yaml")
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise bad_request(f"error converting YAML to JSON: {e}")


# ---------------------------------------------------------------- HTTP


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube-apiserver"
    sys_version = ""

    def log_message(self, fmt, *args):
        api = self.server.api
        if api.log:
            api.log(fmt % args)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    # -------------------------------------------------------- plumbing

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code, obj, headers=None, ctype="application/json"):
        body = obj if isinstance(obj, bytes) else (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            if isinstance(v, list):
                for x in v:
                    self.send_header(k, x)
            else:
                self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self._code = code

    def _error(self, e):
        self._send(e.code, e.status(), e.headers)

    def _log_request(self, method, path, query, user):
        api = self.server.api
        self._logentry = {
            "method": method,
            "path": path,
            "query": query,
            "user": user,
            "code": None,
            "time": time.time(),
        }
        with api._mu:
            api.requests.append(self._logentry)

    def _handle(self, method):
        api = self.server.api
        self._code = None
        parsed = urlsplit(self.path)
        path = unquote(parsed.path)
        qs = parse_qs(parsed.query, keep_blank_values=True)
        params = {k: v[-1] for k, v in qs.items()}
        try:
            body = self._body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        if path.startswith("/_test/"):
            return self._control(method, path, body)
        user = None
        self._log_request(method, path, params, None)
        try:
            user = self._authenticate()
            self._logentry["user"] = user
            f = api._take_failure(method, path)
            if f is not None:
                hdr = {"Retry-After": str(f["retry_after"])} if f["retry_after"] is not None else {}
                reason = {
                    429: "TooManyRequests",
                    500: "InternalError",
                    503: "ServiceUnavailable",
                    504: "Timeout",
                    410: "Expired",
                    409: "Conflict",
                }.get(f["code"], "InternalError")
                raise ApiError(f["code"], reason, f"injected failure ({f['code']})", None, hdr)
            self._route(method, path, params, body, user)
        except ApiError as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        except Exception as e:  # keep serving; tell the client
            traceback.print_exc()
            try:
                self._error(ApiError(500, "InternalError", f"Internal error occurred: {e}"))
            except OSError:
                self.close_connection = True
        finally:
            self._logentry["code"] = self._code

    def _authenticate(self):
        api = self.server.api
        auth = self.headers.get("Authorization")
        if auth:
            parts = auth.split(" ", 1)
            if len(parts) == 2 and parts[0].lower() == "bearer":
                with api._mu:
                    user = api._tokens.get(parts[1].strip())
                if user:
                    return user
            raise ApiError(401, "Unauthorized", "Unauthorized")
        if isinstance(self.connection, ssl.SSLSocket):
            cert = self.connection.getpeercert()
            if cert:
                for rdn in cert.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            return v
        if api.anonymous:
            return api.anonymous
        raise ApiError(401, "Unauthorized", "Unauthorized")

    def _wants_table(self):
        return "as=Table" in (self.headers.get("Accept") or "")

    # -------------------------------------------------------- routes

    def _route(self, method, path, params, body, user):
        api = self.server.api
        path = "/" + path.strip("/")
        segs = [s for s in path.split("/") if s]
        if method == "GET":
            if path in ("/healthz", "/livez", "/readyz") or path.startswith(
                ("/healthz/", "/livez/", "/readyz/")
            ):
                return self._send(200, b"ok", ctype="text/plain; charset=utf-8")
            if path in ("/version", "/version/"):
                return self._send(200, K8S_VERSION)
            if path == "/api":
                return self._send(
                    200,
                    {
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [
                            {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{api.host}:{api.port}"}
                        ],
                    },
                )
            if path == "/apis":
                return self._send(
                    200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": api._groups()}
                )
            if len(segs) == 2 and segs[0] == "apis":
                g = next((x for x in api._groups() if x["name"] == segs[1]), None)
                if g is None:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                return self._send(200, dict(kind="APIGroup", apiVersion="v1", **g))
            if (len(segs) == 2 and segs[0] == "api") or (len(segs) == 3 and segs[0] == "apis"):
                rl = api._resource_list(segs[1] if segs[0] == "apis" else "", segs[-1])
                if rl is None:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                return self._send(200, rl)
            if path == "/openapi/v2":
                doc = api.openapi_v2()
                accept = self.headers.get("Accept") or ""
                if (
                    "protobuf" in accept
                ):  # the type kube-openapi answers (Go's mime parser refuses "@")
                    return self._send(
                        200,
                        openapi_v2_protobuf(doc),
                        ctype="application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                    )
                return self._send(200, doc)
            if path == "/openapi/v3":
                return self._send(200, api.openapi_v3_root())
            if path.startswith("/openapi/v3/"):
                rest = segs[2:]
                doc = None
                if len(rest) == 2 and rest[0] == "api":
                    doc = api.openapi_v3_doc("", rest[1])
                elif len(rest) == 3 and rest[0] == "apis":
                    doc = api.openapi_v3_doc(rest[1], rest[2])
                if doc is None:
                    raise ApiError(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                return self._send(
                    200,
                    doc,
                    {
                        "Cache-Control": "public, immutable",
                        "Expires": "Fri, 31 Dec 2100 " "00:00:00 GMT",
                    },
                )
        if len(segs) >= 3 and (
            (segs[0] == "api" and len(segs) >= 3) or (segs[0] == "apis" and len(segs) >= 4)
        ):
            return self._resource(method, segs, params, body, user)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _resource(self, method, segs, params, body, user):
        api = self.server.api
        if segs[0] == "api":
            group, version, rest = "", segs[1], segs[2:]
        else:
            group, version, rest = segs[1], segs[2], segs[3:]
        with api._mu:
            types = {
                rt.plural: rt for (g, v, _), rt in api._types.items() if g == group and v == version
            }
        ns = None
        if (
            rest[0] == "namespaces"
            and len(rest) >= 3
            and not (group == "" and rest[2] in ("status", "finalize") and len(rest) == 3)
        ):
            ns, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        watching = method == "GET" and name is None and truthy(params.get("watch"))
        verb = {
            "GET": "watch" if watching else ("get" if name else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }[method]
        resource = plural + ("/" + sub if sub else "")
        if not api._authorize(user, verb, group, resource, name, ns):
            gr = f"{plural}.{group}" if group else plural
            who = f'{gr} "{name}"' if name else gr
            where = f' in the namespace "{ns}"' if ns else " at the cluster scope"
            raise ApiError(
                403,
                "Forbidden",
                f'{who} is forbidden: User "{user}" cannot {verb} resource '
                f'"{resource}" in API group "{group}"{where}',
                {k: v for k, v in (("name", name), ("group", group), ("kind", plural)) if v},
            )
        rt = types.get(plural)
        if (
            rt is None
            or (sub and not (sub == "status" and rt.status))
            or (ns is not None and not rt.namespaced)
            or (rt.namespaced and ns is None and name is not None)
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "POST" and name is not None:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested " "resource",
            )
        if method in ("PUT", "PATCH") and name is None:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        if rt.namespaced and ns is None and method in ("POST", "DELETE"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        params = dict(params)
        if params.get("dryRun") and params["dryRun"] != "All":
            raise bad_request(
                f'dryRun: Unsupported value: "{params["dryRun"]}": supported values: "All"'
            )
        warnings = []
        ctype = (
            (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        )
        if method in ("POST", "PUT") and ctype not in (
            "application/json",
            "application/yaml",
            "*/*",
        ):
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - "
                "accepted media types include: application/json, application/yaml",
            )

        def decode():
            if not body:
                raise bad_request("the body of the request was empty")
            return _parse_yaml_or_json(body)

        def reply(result):
            obj, code = result
            hdr = {"Warning": [f'299 - "{w}"' for w in warnings]} if warnings else None
            if self._wants_table() and obj.get("kind") not in ("Status", "Table"):
                obj = api._table(
                    rt,
                    [obj],
                    {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                    params.get("includeObject", "Metadata"),
                )
            self._send(code, obj, hdr)

        if method == "GET":
            if watching:
                return self._watch(rt, ns, params, user)
            if name is None:
                lst = api._list(rt, ns, params)
                if self._wants_table():
                    raw = [i for i in lst["items"]]
                    return self._send(
                        200,
                        api._table(
                            rt, raw, lst["metadata"], params.get("includeObject", "Metadata")
                        ),
                    )
                return self._send(200, lst)
            with api._mu:
                o = api._get_obj(rt, ns, name)
                if o is None:
                    raise not_found(rt, name)
                o = api._versioned(rt, o)
            return reply((o, 200))
        if method == "POST":
            return reply(api._create(rt, ns, decode(), params, warnings))
        if method == "PUT":
            return reply(
                api._update(rt, ns, name, decode(), params, warnings, status=sub == "status")
            )
        if method == "PATCH":
            return reply(
                api._patch(rt, ns, name, ctype, body, params, warnings, status=sub == "status")
            )
        if method == "DELETE":
            options = _parse_yaml_or_json(body) if body else {}
            if not isinstance(options, dict):
                raise bad_request("DeleteOptions must be an object")
            if name is not None:
                return reply(api._delete(rt, ns, name, params, options))
            lst = api._list(rt, ns, params)
            done = []
            for item in lst["items"]:
                m = item["metadata"]
                api._delete(rt, m.get("namespace"), m["name"], params, options)
                done.append(api._versioned(rt, item))
            return self._send(
                200,
                {
                    "kind": rt.list_kind,
                    "apiVersion": rt.api_version,
                    "metadata": {"resourceVersion": api.resource_version()},
                    "items": done,
                },
            )

    # -------------------------------------------------------- watch

    def _chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _watch(self, rt, ns, params, user):
        api = self.server.api
        table = self._wants_table()
        w, initial = api._start_watch(rt, ns, params, table, user)
        timeout = float(params.get("timeoutSeconds") or 1800)
        deadline = time.time() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self._code = 200
        self._logentry["code"] = 200  # the stream is open
        first_table = [True]

        def event(etype, obj):
            if etype == "ERROR":
                return {"type": "ERROR", "object": obj}
            if etype in ("BOOKMARK", "BOOKMARK-INITIAL"):
                meta = {"resourceVersion": obj}
                if etype == "BOOKMARK-INITIAL":
                    meta["annotations"] = {"k8s.io/initial-events-end": "true"}
                return {
                    "type": "BOOKMARK",
                    "object": {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": meta},
                }
            o = api._versioned(rt, obj)
            if table:
                o = api._table(
                    rt,
                    [obj],
                    {"resourceVersion": obj["metadata"]["resourceVersion"]},
                    params.get("includeObject", "Metadata"),
                )
                if not first_table[0]:
                    o["columnDefinitions"] = []
                first_table[0] = False
            return {"type": etype, "object": o}

        try:
            for etype, obj in initial:
                self._chunk((json.dumps(event(etype, obj)) + "\n").encode())
            if w is None:  # an ERROR event ends the stream
                self._chunk(b"")
                return
            while not api._stopping.is_set():
                left = deadline - time.time()
                if left <= 0:
                    break
                try:
                    etype, obj = w.q.get(timeout=min(left, 0.5))
                except queue.Empty:
                    continue
                if etype == "DROP":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if etype == "END":
                    break
                if etype == "BOOKMARK" and not w.bookmarks:
                    continue
                self._chunk((json.dumps(event(etype, obj)) + "\n").encode())
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        finally:
            api._stop_watch(w) if w is not None else None

    # -------------------------------------------------------- test control

    def _control(self, method, path, body):
        api = self.server.api
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return self._send(400, {"error": "bad JSON"})
        op = path[len("/_test/") :].strip("/")
        try:
            if op == "compact" and method == "POST":
                return self._send(200, {"resourceVersion": str(api.compact())})
            if op == "bookmark" and method == "POST":
                return self._send(200, {"watches": api.send_bookmark()})
            if op == "drop-watches" and method == "POST":
                return self._send(200, {"watches": api.drop_watches(bool(data.get("graceful")))})
            if op == "token" and method == "POST":
                if data.get("delete"):
                    api.remove_token(data["token"])
                    return self._send(200, {})
                user = api.set_token(
                    data["token"], data.get("rules", []), data.get("user"), data.get("namespaces")
                )
                return self._send(200, {"user": user})
            if op == "fail" and method == "POST":
                api.fail(
                    data["path"],
                    data.get("code", 500),
                    data.get("count", 1),
                    data.get("method"),
                    data.get("retryAfter"),
                )
                return self._send(200, {})
            if op == "requests":
                if method == "DELETE":
                    api.clear_requests()
                    return self._send(200, {})
                with api._mu:
                    return self._send(200, {"requests": list(api.requests)})
            if op == "watches":
                with api._mu:
                    return self._send(
                        200,
                        {
                            "watches": [
                                {"resource": w.rt.gr, "namespace": w.namespace, "user": w.user}
                                for w in api._watchers
                            ]
                        },
                    )
            if op == "resourceversion":
                return self._send(200, {"resourceVersion": api.resource_version()})
        except (KeyError, ValueError) as e:
            return self._send(400, {"error": str(e)})
        return self._send(404, {"error": f"unknown test hook {method} {path}"})


# ---------------------------------------------------------------- CLI


def main(argv=None):
    ap = argparse.ArgumentParser(description="Stand-in Kubernetes API server for Backbone's tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--dir", required=True, help="where ca.crt, token and kubeconfig are written")
    ap.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    ap.add_argument(
        "--crds",
        action="append",
        help="CRD file or directory to preload (repeatable; default: " "packaging/kubernetes/crds)",
    )
    ap.add_argument("--no-crds", action="store_true", help="start without any CRD")
    ap.add_argument("--token", help="the admin token (default: random)")
    ap.add_argument("--history-limit", type=int, default=1000)
    ap.add_argument(
        "--bookmark-interval", type=float, default=0.0, help="seconds; 0 = only on /_test/bookmark"
    )
    ap.add_argument(
        "--anonymous",
        action="store_true",
        help="requests without credentials are system:anonymous "
        "(default: 401 over HTTPS; full rights over --http, where kubectl sends no token)",
    )
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    crds = [] if a.no_crds else a.crds
    srv = FakeApiServer(
        directory=a.dir,
        port=a.port,
        host=a.host,
        tls=not a.http,
        crds=crds,
        history_limit=a.history_limit,
        bookmark_interval=a.bookmark_interval,
        anonymous=True if a.anonymous else None,
        token=a.token,
        log=(lambda m: sys.stderr.write(m + "\n")) if a.verbose else None,
    )
    srv.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"READY {srv.port}", flush=True)
    while not done.wait(0.5):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
