#!/usr/bin/env python3
"""`helm lint` for CI, with the real Helm library and no helm binary.

    python3 .ci/helm_lint.py CHART [--set k=v]... [--set-string k=v]... [--values FILE]...

Loads libhelm_sdkpy.so (Helm v4 compiled as a C shared library, shipped in the
PyPI wheel helm-sdkpy, unpacked by .ci/run into .ci/.tools/) with ctypes and
calls helm_sdkpy_config_create, then helm_sdkpy_lint. Exits 1 when lint reports
an error (or a warning, with --strict), 2 on bad arguments or a missing library.

The C API (from the wheel's libhelm_sdkpy.h and helm_sdkpy/_ffi.py):
    int  helm_sdkpy_config_create(char *namespace, char *kubeconfig,
             char *kubecontext, char *options_json, unsigned long long *handle);
    int  helm_sdkpy_lint(unsigned long long handle, char *chart_path, char **json);
    void helm_sdkpy_config_destroy(unsigned long long handle);
    char *helm_sdkpy_last_error(void);   owned by the library: never freed
    void helm_sdkpy_free(void *ptr);     frees the *json results
A call returns 0 on success; otherwise helm_sdkpy_last_error() says why.
lint's JSON is Helm's lint result: {"Messages": [{"Severity", "Path", "Err"}],
"Errors": [...]}, Severity 1 info, 2 warning, 3 error. The library serialises
each Go error value as `{}`, so a message's text is lost: only its severity and
file come back. .ci/helm_template.py renders the chart with another Helm build
(helm-python-sdk) and prints the text of a template or schema error.

helm_sdkpy_lint takes no values. With --set/--values this script therefore
lints a temporary copy of the chart whose values.yaml holds the chart's own
values merged with the overrides (what `helm lint --set/-f` validates too).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_LIB = HERE / ".tools/helm-sdkpy/helm_sdkpy/_lib/linux-amd64/libhelm_sdkpy.so"
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


# --------------------------------------------------------------- values --
# A small, exact subset of Helm's --set syntax, shared with helm_template.py:
#   a.b.c=v        nested keys; "\." escapes a dot inside a key
#   k=v1,k2=v2     several assignments (split on unescaped commas)
#   k={x,y}        a list
# --set types v as Helm does: true/false, null, integers; else a string.
# --set-string keeps v a string. Index syntax (a[0]=v) is refused.


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside {...} and not escaped with a backslash."""
    parts, cur, depth, i = [], "", 0, 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur += text[i : i + 2]
            i += 2
            continue
        depth += c == "{"
        depth -= c == "}"
        if c == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    parts.append(cur)
    return parts


def _typed(value: str, as_string: bool) -> Any:
    value = value.replace("\\,", ",")
    if as_string:
        return value
    if value in ("true", "false"):
        return value == "true"
    if value == "null":
        return None
    if re.fullmatch(r"-?(0|[1-9][0-9]*)", value):
        return int(value)
    return value


def apply_set(values: dict[str, Any], expr: str, as_string: bool = False) -> None:
    """Apply one --set/--set-string argument to `values`, in place."""
    for assignment in _split(expr, ","):
        key, eq, raw = assignment.partition("=")
        if not eq or not key:
            raise ValueError(f"--set {assignment!r}: expected key=value")
        if "[" in key:
            raise ValueError(f"--set {assignment!r}: list indexes are not supported here; use --values")
        path = [p.replace("\\.", ".") for p in re.split(r"(?<!\\)\.", key)]
        if raw.startswith("{") and raw.endswith("}"):
            inner = raw[1:-1]
            value: Any = [_typed(v, as_string) for v in _split(inner, ",")] if inner else []
        else:
            value = _typed(raw, as_string)
        node = values
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing: maps merge recursively, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml  # PyYAML, installed in .ci/.venv by .ci/run
    except ImportError:
        sys.exit("helm_lint: PyYAML is needed for --values: run with .ci/.venv/bin/python")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: values must be a mapping")
    return data


def overrides(args: argparse.Namespace) -> dict[str, Any] | None:
    """The user's values (--values files, then --set, in order), or None."""
    if not (args.values or args.set or args.set_string):
        return None
    result: dict[str, Any] = {}
    for file in args.values:
        result = merge(result, load_yaml(Path(file)))
    for expr in args.set:
        apply_set(result, expr)
    for expr in args.set_string:
        apply_set(result, expr, as_string=True)
    return result


def add_value_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("chart", help="chart directory")
    parser.add_argument("--values", "-f", action="append", default=[], metavar="FILE",
                        help="values YAML file (repeatable)")
    parser.add_argument("--set", action="append", default=[], metavar="K=V",
                        help="set a value: a.b=v, a={x,y} (repeatable)")
    parser.add_argument("--set-string", action="append", default=[], metavar="K=V",
                        help="set a string value (repeatable)")


