"""YAML fidelity of `llm-injector inject`, read by PyYAML (YAML 1.1, what
kubernetes-validate and other Python tools read).

For every file of tests/yaml_fidelity/ (see its README): unannotated, the
output must equal the input byte for byte; annotated, PyYAML must read from
the output every value it reads from the input (injection only adds). The
annotated outputs are written to OUT_DIR for .ci/run to validate strictly.

Usage: yaml_fidelity.py BIN OUT_DIR
"""

import pathlib
import subprocess
import sys

import yaml

CORPUS = pathlib.Path("tests/yaml_fidelity")
ARGS = ["inject", "-n", "team-a", "-f", "-", "--catalog", "examples/catalog"]


def inject(binary, text):
    run = subprocess.run([binary, *ARGS], input=text.encode(), capture_output=True)
    if run.returncode != 0:
        raise SystemExit(f"inject failed: {run.stderr.decode()}")
    return run.stdout.decode()


def contains(a, b, path, missing):
    if isinstance(a, dict) and isinstance(b, dict):
        for key, value in a.items():
            if key in b:
                contains(value, b[key], f"{path}.{key}", missing)
            else:
                missing.append(f"{path}.{key} is gone")
    elif isinstance(a, list) and isinstance(b, list) and len(a) <= len(b):
        # A container's env: injected entries go first, the user's follow.
        shift = len(b) - len(a) if path.endswith(".env") else 0
        for i, (x, y) in enumerate(zip(a, b[shift:])):
            contains(x, y, f"{path}[{i}]", missing)
    elif a != b or type(a) is not type(b):
        missing.append(f"{path}: {a!r} became {b!r}")


def main():
    binary, out_dir = sys.argv[1], pathlib.Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    failures = []
    files = sorted(CORPUS.glob("*.yaml"))
    if not files:
        raise SystemExit(f"no corpus in {CORPUS}")
    for path in files:
        text = path.read_text()
        plain = text.replace("__MODEL_ANNOTATION__", "example.com/unrelated")
        if inject(binary, plain) != plain:
            failures.append(f"{path}: unannotated output differs from the input")
        annotated = text.replace("__MODEL_ANNOTATION__", "llm.injector.dev/model")
        output = inject(binary, annotated)
        before = list(yaml.safe_load_all(annotated))
        after = list(yaml.safe_load_all(output))
        if len(before) != len(after):
            failures.append(f"{path}: {len(before)} documents became {len(after)}")
        missing = []
        for i, (a, b) in enumerate(zip(before, after)):
            contains(a, b, f"document {i + 1}", missing)
        failures.extend(f"{path}: {m}" for m in missing)
        (out_dir / path.name).write_text(output)
        print(f"{path}: unannotated identical, annotated holds the input as PyYAML reads it")
    for failure in failures:
        print(f"FAIL {failure}")
    sys.exit(1 if failures else 0)


main()
