#!/usr/bin/env bash
# Validates every deploy/kubernetes/*.yaml offline against one Kubernetes
# version's schemas, strictly (an unknown field fails), with kubernetes-validate,
# whose package bundles the schemas: after the first run's pip install nothing
# goes to the network. Prints one line per file and `manifests: N passed, M failed`;
# exits 1 when any file fails.
#
#   bash scripts/validate_manifests.sh [FILE...]    (make validate-manifests)
#   K8S_VERSION=1.33.0 bash scripts/validate_manifests.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KV_VERSION=1.37.0                 # kubernetes-validate; bundles schemas 1.25 to 1.37
K8S_VERSION=${K8S_VERSION:-1.30.0}
VENV=target/k8s-venv
PYLIB=target/k8s-pylib            # without python3's venv module: pip install --target

installed() { # PYTHON: whether it imports the pinned kubernetes-validate
	"$1" -c "import importlib.metadata as m, sys; sys.exit(m.version('kubernetes-validate') != '$KV_VERSION')" 2>/dev/null
}

install_log=target/k8s-install.log
mkdir -p target
if [ -x "$VENV/bin/python" ] && installed "$VENV/bin/python"; then
	PY=$VENV/bin/python
elif [ -d "$PYLIB" ] && PYTHONPATH=$PYLIB installed python3; then
	PY=python3
	export PYTHONPATH=$PYLIB
elif python3 -m venv "$VENV" >"$install_log" 2>&1; then
	"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
		"kubernetes-validate==$KV_VERSION" >>"$install_log" 2>&1 ||
		{ cat "$install_log" >&2; echo "validate-manifests: pip could not install kubernetes-validate==$KV_VERSION into $VENV (log above)" >&2; exit 1; }
	PY=$VENV/bin/python
else
	# Debian's python3 without python3-venv: a half-made venv would fool the
	# next run, so it goes, and the package goes into a plain directory.
	rm -rf "$VENV"
	python3 -m pip install --quiet --disable-pip-version-check --target "$PYLIB" \
		"kubernetes-validate==$KV_VERSION" >"$install_log" 2>&1 ||
		{ cat "$install_log" >&2; echo "validate-manifests: no venv module, and pip could not install kubernetes-validate==$KV_VERSION into $PYLIB (log above)" >&2; exit 1; }
	PY=python3
	export PYTHONPATH=$PYLIB
fi

if [ $# -eq 0 ]; then
	set -- deploy/kubernetes/*.yaml
fi

exec "$PY" - "$K8S_VERSION" "$@" <<'PY'
import sys

import yaml
import kubernetes_validate.utils as kv

try:
    import tomllib  # Python 3.11+: the tenants file in a ConfigMap is checked too
except ImportError:
    tomllib = None


class UniqueKeyLoader(yaml.SafeLoader):
    """Refuses a key given twice in one mapping, as kubectl does (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def problems(path, version):
    """The file's resource count and its problems, one line each."""
    try:
        with open(path, encoding="utf-8") as f:
            docs = [d for d in yaml.load_all(f, Loader=UniqueKeyLoader) if d is not None]
    except (OSError, yaml.YAMLError) as e:
        return 0, [" ".join(str(e).split())]
    if not docs:
        return 0, ["no resources in the file"]
    found = []
    for i, doc in enumerate(docs, 1):
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            found.append(f"document {i}: not a resource (no apiVersion or kind)")
            continue
        name = f"{doc['kind']}/{(doc.get('metadata') or {}).get('name', '?')}"
        try:
            kv.validate(doc, version, strict=True)
        except kv.ValidationError as e:
            where = ".".join(str(p) for p in e.path) or "(top level)"
            message = e.message if len(e.message) <= 200 else e.message[:200] + " …"
            found.append(f"{name}: {where}: {message}")
        except (kv.SchemaNotFoundError, kv.InvalidSchemaError, kv.VersionNotSupportedError) as e:
            found.append(f"{name}: {e.message}")
        if doc["kind"] == "ConfigMap" and tomllib:
            for key, text in (doc.get("data") or {}).items():
                if key.endswith(".toml"):
                    try:
                        tomllib.loads(text)
                    except tomllib.TOMLDecodeError as e:
                        found.append(f"{name}: data.{key}: not TOML: {e}")
    return len(docs), found


version, paths = sys.argv[1], sys.argv[2:]
passed = failed = 0
for path in paths:
    count, found = problems(path, version)
    if found:
        failed += 1
        print(f"FAIL {path}")
        for p in found:
            print(f"     {p}")
    else:
        passed += 1
        print(f"ok   {path} ({count} resource{'s' if count != 1 else ''}, Kubernetes {kv.major_minor(version)}, strict)")
print(f"manifests: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