# ----------------------------------------------------------------- lint --
def load_library(path: Path) -> ctypes.CDLL:
    if not path.is_file():
        sys.exit(f"helm_lint: {path} not found; .ci/run unpacks the helm-sdkpy wheel there "
                 "(or set HELM_SDKPY_LIB)")
    lib = ctypes.CDLL(str(path))
    handle_t = ctypes.c_ulonglong
    lib.helm_sdkpy_config_create.argtypes = [ctypes.c_char_p] * 4 + [ctypes.POINTER(handle_t)]
    lib.helm_sdkpy_config_create.restype = ctypes.c_int
    lib.helm_sdkpy_config_destroy.argtypes = [handle_t]
    lib.helm_sdkpy_config_destroy.restype = None
    # Results are char** filled by the library: typed void* so the pointer is
    # kept and can be handed back to helm_sdkpy_free.
    lib.helm_sdkpy_lint.argtypes = [handle_t, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.helm_sdkpy_lint.restype = ctypes.c_int
    lib.helm_sdkpy_last_error.argtypes = []
    lib.helm_sdkpy_last_error.restype = ctypes.c_char_p  # library-owned, copied by ctypes
    lib.helm_sdkpy_free.argtypes = [ctypes.c_void_p]
    lib.helm_sdkpy_free.restype = None
    lib.helm_sdkpy_version_string.argtypes = []
    lib.helm_sdkpy_version_string.restype = ctypes.c_void_p
    return lib


def last_error(lib: ctypes.CDLL) -> str:
    message = lib.helm_sdkpy_last_error()
    return message.decode("utf-8", "replace") if message else "unknown error"


def take_string(lib: ctypes.CDLL, pointer: ctypes.c_void_p) -> str:
    """Copy a library-allocated C string, then free it."""
    if not pointer.value:
        return ""
    try:
        return ctypes.string_at(pointer.value).decode("utf-8")
    finally:
        lib.helm_sdkpy_free(pointer)


def lint(lib: ctypes.CDLL, chart: Path) -> dict[str, Any]:
    handle = ctypes.c_ulonglong()
    # Lint needs no cluster: no kubeconfig, no context, default options.
    if lib.helm_sdkpy_config_create(b"default", None, None, b"{}", ctypes.byref(handle)) != 0:
        raise RuntimeError(f"helm_sdkpy_config_create: {last_error(lib)}")
    try:
        result = ctypes.c_void_p()
        if lib.helm_sdkpy_lint(handle, str(chart).encode(), ctypes.byref(result)) != 0:
            raise RuntimeError(f"helm_sdkpy_lint: {last_error(lib)}")
        return json.loads(take_string(lib, result))
    finally:
        lib.helm_sdkpy_config_destroy(handle)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_value_args(parser)
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    args = parser.parse_args()
    chart = Path(args.chart).resolve()
    if not (chart / "Chart.yaml").is_file():
        print(f"helm_lint: {chart} is not a chart directory (no Chart.yaml)", file=sys.stderr)
        return 2
    try:
        user_values = overrides(args)
    except (ValueError, OSError) as e:
        print(f"helm_lint: {e}", file=sys.stderr)
        return 2
    lib = load_library(Path(os.environ.get("HELM_SDKPY_LIB", DEFAULT_LIB)))
    version = take_string(lib, ctypes.c_void_p(lib.helm_sdkpy_version_string()))

    with tempfile.TemporaryDirectory(prefix="helm-lint-") as tmp:
        target = chart
        if user_values is not None:
            target = Path(tmp) / chart.name
            shutil.copytree(chart, target)
            merged = merge(load_yaml(chart / "values.yaml"), user_values)
            # JSON is YAML, and keeps every type exactly.
            (target / "values.yaml").write_text(json.dumps(merged, indent=1) + "\n")
        try:
            report = lint(lib, target)
        except RuntimeError as e:
            print(f"helm_lint: {e}", file=sys.stderr)
            return 1

    what = " ".join([f"--values {f}" for f in args.values] + [f"--set {s}" for s in args.set]
                    + [f"--set-string {s}" for s in args.set_string]) or "default values"
    counts = {name: 0 for name in SEVERITY.values()}
    for message in report.get("Messages") or []:
        severity = SEVERITY.get(message.get("Severity"), "UNKNOWN")
        counts[severity] += 1
        if severity == "INFO":
            continue  # e.g. "icon is recommended"; counted only
        text = message.get("Err")
        text = text if isinstance(text, str) and text else "(the library returns no message text)"
        print(f"[{severity}] {message.get('Path', '?')}: {text}")
    failed = counts["ERROR"] > 0 or bool(report.get("Errors")) or (args.strict and counts["WARNING"] > 0)
    charts = report.get("TotalChartsLinted", 0)
    print(f"helm lint ({version}) {args.chart} with {what}: {charts} chart(s), "
          f"{counts['ERROR']} error(s), {counts['WARNING']} warning(s), {counts['INFO']} info: "
          f"{'FAILED' if failed else 'OK'}")
    if charts == 0:
        print("helm_lint: no chart was linted", file=sys.stderr)
        return 1
    if failed:
        print("helm_lint: messages without text come from helm-sdkpy; for the text, run "
              ".ci/helm_template.py with the same arguments", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
